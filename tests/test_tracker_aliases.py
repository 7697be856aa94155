"""Velocity hypotheses of a young boost track in a stream (fusion/tracker/aliases.py).

The tracker-level effect (tracks that hold their objects in a boost stream) is asserted
against truth on the dense two-site scene (tests/test_dense_scene.py); these tests pin the
rules: who branches onto which detections, how a family's looks are scored, and what it
keeps.
"""

import numpy as np

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import NS_PER_S, TrackStatus
from tracklayer.fusion.dynamics import N_STATE, POS, VEL
from tracklayer.fusion.tracker.aliases import ALIAS_MIN_GATED, PRUNE_MARGIN, AliasFamilies
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import Mode, Track

T0 = 1_000 * NS_PER_S
CFG = FusionConfig()
R_100KM = np.array([6_478_137.0, 0.0, 0.0])  # m ECI, on the equator 100 km up


def _rows(n, *, height_r=R_100KM, vel_sigma=2_500.0, created_ns=T0 - NS_PER_S):
    rows, tracks = StateRows(), []
    for k in range(n):
        trk = Track(key=k, created_ns=created_ns, last_update_ns=T0)
        trk.mode, trk.status = Mode.BOOST, TrackStatus.TENTATIVE
        x = np.zeros(N_STATE)
        x[POS] = height_r
        P = np.eye(N_STATE)
        P[VEL, VEL] = vel_sigma**2 * np.eye(3)
        rows.append(x, P, trk, False, T0)
        tracks.append(trk)
    return rows, tracks


def _gating(n_det, d2):
    """One track (index 0) gating ``n_det`` detections with squared distances ``d2``."""
    return np.zeros(n_det, int), np.arange(n_det), np.asarray(d2, float)


def test_a_track_gating_a_stream_branches_onto_the_free_detections_nearest_first():
    rows, (trk,) = _rows(1)
    fam = AliasFamilies(CFG, rows)
    g_track, g_det, d2 = _gating(6, [0.5, 4.0, 1.0, 3.0, 2.0, 9.0])
    claimed = np.array([True, False, False, True, False, False])  # 0 its own, 3 another's
    out = fam.candidates(g_track, g_det, d2, np.array([0]), np.array([0]),
                         np.array([trk.row]), claimed, T0)  # fmt: skip
    assert out == [(0, [2, 4, 1, 5])]  # free ones by d2, at most alias_hypotheses


def test_no_branch_outside_a_crowd_or_once_the_velocity_is_known():
    claimed = np.array([True, False, False, False])
    args = (np.array([0]), np.array([0]), np.array([0]))
    few = ALIAS_MIN_GATED - 1
    rows, _ = _rows(1)
    assert AliasFamilies(CFG, rows).candidates(*_gating(few, [0.1] * few), *args,
                                               claimed[:few], T0) == []  # fmt: skip
    cases = [
        _rows(1, vel_sigma=300.0),  # velocity already fixed by earlier looks
        _rows(1, height_r=np.array([6_418_137.0, 0.0, 0.0])),  # 40 km: below the floor
        _rows(1, created_ns=T0 - NS_PER_S // 10),  # 0.1 s old: no velocity look yet
    ]
    for rows, _ in cases:
        assert AliasFamilies(CFG, rows).candidates(*_gating(4, [0.1] * 4), *args,
                                                   claimed, T0) == []  # fmt: skip
    rows, (trk,) = _rows(1)
    trk.status = TrackStatus.CONFIRMED
    assert AliasFamilies(CFG, rows).candidates(*_gating(4, [0.1] * 4), *args, claimed, T0) == []


def test_the_family_keeps_the_hypothesis_every_satellite_fits():
    """In-phase looks fit every alias (NIS ~2 each); the out-of-phase satellite's looks
    fit only the true velocity. After alias_decide_s the family keeps the least cost."""
    rows, (parent, true, alias) = _rows(3)
    fam = AliasFamilies(CFG, rows)
    fam.open(parent, [true, alias], T0)
    assert fam.is_open(parent) and fam.is_open(true)
    fam.score("sat-a", T0, [parent], np.array([0.1]))  # the branching look: not scored
    for s in range(1, 3):
        t = T0 + s * NS_PER_S
        fam.score("sat-a", t, [parent, true, alias], np.array([2.0, 2.1, 1.9]))
        fam.score("sat-c", t + NS_PER_S // 4, [parent, true, alias], np.array([8.0, 1.5, 9.0]))
    assert fam.decide(T0 + 2 * NS_PER_S) == []  # still open: nobody PRUNE_MARGIN behind
    gone = fam.decide(T0 + int(CFG.alias_decide_s * NS_PER_S))
    assert {t.key for t in gone} == {parent.key, alias.key}
    assert not fam.active and not fam.is_open(true)


def test_a_hypothesis_without_the_look_pays_the_miss_cost_and_far_behind_goes_at_once():
    rows, (parent, sib) = _rows(2)
    fam = AliasFamilies(CFG, rows)
    fam.open(parent, [sib], T0)
    n = int(PRUNE_MARGIN / (CFG.alias_miss_cost - 1.0)) + 1  # looks only the parent gets
    for s in range(1, n + 1):
        fam.score("sat-a", T0 + s * NS_PER_S // 4, [parent], np.array([1.0]))
    # sib paid n misses (n * 9), the parent n NIS of 1: more than the margin between
    assert fam.decide(T0 + NS_PER_S) == [sib]
