"""Accuracy in a dense scene (issue 13's small case): 100 missiles, 50 from each of two
sites 0.5 s apart along one path, under the 28-satellite layer, 400 s
(benchmarks/scenarios/dense-two-sites.toml).

The issue's raid bounds on this smaller case: completeness >= 0.95, false-track share
<= 2%, midcourse RMSE <= 50 m. Before negative evidence (fusion/tracker/existence.py) the
false-track share here was 5.0% (ghosts of crossing rays kept alive by one satellite);
with it 1.5% (registration off), 1.4% (registration on: only unambiguous looks are its
evidence; 3.4% when looks in the crowd were). The ID-switch bound (<= 1 per 10
object-minutes) is not met: 24 (8.9 counted the CLEAR-MOT way; 50 and 30 before the
velocity hypotheses of fusion/tracker/aliases.py, asserted below), nearly all in boost,
where objects of one path are 100-400 m apart; an oracle (truth plus a smooth 20-60 m
error, benchmarks/bench_switch_floor.py) scores 4.4-12.7 (0.7 CLEAR-MOT) here (design
§6).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.evaluation import evaluate
from tracklayer.fusion.tracker import Tracker

pytestmark = pytest.mark.slow

SCENARIO = Path(__file__).resolve().parents[1] / "benchmarks" / "scenarios" / "dense-two-sites.toml"


def _evaluate(sim, config: FusionConfig):
    """(evaluation truth metrics, [(data time s, registration bias scale) per frame], the
    registration's final per-sensor bias estimates)."""
    tr = Tracker("fusion", config)
    reports, scale = [], []
    for f in sorted(sim.frames, key=lambda f: f.order_key):
        reports += tr.process(f)
        if tr.registration is not None:
            scale.append((f.time_s, tr.registration.scale))
    reports += tr.flush()
    dts = {(d.sensor_id, d.sequence): d for d in sim.detection_truth}
    pairs = [(f, dts[(f.sensor_id, f.sequence)]) for f in sim.frames]
    biases = tr.registration.estimates() if tr.registration is not None else []
    return evaluate(reports, sim.truth, pairs).truth, scale, biases


@pytest.fixture(scope="module")
def dense_run(sim_result):
    return _evaluate(sim_result(str(SCENARIO)), FusionConfig())


@pytest.fixture(scope="module")
def dense(dense_run):
    return dense_run[0]


@pytest.fixture(scope="module")
def dense_without(sim_result):
    """The same without negative evidence (and without the velocity hypotheses of
    fusion/tracker/aliases.py and the deletion of surplus tentative tracks of
    fusion/tracker/crowd.py, as when negative evidence came): the false-track share it
    exists to cut. With the hypotheses and without negative evidence the share is 1.1%:
    holding a stream's young tracks back until their family is decided keeps many
    two-ray ghosts from ever being confirmed too; with the surplus deletion alone 1.8%
    (a ghost of crossing rays in a stream is often crowded out by the real tracks)."""
    config = FusionConfig(
        existence=False, alias_hypotheses=0, crowd_surplus_looks=0, stream_min_group=0
    )
    return _evaluate(sim_result(str(SCENARIO)), config)[0]


def test_dense_scene_needs_negative_evidence(dense_without):
    assert dense_without["false_track_share"] > 0.02  # measured 5.0%


def test_dense_scene_completeness(dense):
    assert dense["completeness"] >= 0.95  # measured 0.978 (0.986 before the stream
    # consensus, fusion/tracker/stream.py; 0.996 before surplus tentative tracks were
    # deleted, fusion/tracker/crowd.py; 0.967 without negative evidence)


def test_dense_scene_false_track_share(dense):
    assert dense["false_track_share"] <= 0.02  # measured 0.87% (0.47% before the stream
    # consensus, 0.55% before surplus tentative tracks were deleted, 1.4% before the
    # velocity hypotheses; 5.0% without negative evidence)


def test_dense_scene_midcourse_rmse(dense):
    assert dense["position_rmse_m"]["midcourse"] <= 50.0  # measured 16 m (30 m without)


def test_dense_scene_id_switches_clear_mot(dense):
    """Tracks born in a boost stream hold their objects (fusion/tracker/aliases.py).
    Before the velocity hypotheses, a new track took the object arriving where it was
    born, kept a velocity one or two spacings per second wrong and slid along site B's
    stream, one object a second: 30.1 switches per 10 object-minutes counted the
    CLEAR-MOT way (an object keeps its track while it stays within 1 km), 50 by the
    fresh assignment of each second. An oracle (truth plus a smooth 20-60 m error)
    scores 0.7 here."""
    # measured 14.0 with the stream consensus (fusion/tracker/stream.py: this seed got
    # worse, the mean of seeds 5-9 fell 17.5 -> 8.9, DESIGN §6), 8.9 before it (9.3
    # before surplus tentative tracks were deleted, 30.1 before the hypotheses); the
    # fresh-assignment count 31.0 (24.2, 24.7, 50.3)
    assert dense["id_switches_clear_mot_per_10_object_minutes"] <= 15.0
    assert dense["id_switches_per_10_object_minutes"] <= 35.0


def test_dense_scene_registration_learns_no_bias(dense_run):
    """The sensors here are unbiased, so the registration's bias scale (how large the
    biases are against the prior, DESIGN §6) falls once evidence comes and the detections
    are barely widened. Before looks in a crowd were kept out of the evidence
    (fusion/tracker/evidence.unambiguous), boost tracks that held different objects in
    different sensors taught biases the sensors do not have: the scale stayed at 1 from
    50 to 250 s, every sigma was widened x1.5-1.9 and the false-track share doubled
    (1.6% -> 3.4%)."""
    scale = dense_run[1]
    t0 = scale[0][0]
    # measured 0.13 (0.33 after 150 s, 0.75 after 100 s); before: 1.0 until 250 s
    assert max(s for t, s in scale if t - t0 >= 200.0) <= 0.3


def test_dense_scene_teaches_no_bias_to_unbiased_sensors(dense_run):
    """The scene's sensors have no pointing bias (bias_sigma_urad = 0), so every estimate
    with evidence must stay within 4 sigma of zero on each axis. Before the registration
    took only unambiguous looks sat-1-4 ended at (-11, 12, -14) urad with 1.2-2.6 urad
    sigma here (seed 6 of this scene: 20-60 urad on several sensors and a midcourse RMSE
    of 161 m against 16 m with registration off)."""
    biases = dense_run[2]
    seen = [b for b in biases if b.windows > 0]
    assert len(seen) >= 4  # the scene gives the estimator evidence
    for b in seen:
        z = np.abs(np.array(b.angles_rad)) / np.array(b.sigma_rad)
        assert z.max() <= 4.0, (b.sensor_id, b.windows, b.angles_rad, b.sigma_rad)


@pytest.fixture(scope="module")
def seed7_runs(sim_result):
    """Seed 7 of the same scenario tracked without the stream consensus
    (``stream_min_group`` 0: main before it), also without the deletion of
    surplus tentative tracks (``crowd_surplus_looks`` 0: main before it, the worst of
    seeds 5/6/7 there: CLEAR-MOT 26.0, false share 2.21%) and so with the crowd hold on at
    6 s (``crowd_hold_s``; off by default) (fusion/tracker/crowd.py, DESIGN §6)."""
    sim = sim_result(str(SCENARIO), 7)
    off = FusionConfig(crowd_surplus_looks=0, stream_min_group=0)
    nostream = FusionConfig(stream_min_group=0)
    configs = (nostream, off, dataclasses.replace(off, crowd_hold_s=6.0), FusionConfig())
    return tuple(_evaluate(sim, c)[0] for c in configs)


def test_surplus_tentative_tracks_deleted_cut_switches_and_false_tracks(seed7_runs):
    """A tentative boost track that takes no detection while other tracks take every one
    in its gate, two looks in a row, has no object of its own (every object is resolved
    here): deleted before it is confirmed, it can no longer slide onto a neighbour's object
    and take it over. Seed 7 then meets the false-track bound it missed (seeds 5-9, DESIGN
    §6: CLEAR-MOT 21.0 -> 17.5 and false share 1.78 -> 1.25% on average)."""
    default, off, _, _ = seed7_runs  # (both without the stream consensus)
    key = "id_switches_clear_mot_per_10_object_minutes"
    assert default["false_track_share"] <= 0.02  # measured 1.41% (2.21% without)
    assert default["false_track_share"] <= 0.8 * off["false_track_share"]
    assert default[key] <= 0.9 * off[key]  # measured 20.9 against 26.0
    assert default["completeness"] >= 0.95  # measured 0.980 (0.969 without)


def test_crowd_hold_cuts_switches_and_false_tracks_of_a_pad_stream(seed7_runs):
    """Held from confirmation while young in an unresolved crowd, a pad stream's tracks
    are reported only once they have lasted: far fewer identity switches and false
    tracks here, at no cost in completeness on this seed (seeds 5 and 6: 0.996 -> 0.977
    and 0.978 -> 0.976; on `raid-proliferated` 120 s the same hold costs 0.985 -> 0.934,
    which is why it is off by default, DESIGN §6). Asserted without the deletion of
    surplus tentative tracks: with it the hold no longer helps (seeds 5 / 6 / 7: CLEAR-MOT
    8.9 / 15.0 / 20.9 without the hold, 12.6 / 14.5 / 21.3 with it)."""
    _, base, held, _ = seed7_runs
    key = "id_switches_clear_mot_per_10_object_minutes"
    assert held[key] <= 0.6 * base[key]  # measured 11.5 against 26.0
    assert held["false_track_share"] <= 0.5 * base["false_track_share"]  # 0.55% vs 2.21%
    assert held["completeness"] >= 0.95  # measured 0.970 (0.969 without)
    assert held["position_rmse_m"]["midcourse"] <= 50.0  # 16.4 m (16.6 m without)


def test_stream_consensus_stops_tracks_sliding_along_a_pad_stream(seed7_runs):
    """Confirmed boost tracks in a pad stream slid along it (their velocities 20-80% off
    their objects' in the crowd looks): pulled to the velocity their stream's other tracks
    have at their place (fusion/tracker/stream.py), they hold their objects. Fails on
    the code before it (CLEAR-MOT 20.9, DESIGN §6)."""
    nostream, _, _, default = seed7_runs
    key = "id_switches_clear_mot_per_10_object_minutes"
    assert default[key] <= 12.0  # measured 6.3 (21.1 without; `tracklayer track`)
    assert default[key] <= 0.6 * nostream[key]
    assert default["false_track_share"] <= nostream["false_track_share"]  # 0.24% vs 1.41%
    assert default["completeness"] >= 0.95  # measured 0.982 (0.976 without)
