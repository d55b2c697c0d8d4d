"""dispatch's consumer path counted in instructions, which the other load on a shared machine does not move.

`python -m deploy.bench.dispatch_instructions --before <rev>`: `dispatch_in_process.run_in_process` of each tree
(`--before` first, then this checkout) under valgrind's callgrind, every thread of the process in user space
(Python, SQLite's C, the drivers), once with `--small` and once with `--large` measured requests; the difference
over the difference in requests is the instructions per assignment (start-up, imports and warm-up cancel out).
Slow (callgrind runs the process ~50 times slower: a few minutes per tree); needs valgrind."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy.bench.dispatch_lag import ROOT, _export

_CHILD = "import runpy; runpy.run_path({path!r}, run_name='child')['run_in_process']({requests}, warmup={warmup})"


def instructions(tree: Path, requests: int, warmup: int, out: Path) -> int:
    """Every instruction the process ran (user space, all threads), as callgrind counts them."""
    code = _CHILD.format(path=str(Path(__file__).with_name("dispatch_in_process.py")), requests=requests, warmup=warmup)
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", code],
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise SystemExit(f"callgrind reported no count:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.dispatch_instructions", description=__doc__)
    parser.add_argument("--before", help="git revision to count first (e.g. main)")
    parser.add_argument("--after", help="git revision to count second (default: this checkout as it is)")
    parser.add_argument("--small", type=int, default=100, help="measured requests of the short run (default 100)")
    parser.add_argument("--large", type=int, default=400, help="measured requests of the long run (default 400)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up requests of each run (default 100)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-instructions-") as tmp:
        workdir = Path(tmp)
        trees = [("now", ROOT)]
        if args.after:
            after = workdir / "after"
            after.mkdir()
            _export(args.after, after)
            trees = [(f"now ({args.after})", after)]
        if args.before:
            before = workdir / "before"
            before.mkdir()
            _export(args.before, before)
            trees.insert(0, (f"before ({args.before})", before))
        for name, tree in trees:
            small, large = (
                instructions(tree, n, args.warmup, workdir / f"{name[:6]}-{n}.out") for n in (args.small, args.large)
            )
            per = (large - small) / (args.large - args.small)
            print(
                f"{name:>18}: {per / 1e6:.2f} million instructions per assignment "
                f"({small / 1e6:,.0f} M at {args.small} requests, {large / 1e6:,.0f} M at {args.large})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
