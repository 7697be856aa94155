"""Recorded regression cases (tests/data/regression/): live tracking no worse than its baseline.

Each case is a short recording made by ``tracklayer simulate`` from the scenario file
beside it, with the evaluation figures of that recording in ``NAME.baseline.json``
(format: services/baseline.py, docs/evaluate.md). The test replays the recording
through the LIVE services (track store + ``tracklayer fusion --idle-timeout 0`` with
a fresh journal, as subprocesses) with ``tracklayer replay --max-speed``, fetches the
reports the track store holds, and evaluates them against the recording's truth with
``tracklayer evaluate --baseline``: a figure worse than its baseline beyond the
tolerance stated in the JSON fails the test. Regenerate the cases with
``make regression-data`` (tests/data/regression/regenerate.py).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import grpc
import pytest

from tracklayer.services.cli import main
from tracklayer.services.wire.convert import report_to_proto
from tracklayer.services.wire.recording import (
    TOPIC_DETECTION_TRUTH,
    TOPIC_FRAMES,
    TOPIC_TRACKS,
    TOPIC_TRUTH,
    RecordingReader,
    RecordingWriter,
)
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

pytest_plugins = ["tracklayer.services.testing"]

DATA = Path(__file__).parent / "data" / "regression"
CASES = sorted(p.stem for p in DATA.glob("*.toml"))


def test_every_regression_case_has_its_recording_and_baseline_and_stays_small():
    assert CASES, f"no scenario files in {DATA}"
    for name in CASES:
        rec, baseline = DATA / f"{name}.mcap", DATA / f"{name}.baseline.json"
        assert rec.is_file() and baseline.is_file(), f"{name}: run make regression-data"
        assert rec.stat().st_size < 1_000_000, f"{rec}: keep checked-in recordings small"
        assert json.loads(baseline.read_text())["figures"]


def with_tracks(src: Path, dst: Path, reports) -> None:
    """``dst`` = ``src``'s frames and truth (raw, file order) plus ``reports`` as /tracks."""
    reader = RecordingReader(src)
    topics = [TOPIC_FRAMES, TOPIC_TRUTH, TOPIC_DETECTION_TRUTH]
    with RecordingWriter(dst, reader.metadata) as w:
        for topic, log_ns, data in reader.raw_messages(topics):
            w.write_raw(topic, data, log_ns)
        for r in reports:
            w.write_raw(TOPIC_TRACKS, report_to_proto(r).SerializeToString(), r.time_ns)


def _wait_tracked(address: str, timeout_s: float = 300.0) -> None:
    """Until the fusion service has tracked every journaled frame (``frames_untracked``
    0), so the graceful stop has no backlog left to drain within its grace period."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as ch:
        stub = fs_grpc.FusionServiceStub(ch)
        while time.monotonic() < deadline:
            counters = stub.GetStatus(fs.GetStatusRequest(), timeout=30).counters
            if counters.get("frames_untracked", 0) == 0:
                return
            time.sleep(0.1)
    raise AssertionError(f"the fusion service did not catch up within {timeout_s} s")


@pytest.mark.parametrize("name", CASES)
def test_live_replay_is_no_worse_than_the_recorded_baseline(
    name, tracklayer_launcher, tmp_path, capsys
):
    pytest.importorskip("tracklayer.fusion.tracker")
    rec, baseline = DATA / f"{name}.mcap", DATA / f"{name}.baseline.json"
    live = tmp_path / "live.mcap"
    # Fresh journal in its own directory; the launcher's fusion runs --idle-timeout 0,
    # so the applied order, hence every report, is the offline one (DESIGN §6).
    services = tracklayer_launcher(in_process=False, fusion_args=["--record", str(live)])
    assert main(["replay", str(rec), "--fusion", services.fusion_address, "--max-speed"]) == 0
    client = services.client()
    _wait_tracked(services.fusion_address)  # acks do not wait for the tracker
    # SIGTERM applies every acknowledged frame and drains the outbox to the store.
    assert services.stop_fusion(signal.SIGTERM) == 0
    stored = client.all_stored_reports()
    emitted = RecordingReader(live).message_count(TOPIC_TRACKS)
    assert len(stored) == emitted, "the store lacks reports the fusion service emitted"

    evaluated = tmp_path / "evaluated.mcap"
    with_tracks(rec, evaluated, sorted(stored, key=lambda r: (r.time_ns, r.track_id)))
    capsys.readouterr()
    argv = ["evaluate", str(evaluated), "--baseline", str(baseline), "--no-plots"]
    rc = main([*argv, "--report", str(tmp_path / "report")])
    out = capsys.readouterr()
    assert rc == 0, f"{name}: worse than {baseline.name}:\n{out.out}\n{out.err}"
    assert "no figure worse than the baseline" in out.out
