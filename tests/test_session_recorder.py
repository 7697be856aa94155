"""services/session_recorder.py on its own: the listeners never block on the disk."""

from __future__ import annotations

import threading
import time

from tracklayer.services.fusion_service.session_recorder import (
    SessionRecorder,
    session_metadata,
    unused_path,
)
from tracklayer.services.wire.recording import TOPIC_FRAMES, TOPIC_TRACKS, RecordingReader
from tracklayer.v1 import sensor_pb2, track_pb2

T0_NS = 1_767_225_600_000_000_000


def frame(i: int) -> sensor_pb2.SensorFrame:
    f = sensor_pb2.SensorFrame(sensor_id="sat-1-1", sequence=i)
    f.time.FromNanoseconds(T0_NS + i * 1_000_000_000)
    return f


def test_a_full_queue_drops_and_counts_instead_of_blocking_the_caller(tmp_path):
    rec = SessionRecorder(tmp_path / "r.mcap", session_metadata("fu", {}), max_queued=3)
    gate = threading.Event()
    write = rec._writer.write_raw
    rec._writer.write_raw = lambda *a: (gate.wait(), write(*a))  # a disk that hangs

    t = time.perf_counter()
    for i in range(10):
        rec.on_frame(frame(i), sensor_pb2.FRAME_STATUS_ACCEPTED, T0_NS + i)
    elapsed = time.perf_counter() - t
    gate.set()
    rec.close()

    assert elapsed < 0.5  # ten put_nowait calls; a blocked put would wait forever
    # The writer thread holds at most one message, the queue three: 6 or 7 dropped.
    assert rec.dropped in (6, 7)
    assert rec.frames + rec.dropped == 10
    raw = RecordingReader(tmp_path / "r.mcap").raw_messages([TOPIC_FRAMES])
    got = [sensor_pb2.SensorFrame.FromString(d).sequence for _, _, d in raw]
    assert got == sorted(got) and len(got) == rec.frames  # kept ones in arrival order


def test_metadata_names_the_allow_list_only_when_there_is_one():
    with_list = session_metadata("fu", {"a": 1}, ["sat-2", "sat-1"], ["sat-1"])
    without = session_metadata("fu", {"a": 1}, (), ["sat-1"])
    assert with_list["sensor_ids"] == "sat-1,sat-2"
    assert "sensor_ids" not in without  # readers then scan /sensor_frames for every sensor
    assert without["expected_sensors_at_start"] == "sat-1"
    assert without["fusion_id"] == "fu" and without["fusion_config"] == '{"a": 1}'


def test_frames_recorded_keep_their_topic_and_arrival_time(tmp_path):
    rec = SessionRecorder(tmp_path / "r.mcap", session_metadata("fu", {}))
    rec.on_frame(frame(5), sensor_pb2.FRAME_STATUS_REJECTED, T0_NS + 42)
    rec.close()
    msgs = list(RecordingReader(tmp_path / "r.mcap").raw_messages())
    assert msgs == [(TOPIC_FRAMES, T0_NS + 42, frame(5).SerializeToString())]


def test_unused_path_never_names_an_existing_file(tmp_path):
    first = tmp_path / "live.mcap"
    assert unused_path(first) == first
    first.write_bytes(b"x")
    (tmp_path / "live.1.mcap").write_bytes(b"x")
    assert unused_path(first) == tmp_path / "live.2.mcap"


def test_reports_are_recorded_without_the_sensor_positions_they_carried(tmp_path):
    rec = SessionRecorder(tmp_path / "r.mcap", session_metadata("fu", {}))
    sent = track_pb2.TrackReport(track_id="fu-1", revision=1, sensor_ids=["sat-1-1"])
    sent.emitted_at.FromNanoseconds(T0_NS + 7)
    sent.sensor_positions.add(sensor_id="sat-1-1", latitude_deg=1.0, altitude_m=8e5)
    rec.on_reports([sent])
    rec.close()
    ((topic, log_ns, data),) = RecordingReader(tmp_path / "r.mcap").raw_messages([TOPIC_TRACKS])
    kept = track_pb2.TrackReport.FromString(data)
    assert (topic, log_ns) == (TOPIC_TRACKS, T0_NS + 7)
    assert not kept.sensor_positions and list(kept.sensor_ids) == ["sat-1-1"]
    assert len(sent.sensor_positions) == 1  # the message other readers hold is untouched
