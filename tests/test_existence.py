"""Negative evidence (fusion/tracker/existence.py): looks that do not see a track.

Geometry against hand-made cases (a target behind the Earth, over the limb, against the
Earth); then the tracker on the synthetic world of tests/ballistic_synthetic.py: a track
that only one of four satellites keeps "seeing" (what a ghost or a lost track is) is
deleted within seconds, and a real object that every satellite detects with probability
0.8 keeps its one track.
"""

import dataclasses

import numpy as np
import pytest
from ballistic_synthetic import EPOCH_NS, ballistic_truth, frames, midcourse_object

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.constants import R_EARTH_EQ
from tracklayer.fusion.domain import NS_PER_S, TrackStatus
from tracklayer.fusion.tracker import Tracker
from tracklayer.fusion.tracker.existence import Existence

DURATION_S = 200.0
GHOST_FROM_S = 150.0  # from then on only sat-1 detects the object (the view is learned by then)


def _sat() -> np.ndarray:
    return np.array([R_EARTH_EQ + 1.0e6, 0.0, 0.0])


def test_view_needs_learned_limits_first():
    ex = Existence(FusionConfig())
    target = np.array([[R_EARTH_EQ + 500e3, 1.0e6, 0.0]])
    assert not ex.in_view(_sat(), target).any()  # nothing learned: no look counts


def test_view_geometry():
    ex = Existence(FusionConfig())
    sat = _sat()
    # learned: detections out to 5,000 km and over the limb down to 50 km clearance
    ex.max_range_m, ex.min_clearance_m = 5.0e6, 50e3
    r = R_EARTH_EQ
    targets = np.array(
        [
            [r + 300e3, 2.0e6, 0.0],  # in front of the Earth, 2,000 km away: seen
            [-(r + 500e3), 0.0, 0.0],  # behind the Earth: never
            [r + 300e3, 0.0, 4.9e6],  # 4,900 km away: beyond 0.95 x 5,000 km
        ]
    )
    assert ex.in_view(sat, targets).tolist() == [True, False, False]
    # over the limb: the segment's lowest point clears the equator-plane surface by h
    # (the target sits on the tangent line through that point, 3,000 km beyond it)
    for h, seen in ((60e3, False), (100e3, True)):
        tangent_point = np.array([0.0, 0.0, 0.0])
        rt = r + h
        # the point of the circle of radius rt (x-y plane) whose tangent meets the satellite
        cos_a = rt / np.linalg.norm(sat)
        tangent_point = rt * np.array([cos_a, np.sqrt(1.0 - cos_a**2), 0.0])
        direction = tangent_point - sat
        direction /= np.linalg.norm(direction)
        target = tangent_point + 1.0e6 * direction
        assert ex.in_view(sat, target[None]).tolist() == [seen], h


def test_a_few_wrong_tracks_do_not_widen_the_learned_view():
    ex = Existence(FusionConfig())
    sat = _sat()
    rng = np.random.default_rng(2)
    # 2,000 detections of well-held tracks above the satellite, 1,000-4,000 km away ...
    d = rng.normal(size=(2000, 3))
    d[:, 0] = np.abs(d[:, 0])  # away from the Earth
    d /= np.linalg.norm(d, axis=1)[:, None]
    pts = sat + d * rng.uniform(1.0e6, 4.0e6, size=(2000, 1))
    # ... and five of tracks gone astray, 7,000 km away
    far = sat + np.array([0.3, 0.95, 0.0]) / np.linalg.norm([0.3, 0.95, 0.0]) * 7.0e6
    for chunk in np.array_split(np.vstack([pts, np.repeat(far[None], 5, axis=0)]), 20):
        ex.learn(sat, chunk)
    true_max = np.linalg.norm(pts - sat, axis=1).max()
    assert 0.9 * true_max < ex.max_range_m <= true_max + 10e3


@pytest.fixture(scope="module")
def truth():
    r0, v0 = midcourse_object()
    return ballistic_truth(r0, v0, DURATION_S)


def _without(frame, keep: np.ndarray):
    return dataclasses.replace(
        frame, los=frame.los[keep], sigma=frame.sigma[keep], intensity=frame.intensity[keep]
    )


def _track_ids(fr, config: FusionConfig):
    tr = Tracker("ex", config)
    out = [r for f in fr for r in tr.process(f)]
    return out


def _ghost_frames(truth):
    fr = frames([truth], DURATION_S, seed=3)
    out = []
    for f in fr:
        t = (f.time_ns - EPOCH_NS) / NS_PER_S
        if t >= GHOST_FROM_S and f.sensor_id != "sat-1":
            f = _without(f, np.zeros(f.n_detections, bool))
        out.append(f)
    return out


def test_a_track_one_satellite_alone_sees_is_deleted(truth):
    fr = _ghost_frames(truth)
    reports = _track_ids(fr, FusionConfig())
    deleted = [r for r in reports if r.status == TrackStatus.DELETED]
    assert deleted, "the track three satellites look at and do not see must be deleted"
    t_del = (deleted[0].time_ns - EPOCH_NS) / NS_PER_S
    # three misses a second (about -1.25 each) take a capped score of +4 below -8 in ~4 s
    assert GHOST_FROM_S < t_del < GHOST_FROM_S + 8.0
    # with negative evidence off the same track lives on sat-1's detections alone
    off = _track_ids(fr, FusionConfig(existence=False))
    assert not [
        r
        for r in off
        if r.status == TrackStatus.DELETED and r.time_ns < deleted[0].time_ns + 20 * NS_PER_S
    ]


def test_a_real_object_detected_with_pd_08_keeps_its_track(truth):
    rng = np.random.default_rng(11)
    fr = [
        _without(f, rng.random(f.n_detections) < 0.8) for f in frames([truth], DURATION_S, seed=4)
    ]
    reports = _track_ids(fr, FusionConfig())
    assert {r.track_id for r in reports} == {"ex-1"}
    assert all(r.status != TrackStatus.DELETED for r in reports)


@pytest.mark.parametrize("n_looked", [1, 3, 8, 9, 40])
def test_look_scores_few_rows_are_numpys_floats(n_looked):
    """A look's scores in place (Python floats up to 8 rows, numpy above): the same bits
    as ``Existence.score`` of the looked rows, and the deleted rows exactly those now
    below ``-existence_delete_llr`` (scores near the cap and the floor included)."""
    cfg = FusionConfig()
    ex = Existence(cfg)
    rng = np.random.default_rng(n_looked)
    floor = -cfg.existence_delete_llr
    edges = [cfg.existence_max_score, floor - ex.miss_llr, floor - ex.hit_llr, 0.0]
    scores = rng.uniform(floor - 1.0, cfg.existence_max_score, 60)
    scores[: len(edges)] = edges
    idx = np.sort(rng.choice(60, n_looked, replace=False))
    idx[0] = 0
    touched = rng.choice(60, 10, replace=False).tolist()
    hit = np.isin(idx, touched)
    want = np.minimum(scores[idx] + np.where(hit, ex.hit_llr, ex.miss_llr), cfg.existence_max_score)
    got_scores = scores.copy()
    low = ex.look_scores(got_scores, idx, touched)
    assert got_scores[idx].tobytes() == want.tobytes()
    untouched = np.setdiff1d(np.arange(60), idx)
    assert got_scores[untouched].tobytes() == scores[untouched].tobytes()
    assert low == idx[want < floor].tolist()
