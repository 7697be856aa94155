"""A small in-test ``tracklayer.v1.FusionService`` double for the frame streamer's tests.

It records everything it receives (declarations, stream openings and
closings, every frame with the monotonic time it arrived), acks one FrameAck
per frame in the order received (ACCEPTED the first time a (sensor_id,
sequence) is seen, DUPLICATE after, REJECTED for an empty sensor id), can
delay one sensor's acks, and can cut a sensor's stream once, mid-batch, after
it has taken some frames but before acking them (as a crashed connection
would), so that the client must reconnect and resend.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc
import grpc.aio

from tracklayer.v1 import fusion_service_pb2 as fs_pb2
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
from tracklayer.v1 import sensor_pb2


@dataclass
class Received:
    sensor_id: str
    sequence: int
    time_ns: int
    stream: int  # which StreamFrames call carried it (0, 1, ...)
    wall: float  # time.monotonic() at arrival
    status: int
    raw: bytes  # the frame exactly as it arrived


@dataclass
class FusionDouble(fs_grpc.FusionServiceServicer):
    """Records and acknowledges; see the module docstring."""

    cut_after: dict[str, int] = field(default_factory=dict)  # sensor -> frames before one cut
    ack_delay_s: dict[str, float] = field(default_factory=dict)  # sensor -> delay per request
    events: list[tuple] = field(default_factory=list)  # ("declare"|"open"|"close"|"cut", ...)
    received: list[Received] = field(default_factory=list)
    seen: set[tuple[str, int]] = field(default_factory=set)
    streams: int = 0
    max_outstanding: int = 0  # most frames read on one stream but not yet acknowledged

    async def DeclareSensors(self, request, context):
        self.events.append(("declare", tuple(request.sensor_ids), time.monotonic()))
        return fs_pb2.DeclareSensorsResponse(expected_sensor_ids=sorted(request.sensor_ids))

    async def StreamFrames(self, request_iterator, context):
        stream = self.streams
        self.streams += 1
        name: list[str] = []
        outstanding = [0]  # frames read on this stream, not yet acknowledged
        ready: asyncio.Queue = asyncio.Queue()
        cut = asyncio.Event()

        async def read() -> None:
            async for req in request_iterator:
                if req.sensor_id and not name:
                    name.append(req.sensor_id)
                    self.events.append(("open", req.sensor_id, stream, time.monotonic()))
                acks = []
                for f in req.frames:
                    key = (f.sensor_id, f.sequence)
                    if not f.sensor_id:
                        status = sensor_pb2.FRAME_STATUS_REJECTED
                    elif key in self.seen:
                        status = sensor_pb2.FRAME_STATUS_DUPLICATE
                    else:
                        status = sensor_pb2.FRAME_STATUS_ACCEPTED
                        self.seen.add(key)
                    t_ns = f.time.seconds * 1_000_000_000 + f.time.nanos
                    self.received.append(
                        Received(
                            f.sensor_id,
                            f.sequence,
                            t_ns,
                            stream,
                            time.monotonic(),
                            status,
                            f.SerializeToString(),
                        )
                    )
                    outstanding[0] += 1
                    self.max_outstanding = max(self.max_outstanding, outstanding[0])
                    acks.append(
                        sensor_pb2.FrameAck(
                            sensor_id=f.sensor_id,
                            sequence=f.sequence,
                            status=status,
                            reason="sensor_id: empty" if not f.sensor_id else "",
                        )
                    )
                    left = self.cut_after.get(f.sensor_id)
                    if left is not None:
                        self.cut_after[f.sensor_id] = left - 1
                        if left == 1:  # taken, never acknowledged: as a crash would
                            self.events.append(("cut", f.sensor_id, stream, time.monotonic()))
                            cut.set()
                            return
                await ready.put(acks)
            await ready.put(None)

        reader = asyncio.create_task(read())
        cut_wait = asyncio.create_task(cut.wait())
        try:
            while True:
                get = asyncio.create_task(ready.get())
                await asyncio.wait({get, cut_wait}, return_when=asyncio.FIRST_COMPLETED)
                if cut.is_set():
                    get.cancel()
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "test double cut")
                acks = get.result()
                if acks is None:
                    break
                delay = self.ack_delay_s.get(name[0] if name else "", 0.0)
                if delay:
                    await asyncio.sleep(delay)
                yield fs_pb2.StreamFramesResponse(acks=acks)
                outstanding[0] -= len(acks)
            await reader
            self.events.append(("close", name[0] if name else "", stream, time.monotonic()))
        finally:
            reader.cancel()
            cut_wait.cancel()

    # helpers for assertions

    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status == sensor_pb2.FRAME_STATUS_ACCEPTED]


async def start_double(double: FusionDouble) -> tuple[grpc.aio.Server, str]:
    """Serve ``double`` on an ephemeral loopback port in this loop; returns (server, address)."""
    server = grpc.aio.server()
    fs_grpc.add_FusionServiceServicer_to_server(double, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"
