"""A bench's work directory: a broker's log and DuckDB files (gigabytes at a year's scale), and the services' logs."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def bench_workdir(workdir: Path) -> Iterator[Path]:
    """Yields `workdir`; removes it whole when the run succeeds. When it fails, only the bulky parts go (the
    broker's log, DuckDB and SQLite files): the services' logs stay, since a failure names them."""
    try:
        yield workdir
    except BaseException:
        for item in workdir.iterdir() if workdir.exists() else ():
            if item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            elif item.suffix != ".log":
                item.unlink(missing_ok=True)
        print(f"the run failed; its services' logs are kept in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
