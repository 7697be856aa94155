"""MCAP recordings (services/recording.py): topics, metadata, order, errors, truncation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from mcap.reader import SeekingReader, make_reader
from mcap.records import Message
from mcap.stream_reader import breakup_chunk
from mcap.writer import Writer as McapWriter
from mcap_protobuf.decoder import DecoderFactory
from mcap_protobuf.writer import Writer as ProtobufMcapWriter

from tracklayer import __version__
from tracklayer.fusion.domain import (
    DetectionTruth,
    FlightPhase,
    GroundEllipse,
    SensorFrame,
    TrackReport,
    TrackStatus,
    TruthFrame,
    TruthState,
)
from tracklayer.services.wire import convert
from tracklayer.services.wire.recording import (
    METADATA_NAME,
    TOPIC_DETECTION_TRUTH,
    TOPIC_FRAMES,
    TOPIC_TRACKS,
    TOPIC_TRUTH,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    format_sensor_ids,
    require_topic,
)

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


def _frame(rng: np.random.Generator, sensor: str, seq: int, n: int) -> SensorFrame:
    los = rng.normal(size=(n, 3))
    los /= np.linalg.norm(los, axis=1, keepdims=True)
    return SensorFrame(
        sensor_id=sensor,
        sequence=seq,
        time_ns=T0 + seq * 1_000_000_000,
        position=rng.normal(size=3) * 7e6,
        velocity=rng.normal(size=3) * 7e3,
        los=los,
        sigma=np.full(n, 20e-6),
        intensity=rng.uniform(0, 10, n),
    )


def _report(rng: np.random.Generator, n: int, with_estimates: bool) -> TrackReport:
    a = rng.normal(size=(6, 6))
    ellipse = GroundEllipse(47.6, -122.3, T0 + 1_800 * 10**9 + n, 3e3, 1e3, 30.0)
    return TrackReport(
        track_id=f"fusion-{n}",
        revision=n + 1,
        status=TrackStatus.CONFIRMED,
        time_ns=T0 + n * 10**9,
        position=rng.normal(size=3) * 7e6,
        velocity=rng.normal(size=3) * 7e3,
        covariance=a @ a.T,
        latitude_deg=40.0,
        longitude_deg=100.0,
        altitude_m=5e5,
        phase=FlightPhase.MIDCOURSE,
        impact=ellipse if with_estimates else None,
        launch=ellipse if with_estimates else None,
        sensor_ids=("sat-1-1", "sat-2-3"),
        update_count=n,
        emitted_at_ns=T0 + 5 if with_estimates else None,
    )


def _session(n_frames: int = 60, seed: int = 3) -> list[tuple[str, int, object]]:
    """A small recording's content: every topic, interleaved, some log times going back."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, int, object]] = []
    for i in range(n_frames):
        sensor = f"sat-{i % 3 + 1}-{i % 2 + 1}"
        frame = _frame(rng, sensor, i, n=i % 5)  # 0..4 detections, heartbeats included
        # Delivery order != measurement order: log times jitter backwards now and then.
        log = T0 + i * 10**9 + (-1_500_000_000 if i % 7 == 3 else 200_000_000)
        out.append((TOPIC_FRAMES, log, frame))
        ids = tuple(("M1-01" if k == 0 else "") for k in range(frame.n_detections))
        out.append((TOPIC_DETECTION_TRUTH, log, DetectionTruth(sensor, i, ids)))
        if i % 4 == 0:
            states = [
                TruthState(f"M1-0{k}", rng.normal(size=3), rng.normal(size=3), FlightPhase.BOOST)
                for k in range(1, 1 + i % 3)
            ]
            out.append((TOPIC_TRUTH, T0 + i * 10**9, TruthFrame(T0 + i * 10**9, states)))
        if i % 5 == 4:
            out.append((TOPIC_TRACKS, log - 10**9, _report(rng, i, with_estimates=i % 10 == 4)))
    return out


def _write(path, content, metadata=None, **kwargs) -> None:
    writers = {
        TOPIC_FRAMES: "write_frame",
        TOPIC_TRUTH: "write_truth",
        TOPIC_DETECTION_TRUTH: "write_detection_truth",
        TOPIC_TRACKS: "write_track",
    }
    with RecordingWriter(path, metadata, **kwargs) as w:
        for topic, log, obj in content:
            getattr(w, writers[topic])(obj, log)


def _same(a, b) -> bool:
    if isinstance(a, TruthFrame):
        return a.time_ns == b.time_ns and a.objects == b.objects
    return a == b


@pytest.fixture(scope="module")
def content():
    return _session()


