"""The fusion engine's tracker thread: ``FusionCore.track_next`` off the event loop.

At raid scale one frame's tracking takes milliseconds (its p99 tens of ms on a loaded
core) and one watermark release is up to ~100 frames: on the event loop that delays
every ack queued behind it. Here the tracker runs in stretches on a thread of its own,
so the loop waits at most for the interpreter's thread switch (``sys.getswitchinterval``)
and for the compiled kernels that hold the GIL.

What the two threads share (``FusionCore`` keeps the ordering and the tracker apart):
the ordering (on the loop) appends released work to the core's deque and counts
``items_released``; the tracker thread pops it and counts ``items_tracked``; each
attribute has one writer. Everything else the tracker thread touches (the tracker,
``_applied``, ``_reports``, ``_dirty``, ``_last_applied_ns``) is read from the loop only
under :attr:`TrackerThread.lock` (held for one item at a time: a read waits for at
most one frame's tracking) or while no stretch runs (:attr:`TrackerThread.running`
False: showing a stretch's reports, checkpoints).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tracklayer.fusion.core import Emitted, FusionCore

R = TypeVar("R")


class TrackerThread:
    """One thread that tracks a core's deferred work in stretches (module docstring)."""

    def __init__(self, name: str = "fusion-tracker") -> None:
        self._exec: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name
        )
        #: Held by the tracker thread while it tracks one item; loop reads of the
        #: tracker's state take it (:meth:`locked`).
        self.lock = threading.Lock()
        #: True from the start of a stretch until its reports are back on the loop.
        self.running = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.busy_s = 0.0  # wall seconds spent tracking (the thread's load)

    async def stretch(self, core: FusionCore, limit: int, budget_s: float) -> list[Emitted]:
        """Track ``core``'s deferred items while ``items_tracked < limit`` (items the
        caller may track: those of committed events) for up to ``budget_s`` wall
        seconds (at least one item), on the tracker thread; their reports in order."""
        if self._exec is None:
            raise RuntimeError("tracker thread closed")
        self.running = True
        self._idle.clear()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._exec, self._run, core, limit, budget_s)
        finally:
            self.running = False
            self._idle.set()

    def _run(self, core: FusionCore, limit: int, budget_s: float) -> list[Emitted]:
        out: list[Emitted] = []
        t0 = time.perf_counter()
        try:
            while core.items_tracked < limit:
                with self.lock:
                    out.extend(core.track_next()[1])
                if time.perf_counter() - t0 > budget_s:
                    break
        finally:
            self.busy_s += time.perf_counter() - t0
        return out

    def locked(self, fn: Callable[[], R]) -> R:
        """``fn()`` while the tracker thread is between two items (from the loop)."""
        with self.lock:
            return fn()

    async def idle(self) -> None:
        """Wait until no stretch runs (e.g. before the core is replaced)."""
        await self._idle.wait()

    def close(self) -> None:
        """Let a stretch in progress finish, then end the thread (idempotent)."""
        if self._exec is not None:
            self._exec.shutdown(wait=True)
            self._exec = None
