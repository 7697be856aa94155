"""Service limits (issue 7 item 2): flood back-pressure and message size limits.

A sensor flooding far ahead of the others is held back; the others are not.

The fusion service applies frames behind a watermark set by the slowest
expected sensor (DESIGN §6), so frames of a sensor running ahead wait in a
buffer. Without a bound, one sensor streaming far beyond its frame rate
while another holds the watermark grows that buffer without limit. The
engine holds such a sensor's frames once ``max_buffered_frames`` wait, and
never holds the sensor the watermark waits for (rule 6).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from tracker_double import RecordingTracker

from tracklayer.services.fusion_service.servicer import start_fusion_server
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.limits import MAX_DETECTIONS_PER_FRAME, MAX_FRAMES_PER_REQUEST
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
from tracklayer.v1 import sensor_pb2

ACCEPTED = sensor_pb2.FRAME_STATUS_ACCEPTED
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
CAP = 200  # max_buffered_frames for these tests
BATCH = 50  # frames per request of the flooding sensor


def frame(sensor: str, seq: int, t_s: float) -> sensor_pb2.SensorFrame:
    f = sensor_pb2.SensorFrame(sensor_id=sensor, sequence=seq)
    ns = T0 * 1_000_000_000 + round(t_s * 1e9)
    f.time.seconds, f.time.nanos = divmod(ns, 1_000_000_000)
    f.sensor_position_eci.x = 7.0e6
    f.sensor_velocity_eci.y = 7.5e3
    d = f.detections.add(angular_sigma=2e-5)
    d.line_of_sight_eci.x, d.line_of_sight_eci.y = 0.6, 0.8
    return f


async def send(call, frames, sensor_id):
    await call.write(fs.StreamFramesRequest(frames=frames, sensor_id=sensor_id))
    return list((await call.read()).acks)


def test_flooding_sensor_is_held_at_the_buffer_cap_while_the_watermark_holder_goes_on(tmp_path):
    async def body():
        server = await start_fusion_server(
            FusionSettings(
                fusion_id="fu",
                journal_path=tmp_path / "j.sqlite",
                outbox_path=tmp_path / "o.sqlite",
                idle_timeout_s=0.0,
                tracker_factory=RecordingTracker,
                synchronous="OFF",
                max_buffered_frames=CAP,
            )
        )
        engine = server.engine
        channel = grpc.aio.insecure_channel(server.address)
        stub = fs_grpc.FusionServiceStub(channel)
        slow, fast = stub.StreamFrames(), stub.StreamFrames()
        await send(slow, [frame("slow", 0, 0.0)], "slow")  # holds the watermark at -6 s

        # The flood: 600 frames, 0.1 s apart (60 s of data), as fast as acks come.
        fast_acks: list = []

        async def flood():
            for start in range(0, 600, BATCH):
                frames = [frame("fast", i, 0.1 * i) for i in range(start, start + BATCH)]
                fast_acks.extend(await send(fast, frames, "fast"))

        flooding = asyncio.create_task(flood())
        most = 0
        deadline = time.monotonic() + 10
        while engine.buffer_holds == 0 and time.monotonic() < deadline:
            most = max(most, engine.core.orderer.buffered)
            await asyncio.sleep(0.005)
        assert engine.buffer_holds > 0, "the flood was never held"
        await asyncio.sleep(0.3)  # held: it makes no progress
        most = max(most, engine.core.orderer.buffered)
        acked_while_held = len(fast_acks)
        assert not flooding.done()

        # The watermark holder is never held: its frame is acked at once.
        t = time.monotonic()
        (ack,) = await send(slow, [frame("slow", 1, 30.0)], "slow")
        slow_wait = time.monotonic() - t
        # Slow at 30 s moves the watermark to 24 s: the flood drains and moves on, up to
        # the cap again; slow at 100 s then lets all of it through.
        await asyncio.sleep(0.3)
        most = max(most, engine.core.orderer.buffered)
        await send(slow, [frame("slow", 2, 100.0)], "slow")
        await asyncio.wait_for(flooding, 10)
        for call in (fast, slow):
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
        counters = engine.counters()
        await channel.close()
        await server.stop(0.5)
        return ack, slow_wait, fast_acks, acked_while_held, most, counters

    ack, slow_wait, fast_acks, acked_while_held, most, counters = asyncio.run(
        asyncio.wait_for(body(), 60)
    )
    assert ack.status == ACCEPTED
    assert slow_wait < 1.0  # not held: well under a second on an idle loop
    assert acked_while_held < 600
    # Frames of one request pass the check together: the buffer overshoots by at most one.
    assert CAP <= most <= CAP + BATCH
    assert [a.status for a in fast_acks] == [ACCEPTED] * 600  # held, never refused
    assert counters["buffer_holds_total"] >= 1


def test_buffer_cap_is_never_reached_by_sensors_streaming_in_step(tmp_path):
    async def body():
        server = await start_fusion_server(
            FusionSettings(
                fusion_id="fu",
                journal_path=tmp_path / "j.sqlite",
                outbox_path=tmp_path / "o.sqlite",
                idle_timeout_s=0.0,
                tracker_factory=RecordingTracker,
                synchronous="OFF",
                max_buffered_frames=CAP,
            )
        )
        channel = grpc.aio.insecure_channel(server.address)
        stub = fs_grpc.FusionServiceStub(channel)
        calls = {s: stub.StreamFrames() for s in ("a", "b", "c")}
        # 3 sensors x 1 Hz x 300 s in step: at most ~3 x 7 frames wait (6 s lateness).
        for i in range(300):
            for s, call in calls.items():
                await send(call, [frame(s, i, float(i))], s)
        for call in calls.values():
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
        counters = server.engine.counters()
        await channel.close()
        await server.stop(0.5)
        return counters

    counters = asyncio.run(asyncio.wait_for(body(), 60))
    assert counters["buffer_holds_total"] == 0
    assert counters['frames_total{status="accepted"}'] == 900


# ---------------------------------------------------------------- size limits


class Service:
    """A fusion service (tracker double) in this process and one stub to it; with
    ``nats_url`` the scale-out front door on that broker (issue 14: the limits must
    answer exactly as the embedded service's)."""

    def __init__(self, tmp_path, nats_url=None):
        self.nats_url, self.link = nats_url, None
        self.settings = FusionSettings(
            fusion_id="fu",
            journal_path=tmp_path / "j.sqlite",
            outbox_path=tmp_path / "o.sqlite",
            idle_timeout_s=0.0,
            tracker_factory=RecordingTracker,
            synchronous="OFF",
        )

    async def __aenter__(self):
        if self.nats_url:
            from tracklayer.services.scaleout.front_door import start_front_door_server

            self.server, self.link = await start_front_door_server(
                self.settings, "127.0.0.1:0", self.nats_url
            )
        else:
            self.server = await start_fusion_server(self.settings)
        self.channel = grpc.aio.insecure_channel(self.server.address)
        self.stub = fs_grpc.FusionServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc):
        await self.channel.close()
        await self.server.stop(0.5)
        if self.link is not None:
            self.link.close()


