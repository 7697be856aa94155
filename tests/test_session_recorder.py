"""services/session_recorder.py on its own: the listeners never block on the disk."""

from __future__ import annotations

import threading
import time

from tracklayer.services.fusion_service.session_recorder import (
    SessionRecorder,
    session_metadata,
    unused_path,
)
from tracklayer.services.wire.recording import TOPIC_FRAMES, RecordingReader
from tracklayer.v1 import sensor_pb2

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
