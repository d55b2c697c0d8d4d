"""`python -m deploy.chaos [--profile full|short] [--no-cluster]` (make chaos): run the fault runs, print the
table of invariants, exit 1 when any invariant broke."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from deploy.chaos.invariants import table
from deploy.chaos.runs import full_profile, short_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=("full", "short"), default="full")
    parser.add_argument("--no-cluster", action="store_true", help="skip the 3-node cluster run")
    parser.add_argument("--fuzz-examples", type=int, default=5, help="per operation and mode; 0 skips the stage")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {line}", flush=True)

    fuzzed = None
    if args.profile == "short":
        reports = asyncio.run(short_profile(log))
    else:
        reports, fuzzed = asyncio.run(full_profile(log, cluster=not args.no_cluster, fuzz_examples=args.fuzz_examples))
    print()
    print(table(reports))
    broken = [r for r in reports if not r.ok]
    if fuzzed is not None:
        print("\nfuzz stage\n" + fuzzed.summary())
    print(
        f"\n{len(reports)} runs in {time.monotonic() - started:.0f}s; "
        + ("every invariant held" if not broken else f"{len(broken)} run(s) broke an invariant")
        + ("" if fuzzed is None else f"; fuzz: {len(fuzzed.failures)} failures")
    )
    return 1 if broken or (fuzzed is not None and fuzzed.failures) else 0


if __name__ == "__main__":
    sys.exit(main())
