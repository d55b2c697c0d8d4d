"""`python -m deploy.bench.append`: the event store's append alone, before and after a change, in one process.

`shared/eventstore/store.py` at `--before` (a git revision) is loaded as a module of its own next to this
checkout's, and both append to the same SQLite file (synchronous=FULL, the lean path) in alternating blocks, each
block one transaction of `--per-block` appends of two events (as dispatch appends a job: created and assigned):
the two meet the same machine, block for block, which on a shared, loaded box is what makes the figure robust.
Prints the median CPU of the process (both threads: the event loop's and SQLite's) per append. Nothing is
written. The rest of the code (lean.py, the tables, the contracts) is this checkout's for both."""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from types import ModuleType

from deploy.bench.revisions import module_at

ROOT = Path(__file__).resolve().parents[2]


async def _measure(before: ModuleType, workdir: Path, blocks: int, per_block: int) -> dict[str, list[float]]:
    import shared.eventstore.store as now
    from shared.clock import utcnow
    from shared.contracts.intake import ServiceRequestEscalated
    from shared.events import ActorId
    from shared.eventstore.database import Database
    from shared.eventstore.tables import metadata

    db = Database(f"sqlite+aiosqlite:///{workdir / 'append.db'}")
    await db.create_all(metadata)
    modules = {"before": before, "now": now}
    stores = {name: module.EventStore("dispatch") for name, module in modules.items()}
    actor = ActorId.system("dispatch")
    cpu: dict[str, list[float]] = {"before": [], "now": []}
    streams = 0
    try:
        for block in range(blocks + 2):  # the first two rounds warm up
            for name in ("before", "now") if block % 2 else ("now", "before"):
                module, store = modules[name], stores[name]
                async with db.transaction() as conn:
                    started = time.process_time()
                    for _ in range(per_block):
                        streams += 1
                        stream = f"job-{streams}"
                        new_events = [
                            module.NewEvent(ServiceRequestEscalated(request_id=stream, reason=reason), utcnow())
                            for reason in ("created", "assigned")
                        ]
                        await store.append(
                            conn,
                            stream_id=stream,
                            stream_type="job",
                            expected_version=0,
                            new_events=new_events,
                            metadata=module.Metadata(correlation_id=f"c-{streams}", causation_id=f"e-{streams}"),
                            actor=actor,
                        )
                    elapsed = time.process_time() - started
                if block >= 2:
                    cpu[name].append(elapsed / per_block * 1e6)
    finally:
        await db.dispose()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.append", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="main", help="git revision of the baseline store.py (default main)")
    parser.add_argument("--blocks", type=int, default=20, help="measured blocks of each (default 20)")
    parser.add_argument("--per-block", type=int, default=200, help="two-event appends per block (default 200)")
    args = parser.parse_args()
    import uvloop

    workdir = Path(tempfile.mkdtemp(prefix="servicetrail-append-"))
    try:
        before = module_at(args.before, "shared/eventstore/store.py", "store_before")
        cpu = uvloop.run(_measure(before, workdir, args.blocks, args.per_block))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for name, label in (("before", f"before ({args.before})"), ("now", "now")):
        xs = cpu[name]
        print(
            f"{label:>18}: {statistics.median(xs):6.1f} µs of CPU per two-event append (median of {len(xs)} blocks "
            f"of {args.per_block}; lowest {min(xs):.1f})"
        )


if __name__ == "__main__":
    main()
