"""The frame streamer against an in-test FusionService double (tests/fusion_double.py).

Frames here are synthetic: the streamer never looks inside a frame beyond its
sensor id and size, so what matters is identity, order and timing.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections import defaultdict

import pytest
from fusion_double import FusionDouble, start_double

from tracklayer.services.clients.frame_streamer import (
    FrameStreamer,
    StreamerError,
    StreamerOptions,
    StreamProgress,
)
from tracklayer.v1 import sensor_pb2

T0_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z


def make_frames(
    sensors: list[str], n: int, rate_hz: float = 10.0
) -> list[tuple[int, sensor_pb2.SensorFrame]]:
    """n frames per sensor at rate_hz, log time = measurement time, in (time, sensor) order."""
    out = []
    step = int(1e9 / rate_hz)
    for i in range(n):
        for k, sid in enumerate(sensors):
            t = T0_NS + i * step + k  # distinct times keep the order total
            f = sensor_pb2.SensorFrame(sensor_id=sid, sequence=i)
            f.time.FromNanoseconds(t)
            f.sensor_position_eci.x = 7.371e6
            out.append((t, f))
    return out


def run(double: FusionDouble, sensors, frames, options: StreamerOptions, progress=None):
    async def main():
        server, address = await start_double(double)
        try:
            return await FrameStreamer(address, options, progress).run(sensors, frames)
        finally:
            await server.stop(0)

    return asyncio.run(main())


FAST = StreamerOptions(speed=None, window_s=5.0, connect_timeout_s=5.0)


def test_declaration_and_stream_opening_precede_every_frame():
    double = FusionDouble()
    sensors = ["sat-1-1", "sat-1-2", "sat-2-1"]
    run(double, sensors, make_frames(sensors, 20), FAST)
    declare = [e for e in double.events if e[0] == "declare"]
    assert len(declare) == 1 and set(declare[0][1]) == set(sensors)
    first_frame = min(r.wall for r in double.received)
    assert declare[0][2] < first_frame
    opened = {e[1] for e in double.events if e[0] == "open"}
    assert opened == set(sensors)


def test_every_frame_is_accepted_once_in_per_sensor_order():
    double = FusionDouble()
    sensors = [f"sat-{p}-{s}" for p in (1, 2) for s in (1, 2, 3)]
    frames = make_frames(sensors, 50)
    result = run(double, sensors, frames, FAST)
    assert result.frames == len(frames)
    assert result.counts["ACCEPTED"] == len(frames) and result.acked == len(frames)
    assert len(double.accepted()) == len(frames) == len(double.seen)
    for sid in sensors:
        seqs = [r.sequence for r in double.received if r.sensor_id == sid]
        assert seqs == list(range(50))
    # Each stream was closed by the client once its frames were acknowledged.
    assert {e[1] for e in double.events if e[0] == "close"} == set(sensors)


def test_cut_stream_is_reopened_and_unacknowledged_frames_resent():
    # The double takes 37 frames of sat-1-1 and dies before acking the last batch.
    double = FusionDouble(cut_after={"sat-1-1": 37})
    sensors = ["sat-1-1", "sat-1-2"]
    frames = make_frames(sensors, 100)
    opts = StreamerOptions(speed=None, window_s=5.0, max_batch_frames=10)
    result = run(double, sensors, frames, opts)
    assert any(e[0] == "cut" for e in double.events)
    assert result.reconnects >= 1 and result.resent >= 1
    # Every frame reached the service exactly once as new ...
    assert sorted((r.sensor_id, r.sequence) for r in double.accepted()) == sorted(
        (f.sensor_id, f.sequence) for _, f in frames
    )
    # ... the resends of frames it already held came back DUPLICATE, and the client
    # counted them as such (ACCEPTED + resend DUPLICATE = every frame once).
    dup = [r for r in double.received if r.status == sensor_pb2.FRAME_STATUS_DUPLICATE]
    assert len(dup) == result.counts["DUPLICATE"] == result.resent_duplicates >= 1
    assert result.counts["ACCEPTED"] + result.resent_duplicates == len(frames)
    # First arrivals of sat-1-1 kept its order across the reconnect.
    seqs = [r.sequence for r in double.accepted() if r.sensor_id == "sat-1-1"]
    assert seqs == list(range(100))


def _worst_lead_s(double: FusionDouble, frames) -> float:
    """Largest lead (s) of an arriving frame over the oldest frame not yet arrived."""
    times = defaultdict(list)  # sensor -> its frame times in order
    for t, f in frames:
        times[f.sensor_id].append(t)
    got = defaultdict(int)
    worst = -math.inf
    for r in double.accepted():
        got[r.sensor_id] += 1
        behind = [ts[got[s]] for s, ts in times.items() if got[s] < len(ts)]
        if behind:
            worst = max(worst, (r.time_ns - min(behind)) / 1e9)
    return worst


def test_max_speed_keeps_streams_on_a_shared_virtual_clock():
    # sat-slow may have 10 frames unacknowledged and its acks take 20 ms per request:
    # without the shared clock the three
    # others would finish their 20 s of data before it got through 2 s.
    sensors = ["sat-slow", "sat-a", "sat-b", "sat-c"]
    frames = make_frames(sensors, 200)  # 20 s of log time at 10 Hz
    double = FusionDouble(ack_delay_s={"sat-slow": 0.02})
    opts = StreamerOptions(speed=None, window_s=2.0, max_in_flight=10, max_batch_frames=5)
    result = run(double, sensors, frames, opts)
    assert result.counts["ACCEPTED"] == len(frames)
    # A frame is released only within window_s of the oldest unacknowledged one, and
    # acknowledged frames have arrived, so no arrival leads a missing frame by more.
    assert _worst_lead_s(double, frames) <= 2.0


def test_without_a_tight_window_fast_streams_run_ahead_of_a_slow_one():
    # The control for the test above: the same slow sensor with a window covering
    # the whole run lets the fast streams lead by far more than 2 s.
    sensors = ["sat-slow", "sat-a", "sat-b", "sat-c"]
    frames = make_frames(sensors, 200)
    double = FusionDouble(ack_delay_s={"sat-slow": 0.02})
    opts = StreamerOptions(speed=None, window_s=100.0, max_in_flight=10, max_batch_frames=5)
    run(double, sensors, frames, opts)
    assert _worst_lead_s(double, frames) > 5.0


def test_in_flight_window_bounds_unacknowledged_frames_per_stream():
    sensors = ["sat-1-1"]
    double = FusionDouble(ack_delay_s={"sat-1-1": 0.01})
    opts = StreamerOptions(speed=None, window_s=1000.0, max_in_flight=8, max_batch_frames=3)
    result = run(double, sensors, make_frames(sensors, 100), opts)
    assert result.counts["ACCEPTED"] == 100
    # The service can never hold more unacknowledged frames than the client sent.
    assert 3 <= double.max_outstanding <= 8


def test_paced_frames_leave_no_earlier_than_log_time_over_speed():
    sensors = ["sat-1-1", "sat-1-2"]
    frames = make_frames(sensors, 20, rate_hz=10.0)  # 1.9 s of log time
    speed = 10.0
    double = FusionDouble()
    t_start = time.monotonic()
    run(double, sensors, frames, StreamerOptions(speed=speed))
    t0 = frames[0][0]
    for r in double.received:
        due = (r.time_ns - t0) / 1e9 / speed
        # Measured from before the run started, so a late first frame (a loaded machine)
        # cannot make later ones look early; asyncio timers never fire early by more than
        # the clock resolution (~1 ms). A streamer that ignored pacing sends all 40 frames
        # within milliseconds and fails this for every frame due after ~0.01 s.
        assert r.wall - t_start >= due - 0.002
    first = min(r.wall for r in double.received)
    last = max(r.wall for r in double.received)
    span = (frames[-1][0] - t0) / 1e9 / speed
    assert last - t_start >= span - 0.002
    # Late by at most scheduling jitter plus one loopback round trip (loaded CI: 0.5 s).
    assert last - first <= span + 0.5
    assert last - t_start < span + 3.0


def test_frames_are_sent_byte_for_byte_and_bad_ones_come_back_rejected():
    sensors = ["sat-1-1"]
    frames = make_frames(sensors, 5)
    bad = sensor_pb2.SensorFrame(sensor_id="", sequence=9)  # no sensor id
    bad.time.FromNanoseconds(frames[-1][0] + 1)
    nan = sensor_pb2.SensorFrame(sensor_id="sat-1-1", sequence=5)
    nan.time.FromNanoseconds(frames[-1][0] + 2)
    nan.detections.add(angular_sigma=2e-5).line_of_sight_eci.x = float("nan")
    frames += [(frames[-1][0] + 1, bad), (frames[-1][0] + 2, nan)]
    double = FusionDouble()
    result = run(double, sensors, frames, FAST)
    # Streams interleave freely, so compare the multiset of frames as they arrived.
    assert sorted(r.raw for r in double.received) == sorted(
        f.SerializeToString() for _, f in frames
    )
    assert result.counts["REJECTED"] == 1 and result.counts["ACCEPTED"] == 6
    assert result.reasons == {"REJECTED: sensor_id: empty": 1}


def test_progress_reports_reach_every_acknowledged_frame():
    sensors = ["sat-1-1", "sat-1-2"]
    frames = make_frames(sensors, 30)
    seen: list[StreamProgress] = []
    opts = StreamerOptions(speed=None, progress_interval_s=0.01)
    run(FusionDouble(), sensors, frames, opts, progress=seen.append)
    assert seen and seen[-1].acked == len(frames) and seen[-1].source_done
    assert all(a.acked <= b.acked for a, b in zip(seen, seen[1:], strict=False))


def test_unreachable_fusion_address_fails_fast_with_one_line():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    opts = StreamerOptions(connect_timeout_s=0.5)
    t = time.monotonic()
    with pytest.raises(StreamerError) as err:
        asyncio.run(FrameStreamer(address, opts).run(["sat-1-1"], make_frames(["sat-1-1"], 3)))
    assert time.monotonic() - t < 3.0
    assert address in str(err.value) and "\n" not in str(err.value)


def test_service_gone_for_good_ends_the_run_with_streamer_error():
    async def main():
        double = FusionDouble()
        server, address = await start_double(double)
        sensors = ["sat-1-1"]
        opts = StreamerOptions(speed=5.0, reconnect_timeout_s=1.0, connect_timeout_s=2.0)
        task = asyncio.create_task(
            FrameStreamer(address, opts).run(sensors, make_frames(sensors, 50))
        )
        while not double.received:
            await asyncio.sleep(0.01)
        await server.stop(0)
        with pytest.raises(StreamerError, match="lost the fusion service"):
            await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_reconnect_declares_unfinished_sensors_again_before_reopening():
    # A restarted service may have lost its expected set: declare before resending.
    double = FusionDouble(cut_after={"sat-1-1": 37})
    sensors = ["sat-1-1", "sat-1-2"]
    run(double, sensors, make_frames(sensors, 100), StreamerOptions(speed=None, window_s=5.0))
    declares = [e for e in double.events if e[0] == "declare"]
    reopen = [e for e in double.events if e[0] == "open" and e[1] == "sat-1-1"][1]
    assert len(declares) == 2 and "sat-1-1" in declares[1][1]
    assert declares[1][2] < reopen[3]


def test_source_error_ends_the_run_with_that_error():
    # A recording that turns out corrupt half-way must surface its own error.
    class Corrupt(Exception):
        pass

    sensors = ["sat-1-1"]
    frames = make_frames(sensors, 20)

    def source():
        yield from frames[:10]
        raise Corrupt("rec.mcap: corrupt chunk")

    with pytest.raises(Corrupt, match="corrupt chunk"):
        run(FusionDouble(), sensors, source(), FAST)


def test_service_that_stops_acknowledging_ends_the_run_with_streamer_error():
    # A wedged service keeps the connection open but answers nothing: give up after
    # reconnect_timeout_s rather than hang.
    sensors = ["sat-1-1"]
    double = FusionDouble(ack_delay_s={"sat-1-1": 30.0})
    opts = StreamerOptions(speed=None, reconnect_timeout_s=1.0)
    t = time.monotonic()
    with pytest.raises(StreamerError, match="acknowledged nothing"):
        run(double, sensors, make_frames(sensors, 5), opts)
    assert time.monotonic() - t < 5.0


def test_progress_line_fills_by_acknowledged_frames_and_ends_its_line():
    import io

    from tracklayer.services.cli.progress import ProgressLine

    out = io.StringIO()
    bar = ProgressLine("replay", total_frames=200, stream=out, enabled=True)
    counts = {"ACCEPTED": 48, "DUPLICATE": 0, "LATE": 0, "REJECTED": 2}
    bar(StreamProgress(released=80, acked=50, log_time_s=12.5, counts=counts, reconnects=0,
                       source_done=False))  # fmt: skip
    bar.close()
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    assert " 25.0%" in text and "frames 50/80 acked" in text and "REJECTED 2" in text
    assert "DUPLICATE" not in text  # only statuses that occurred beside ACCEPTED
