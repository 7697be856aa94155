"""One sensor's ``StreamFrames`` stream inside a frame streamer run.

A :class:`SensorStream` holds the sensor's frames that are released but unsent and
sent but unacknowledged (both in order), writes them in batches within the
in-flight window and reads their acks, one per frame in the order sent. The
reconnect policy (when to reopen, when to give up) is the streamer's
(:mod:`tracklayer.services.clients.frame_streamer`); here one attempt ends with
:class:`StreamFailed` or a ``grpc.aio.AioRpcError``, and
:meth:`SensorStream.requeue_unacked` puts the unacknowledged frames back for the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import grpc.aio

from tracklayer.services.clients.stream_options import STATUS_NAMES, StreamerOptions, StreamResult
from tracklayer.v1 import fusion_service_pb2 as fs_pb2
from tracklayer.v1 import sensor_pb2

log = logging.getLogger("tracklayer.services.frame_streamer")

#: Called with (index of the frame in the source, its ack) as each ack arrives.
AckCallback = Callable[[int, sensor_pb2.FrameAck], None]

#: Called with the source indexes of the frames of a request just before it is written.
SendCallback = Callable[[list[int]], None]


class StreamFailed(Exception):
    """One attempt of one stream ended early; the stream will be reopened."""


@dataclass(slots=True)
class Outgoing:
    """A released frame: its log time, message, encoded size, place in the source, sends."""

    log_time_ns: int
    msg: sensor_pb2.SensorFrame
    size: int
    index: int
    sends: int = 0


@dataclass(slots=True)
class RunState:
    """What the streams of one run share: options, the result they count into, the event
    set on every ack (the dispatcher waits on it), optional per-ack and per-send callbacks."""

    options: StreamerOptions
    result: StreamResult
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    on_ack: AckCallback | None = None
    on_send: SendCallback | None = None
    ack_mismatches: int = 0


class SensorStream:
    """Frames of one sensor: released but unsent, and sent but unacknowledged (both in order)."""

    __slots__ = ("sensor_id", "run", "unsent", "in_flight", "wake", "done", "task", "counts",
                 "last_ack")  # fmt: skip

    def __init__(self, sensor_id: str, run: RunState) -> None:
        self.sensor_id = sensor_id
        self.run = run
        self.unsent: deque[Outgoing] = deque()
        self.in_flight: deque[Outgoing] = deque()
        self.wake = asyncio.Event()
        self.done = False  # the source has no more frames
        self.task: asyncio.Task | None = None
        self.counts: dict[str, int] = {}
        self.last_ack = 0.0  # monotonic time of the last ack (or of a send into an empty window)

    @property
    def label(self) -> str:
        """The sensor id for log lines (``<no id>`` for the stream of frames without one)."""
        return self.sensor_id or "<no id>"

    def release(self, frame: Outgoing) -> None:
        """Queue a released frame for sending."""
        self.unsent.append(frame)
        self.wake.set()

    def oldest_ns(self) -> int | None:
        """Log time of the oldest frame not yet acknowledged (None: nothing pending)."""
        if self.in_flight:
            return self.in_flight[0].log_time_ns
        if self.unsent:
            return self.unsent[0].log_time_ns
        return None

    def finished(self) -> bool:
        """True once the source has ended and every frame of this sensor is acknowledged."""
        return self.done and not self.unsent and not self.in_flight

    def requeue_unacked(self) -> None:
        """After a failed attempt: unacknowledged frames go back to the front, in order."""
        for f in reversed(self.in_flight):
            self.unsent.appendleft(f)
        self.in_flight.clear()

    async def attempt(self, call: grpc.aio.StreamStreamCall) -> None:
        """One attempt: write frames and read acks until every frame is acknowledged."""
        reader = asyncio.create_task(self._read_acks(call))
        try:
            try:
                await self._write_frames(call, reader)
            except asyncio.InvalidStateError:
                pass  # the call has already ended; the reader tells how
            await reader
        finally:
            if not reader.done():
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)

    async def _write_frames(self, call: grpc.aio.StreamStreamCall, reader: asyncio.Task) -> None:
        opts = self.run.options
        if self.sensor_id:
            await call.write(fs_pb2.StreamFramesRequest(sensor_id=self.sensor_id))
        while True:
            while not self.unsent or len(self.in_flight) >= opts.max_in_flight:
                if self.done and not self.unsent:
                    await call.done_writing()  # closes the stream once the acks are in
                    return
                if reader.done():
                    return  # failed or ended: the reader's outcome decides
                self.wake.clear()
                waiter = asyncio.ensure_future(self.wake.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
            batch = self._take_batch(opts.max_in_flight - len(self.in_flight))
            if not self.in_flight:
                self.last_ack = time.monotonic()  # the ack clock starts with the first frame out
            self.in_flight.extend(batch)
            if self.run.on_send is not None:
                self.run.on_send([f.index for f in batch])
            await call.write(fs_pb2.StreamFramesRequest(frames=[f.msg for f in batch]))

    def _take_batch(self, room: int) -> list[Outgoing]:
        """The next unsent frames for one request: within ``room`` and the batch limits."""
        opts = self.run.options
        batch: list[Outgoing] = []
        size = 0
        while self.unsent and len(batch) < min(room, opts.max_batch_frames):
            f = self.unsent[0]
            if batch and size + f.size > opts.max_batch_bytes:
                break
            self.unsent.popleft()
            f.sends += 1
            if f.sends == 2:
                self.run.result.resent += 1
            batch.append(f)
            size += f.size
        return batch

    async def _read_acks(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                if self.in_flight or not self.done or self.unsent:
                    raise StreamFailed(
                        f"stream ended by the service with {len(self.in_flight)} frames "
                        "unacknowledged"
                    )
                return
            for ack in resp.acks:
                if not self.in_flight:
                    raise StreamFailed("ack for a frame that was never sent")
                self._count_ack(self.in_flight.popleft(), ack)
            self.last_ack = time.monotonic()
            self.wake.set()
            self.run.acked.set()

    def _count_ack(self, f: Outgoing, ack: sensor_pb2.FrameAck) -> None:
        run = self.run
        result = run.result
        if (
            ack.sequence != f.msg.sequence or ack.sensor_id != f.msg.sensor_id
        ) and run.ack_mismatches == 0:
            run.ack_mismatches += 1
            log.warning(
                "ack (%s, %d) does not match the oldest unacknowledged frame (%s, %d)",
                ack.sensor_id,
                ack.sequence,
                f.msg.sensor_id,
                f.msg.sequence,
            )
        name = STATUS_NAMES.get(ack.status, str(ack.status))
        result.counts[name] = result.counts.get(name, 0) + 1
        self.counts[name] = self.counts.get(name, 0) + 1
        if ack.status == sensor_pb2.FRAME_STATUS_DUPLICATE and f.sends > 1:
            result.resent_duplicates += 1
        if ack.reason:
            key = f"{name}: {ack.reason}"
            if key in result.reasons or len(result.reasons) < 100:
                result.reasons[key] = result.reasons.get(key, 0) + 1
        if run.on_ack is not None:
            run.on_ack(f.index, ack)
