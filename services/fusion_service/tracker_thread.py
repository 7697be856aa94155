"""The fusion engine's tracker thread: ``FusionCore.track_next`` off the event loop.

At raid scale one frame's tracking takes milliseconds (its p99 tens of ms on a loaded
core) and one watermark release is up to ~100 frames: on the event loop that delays
every ack queued behind it. Here the tracker runs in stretches on a thread of its own,
so the loop waits at most for the interpreter's thread switch (``sys.getswitchinterval``)
and for the compiled kernels that hold the GIL.

What the two threads share (:mod:`.follower`: two cores, one ordering on the loop, one
tracking here): the follower's feed of committed events (the loop appends, the tracker
thread pops) and its position; the tracking core, its open-stream counts and the
follower's figures are changed only here, and read from the loop only under
:attr:`TrackerThread.lock` (held for one event's ordering or one item's tracking at a
time: a read waits for at most one frame's tracking) or while no stretch runs
(:attr:`TrackerThread.running` False: showing a stretch's reports, checkpoints).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tracklayer.fusion.core import Emitted
from tracklayer.services.fusion_service.follower import Follower

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

    async def stretch(self, follower: Follower, limit: int, budget_s: float) -> list[Emitted]:
        """``follower.run(limit, budget_s)`` on the tracker thread: the committed events
        up to seq ``limit`` applied and tracked for up to ``budget_s`` wall seconds (at
        least one step); their reports in order."""
        if self._exec is None:
            raise RuntimeError("tracker thread closed")
        self.running = True
        self._idle.clear()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._exec, self._run, follower, limit, budget_s)
        finally:
            self.running = False
            self._idle.set()

    def _run(self, follower: Follower, limit: int, budget_s: float) -> list[Emitted]:
        t0 = time.perf_counter()
        try:
            return follower.run(limit, budget_s, self.lock)
        finally:
            self.busy_s += time.perf_counter() - t0

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
