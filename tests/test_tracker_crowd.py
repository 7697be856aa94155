"""Young boost tracks in a crowd (fusion/tracker/crowd.py): which looks put a track in a
crowd, when the hold on its confirmation lets it go, and which tentative tracks are
deleted as surplus (crowded out look after look).

The tracker-level effect (fewer identity switches and false tracks in pad streams) is
asserted against truth on the dense two-site scene (tests/test_dense_scene.py).
"""

import numpy as np

from tracklayer.fusion.association import Gating
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import NS_PER_S, TrackStatus
from tracklayer.fusion.dynamics import N_STATE, POS
from tracklayer.fusion.tracker.crowd import CrowdHold, Surplus, crowded, crowded_out
from tracklayer.fusion.tracker.lifecycle import Lifecycle
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import Mode, Track

GATE = 25.0
T0 = 1_000 * NS_PER_S
R_EQ = 6_378_137.0  # m, equatorial radius


def _gating(track, det, d2, n_trk):
    k = len(track)
    return Gating(
        track=np.array(track),
        det=np.array(det),
        d2=np.array(d2, float),
        logdet=np.zeros(k),
        residual=np.zeros((k, 2)),
        hpos=np.zeros((n_trk, 2, 3)),
        rho=np.ones(n_trk),
        u=np.zeros((n_trk, 3)),
    )


# two tracks; track 0 gates detections 0, 1, 2, track 1 gates 2 and 3; 4 is beyond gates
CROWD = _gating([0, 0, 0, 1, 1, 1], [0, 1, 2, 2, 3, 4], [1, 4, 9, 2, 1, 30], 2)


def test_crowd_needs_enough_gated_detections_and_one_shared():
    assert crowded(CROWD, np.full(2, GATE), 3).tolist() == [True, False]
    assert crowded(CROWD, np.full(2, GATE), 2).tolist() == [True, True]
    # the same three detections in track 0's gate, none in another's: no crowd
    alone = _gating([0, 0, 0, 1], [0, 1, 2, 3], [1, 4, 9, 1], 2)
    assert crowded(alone, np.full(2, GATE), 2).tolist() == [False, False]
    # a detection beyond the gate does not count (track 1 gates 2 of 3 candidates)
    assert crowded(CROWD, np.full(2, GATE), 3)[1] == np.False_


def _rows(heights_m, modes):
    rows, tracks = StateRows(), []
    for k, (h, mode) in enumerate(zip(heights_m, modes, strict=True)):
        trk = Track(key=10 + k, created_ns=T0, last_update_ns=T0)
        trk.mode, trk.status = mode, TrackStatus.TENTATIVE
        x = np.zeros(N_STATE)
        x[POS] = [R_EQ + h, 0.0, 0.0]
        rows.append(x, np.eye(N_STATE), trk, False, T0)
        tracks.append(trk)
    return rows, tracks


def _look(hold, rows, t_ns, n=2):
    main = np.arange(n)
    keys = np.array([10 + k for k in range(n)])
    gating = _gating([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1, 4, 9, 1, 4, 9], n)
    hold.look(rows, gating, np.full(n, GATE), main, keys, np.arange(n), t_ns)


def test_young_boost_track_low_in_a_crowd_is_held_until_the_hold_ends():
    cfg = FusionConfig(crowd_hold_s=6.0)
    hold = CrowdHold(cfg)
    rows, (low, high) = _rows([10_000.0, 80_000.0], [Mode.BOOST, Mode.BOOST])
    _look(hold, rows, T0 + NS_PER_S)
    assert hold.holds(low, T0 + NS_PER_S)
    assert not hold.holds(high, T0 + NS_PER_S)  # above alias_min_altitude_m: the families'
    # a crowd look more than 2 s old holds no more
    assert not hold.holds(low, T0 + 4 * NS_PER_S)
    # still in the crowd, but as old as the hold: free
    t_end = T0 + int(cfg.crowd_hold_s * NS_PER_S)
    _look(hold, rows, t_end)
    assert not hold.holds(low, t_end)
    assert hold.holds(low, t_end - 1)


def test_ballistic_tracks_are_never_held():
    hold = CrowdHold(FusionConfig(crowd_hold_s=6.0))
    rows, tracks = _rows([10_000.0, 10_000.0], [Mode.BALLISTIC, Mode.DRAG])
    _look(hold, rows, T0 + NS_PER_S)
    assert not any(hold.holds(t, T0 + NS_PER_S) for t in tracks)


# --- surplus tentative tracks (Surplus, crowded_out) ---


def test_a_track_left_without_a_detection_that_another_took_in_its_gate_is_crowded_out():
    # track 0 took detection 0, track 1 took nothing though 0 and 2 are in its gate (0
    # taken), track 2 took nothing and gates only detection 3, which nobody took
    gating = _gating([0, 1, 1, 2], [0, 0, 2, 3], [1, 2, 30, 1], 3)
    claimed = np.array([True, False, False, False])
    assert crowded_out(gating, np.full(3, GATE), np.array([0]), claimed).tolist() == [1]
    # the taken detection beyond track 1's gate: not crowded out
    far = _gating([0, 1, 2], [0, 0, 3], [1, 30, 1], 3)
    assert crowded_out(far, np.full(3, GATE), np.array([0]), claimed).size == 0


def _crowded_look(surplus, life, rows, took):
    """A look of two detections in both tracks' gates: track 0 takes detection 0, track
    1 takes detection 1 if ``took``, else nothing (detection 1 left for nobody)."""
    gating = _gating([0, 0, 1, 1], [0, 1, 0, 1], [1, 4, 2, 3], 2)
    matched = np.array([0, 3]) if took else np.array([0])
    claimed = np.array([True, took])
    surplus.look(life, gating, np.full(2, GATE), matched, claimed, np.arange(2))


def test_tentative_boost_track_crowded_out_twice_in_a_row_is_deleted():
    rows, (held, spare) = _rows([10_000.0, 10_000.0], [Mode.BOOST, Mode.BOOST])
    life = Lifecycle(FusionConfig(), rows)
    surplus = Surplus(2)
    _crowded_look(surplus, life, rows, took=False)
    assert not spare.deleted  # once may be a missed detection of its own object
    spare.last_update_ns += NS_PER_S  # an update between: the count starts again
    _crowded_look(surplus, life, rows, took=False)
    assert not spare.deleted
    _crowded_look(surplus, life, rows, took=False)
    assert spare.deleted and spare.status == TrackStatus.DELETED
    assert not held.deleted


def test_confirmed_and_ballistic_tracks_are_never_surplus():
    for mode, status in ((Mode.BOOST, TrackStatus.CONFIRMED), (Mode.BALLISTIC, None)):
        rows, (_, spare) = _rows([10_000.0, 10_000.0], [Mode.BOOST, mode])
        if status is not None:
            spare.status = status
        life, surplus = Lifecycle(FusionConfig(), rows), Surplus(2)
        for _ in range(5):
            _crowded_look(surplus, life, rows, took=False)
        assert not spare.deleted
