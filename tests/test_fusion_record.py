"""``tracklayer fusion --record FILE.mcap``: a live session recorded through real gRPC.

The store and the fusion service run as subprocesses (the shipped pytest plugin);
``tracklayer replay --max-speed`` streams a simulated ``dropout`` recording (frames
out of order, drops) into them. The recording must hold every received frame as
sent, every emitted report and the metadata record; complete after SIGTERM,
readable up to its last complete chunk after SIGKILL.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

import pytest

from tracklayer.fusion.config import FusionConfig
from tracklayer.services.cli import main
from tracklayer.services.fusion_service.session_recorder import RECORD_CHUNK_SIZE
from tracklayer.services.store_service.track_store import canonical_bytes
from tracklayer.services.wire.convert import report_to_proto
from tracklayer.services.wire.recording import TOPIC_FRAMES, TOPIC_TRACKS, RecordingReader
from tracklayer.v1 import sensor_pb2, track_pb2

pytest_plugins = ["tracklayer.services.testing"]

REJECTED = sensor_pb2.FRAME_STATUS_REJECTED


@pytest.fixture(scope="module")
def source(simulated_mcap):
    """dropout, 150 s (shared with the determinism tests): (path, frame bytes in file order)."""
    pytest.importorskip("tracklayer.fusion.tracker")
    path = simulated_mcap("dropout", duration_s=150)
    frames = [d for _, _, d in RecordingReader(path).raw_messages([TOPIC_FRAMES])]
    return path, frames


def bad_frame() -> sensor_pb2.SensorFrame:
    """One frame the service must answer REJECTED (sigma 20 rad: microradians sent as rad)."""
    f = sensor_pb2.SensorFrame(sensor_id="bad-sat", sequence=7)
    f.time.FromNanoseconds(1_767_225_600_000_000_000)
    f.sensor_position_eci.x = 7.378e6
    f.sensor_velocity_eci.y = 7.35e3
    d = f.detections.add(angular_sigma=20.0, intensity=1.0)
    d.line_of_sight_eci.x = 1.0
    return f


def record_session(services, src_path):
    """One bad frame, then the whole source replayed, into services running --record."""
    client = services.client()
    acks = client.send_frames([bad_frame()])
    assert [a.status for a in acks] == [REJECTED]
    argv = ["replay", str(src_path), "--fusion", services.fusion_address, "--max-speed"]
    assert main(argv) == 0
    return client


@pytest.fixture(scope="module")
def sigterm_session(source, tmp_path_factory):
    """A recorded session ended by SIGTERM: (recording path, exit status, stored reports)."""
    from tracklayer.services.testing import ProcessServices  # the plugin, registered above

    workdir = tmp_path_factory.mktemp("record-sigterm")
    rec_path = workdir / "live.mcap"
    services = ProcessServices(workdir, fusion_args=["--record", str(rec_path)]).start()
    try:
        client = record_session(services, source[0])
        status = client.status()
        rc = services.stop_fusion(signal.SIGTERM)
        stored = client.all_stored_reports()
    finally:
        services.stop()
    return rec_path, rc, stored, status


def test_sigterm_leaves_a_complete_recording_of_every_frame_and_report(source, sigterm_session):
    _, src_frames = source
    rec_path, rc, stored, _ = sigterm_session
    assert rc == 0

    reader = RecordingReader(rec_path)
    frames = list(reader.raw_messages([TOPIC_FRAMES]))
    tracks = [d for _, _, d in reader.raw_messages([TOPIC_TRACKS])]
    assert not reader.truncated
    # Every received frame, as sent: the REJECTED one first (sent before the replay),
    # then exactly the replayed frames (each sent once: no reconnects on loopback).
    assert frames[0][2] == bad_frame().SerializeToString()
    assert Counter(d for _, _, d in frames[1:]) == Counter(src_frames)
    # Arrival order: log time = arrival wall time, non-decreasing in file order.
    times = [t for _, t, _ in frames]
    assert times == sorted(times)
    # Every emitted report, including the flush at the end: what the store got.
    got = sorted(canonical_bytes(track_pb2.TrackReport.FromString(d)) for d in tracks)
    assert got == sorted(canonical_bytes(report_to_proto(r)) for r in stored)
    meta = reader.metadata
    assert meta["fusion_id"] == "fusion"
    assert json.loads(meta["fusion_config"]) == json.loads(
        json.dumps(FusionConfig().to_mapping(), sort_keys=True)
    )
    assert meta["software_version"]


def test_sigkill_leaves_a_recording_readable_up_to_its_last_complete_chunk(
    tracklayer_launcher, source, tmp_path
):
    src_path, src_frames = source
    rec_path = tmp_path / "killed.mcap"
    services = tracklayer_launcher(in_process=False, fusion_args=["--record", str(rec_path)])
    record_session(services, src_path)
    # Every frame was handed to the recorder before its ack; let its thread catch up
    # (the file stops growing) so what is lost is the chunk being filled, no more.
    # Chunks land 64 KiB at a time, so "caught up" = no growth for 1.5 s (~100x the
    # time the thread needs for a chunk's ~400 frames on an idle machine).
    sizes, deadline = [-1], time.monotonic() + 20
    while time.monotonic() < deadline and not (len(sizes) > 3 and len(set(sizes[-4:])) == 1):
        time.sleep(0.5)
        sizes.append(rec_path.stat().st_size)
    services.stop_fusion(signal.SIGKILL)
    killed_size = rec_path.stat().st_size
    # A restart with the same --record keeps the crashed file and records beside it.
    services.start_fusion()
    assert services.stop_fusion(signal.SIGTERM) == 0
    assert rec_path.stat().st_size == killed_size
    assert not RecordingReader(rec_path.with_name("killed.1.mcap")).truncated

    reader = RecordingReader(rec_path)
    assert reader.truncated  # no footer: the writer never closed
    frames = [d for _, _, d in reader.raw_messages([TOPIC_FRAMES])]
    assert reader.metadata["fusion_id"] == "fusion"  # written first, survives the kill
    assert set(frames) <= set(src_frames) | {bad_frame().SerializeToString()}
    # At most one chunk (RECORD_CHUNK_SIZE uncompressed bytes, frames + reports) is lost.
    smallest = min(len(d) for d in src_frames)
    assert len(src_frames) + 1 - len(frames) <= RECORD_CHUNK_SIZE // smallest


def test_evaluate_on_a_live_recording_reports_track_statistics_without_truth(
    sigterm_session, tmp_path, capsys
):
    rec_path = sigterm_session[0]
    out_dir = tmp_path / "report"
    assert main(["evaluate", str(rec_path), "--report", str(out_dir), "--no-plots"]) == 0

    text = capsys.readouterr().out
    assert f"no truth in {rec_path}: track statistics only" in text
    d = json.loads((out_dir / "metrics.json").read_text())
    reports = [r for _, r in RecordingReader(rec_path).tracks()]
    assert d["has_truth"] is False and not d.get("truth")
    s = d["tracks"]
    # Independent counts from the recorded /tracks.
    assert s["n_reports"] == len(reports)
    assert s["n_tracks"] == len({r.track_id for r in reports})
    confirmed = {r.track_id for r in reports if r.status.name == "CONFIRMED"}
    assert s["n_confirmed"] == len(confirmed) >= 1  # dropout's missile is tracked
    assert s["update_rate_median_hz"] > 0 and s["sensors_per_update_mean"] >= 1
    assert s["confirmed_lifetime_max_s"] > 0


def test_a_live_recording_tracked_offline_gives_the_live_sessions_reports(
    sigterm_session, tmp_path
):
    """DESIGN §6: the applied order depends on the frames, not on how the streams
    interleaved, so `tracklayer track` over the recorded arrivals reproduces every
    report the live service emitted (wall-clock emitted_at aside)."""
    rec_path = sigterm_session[0]
    offline = tmp_path / "offline.mcap"
    assert main(["track", str(rec_path), "--out", str(offline)]) == 0

    def reports(path):
        return sorted(
            canonical_bytes(track_pb2.TrackReport.FromString(d))
            for _, _, d in RecordingReader(path).raw_messages([TOPIC_TRACKS])
        )

    assert reports(offline) == reports(rec_path)


def test_record_into_a_missing_directory_is_one_line_exit_2(tmp_path, capsys):
    target = tmp_path / "no-such-dir" / "live.mcap"
    argv = ["fusion", "--store", "127.0.0.1:1", "--listen", "127.0.0.1:0"]
    argv += ["--journal", str(tmp_path / "j.sqlite"), "--outbox", str(tmp_path / "o.sqlite")]
    assert main([*argv, "--record", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"--record: {target}: its directory does not exist")
    assert not (tmp_path / "j.sqlite").exists()  # refused before touching the journal


def test_a_live_recording_replayed_into_a_fresh_service_gives_the_same_reports(
    sigterm_session, tracklayer_launcher, capsys
):
    """`tracklayer replay` works on `--record` files: the recorded REJECTED frame is
    rejected again, every other frame accepted, and the new service emits exactly the
    reports of the recorded session (emitted_at aside)."""
    rec_path, _, stored, _ = sigterm_session
    services = tracklayer_launcher(in_process=True)
    argv = ["replay", str(rec_path), "--fusion", services.fusion_address, "--max-speed"]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    n = RecordingReader(rec_path).message_count(TOPIC_FRAMES)
    assert f"ACCEPTED {n - 1}," in summary and "REJECTED 1" in summary
    client = services.client()
    want = sorted(canonical_bytes(report_to_proto(r)) for r in stored)
    got = client.wait_for(
        lambda: g if len(g := client.all_stored_reports()) >= len(want) else None,
        timeout=30,
    )
    assert sorted(canonical_bytes(report_to_proto(r)) for r in got) == want


def test_get_status_counts_what_the_recorder_wrote_and_dropped(sigterm_session, source):
    status = sigterm_session[3]
    assert status["record_dropped_total"] == 0  # a 50,000-message queue never fills here
    # Taken right after the replay: the writer thread may still hold the last few.
    assert 0 < status["record_frames_total"] <= len(source[1]) + 1