@pytest.fixture(params=["embedded", "nats"])
def service(request, tmp_path):
    """``service()``: a :class:`Service`, embedded or the scale-out front door."""
    url = None
    if request.param == "nats":
        pytest.importorskip("nats")
        url = request.getfixturevalue("nats_broker").url
    return lambda: Service(tmp_path, url)


def test_frame_with_too_many_detections_is_rejected_naming_the_field_and_counted(service):
    big = frame("sat-1-1", 1, 0.0)
    big.detections.extend([big.detections[0]] * MAX_DETECTIONS_PER_FRAME)  # one too many

    async def body():
        async with service() as s:
            call = s.stub.StreamFrames()
            acks = await send(call, [big, frame("sat-1-1", 2, 1.0)], "sat-1-1")
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            return acks, await call.code(), s.server.engine.counters()

    acks, code, counters = asyncio.run(asyncio.wait_for(body(), 30))
    assert [a.status for a in acks] == [sensor_pb2.FRAME_STATUS_REJECTED, ACCEPTED]
    assert (
        acks[0].reason
        == f"detections: {MAX_DETECTIONS_PER_FRAME + 1} in one frame, more than 10000"
    )
    assert code == grpc.StatusCode.OK  # a bad frame never ends the stream
    assert counters['frames_total{status="rejected"}'] == 1


def test_frame_with_an_overlong_sensor_id_is_rejected_and_joins_no_expected_set(service):
    long_id = "s" * 257

    async def body():
        async with service() as s:
            call = s.stub.StreamFrames()
            acks = await send(call, [frame(long_id, 1, 0.0)], "")
            expected = s.server.engine.core.orderer.expected_sensors
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            return acks, expected

    acks, expected = asyncio.run(asyncio.wait_for(body(), 30))
    assert acks[0].status == sensor_pb2.FRAME_STATUS_REJECTED
    assert acks[0].reason == "sensor_id: longer than 256 characters"
    assert expected == ()  # it would otherwise hold the watermark until its stream closed


def test_request_with_too_many_frames_ends_the_stream_resource_exhausted(service):
    frames = [frame("sat-1-1", i, 0.01 * i) for i in range(MAX_FRAMES_PER_REQUEST + 1)]

    async def body():
        async with service() as s:
            call = s.stub.StreamFrames()
            ok = await send(call, frames[:MAX_FRAMES_PER_REQUEST], "sat-1-1")
            await call.write(fs.StreamFramesRequest(frames=frames))
            try:
                await call.read()
            except grpc.aio.AioRpcError:
                pass
            return len(ok), await call.code(), await call.details()

    n_ok, code, details = asyncio.run(asyncio.wait_for(body(), 30))
    assert n_ok == MAX_FRAMES_PER_REQUEST  # the largest allowed request goes through
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.startswith(f"frames: {MAX_FRAMES_PER_REQUEST + 1} in one request")


def test_stream_naming_an_overlong_sensor_id_is_invalid_argument(service):
    async def body():
        async with service() as s:
            call = s.stub.StreamFrames()
            await call.write(fs.StreamFramesRequest(sensor_id="s" * 257))
            try:
                await call.read()
            except grpc.aio.AioRpcError:
                pass
            return await call.code()

    assert asyncio.run(asyncio.wait_for(body(), 30)) == grpc.StatusCode.INVALID_ARGUMENT
