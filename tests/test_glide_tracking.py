"""Tracking the built-in ``glide`` (issue 11, "Accuracy"): two glide vehicles (G2 turns
+50 / -50 deg) and an MRBM beside them, 1,800 s.

The scenario is simulated, tracked and evaluated once per session (``tracked_mcap``,
~60 s); for the "keeps its accuracy" comparison the same recording without the
gliders' detections is tracked once more (~30 s): the MRBM alone on exactly the same
measurements (a separate simulation without the gliders draws other noise). Figures
come from the same metrics code as every other scenario (``read_recording`` =
``tracklayer evaluate``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from tracklayer.fusion.domain import FlightPhase, TrackStatus
from tracklayer.services.cli import main
from tracklayer.services.evaluation.run import read_recording
from tracklayer.services.wire.recording import (
    TOPIC_FRAMES,
    TOPIC_TRUTH,
    RecordingReader,
    RecordingWriter,
)

GLIDERS = ("G1-01", "G2-01")


@pytest.fixture(scope="module")
def glide_eval(tracked_mcap):
    """(EvaluationResult, path of the tracked recording) of the whole ``glide``."""
    path = tracked_mcap("glide")
    result, _ = read_recording(path)
    return result, path


def _without_gliders(src: Path, dst: Path) -> None:
    """Copy recording ``src`` to ``dst`` with every detection of a glider removed (frames
    and detection truth; truth kept): the MRBM's own detections, noise and clutter stay
    exactly as they were."""
    with RecordingReader(src) as reader:
        owners = {(d.sensor_id, d.sequence): d for _, d in reader.detection_truth()}
        meta = reader.metadata
    with RecordingReader(src) as reader, RecordingWriter(dst, meta) as writer:
        for topic, log_ns, obj in reader.messages([TOPIC_FRAMES, TOPIC_TRUTH]):
            if topic == TOPIC_TRUTH:
                writer.write_truth(obj, log_ns)
                continue
            dt = owners[(obj.sensor_id, obj.sequence)]
            keep = np.array([not o.startswith("G") for o in dt.object_ids], bool)
            frame = dataclasses.replace(
                obj, los=obj.los[keep], sigma=obj.sigma[keep], intensity=obj.intensity[keep]
            )
            writer.write_frame(frame, log_ns)
            ids = tuple(o for o, k in zip(dt.object_ids, keep, strict=True) if k)
            writer.write_detection_truth(dataclasses.replace(dt, object_ids=ids), log_ns)


@pytest.fixture(scope="module")
def mrbm_alone(tmp_path_factory, simulated_mcap):
    """EvaluationResult of the same ``glide`` recording with the gliders' detections
    removed: the MRBM tracked alone on exactly the same measurements."""
    out = tmp_path_factory.mktemp("mrbm")
    alone = out / "glide-mrbm.mcap"
    _without_gliders(simulated_mcap("glide"), alone)
    tracked = out / "glide-mrbm.tracks.mcap"
    assert main(["track", str(alone), "--out", str(tracked)]) == 0
    result, _ = read_recording(tracked)
    return result


def _objects(result) -> dict:
    return {o.object_id: o for o in result.object_series}


def _figures(result) -> dict:
    return {o["object_id"]: o for o in result.truth["per_object"]}


@pytest.mark.parametrize("oid", GLIDERS)
def test_each_glider_one_track_from_first_stereo_to_impact(glide_eval, oid):
    result, _ = glide_eval
    o = _objects(result)[oid]
    f = _figures(result)[oid]
    assert len(set(o.track_ids)) == 1, f"{oid}: tracks {sorted(set(o.track_ids))}"
    assert f["id_switches"] == 0
    assert f["track_breaks_in_stereo"] == 0
    assert f["detection_delay_s"] <= 10.0
    # assigned at every evaluation second from its first track to 2 s before impact
    assert o.eval_t_s[-1] >= o.truth_t_s[-1] - 2.0
    gaps = np.diff(o.eval_t_s)
    assert gaps.max() <= 10.0, f"{oid}: a {gaps.max():.0f} s gap in its track"


@pytest.mark.parametrize("oid", GLIDERS)
def test_glide_accuracy_and_consistency(glide_eval, oid):
    result, _ = glide_eval
    f = _figures(result)[oid]
    assert f["position_rmse_glide_m"] <= 250.0
    assert f["velocity_rmse_glide_mps"] <= 30.0
    assert 1.5 <= f["nees_glide_mean"] <= 15.0
    assert f["nees_glide_share_above"] <= 0.10
    assert f["completeness_glide"] >= 0.99
    assert f["track_breaks_glide"] == 0


def test_turns_are_found_in_truth_and_tracked_honestly(glide_eval):
    result, _ = glide_eval
    objs = _objects(result)
    g2 = objs["G2-01"]
    t_turn = g2.truth_t_s[g2.truth_turn]
    # two 90 s turns, 280 s apart (scenario: at 420 s and 700 s after launch)
    starts = t_turn[np.concatenate([[True], np.diff(t_turn) > 5.0])]
    assert starts.size == 2 and abs(np.diff(starts)[0] - 280.0) <= 2.0
    assert 170 <= t_turn.size <= 190
    assert not objs["G1-01"].truth_turn.any()
    t = result.truth
    assert t["nees_turn_samples"] > 150
    assert t["nees_turn_share_above"] <= 0.10
    assert t["track_breaks_turn"] == 0
    assert t["position_rmse_m"]["turn"] <= 250.0


def test_reports_say_glide_without_impact_and_predict_again_in_the_dive(glide_eval):
    result, path = glide_eval
    owner = {tid: o.object_id for o in result.object_series for tid in o.track_ids}
    by_object: dict[str, list] = {oid: [] for oid in GLIDERS}
    with RecordingReader(path) as reader:
        for _, rep in reader.tracks():
            if owner.get(rep.track_id) in by_object and rep.status == TrackStatus.CONFIRMED:
                by_object[owner[rep.track_id]].append(rep)
    for oid, reps in by_object.items():
        phases = np.array([int(r.phase) for r in reps])
        gliding = phases == FlightPhase.GLIDE
        assert gliding.sum() >= 500, oid  # most of a ~900 s glide
        assert all(r.impact is None for r, g in zip(reps, gliding, strict=True) if g)
        # after the last GLIDE report: the dive, reported REENTRY with an impact again
        after = reps[int(np.flatnonzero(gliding)[-1]) + 1 :]
        assert after and all(r.phase == FlightPhase.REENTRY for r in after)
        assert any(r.impact is not None for r in after), oid
    assert 0.9 <= result.truth["phase_agreement_share"] <= 1.0


def test_mrbm_keeps_its_accuracy_beside_the_gliders(glide_eval, mrbm_alone):
    result, _ = glide_eval
    beside = _figures(result)["M1-01"]["position_rmse_midcourse_m"]
    alone = _figures(mrbm_alone)["M1-01"]["position_rmse_midcourse_m"]
    assert math.isfinite(beside) and math.isfinite(alone)
    assert beside <= 1.25 * alone, f"MRBM midcourse RMSE {beside:.1f} m beside, {alone:.1f} alone"
    assert result.truth["tracks_unassigned_over_10s"] == 0
    assert result.truth["false_run_max_s"] <= 10.0
