"""Fewer garbage collections while a batch or a rebuild is decoded and folded.

Folding creates millions of small tuples and dicts that live only as long as the batch. CPython's cyclic
collector runs a young collection every 700 new container objects and, every hundred of those, a full one that
walks every object the process holds — the decoded batch, the rows read back, the modules, the web app. Measured
on the rebuild's fold of 5,000 requests (`deploy/bench/analytics_fold.py --rebuild`), turning the fold's rows into
Arrow columns took twice as long with the collector as it is configured by default as with it paused.

`fewer_collections()` moves what the process holds when it starts into the permanent generation (`gc.freeze`: the
collector no longer walks it) and collects the young generation every 50,000 objects instead of 700; on the way
out it restores both. Nothing is leaked: objects frozen meanwhile return to the oldest generation at the end and are
collected as usual. Nested and concurrent users (the live consumer's thread, a rebuild's) share one pause: the
first in starts it, the last out ends it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    global _depth, _saved
    with _lock:
        _depth += 1
        if _depth == 1:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(YOUNG_THRESHOLD, _saved[1], _saved[2])
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                gc.unfreeze()
                _saved = None
