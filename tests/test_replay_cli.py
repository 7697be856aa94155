"""``tracklayer replay``: recordings streamed into a FusionService double (tests/fusion_double.py).

The recordings are small and synthetic (three sensors at 10 Hz, delivery
latency that reorders a sensor's own frames); what replay must keep is
identity, recorded order and the selection by sensor and time.
"""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest
from fusion_double import FusionDouble, start_double

from tracklayer.fusion.domain import SensorFrame
from tracklayer.services.cli import main
from tracklayer.services.wire.recording import (
    TOPIC_FRAMES,
    TOPIC_TRUTH,
    RecordingReader,
    RecordingWriter,
    format_sensor_ids,
)
from tracklayer.v1 import sensor_pb2

T0_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
SENSORS = ["sat-1-1", "sat-1-2", "sat-2-1"]
N_PER_SENSOR = 40  # 4 s at 10 Hz


def _frames() -> list[tuple[int, SensorFrame]]:
    """(log time, frame) in delivery order; every 5th frame is delivered 250 ms late."""
    out = []
    for k, sid in enumerate(SENSORS):
        for i in range(N_PER_SENSOR):
            t = T0_NS + i * 100_000_000 + k * 1_000
            latency = 250_000_000 if i % 5 == 0 else 20_000_000
            los = np.array([[0.6, 0.8, 0.0]])
            frame = SensorFrame(sid, i, t, [7.371e6, 0, 0], [0, 7.35e3, 0], los, [2e-5], [1.0])
            out.append((t + latency, frame))
    out.sort(key=lambda lf: (lf[0], lf[1].sensor_id))
    return out


def _bad_frames() -> list[bytes]:
    """Frames a fusion service must reject (DESIGN §4), serialised as a live node sent them."""
    empty_id = sensor_pb2.SensorFrame(sensor_id="", sequence=1)
    non_unit = sensor_pb2.SensorFrame(sensor_id="sat-1-1", sequence=1000)
    d = non_unit.detections.add(angular_sigma=2e-5)
    d.line_of_sight_eci.x = 2.0
    urad_as_rad = sensor_pb2.SensorFrame(sensor_id="sat-1-2", sequence=1000)
    d = urad_as_rad.detections.add(angular_sigma=20.0)
    d.line_of_sight_eci.x = 1.0
    out = []
    for j, m in enumerate((empty_id, non_unit, urad_as_rad)):  # one fault each
        m.time.FromNanoseconds(T0_NS + 2_000_000_000 + j)
        m.sensor_position_eci.x = 7.371e6
        m.sensor_velocity_eci.y = 7.35e3
        out.append(m.SerializeToString())
    return out


def write_recording(path, bad: bool = False, chunk_size: int = 1 << 20) -> list:
    frames = _frames()
    meta = {"scenario": "synthetic", "sensor_ids": format_sensor_ids(SENSORS)}
    with RecordingWriter(path, meta, chunk_size=chunk_size, compression="none") as w:
        for n, (log_time, frame) in enumerate(frames):
            w.write_frame(frame, log_time)
            if bad and n == len(frames) // 2:
                for raw in _bad_frames():
                    w.write_raw(TOPIC_FRAMES, raw, log_time)
    return frames


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "synthetic.mcap"
    write_recording(path)
    return path


def replay(double: FusionDouble, *args: str) -> int:
    """Run ``tracklayer replay`` (in a worker thread, its own event loop) against ``double``."""

    async def run() -> int:
        server, address = await start_double(double)
        try:
            argv = ["replay", *map(str, args), "--fusion", address]
            return await asyncio.to_thread(main, argv)
        finally:
            await server.stop(0)

    return asyncio.run(run())


def test_replay_declares_the_recordings_sensors_and_every_frame_is_accepted(recording, capsys):
    double = FusionDouble()
    assert replay(double, recording, "--max-speed") == 0
    declare = [e for e in double.events if e[0] == "declare"]
    assert [set(e[1]) for e in declare] == [set(SENSORS)]
    assert declare[0][2] < min(r.wall for r in double.received)
    assert len(double.accepted()) == len(SENSORS) * N_PER_SENSOR
    out = capsys.readouterr().out
    assert f"ACCEPTED {len(SENSORS) * N_PER_SENSOR}" in out


