"""Issue 4, ``dropout``: delivery latency (up to 5 s), 5 % dropped frames and a 60 s
satellite outage must cost the tracker little.

The same scenario and seed is simulated twice: as built, and with latency, drops and the
outage switched off. Random numbers are keyed by (seed, sensor, frame) (DESIGN §3), so
every frame that is delivered in both runs carries identical measurement noise: the
comparison isolates what out-of-order delivery and missing frames cost. Both runs go
through ``FusionCore`` in delivery order, i.e. through the real ordering stage (watermark,
LATE), as ``tracklayer track`` and the live service do.
"""

from __future__ import annotations

import dataclasses

import pytest

from tracklayer.fusion.core import FusionCore
from tracklayer.fusion.domain import FrameStatus
from tracklayer.fusion.evaluation import evaluate
from tracklayer.sensors.scenario import load_scenario
from tracklayer.sensors.simulation import simulate_to_lists

pytestmark = pytest.mark.slow

# 900 s covers boost, burnout, the outage (600-660 s) and 10 minutes of midcourse
# while keeping the two simulations and tracks to about a minute of CI time.
DURATION_S = 900.0


def _run(scenario):
    sim = simulate_to_lists(scenario, duration_s=DURATION_S)
    core = FusionCore("fusion", expected_sensors=scenario.sensor_ids())
    reports, statuses = [], []
    for frame in sim.frames:  # delivery order: out of order within a satellite too
        status, _reason, out = core.submit(frame)
        statuses.append(status)
        reports += out
    reports += core.flush()
    dts = {(d.sensor_id, d.sequence): d for d in sim.detection_truth}
    pairs = [(f, dts[(f.sensor_id, f.sequence)]) for f in sim.frames]
    return sim, statuses, evaluate(reports, sim.truth, pairs).truth


@pytest.fixture(scope="module")
def runs():
    disturbed = load_scenario("dropout")
    clean = dataclasses.replace(
        disturbed,
        sensor=dataclasses.replace(disturbed.sensor, latency_mean_s=0.0, drop_probability=0.0),
        outages=(),
    )
    return _run(disturbed), _run(clean)


def test_dropout_delivers_out_of_order_and_loses_frames(runs):
    (sim_d, _, _), (sim_c, _, _) = runs
    # the scenario really disturbs delivery: ~5 % drops plus the 60 s outage of one
    # satellite (60 frames), and latency reorders frames within one satellite's stream
    assert len(sim_d.frames) < 0.97 * len(sim_c.frames)
    seqs = {}
    reordered = 0
    for f in sim_d.frames:
        if f.sequence < seqs.get(f.sensor_id, -1):
            reordered += 1
        seqs[f.sensor_id] = max(seqs.get(f.sensor_id, -1), f.sequence)
    assert reordered > 100


def test_dropout_frames_are_never_late_with_the_default_lateness(runs):
    (_, statuses, _), _ = runs
    # default allowed_lateness_s (6 s) covers latency_max_s (5 s): nothing is discarded
    assert FrameStatus.LATE not in statuses
    assert set(statuses) == {FrameStatus.ACCEPTED}


def test_dropout_midcourse_rmse_within_25_percent_of_undisturbed(runs):
    (_, _, m_d), (_, _, m_c) = runs
    rmse_d = m_d["position_rmse_m"]["midcourse"]
    rmse_c = m_c["position_rmse_m"]["midcourse"]
    assert rmse_c is not None and rmse_d is not None
    assert rmse_d <= 1.25 * rmse_c  # issue 4 bound


def test_dropout_keeps_one_track_while_two_satellites_see_the_missile(runs):
    (_, _, m_d), _ = runs
    assert m_d["track_breaks_in_stereo"] == 0
    assert m_d["id_switches"] == 0
    assert m_d["completeness"] >= 0.95
