"""Settings for a process that runs minillm and nothing else.

``minillm serve`` (and each of its workers) and Hypercorn running the factory
``minillm.app:create_app()`` call :func:`dedicate`; a gateway embedded in an
app's own process (:func:`minillm.open_gateway`) leaves the process alone.

Garbage collection: with a thousand streams open, the process holds a few
hundred thousand container objects (tasks, coroutine frames, connections) and
allocates fast, so CPython's default thresholds (a young collection every 700
net allocations) collected all the time.  One bench run of 1000 long streams
spent 5.9 s of its 35 s of CPU in the cyclic collector, with pauses of up to
0.38 s: the whole gap between the gateway's p99 and the upstream's.  So:

* :func:`gc.freeze` once everything is imported and built: those objects live
  for good, and are never traversed again;
* young collections every :data:`YOUNG_THRESHOLD` net allocations instead of
  700.  Almost everything a request allocates is freed by reference counting
  before that (the collector only finds cycles), so this costs little memory.

Measured (one bench run each, 1000 long streams): defaults 5.45 ms of CPU per
stream and a p99 1.13x the upstream's; frozen with young collections every
20 000: 4.15 ms and 1.03x, with 0.5 s in the collector instead of 5.3 s.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "dedicate"]

YOUNG_THRESHOLD = 20_000


def dedicate() -> None:
    """Tune the process for serving (see the module docstring); idempotent."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