def test_replay_keeps_each_sensors_recorded_order(recording):
    double = FusionDouble()
    assert replay(double, recording, "--max-speed") == 0
    recorded = [(f.sensor_id, f.sequence) for _, f in _frames()]
    for sid in SENSORS:
        sent = [r.sequence for r in double.received if r.sensor_id == sid]
        assert sent == [q for s, q in recorded if s == sid]
        assert sent != sorted(sent)  # latency reordered them in the recording


def test_replay_of_listed_satellites_declares_and_streams_only_them(recording):
    double = FusionDouble()
    assert replay(double, recording, "--max-speed", "--satellites", "sat-2-1,sat-1-1") == 0
    assert [set(e[1]) for e in double.events if e[0] == "declare"] == [{"sat-1-1", "sat-2-1"}]
    assert {r.sensor_id for r in double.received} == {"sat-1-1", "sat-2-1"}
    assert len(double.received) == 2 * N_PER_SENSOR


def test_unknown_satellite_is_a_one_line_error(recording, capsys):
    assert main(["replay", str(recording), "--fusion", "127.0.0.1:1", "--satellites", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--satellites" in err and "'x'" not in err and "x" in err and "\n" not in err


def test_start_and_end_select_frames_by_log_time_from_the_first_frame(recording):
    double = FusionDouble()
    assert replay(double, recording, "--max-speed", "--start", "1", "--end", "2.5") == 0
    frames = _frames()
    first = frames[0][0]
    want = sorted(
        (f.sensor_id, f.sequence)
        for log, f in frames
        if 1_000_000_000 <= log - first <= 2_500_000_000
    )
    assert sorted((r.sensor_id, r.sequence) for r in double.received) == want


def test_paced_replay_takes_recorded_span_over_speed(recording):
    double = FusionDouble()
    assert replay(double, recording, "--speed", "8") == 0
    frames = _frames()
    span = (frames[-1][0] - frames[0][0]) / 1e9 / 8  # ~0.5 s
    walls = [r.wall for r in double.received]
    # Never early (timers do not fire before their time), late only by scheduling jitter.
    assert span - 0.01 <= max(walls) - min(walls) <= span + 0.3


def test_bad_recorded_frames_replay_as_they_are(tmp_path, capsys):
    path = tmp_path / "bad.mcap"
    write_recording(path, bad=True)
    double = FusionDouble()
    assert replay(double, path, "--max-speed") == 0
    raw = {r.raw for r in double.received}
    assert all(b in raw for b in _bad_frames())
    # The double rejects only the empty sensor id; the real service rejects all three.
    assert "REJECTED 1" in capsys.readouterr().out


def test_truncated_recording_replays_its_readable_part_with_a_warning(tmp_path, capsys):
    whole = tmp_path / "whole.mcap"
    write_recording(whole, chunk_size=2_000)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    readable = sum(1 for _ in RecordingReader(cut).raw_messages([TOPIC_FRAMES]))
    assert 0 < readable < len(SENSORS) * N_PER_SENSOR
    double = FusionDouble()
    assert replay(double, cut, "--max-speed") == 0
    assert len(double.accepted()) == readable
    assert "truncated" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"not an mcap file at all\n"])
def test_empty_or_non_mcap_file_is_a_one_line_error(tmp_path, capsys, content):
    path = tmp_path / "x.mcap"
    path.write_bytes(content)
    assert main(["replay", str(path), "--fusion", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_recording_without_sensor_frames_is_a_one_line_error(tmp_path, capsys):
    from tracklayer.fusion.domain import TruthFrame

    path = tmp_path / "truth_only.mcap"
    with RecordingWriter(path) as w:
        w.write_truth(TruthFrame(T0_NS, []), T0_NS)
    assert main(["replay", str(path), "--fusion", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and TOPIC_FRAMES in err
    assert TOPIC_TRUTH in err  # names what the file does hold


def test_unreachable_fusion_service_is_a_one_line_error(recording, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["replay", str(recording), "--fusion", f"127.0.0.1:{port}", "--connect-timeout", "0.5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err and "Traceback" not in err


def test_malformed_fusion_address_is_a_one_line_error(recording, capsys):
    assert main(["replay", str(recording), "--fusion", "localhost"]) == 2
    assert "--fusion" in capsys.readouterr().err
