"""Python's cyclic garbage collector paused while a spec's objects are built.

CPython (3.11) starts a collection after every 700 net allocations of container
objects, and a full one, which visits every live object, after ten of the next
kind, whenever the objects added since the last full one are a quarter of
those alive. Reading and checking a spec allocates a few container objects per
layer and keeps them (the data, the validated models, one report, plan and
geometry per layer), so a 10,000-layer spec paid for full collections of a
growing heap that a 1,000-layer spec never triggers: 1.5 to 2x the per-layer
cost, measured by `python benchmarks/run.py --only scaling`. What is built is
acyclic and kept, so a collection during the build finds nothing to free.

The collector is switched off only if it is on, and switched back on when the
block ends, however it ends; nothing else of the interpreter is touched. A
block inside another leaves the switching to the outer one.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic garbage collection inside the block; the collector's state as before after it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
