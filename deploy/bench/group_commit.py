"""`python -m deploy.bench.group_commit`: POST /v1/service-requests on intake with group commit off
(`SQLITE_GROUP_COMMIT_LIMIT=1`, one COMMIT and fsync per command, as before) and on (the default), each on its
own fresh SQLite file, the two measured alternately at each concurrency so that both meet the same machine.
Prints requests/s, p50/p99 and the server's CPU per request; nothing is written."""

from __future__ import annotations

import argparse
import uuid
from contextlib import ExitStack
from pathlib import Path

from deploy.bench.http_bench import SECRET, Level, _measure
from deploy.bench.load import run_load
from deploy.bench.procs import Server, scratch_with_broker
from shared.auth import mint_token


def _intake(workdir: Path, name: str, bootstrap: str, limit: int) -> Server:
    (workdir / name).mkdir()
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / name / 'intake.db'}",
        "KAFKA_BOOTSTRAP": bootstrap,
        "AUTH_SECRET": SECRET,
        "CONSUMER_GROUP": f"bench-{name}-{uuid.uuid4().hex[:8]}",
        "SQLITE_GROUP_COMMIT_LIMIT": str(limit),
    }
    return Server("intake", workdir / name, env)


def _row(name: str, concurrency: int, level: Level) -> str:
    per_request = level.server_cores / level.load.rps * 1000 if level.load.rps else 0.0
    return (
        f"{name:18} c={concurrency:<3} {level.load.rps:7.0f} req/s  p50 {level.load.p50_ms:6.1f} ms  "
        f"p99 {level.load.p99_ms:7.1f} ms  server CPU {per_request:5.2f} ms/request  "
        f"other {level.other_cores:.2f} cores  {'all 201' if level.load.all_created else 'NOT ALL 201'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.group_commit", description=__doc__)
    parser.add_argument("--levels", default="1,8,64", help="HTTP concurrencies (default 1,8,64)")
    parser.add_argument("--seconds", type=float, default=8, help="seconds per run (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per concurrency (default 2)")
    args = parser.parse_args(argv)
    token = mint_token(SECRET, subject="bench", roles=["agent"])
    with ExitStack() as stack:
        workdir, bootstrap = scratch_with_broker(stack, "servicetrail-group-commit-")
        servers = {
            "group commit off": stack.enter_context(_intake(workdir, "off", bootstrap, 1)),
            "group commit on": stack.enter_context(_intake(workdir, "on", bootstrap, 64)),
        }
        for server in servers.values():
            run_load(server.url, 8, 2, token, f"w{uuid.uuid4().hex[:6]}")
        for concurrency in (int(c) for c in args.levels.split(",")):
            for round_ in range(args.rounds):
                for name, server in servers.items():
                    prefix = f"{name[-3:].strip()}{concurrency}r{round_}{uuid.uuid4().hex[:6]}"
                    level = _measure(server, None, concurrency, args.seconds, token, prefix)
                    print(_row(name, concurrency, level), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
