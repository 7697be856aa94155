"""``tracklayer track`` end to end through ``tracklayer.services.cli.main``.

A small synthetic recording (three sensors, frames delivered out of order by random
latency, truth beside them) is written with RecordingWriter; the tracker is replaced by
a recording double (tests/tracker_double.py) so these tests check the command's own
behaviour: what it copies, what it writes, its log times, metadata, errors and
determinism.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tracker_double import RecordingTracker

from tracklayer.fusion import core
from tracklayer.fusion.domain import (
    NS_PER_S,
    DetectionTruth,
    FlightPhase,
    SensorFrame,
    TrackStatus,
    TruthFrame,
    TruthState,
)
from tracklayer.services.cli import main
from tracklayer.services.wire.recording import (
    TOPIC_DETECTION_TRUTH,
    TOPIC_FRAMES,
    TOPIC_TRACKS,
    TOPIC_TRUTH,
    RecordingReader,
    RecordingWriter,
    format_sensor_ids,
)

T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z
SENSORS = ("sat-1-1", "sat-1-2", "sat-2-1")
DURATION_S = 30


@pytest.fixture(autouse=True)
def tracker_double(monkeypatch):
    monkeypatch.setattr(core, "_default_tracker", RecordingTracker)


def synthetic_frames(seed: int = 1) -> list[tuple[int, SensorFrame]]:
    """(delivery time ns, frame) for 3 sensors at 1 Hz, latency exponential (mean 1 s,
    capped at 5 s as in the `dropout` scenario), sorted by delivery time."""
    rng = np.random.default_rng(seed)
    out = []
    for i, sid in enumerate(SENSORS):
        for k in range(DURATION_S):
            t = T0 + k * NS_PER_S + i * 250_000_000
            n = int(rng.integers(0, 3))
            los = rng.normal(size=(n, 3))
            los /= np.linalg.norm(los, axis=1, keepdims=True)
            f = SensorFrame(
                sensor_id=sid,
                sequence=k,
                time_ns=t,
                position=[7.378e6, 1e5 * i, 0.0],
                velocity=[0.0, 7.35e3, 0.0],
                los=los,
                sigma=np.full(n, 20e-6),
                intensity=np.ones(n),
            )
            delay = int(min(rng.exponential(1.0), 5.0) * NS_PER_S)
            out.append((t + delay, f))
    out.sort(key=lambda x: (x[0], x[1].sensor_id))
    return out


def write_recording(path, frames=None, metadata=None, chunk_size=1 << 20) -> None:
    frames = synthetic_frames() if frames is None else frames
    meta = {"scenario": "synthetic", "seed": "1", "sensor_ids": format_sensor_ids(SENSORS)}
    meta.update(metadata or {})
    with RecordingWriter(path, meta, chunk_size=chunk_size) as w:
        for log_ns, f in frames:
            w.write_frame(f, log_ns)
            w.write_detection_truth(
                DetectionTruth(f.sensor_id, f.sequence, ("",) * f.n_detections), log_ns
            )
        for k in range(DURATION_S):
            state = TruthState("M1-01", [6.9e6, 0.0, 1e3 * k], [0.0, 0.0, 1e3], FlightPhase.BOOST)
            w.write_truth(TruthFrame(T0 + k * NS_PER_S, [state]), T0 + k * NS_PER_S)


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "in.mcap"
    write_recording(path)
    return path


def raw(path, topic):
    return [(t, d) for _, t, d in RecordingReader(path).raw_messages([topic])]


def track(*args: str) -> int:
    return main(["track", *map(str, args)])


def test_output_holds_input_topics_unchanged_plus_tracks(recording, tmp_path):
    out = tmp_path / "out.mcap"
    assert track(recording, "--out", out) == 0
    for topic in (TOPIC_FRAMES, TOPIC_TRUTH, TOPIC_DETECTION_TRUTH):
        assert raw(out, topic) == raw(recording, topic)
    reports = [r for _, r in RecordingReader(out).tracks()]
    # The double reports once per applied frame and once at the flush: every frame of
    # this clean recording is accepted (latency <= 5 s < 6 s lateness).
    assert len(reports) == len(SENSORS) * DURATION_S + 1


def test_tracks_are_logged_at_the_data_time_of_the_frame_that_produced_them(recording, tmp_path):
    out = tmp_path / "out.mcap"
    track(recording, "--out", out)
    logged = list(RecordingReader(out).tracks())
    # The double's report time is its frame's time; the flush's DELETED report is
    # logged at the last applied frame's time.
    assert all(log == r.time_ns for log, r in logged)
    assert logged[-1][1].status == TrackStatus.DELETED
    assert logged[-1][0] == max(f.time_ns for _, f in synthetic_frames())


def test_frames_reach_the_tracker_in_time_sensor_sequence_order(recording, tmp_path):
    out = tmp_path / "out.mcap"
    track(recording, "--out", out)
    applied = [r for _, r in RecordingReader(out).tracks()][:-1]  # the last: flush's
    keys = [(r.time_ns, r.sensor_ids[0]) for r in applied]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_metadata_carries_input_metadata_fusion_config_and_id(recording, tmp_path):
    out = tmp_path / "out.mcap"
    cfg = tmp_path / "fusion.toml"
    cfg.write_text("allowed_lateness_s = 5.5\nconfirm_m = 3\n")
    assert track(recording, "--out", out, "--id", "east", "--config", cfg) == 0
    meta = RecordingReader(out).metadata
    assert meta["scenario"] == "synthetic" and meta["seed"] == "1"
    assert meta["sensor_ids"] == format_sensor_ids(SENSORS)
    assert meta["fusion_id"] == "east"
    fusion_config = json.loads(meta["fusion_config"])
    assert fusion_config["allowed_lateness_s"] == 5.5 and fusion_config["confirm_m"] == 3
    assert {r.track_id for _, r in RecordingReader(out).tracks()} == {"east-1"}


def test_same_input_gives_byte_identical_tracks(recording, tmp_path):
    a, b = tmp_path / "a.mcap", tmp_path / "b.mcap"
    track(recording, "--out", a)
    track(recording, "--out", b)
    assert raw(a, TOPIC_TRACKS) == raw(b, TOPIC_TRACKS)
    assert a.read_bytes() == b.read_bytes()


def test_tracks_do_not_depend_on_how_sensor_streams_interleave(tmp_path):
    frames = synthetic_frames()
    # Another delivery interleaving with each sensor's own order kept: sensors' streams
    # one after another, as if one satellite's link had been much faster.
    regrouped = sorted(frames, key=lambda x: SENSORS.index(x[1].sensor_id))
    ins = [tmp_path / "a.mcap", tmp_path / "b.mcap"]
    write_recording(ins[0], frames)
    write_recording(ins[1], regrouped)
    outs = [tmp_path / "ta.mcap", tmp_path / "tb.mcap"]
    for i, o in zip(ins, outs, strict=True):
        assert track(i, "--out", o) == 0
    assert raw(outs[0], TOPIC_TRACKS) == raw(outs[1], TOPIC_TRACKS)


def test_summary_gives_frames_by_status_tracks_and_speed(recording, tmp_path, capsys):
    track(recording, "--out", tmp_path / "out.mcap")
    text = capsys.readouterr().out
    n = len(SENSORS) * DURATION_S
    assert f"{n} ({n} accepted, 0 duplicate, 0 late, 0 rejected)" in text
    assert "tracks:  1 (1 confirmed); reports 91" in text
    assert "x real time" in text


def test_late_and_duplicate_frames_are_counted(tmp_path, capsys):
    frames = synthetic_frames()
    log_end = frames[-1][0]
    late = frames[0][1]  # resent at the very end: a duplicate
    stale = SensorFrame("sat-1-1", 999, T0, [7.4e6, 0, 0], [0, 7.35e3, 0])  # 29 s behind
    write_recording(tmp_path / "in.mcap", [*frames, (log_end, late), (log_end, stale)])
    track(tmp_path / "in.mcap", "--out", tmp_path / "out.mcap")
    assert "1 duplicate, 1 late, 0 rejected" in capsys.readouterr().out


def test_missing_input_is_one_line_exit_2(tmp_path, capsys):
    assert track(tmp_path / "nope.mcap", "--out", tmp_path / "o.mcap") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.mcap: no such file" in err


@pytest.mark.parametrize("content", [b"", b"this is not an MCAP file\n"])
def test_empty_or_non_mcap_input_is_one_line_exit_2(tmp_path, capsys, content):
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(content)
    assert track(bad, "--out", tmp_path / "o.mcap") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.mcap" in err
    assert not (tmp_path / "o.mcap").exists()


def test_recording_without_frames_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "truth_only.mcap"
    with RecordingWriter(path) as w:
        w.write_truth(TruthFrame(T0, []), T0)
    assert track(path, "--out", tmp_path / "o.mcap") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/sensor_frames" in err


def test_truncated_input_warns_and_tracks_the_readable_part(tmp_path, capsys):
    path = tmp_path / "cut.mcap"
    write_recording(path, chunk_size=4096)  # small chunks: most survive the cut
    data = path.read_bytes()
    # cut in the middle: 2/3 fell after the last frame chunk once the embedded schemas grew
    # (FLIGHT_PHASE_GLIDE); half keeps 61 of the 90 frames
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mcap"
    assert track(path, "--out", out) == 0
    assert "truncated" in capsys.readouterr().err
    n_frames = len(raw(out, TOPIC_FRAMES))
    assert 0 < n_frames < len(SENSORS) * DURATION_S
    assert len(raw(out, TOPIC_TRACKS)) > 0


def test_corrupt_input_is_one_line_exit_2_and_leaves_no_output(tmp_path, capsys):
    path = tmp_path / "corrupt.mcap"
    write_recording(path, chunk_size=4096)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 2000] = bytes(b ^ 0x5A for b in data[mid : mid + 2000])  # a bad chunk
    path.write_bytes(bytes(data))
    out = tmp_path / "out.mcap"
    assert track(path, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt.mcap" in err and "corrupt" in err
    # not even a partial OUT that would look like a complete, shorter run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.mcap"]


def test_unknown_config_key_names_file_and_key(recording, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("allowed_latenes_s = 3.0\n")
    assert track(recording, "--out", tmp_path / "o.mcap", "--config", cfg) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "bad.toml: allowed_latenes_s: unknown fusion setting" in err


def test_invalid_toml_config_is_one_line_exit_2(recording, tmp_path, capsys):
    cfg = tmp_path / "broken.toml"
    cfg.write_text("allowed_lateness_s = = 3\n")
    assert track(recording, "--out", tmp_path / "o.mcap", "--config", cfg) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.toml: not valid TOML" in err


def test_output_over_input_is_refused(recording, capsys):
    before = recording.read_bytes()
    assert track(recording, "--out", recording) == 2
    assert recording.read_bytes() == before
    assert "--out must differ" in capsys.readouterr().err


def test_frame_with_unset_wire_field_is_counted_rejected(tmp_path, capsys):
    from tracklayer.services.wire import convert

    path = tmp_path / "in.mcap"
    frames = synthetic_frames()
    msg = convert.frame_to_proto(frames[0][1])
    msg.sequence = 500
    msg.ClearField("sensor_position_eci")
    with RecordingWriter(path, {"sensor_ids": format_sensor_ids(SENSORS)}) as w:
        for log_ns, f in frames:
            w.write_frame(f, log_ns)
        w.write_raw(TOPIC_FRAMES, msg.SerializeToString(), frames[-1][0])
    assert track(path, "--out", tmp_path / "out.mcap") == 0
    assert "0 late, 1 rejected" in capsys.readouterr().out


def test_undecodable_frame_message_is_skipped_with_a_warning(tmp_path, capsys):
    path = tmp_path / "in.mcap"
    frames = synthetic_frames()
    with RecordingWriter(path, {"sensor_ids": format_sensor_ids(SENSORS)}) as w:
        for log_ns, f in frames:
            w.write_frame(f, log_ns)
        w.write_raw(TOPIC_FRAMES, b"\xff\xff\xff", frames[-1][0])
    assert track(path, "--out", tmp_path / "out.mcap") == 0
    captured = capsys.readouterr()
    assert "1 /sensor_frames messages are not SensorFrames" in captured.err
    assert f"frames:  {len(frames)} ({len(frames)} accepted" in captured.out
