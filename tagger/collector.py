"""Pausing Python's cyclic garbage collector around batch work.

Prediction and annotation allocate hundreds of thousands of small objects per chunk of input
(tokens, tag lists, predictions, entities) that live until the chunk is written and form no
reference cycles. CPython's collector runs after every 700 net allocations and walks the young
ones again and again, and now and then every object of the process: on eng.testb (46k tokens) it
took 0.1 s of a 0.5 s annotation. While paused, garbage is still freed at once by reference
counting; only cycles wait, for :func:`collect_young` at a chunk boundary or the end of the pause.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collect_young", "paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """No automatic cyclic collection inside (a no-op if it is already off, e.g. in an outer pause)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def collect_young() -> None:
    """Collect the cycles among objects allocated since the last collection (the two young generations:
    at a chunk boundary those are the finished chunk's, so the walk is short)."""
    gc.collect(1)
