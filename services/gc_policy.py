"""Garbage collection of the long-running fusion process (issue 13 item 6).

At raid scale the process holds millions of long-lived objects (tracks, their
histories, the ordering buffer, the live picture). CPython's cyclic collector
scans all of them at each full (generation 2) collection: traced in a live
``raid-proliferated`` run (2 vCPU, load ~12), 6 full collections took 70-660 ms
each, 64 generation-1 collections 22 ms median, all on the event loop, so every
ack and report waiting behind them; together they found 20 (full) and 538
(generation 1) objects of cyclic garbage in 220 s. Nearly everything the
tracker and the service drop is freed by reference counting.

:class:`GcFreezer` therefore moves every object that survived to the next tick
(at most once per :data:`FREEZE_EVERY_S`) into the interpreter's permanent
generation (``gc.freeze``: a list splice, O(1)), which collections never scan:
young objects are still collected as before (a cycle that dies within a second
is freed), and the full collections only ever see the last second's survivors.
The price is that a cycle which becomes garbage after it was frozen stays until
:meth:`GcFreezer.thaw` (at the traced rate a few hundred objects per minute at
most); the engine thaws and collects when it drops a whole state (rebuild after a
full disk). It also keeps the collector from touching the parent's pages after a
checkpoint encoder is forked (``gc.freeze`` before ``fork`` is what the ``gc``
documentation recommends for that).

Only the ``tracklayer fusion`` and ``tracklayer track`` commands turn it on (an
engine inside a test or another program leaves that process's collector alone);
``track`` gives everything back to the collector at the end of its run
(:meth:`GcFreezer.release`), so a caller of the CLI's ``main`` in-process keeps its
collector as it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import time
from collections.abc import Callable

#: Wall seconds between two freezes (the youngest objects stay collectable that long).
FREEZE_EVERY_S = 1.0

#: Wall seconds a count of the frozen objects is reused (``frozen``): counting walks
#: every one of them with the GIL held (~20 ms per 3 million on a quiet core; stop 23
#: traced 15% of the live engine's event loop in it at one ``GetStatus`` a second).
COUNT_EVERY_S = 60.0


class GcFreezer:
    """Freezes the objects that survived, at most once per ``every_s`` (see module)."""

    def __init__(
        self, every_s: float = FREEZE_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every_s, self._clock = every_s, clock
        self._at = float("-inf")
        self.freezes = 0
        self._count, self._counted_at = 0, float("-inf")  # ``frozen``'s last count

    def tick(self) -> None:
        """Freeze now if ``every_s`` passed since the last freeze (cheap otherwise)."""
        now = self._clock()
        if now - self._at >= self.every_s:
            gc.freeze()
            self._at = now
            self.freezes += 1

    def thaw(self) -> None:
        """Give every frozen object back to the collector and collect (a full pause:
        only when a whole state was dropped)."""
        gc.unfreeze()
        gc.collect()
        self._at = self._counted_at = float("-inf")

    def release(self) -> None:
        """Give every frozen object back to the collector, without a collection now
        (the next automatic one frees what died): the end of a run in a process that
        goes on."""
        gc.unfreeze()
        self._at = self._counted_at = float("-inf")

    def frozen(self) -> int:
        """Objects in the permanent generation (GetStatus ``gc_frozen_objects``), as
        counted at most ``COUNT_EVERY_S`` ago (a count walks them all)."""
        now = self._clock()
        if now - self._counted_at >= COUNT_EVERY_S:
            self._count, self._counted_at = gc.get_freeze_count(), now
        return self._count


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None where the C library has none)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def trim_heap() -> bool:
    """Give the C allocator's free pages back to the system (glibc ``malloc_trim(0)``,
    every arena; the GIL is released meanwhile); False where there is none. After a
    checkpoint of a big state passed through a process (tens of MB read from a pipe in
    64 KB pieces, on a thread: its arena), glibc keeps the freed pages; measured 10-30 MB
    in the tracking process (issue 13, RSS flat)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