@pytest.fixture(scope="module")
def recording(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("rec") / "session.mcap"
    meta = {
        "scenario": "single-icbm",
        "scenario_file": "",
        "seed": "1",
        "sensor_ids": format_sensor_ids(["sat-2-2", "sat-1-1", "sat-3-1", "sat-1-1"]),
        "fusion_config": '{"allowed_lateness_s": 6.0}',
    }
    # A small chunk size gives several chunks, as a long recording would have.
    _write(path, content, meta, chunk_size=2048)
    return path


# --- round trips and order ------------------------------------------------------------


def test_every_topic_round_trips_in_file_order(recording, content):
    got = list(RecordingReader(recording).messages())
    assert [(t, log) for t, log, _ in got] == [(t, log) for t, log, _ in content]
    assert all(_same(a, b) for (_, _, a), (_, _, b) in zip(got, content, strict=True))


def test_file_order_is_kept_where_log_times_go_backwards(recording, content):
    logs = [log for log, _ in RecordingReader(recording).frames()]
    expected = [log for t, log, _ in content if t == TOPIC_FRAMES]
    assert logs == expected
    assert logs != sorted(logs)  # the fixture really has out-of-order delivery


@pytest.mark.parametrize(
    ("method", "topic"),
    [
        ("frames", TOPIC_FRAMES),
        ("truth", TOPIC_TRUTH),
        ("detection_truth", TOPIC_DETECTION_TRUTH),
        ("tracks", TOPIC_TRACKS),
    ],
)
def test_typed_iterators_yield_only_their_topic(recording, content, method, topic):
    got = list(getattr(RecordingReader(recording), method)())
    expected = [(log, obj) for t, log, obj in content if t == topic]
    assert len(got) == len(expected) > 0
    assert all(la == lb and _same(a, b) for (la, a), (lb, b) in zip(got, expected, strict=True))


def test_track_reports_keep_impact_launch_and_their_absence(recording):
    reports = [r for _, r in RecordingReader(recording).tracks()]
    assert any(r.impact is not None and r.launch is not None for r in reports)
    assert any(r.impact is None and r.launch is None and r.emitted_at_ns is None for r in reports)


def test_raw_messages_are_the_serialised_wire_messages(recording, content):
    raw = list(RecordingReader(recording).raw_messages([TOPIC_TRACKS]))
    expected = [
        convert.report_to_proto(r).SerializeToString() for t, _, r in content if t == TOPIC_TRACKS
    ]
    assert [data for _, _, data in raw] == expected


def test_write_raw_appends_an_already_serialised_message(tmp_path):
    frame = _frame(np.random.default_rng(0), "sat-1-1", 9, 2)
    path = tmp_path / "raw.mcap"
    with RecordingWriter(path) as w:
        w.write_raw(TOPIC_FRAMES, convert.frame_to_proto(frame).SerializeToString(), T0)
    assert list(RecordingReader(path).frames()) == [(T0, frame)]


def test_same_content_gives_a_byte_identical_file(tmp_path, content):
    # DESIGN §3: the same scenario and seed give byte-identical files.
    a, b = tmp_path / "a.mcap", tmp_path / "b.mcap"
    _write(a, content[:40], {"seed": "1"})
    _write(b, content[:40], {"seed": "1"})
    assert a.read_bytes() == b.read_bytes()


# --- metadata and topics --------------------------------------------------------------


def test_metadata_record_carries_the_run_and_the_software_version(recording):
    meta = RecordingReader(recording).metadata
    assert meta["scenario"] == "single-icbm"
    assert meta["seed"] == "1"
    assert meta["fusion_config"] == '{"allowed_lateness_s": 6.0}'
    assert meta["software_version"] == __version__


def test_sensor_ids_come_from_the_metadata_sorted_and_unique(recording):
    assert RecordingReader(recording).sensor_ids() == ["sat-1-1", "sat-2-2", "sat-3-1"]


def test_sensor_ids_are_scanned_from_frames_when_metadata_lacks_them(tmp_path, content):
    path = tmp_path / "nometa.mcap"
    _write(path, content[:30])
    expected = sorted({f.sensor_id for t, _, f in content[:30] if t == TOPIC_FRAMES})
    assert RecordingReader(path).sensor_ids() == expected


def test_metadata_is_empty_for_a_file_without_the_record(tmp_path):
    path = tmp_path / "foreign.mcap"
    with open(path, "wb") as f:
        w = McapWriter(f)
        w.start()
        w.finish()
    assert RecordingReader(path).metadata == {}


def test_has_topic_tells_recorded_topics_from_absent_ones(tmp_path, content):
    path = tmp_path / "frames_only.mcap"
    _write(path, [c for c in content if c[0] == TOPIC_FRAMES][:5])
    reader = RecordingReader(path)
    assert reader.has_topic(TOPIC_FRAMES)
    assert not reader.has_topic(TOPIC_TRUTH)
    assert not reader.has_topic(TOPIC_TRACKS)


def test_require_topic_names_the_file_and_the_topic(tmp_path, content):
    path = tmp_path / "frames_only.mcap"
    _write(path, [c for c in content if c[0] == TOPIC_FRAMES][:5])
    reader = RecordingReader(path)
    require_topic(reader, TOPIC_FRAMES)  # present: no error
    with pytest.raises(RecordingError, match="frames_only.mcap.*/truth"):
        require_topic(reader, TOPIC_TRUTH)


def test_unknown_topic_is_refused_by_the_writer_and_the_typed_reader(tmp_path, recording):
    with RecordingWriter(tmp_path / "x.mcap") as w, pytest.raises(ValueError, match="topic"):
        w.write_raw("/camera", b"", T0)
    with pytest.raises(ValueError, match="/camera"):
        list(RecordingReader(recording).messages(["/camera"]))


def test_metadata_values_must_be_strings(tmp_path):
    with pytest.raises(TypeError, match="seed"):
        RecordingWriter(tmp_path / "m.mcap", {"seed": 1})  # type: ignore[dict-item]


# --- bad files ------------------------------------------------------------------------


def test_missing_file_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(RecordingError, match="nothere.mcap: no such file"):
        RecordingReader(tmp_path / "nothere.mcap")


def test_empty_file_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "empty.mcap"
    path.write_bytes(b"")
    with pytest.raises(RecordingError, match="empty.mcap: empty file"):
        RecordingReader(path)


def test_non_mcap_file_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text('name = "single-icbm"\n')
    with pytest.raises(RecordingError, match="scenario.toml: not an MCAP file"):
        RecordingReader(path)


def test_directory_is_an_error_naming_it(tmp_path):
    with pytest.raises(RecordingError, match="is a directory"):
        RecordingReader(tmp_path)


def test_writer_into_a_missing_directory_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(RecordingError, match="nodir/out.mcap: cannot create"):
        RecordingWriter(tmp_path / "nodir" / "out.mcap")


def test_writing_after_close_is_an_error(tmp_path):
    w = RecordingWriter(tmp_path / "c.mcap")
    w.close()
    w.close()  # idempotent
    with pytest.raises(RecordingError, match="closed"):
        w.write_frame(_frame(np.random.default_rng(0), "s", 1, 0), T0)


def test_an_error_inside_the_with_block_still_leaves_a_complete_file(tmp_path):
    path = tmp_path / "partial.mcap"
    frame = _frame(np.random.default_rng(0), "s", 1, 1)
    with pytest.raises(RuntimeError), RecordingWriter(path) as w:
        w.write_frame(frame, T0)
        raise RuntimeError("simulator failed")
    reader = RecordingReader(path)
    assert list(reader.frames()) == [(T0, frame)] and not reader.truncated


def test_wrong_schema_on_a_fixed_topic_is_an_error_naming_topic_and_schema(tmp_path):
    path = tmp_path / "wrong.mcap"
    with ProtobufMcapWriter(str(path)) as w:
        w.write_message(
            TOPIC_FRAMES,
            convert.report_to_proto(_report(np.random.default_rng(0), 1, False)),
            T0,
            T0,
        )
    with pytest.raises(RecordingError, match=r"/sensor_frames carries 'tracklayer.v1.TrackReport'"):
        list(RecordingReader(path).frames())


def test_corruption_inside_the_file_is_an_error_not_a_silent_truncation(tmp_path, recording):
    data = bytearray(recording.read_bytes())
    with open(recording, "rb") as f:
        chunk = SeekingReader(f).get_summary().chunk_indexes[1]
    # Overwrite the middle of the second chunk's compressed payload.
    mid = chunk.chunk_start_offset + chunk.chunk_length // 2
    data[mid : mid + 64] = b"\xff" * 64
    path = tmp_path / "corrupt.mcap"
    path.write_bytes(bytes(data))
    reader = RecordingReader(path)
    # Depending on where the bytes land, zstd or protobuf parsing fails; either way the
    # error names the file, and nothing is passed off as a cut-short recording.
    with pytest.raises(RecordingError, match=r"corrupt\.mcap: "):
        list(reader.messages())
    assert not reader.truncated


# --- truncated files (a killed writer) ------------------------------------------------


def _chunk_ends_and_counts(path) -> list[tuple[int, int]]:
    """(end offset, message count) of every chunk, read from the summary independently."""
    out = []
    with open(path, "rb") as f:
        reader = SeekingReader(f)
        for ci in reader.get_summary().chunk_indexes:
            f.seek(ci.chunk_start_offset)
            raw = f.read(ci.chunk_length)
            from mcap.data_stream import ReadDataStream
            from mcap.records import Chunk

            chunk = Chunk.read(ReadDataStream(io.BytesIO(raw[9:])))
            n = sum(isinstance(r, Message) for r in breakup_chunk(chunk))
            out.append((ci.chunk_start_offset + ci.chunk_length, n))
    return out


@pytest.mark.parametrize(
    "where", ["mid_chunk", "chunk_boundary", "in_next_record_header", "summary"]
)
def test_truncated_file_is_read_up_to_its_last_complete_chunk(tmp_path, recording, content, where):
    chunks = _chunk_ends_and_counts(recording)
    assert len(chunks) >= 4  # the fixture spans several chunks
    data = recording.read_bytes()
    k = len(chunks) // 2
    end_k = chunks[k][0]
    cut = {
        "mid_chunk": (end_k + chunks[k + 1][0]) // 2,  # inside chunk k+1
        "chunk_boundary": end_k,  # the writer died right after flushing chunk k
        "in_next_record_header": end_k + 5,  # inside the opcode/length of the record after chunk k
        "summary": chunks[-1][0] + 40,  # data complete, index and footer lost
    }[where]
    complete_chunks = [n for end, n in chunks if end <= cut]
    path = tmp_path / f"cut_{where}.mcap"
    path.write_bytes(data[:cut])

    reader = RecordingReader(path)
    got = list(reader.messages())
    assert reader.truncated
    assert len(got) == sum(complete_chunks)
    # what is read is exactly the prefix of what was written, in file order
    assert all(
        (ta, la) == (tb, lb) and _same(a, b)
        for (ta, la, a), (tb, lb, b) in zip(got, content, strict=False)
    )


def test_truncated_file_keeps_its_metadata_and_sensor_ids(tmp_path, recording):
    data = recording.read_bytes()
    end_first = _chunk_ends_and_counts(recording)[0][0]
    path = tmp_path / "cut.mcap"
    path.write_bytes(data[: end_first - 10])  # not even one complete chunk
    reader = RecordingReader(path)
    assert reader.metadata["scenario"] == "single-icbm"
    assert reader.sensor_ids() == ["sat-1-1", "sat-2-2", "sat-3-1"]
    assert list(reader.messages()) == [] and reader.truncated
    assert not reader.has_topic(TOPIC_FRAMES)
    # the error says the file was cut, not that the topic was never recorded
    with pytest.raises(RecordingError, match="cut.mcap: truncated recording.*/sensor_frames"):
        require_topic(reader, TOPIC_FRAMES)


def test_complete_file_is_not_marked_truncated(recording):
    reader = RecordingReader(recording)
    for _ in reader.messages():
        pass
    assert not reader.truncated


# --- interoperability -----------------------------------------------------------------


def test_plain_mcap_reader_sees_embedded_protobuf_schemas(recording):
    with open(recording, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        schemas = {s.name: s.encoding for s in summary.schemas.values()}
        channels = {c.topic: c.message_encoding for c in summary.channels.values()}
        assert schemas == {
            "tracklayer.v1.SensorFrame": "protobuf",
            "tracklayer.v1.TruthFrame": "protobuf",
            "tracklayer.v1.DetectionTruth": "protobuf",
            "tracklayer.v1.TrackReport": "protobuf",
        }
        assert channels == dict.fromkeys(
            [TOPIC_FRAMES, TOPIC_DETECTION_TRUTH, TOPIC_TRUTH, TOPIC_TRACKS], "protobuf"
        )
        assert [m.name for m in reader.iter_metadata()] == [METADATA_NAME]


def test_generic_protobuf_decoder_reads_messages_from_the_embedded_schema(recording, content):
    # mcap-protobuf-support builds dynamic classes from the schema in the file alone.
    first_frame = next(obj for t, _, obj in content if t == TOPIC_FRAMES)
    with open(recording, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        _, channel, _, decoded = next(
            reader.iter_decoded_messages(topics=[TOPIC_FRAMES], log_time_order=False)
        )
    assert channel.topic == TOPIC_FRAMES
    assert decoded.sensor_id == first_frame.sensor_id
    assert decoded.sequence == first_frame.sequence
    assert decoded.sensor_position_eci.x == first_frame.position[0]
    assert len(decoded.detections) == first_frame.n_detections
