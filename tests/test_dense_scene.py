"""Accuracy in a dense scene (issue 13's small case): 100 missiles, 50 from each of two
sites 0.5 s apart along one path, under the 28-satellite layer, 400 s
(benchmarks/scenarios/dense-two-sites.toml).

The issue's raid bounds on this smaller case: completeness >= 0.95, false-track share
<= 2%, midcourse RMSE <= 50 m. Before negative evidence (fusion/tracker/existence.py) the
false-track share here was 5.0% (ghosts of crossing rays kept alive by one satellite);
with it 1.6%. The ID-switch bound (<= 1 per 10 object-minutes) is not met (63, nearly
all in boost, where objects of one path are 100-400 m apart) and is not asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.evaluation import evaluate
from tracklayer.fusion.tracker import Tracker

pytestmark = pytest.mark.slow

SCENARIO = Path(__file__).resolve().parents[1] / "benchmarks" / "scenarios" / "dense-two-sites.toml"


def _run(sim, config: FusionConfig):
    """(truth figures, the tracker's final sensor-bias estimates)."""
    tr = Tracker("fusion", config)
    reports = [r for f in sorted(sim.frames, key=lambda f: f.order_key) for r in tr.process(f)]
    reports += tr.flush()
    dts = {(d.sensor_id, d.sequence): d for d in sim.detection_truth}
    pairs = [(f, dts[(f.sensor_id, f.sequence)]) for f in sim.frames]
    biases = tr.registration.estimates() if tr.registration is not None else []
    return evaluate(reports, sim.truth, pairs).truth, biases


def _evaluate(sim, config: FusionConfig):
    return _run(sim, config)[0]


@pytest.fixture(scope="module")
def dense_run(sim_result):
    return _run(sim_result(str(SCENARIO)), FusionConfig())


@pytest.fixture(scope="module")
def dense(dense_run):
    return dense_run[0]


@pytest.fixture(scope="module")
def dense_without(sim_result):
    """The same without negative evidence: the false-track share it exists to cut."""
    return _evaluate(sim_result(str(SCENARIO)), FusionConfig(existence=False))


def test_dense_scene_needs_negative_evidence(dense_without):
    assert dense_without["false_track_share"] > 0.02  # measured 5.0%


def test_dense_scene_completeness(dense):
    assert dense["completeness"] >= 0.95  # measured 0.979 (0.967 without)


def test_dense_scene_false_track_share(dense):
    assert dense["false_track_share"] <= 0.02  # measured 1.6% (5.0% without)


def test_dense_scene_midcourse_rmse(dense):
    assert dense["position_rmse_m"]["midcourse"] <= 50.0  # measured 23 m (30 m without)


def test_dense_scene_teaches_no_bias_to_unbiased_sensors(dense_run):
    """The scene's sensors have no pointing bias (bias_sigma_urad = 0), so every estimate
    with evidence must stay within 4 sigma of zero on each axis. Before the registration
    took only unrivalled pairs (fusion/tracker/evidence.unrivalled) sat-1-4 ended at
    (-11, 12, -14) urad with 1.2-2.6 urad sigma here (on seed 6: 20-60 urad on several
    sensors and a midcourse RMSE of 161 m, 16 m with registration off)."""
    _, biases = dense_run
    seen = [b for b in biases if b.windows > 0]
    assert len(seen) >= 4  # the scene gives the estimator evidence
    for b in seen:
        z = np.abs(np.array(b.angles_rad)) / np.array(b.sigma_rad)
        assert z.max() <= 4.0, (b.sensor_id, b.windows, b.angles_rad, b.sigma_rad)
