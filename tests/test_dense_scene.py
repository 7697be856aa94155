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

import pytest

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.evaluation import evaluate
from tracklayer.fusion.tracker import Tracker

pytestmark = pytest.mark.slow

SCENARIO = Path(__file__).resolve().parents[1] / "benchmarks" / "scenarios" / "dense-two-sites.toml"


def _evaluate(sim, config: FusionConfig):
    tr = Tracker("fusion", config)
    reports = [r for f in sorted(sim.frames, key=lambda f: f.order_key) for r in tr.process(f)]
    reports += tr.flush()
    dts = {(d.sensor_id, d.sequence): d for d in sim.detection_truth}
    pairs = [(f, dts[(f.sensor_id, f.sequence)]) for f in sim.frames]
    return evaluate(reports, sim.truth, pairs).truth


@pytest.fixture(scope="module")
def dense(sim_result):
    return _evaluate(sim_result(str(SCENARIO)), FusionConfig())


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
