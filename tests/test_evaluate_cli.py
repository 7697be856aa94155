"""`tracklayer evaluate` on recordings built here with known truth and known track errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from synthetic_tracking import (
    SyntheticMissile,
    report,
    stereo_detections,
    track_reports,
    write_recording,
)

from tracklayer.fusion.domain import TrackStatus
from tracklayer.services.cli import main
from tracklayer.services.wire.recording import RecordingWriter

M1 = SyntheticMissile("M1-01", flight_s=600, apogee_m=400_000.0)
M2 = SyntheticMissile("M2-01", lat_deg=34.0, lon_deg=12.0, launch_s=50, flight_s=600)
DP = np.array([0.0, 40.0, 0.0])  # m: every report 40 m off its object
DV = np.array([0.0, 0.0, 0.2])  # m/s


def _reports() -> list:
    reps = track_reports(M1, "fusion-1", range(0, 601), dpos=DP, dvel=DV)
    # M2: fusion-2 until 299 (then deleted), fusion-3 from 300: one ID switch
    reps += track_reports(M2, "fusion-2", range(10, 300), dpos=DP, dvel=DV, end_deleted=True)
    reps += track_reports(M2, "fusion-3", range(300, 601), dpos=DP, dvel=DV)
    # a ghost 60 km off M1 for 12 s, then deleted
    reps += track_reports(M1, "fusion-4", range(100, 112), dpos=np.array([6e4, 0, 0]))
    reps.append(report(M1, "fusion-4", 13, 112, status=TrackStatus.DELETED))
    return reps


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluate")
    dets = stereo_detections(M1, range(0, 590), 30.0) + stereo_detections(M2, range(0, 590), 30.0)
    full = d / "run.mcap"
    write_recording(full, [M1, M2], _reports(), dets, metadata={"scenario": "two-synthetic"})
    live = d / "live.mcap"
    write_recording(live, [M1, M2], _reports(), with_truth=False)
    return d, full, live


def _metrics(out_dir) -> dict:
    return json.loads((out_dir / "metrics.json").read_text())


def test_evaluate_measures_the_known_errors(recordings, capsys):
    d, full, _ = recordings
    out = d / "known"
    assert main(["evaluate", str(full), "--report", str(out), "--no-plots"]) == 0
    t = _metrics(out)["truth"]
    # every assigned report is exactly 40 m / 0.2 m/s off; truth sampled at the report times
    assert t["position_rmse_m"]["midcourse"] == pytest.approx(40.0, abs=1e-6)
    assert t["velocity_rmse_mps"]["all"] == pytest.approx(0.2, abs=1e-6)
    assert t["id_switches"] == 1
    assert t["false_track_time_s"] == 12.0  # ghost selected at 100..111 s
    assert t["tracks_unassigned_over_10s"] == 1
    assert t["objects_never_tracked"] == []
    # M2 is in stereo from its launch (50 s) and tracked from 60 s: delay 10 s
    assert t["detection_delay_max_s"] == 10.0
    assert t["completeness"] == 1.0  # both tracked from 20 s after first stereo on
    text = capsys.readouterr().out
    assert "position RMSE midcourse" in text and "40 m" in text


def test_evaluate_writes_the_plots_and_names_them(recordings, capsys):
    d, full, _ = recordings
    out = d / "plots"
    assert main(["evaluate", str(full), "--report", str(out)]) == 0
    text = capsys.readouterr().out
    for name in ("ground_tracks", "altitude", "position_error", "gospa", "track_timeline"):
        png = out / f"{name}.png"
        assert png.stat().st_size > 10_000  # a real figure, not an empty canvas
        assert str(png) in text


def test_default_report_directory_is_beside_the_file(recordings):
    _, full, _ = recordings
    assert main(["evaluate", str(full), "--no-plots"]) == 0
    assert (full.parent / "run-report" / "metrics.json").exists()


def test_evaluate_without_truth_reports_track_statistics_only(recordings, capsys):
    d, _, live = recordings
    out = d / "live"
    assert main(["evaluate", str(live), "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"no truth in {live}: track statistics only" in text
    m = _metrics(out)
    assert m["has_truth"] is False and "truth" not in m
    assert m["tracks"]["n_confirmed"] == 4
    assert (out / "track_timeline.png").exists()


def test_evaluate_without_tracks_says_run_track_first(tmp_path, capsys):
    path = tmp_path / "sim.mcap"
    with RecordingWriter(path) as w:
        for frame, dt in stereo_detections(M1, range(0, 3), 30.0):
            w.write_frame(frame, frame.time_ns)
            w.write_detection_truth(dt, frame.time_ns)
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run tracklayer track first" in err[0]


@pytest.mark.parametrize("content", [None, b"", b"not an mcap file at all"])
def test_evaluate_missing_empty_or_non_mcap_file_is_one_line_exit_2(tmp_path, capsys, content):
    path = tmp_path / "bad.mcap"
    if content is not None:
        path.write_bytes(content)
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]


def test_evaluate_truncated_file_is_one_line_exit_2(recordings, tmp_path, capsys):
    _, full, _ = recordings
    cut = tmp_path / "cut.mcap"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert main(["evaluate", str(cut)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated" in err[0]


def test_baseline_of_the_same_run_passes(recordings, capsys):
    d, full, _ = recordings
    bl = d / "baseline.json"
    args = ["evaluate", str(full), "--report", str(d / "b1"), "--no-plots"]
    assert main([*args, "--save-baseline", str(bl)]) == 0
    figs = json.loads(bl.read_text())["figures"]
    assert figs["truth.position_rmse_m.midcourse"]["value"] == pytest.approx(40.0)
    assert main([*args, "--baseline", str(bl)]) == 0
    assert "no figure worse than the baseline" in capsys.readouterr().out


def test_baseline_better_than_the_run_fails_with_exit_1(recordings, tmp_path, capsys):
    _, full, _ = recordings
    bl = tmp_path / "strict.json"
    figures = {
        # 40 m now vs 20 m + max(5 m, 25 %) = 25 m allowed: worse beyond tolerance
        "truth.position_rmse_m.midcourse": {
            "value": 20.0,
            "better": "lower",
            "rel_tol": 0.25,
            "abs_tol": 5.0,
        },
        # 1 switch now vs 2: better
        "truth.id_switches": {"value": 2, "better": "lower"},
    }
    bl.write_text(json.dumps({"figures": figures}))
    args = ["evaluate", str(full), "--report", str(tmp_path), "--no-plots"]
    rc = main([*args, "--baseline", str(bl)])
    assert rc == 1
    cap = capsys.readouterr()
    lines = {ln.split()[0]: ln for ln in cap.out.splitlines() if ln.startswith("  truth.")}
    assert lines["truth.position_rmse_m.midcourse"].endswith("WORSE")
    assert lines["truth.id_switches"].endswith("better")
    assert "truth.position_rmse_m.midcourse" in cap.err


def test_bad_baseline_file_is_one_line_exit_2(recordings, tmp_path, capsys):
    _, full, _ = recordings
    bl = tmp_path / "bad.json"
    bl.write_text(json.dumps({"figures": {"truth.completeness": {"value": 1.0, "better": "up"}}}))
    assert main(["evaluate", str(full), "--baseline", str(bl)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "figures.truth.completeness.better" in err[0]


def test_metrics_json_has_units_in_its_keys_and_no_nan(recordings):
    d, full, _ = recordings
    out = d / "keys"
    assert main(["evaluate", str(full), "--report", str(out), "--no-plots"]) == 0
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text
    m = json.loads(text)
    assert m["recording"]["scenario"] == "two-synthetic"
    assert math.isfinite(m["truth"]["gospa_mean_m"])


def test_truth_from_another_recording_gives_the_same_figures(recordings):
    d, full, live = recordings
    assert main(["evaluate", str(full), "--report", str(d / "t1"), "--no-plots"]) == 0
    args = ["evaluate", str(live), "--truth", str(full), "--report", str(d / "t2")]
    assert main([*args, "--no-plots"]) == 0
    a, b = _metrics(d / "t1"), _metrics(d / "t2")
    assert b["has_truth"] is True and b["recording"]["truth_file"] == full.name
    assert a["truth"] == b["truth"]


def test_truth_file_without_truth_is_one_line_exit_2(recordings, capsys):
    _, full, live = recordings
    assert main(["evaluate", str(full), "--truth", str(live), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no /truth" in err[0]
