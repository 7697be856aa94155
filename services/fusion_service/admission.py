"""The fusion engine's admission of frames: back-pressure on the senders.

Two bounds, both waits (never refusals):

* at most ``max_pending_frames`` frames queued or being applied (``frames_pending``):
  a frame takes a slot before it is queued and frees it when it is answered (acked)
  or failed;
* while more than ``max_buffered_frames`` accepted frames wait for the ordering
  watermark, a frame of a sensor that does not hold the watermark waits too, so a
  sensor flooding ahead cannot grow the buffer without bound, and the sensor the
  watermark waits for is never blocked (DESIGN §6 rule 6; ``buffer_holds``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from tracklayer.fusion.ordering import FrameOrderer
from tracklayer.services.fusion_service.inputs import EngineInput
from tracklayer.services.fusion_service.journal import EventKind

#: Seconds between two looks at the watermark buffer while a frame is held back.
BUFFER_POLL_S = 0.02


class FrameAdmission:
    """The slots of queued frames and the hold on frames while the watermark buffer is
    full; one per engine, used on its event loop."""

    def __init__(self, max_pending_frames: int, max_buffered_frames: int) -> None:
        self._slots = asyncio.Semaphore(max_pending_frames)
        self._max_buffered = max_buffered_frames
        self.pending = 0  # frames holding a slot (queued, not yet answered)
        self.buffer_holds = 0  # frames held back while the watermark buffer was full

    async def admit(
        self, orderer: FrameOrderer, sensor_id: str, check_open: Callable[[], None]
    ) -> None:
        """Wait for buffer room (unless ``sensor_id`` holds the watermark), then for a
        slot; ``check_open`` raises if the engine stops taking input meanwhile."""
        if orderer.buffered >= self._max_buffered:
            await self._wait_for_buffer_room(orderer, sensor_id, check_open)
        await self._slots.acquire()
        self.pending += 1

    def release(self) -> None:
        """A frame was answered or failed: its slot is free."""
        self.pending -= 1
        self._slots.release()

    def fail(self, items: Iterable[EngineInput], error: BaseException) -> None:
        """Inputs that were not (durably) applied: their waiters get ``error``; a
        frame's slot is freed."""
        for item in items:
            if item.kind == EventKind.FRAME:
                self.release()
            if item.future is not None and not item.future.done():
                item.future.set_exception(error)

    async def _wait_for_buffer_room(
        self, orderer: FrameOrderer, sensor_id: str, check_open: Callable[[], None]
    ) -> None:
        """Polls every ``BUFFER_POLL_S``: this only runs while a sender is far ahead of
        the others."""
        held = False
        while orderer.buffered >= self._max_buffered and sensor_id not in orderer.holding_sensors():
            if not held:
                held = True
                self.buffer_holds += 1
            check_open()
            await asyncio.sleep(BUFFER_POLL_S)
