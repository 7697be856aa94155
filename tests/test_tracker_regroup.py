"""Re-hypothesis of a stream group's velocity (fusion/tracker/regroup.py).

A group of confirmed boost tracks flies the ``v - s / T`` alias of its stream (at the
in-phase satellites' frames each sits on an object); a satellite framing 0.3 of a period
later sees every one of them 0.3 of a spacing off its object. The tests build that
geometry and check that the look strains the group, that the hypothesis ``v + s / T``
(the true velocity) fits the later looks and wins, and that a track keeps its key while
taking the winner's state; that a look within a quarter period of the group's last one
branches nothing, and that a hypothesis is scored by the detection it would be assigned
jointly with the other tracks. The scene-level effect is measured on the dense seeds
(DESIGN §6).
"""

from types import SimpleNamespace

import numpy as np

from tracklayer.fusion.association import gate, gate_threshold
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import NS_PER_S, SensorFrame, TrackStatus
from tracklayer.fusion.dynamics import N_STATE, POS, VEL
from tracklayer.fusion.tracker.aliases import AliasFamilies
from tracklayer.fusion.tracker.modes import MotionModes
from tracklayer.fusion.tracker.regroup import (
    COOLDOWN_S,
    _spacing,
    before_update,
    branch_group,
    decide,
    joint_costs,
    may_regroup,
    strained,
)
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import Mode, Track

CFG = FusionConfig(stream_regroup_min=3)  # off by default (DESIGN §6)
T1 = 1_000 * NS_PER_S  # the out-of-phase look
PHASE_S = 0.3  # s: the group's last (in-phase) look was this long before it
SPEED = 2_200.0  # m/s along +z: the objects' speed
SPACING = 1_100.0  # m between objects (0.5 s of flight)
ALIAS = SPEED - SPACING  # m/s: the k = 1 alias of a 1 Hz sensor (v - s / T)
BASE = np.array([6_478_137.0, 0.0, 0.0])  # m ECI, 100 km up on the equator
SENSOR = np.array([6_478_137.0, -2_000_000.0, 0.0])  # m, looking across the path


def _objects(n: int) -> np.ndarray:
    """True positions (n, 3) of the stream's objects at T1."""
    return BASE + np.outer(np.arange(n) * SPACING, [0.0, 0.0, 1.0])


def _group(on: list[int], speed: float, status=TrackStatus.CONFIRMED, phase_s=PHASE_S):
    """Held boost tracks that sat on objects ``on`` at their last look (``phase_s``
    before T1) flying ``speed``, predicted to T1."""
    rows, tracks = StateRows(), []
    t0 = T1 - int(phase_s * NS_PER_S)
    for key, j in enumerate(on):
        trk = Track(key=key, created_ns=t0 - 60 * NS_PER_S, last_update_ns=t0)
        trk.mode, trk.status = Mode.BOOST, status
        x = np.zeros(N_STATE)
        x[POS] = _objects(j + 1)[j] + [0.0, 0.0, -SPEED * phase_s + speed * phase_s]
        x[VEL] = [0.0, 0.0, speed]
        P = np.diag([60.0**2] * 3 + [60.0**2] * 3 + [5.0**2] * 3)
        rows.append(x, P, trk, False, T1)
        tracks.append(trk)
    rows.noise_source = MotionModes(CFG, rows)
    fams = AliasFamilies(CFG, rows)
    tracker = SimpleNamespace(
        rows=rows, tracks=tracks, _tracks=tracks, _aliases=fams, _next_key=100, config=CFG,
        _gate_boost=gate_threshold(CFG.boost_gate_probability),
    )  # fmt: skip
    return tracker


def _look(dt_s: float = 0.0) -> SensorFrame:
    """The out-of-phase satellite's look ``dt_s`` after T1 (the objects moved on)."""
    los = _objects(12) + [0.0, 0.0, SPEED * dt_s] - SENSOR
    los /= np.linalg.norm(los, axis=1, keepdims=True)
    m, t_ns = len(los), T1 + int(dt_s * NS_PER_S)
    return SensorFrame("sat-b", 1, t_ns, SENSOR, np.zeros(3), los, np.full(m, 20e-6), np.ones(m))


def _assigned(tracker, frame):
    """The held tracks (predicted to the look) each paired with its nearest detection,
    as the frame's assignment; the gated rows and their gates."""
    rows = tracker.rows
    r = np.array([t.row for t in tracker.tracks])
    rows.sync(r, frame.time_ns)
    g = gate(rows.x[r], rows.P[r], frame.position, frame.los, frame.sigma,
             np.full(r.size, tracker._gate_boost))  # fmt: skip
    pair = [int(np.flatnonzero(g.track == i)[np.argmin(g.d2[g.track == i])]) for i in range(r.size)]
    pair_idx = np.array(pair)
    gates = np.full(r.size, tracker._gate_boost)
    return (
        SimpleNamespace(
            gating=g, pair_idx=pair_idx, rows=r[g.track[pair_idx]], track_idx=g.track[pair_idx]
        ),
        r,
        gates,
    )


def _only(g, i: int):
    """The gating ``g`` restricted to gated track ``i``'s pairs."""
    k = g.track == i
    return SimpleNamespace(track=g.track[k], det=g.det[k], d2=g.d2[k], logdet=g.logdet[k])


def test_the_spacing_is_the_median_gap_along_the_path_without_doubled_tracks():
    u = np.array([0.0, 0.0, 1.0])
    along = [0.0, 1_100.0, 1_130.0, 2_200.0, 3_300.0, 4_400.0]  # 1_130: a second track
    d = np.array([[0.0, 0.0, a] for a in along] + [[5_000.0, 0.0, 500.0]])  # across: not counted
    assert abs(_spacing(d, u) - 1_100.0) < 20.0
    assert _spacing(d[:2], u) is None  # one gap tells nothing


def test_an_out_of_phase_look_strains_an_aliased_group_and_the_true_velocity_wins():
    tracker = _group([2, 3, 4, 5, 6], ALIAS)
    frame = _look()
    s = before_update(tracker, *_assigned(tracker, frame), frame)
    assert s is not None and len(s.tracks) == 5  # a quarter spacing off every object
    before = {t.key: tracker.rows.x[t.row].copy() for t in s.tracks}
    assert branch_group(tracker, frame, s) == 5 * 3  # k = 1, 2, -1 each
    fams = tracker._aliases
    assert len(fams.groups) == 5 and len(tracker.tracks) == 5  # hypotheses, not tracks
    for dt in (1.0, 2.0):  # the same satellite's next looks decide (not the straining one)
        frame = _look(dt)
        before_update(tracker, *_assigned(tracker, frame), frame)
    late = T1 + int(CFG.alias_decide_s * NS_PER_S)
    decide(tracker, late)  # (the tracker does it after a look's update)
    assert not fams.groups
    for trk in s.tracks:  # each kept its key and row and now flies the stream's speed
        assert abs(tracker.rows.x[trk.row, 5] - SPEED) < 100.0
        assert abs(before[trk.key][5] - ALIAS) < 1.0
    assert not may_regroup(fams, s.tracks[0], late)  # not again before the cool-down
    assert may_regroup(fams, s.tracks[0], T1 + int(COOLDOWN_S * NS_PER_S))


def test_a_right_group_keeps_its_state_and_small_or_young_groups_do_not_branch():
    tracker = _group([2, 3, 4, 5, 6], SPEED)  # on their objects: nothing strains
    frame = _look()
    assert strained(tracker, _assigned(tracker, frame)[0], T1) is None
    few = _group(list(range(2, 2 + CFG.stream_regroup_min - 1)), ALIAS)  # too few
    assert strained(few, _assigned(few, frame)[0], T1) is None
    tentative = _group([2, 3, 4, 5, 6], ALIAS, status=TrackStatus.TENTATIVE)
    assert strained(tentative, _assigned(tentative, frame)[0], T1) is None
    off = _group([2, 3, 4, 5, 6], ALIAS)
    off.config = FusionConfig(stream_regroup_min=0)
    assert strained(off, _assigned(off, frame)[0], T1) is None


def test_the_straining_look_alone_moves_no_track():
    """The look that strains a group is its trigger, not its evidence: without later
    looks of that satellite every track keeps its own state."""
    tracker = _group([2, 3, 4, 5, 6], ALIAS)
    frame = _look()
    s = strained(tracker, _assigned(tracker, frame)[0], T1)
    before = {t.key: tracker.rows.x[t.row].copy() for t in s.tracks}
    branch_group(tracker, frame, s)
    decide(tracker, T1 + int(CFG.alias_decide_s * NS_PER_S))
    assert not tracker._aliases.groups
    for trk in s.tracks:
        assert np.array_equal(tracker.rows.x[trk.row], before[trk.key])


def test_a_look_in_phase_with_the_last_update_does_not_strain_a_group():
    """A satellite framing within a quarter period of the group's last look tells the
    alias from the truth too little: the same group looked at 0.22 s after its last look
    is strained but not branched (at 0.3 s it is)."""
    tracker = _group([2, 3, 4, 5, 6], ALIAS, phase_s=0.22)  # 242 m off
    pairs = _assigned(tracker, _look())[0]
    assert (pairs.gating.d2[pairs.pair_idx] > 9.21).all()  # strained, yet not branched
    assert strained(tracker, pairs, T1) is None
    again = _group([2, 3, 4, 5, 6], ALIAS, phase_s=0.3)
    assert strained(again, _assigned(again, _look())[0], T1) is not None


def test_a_hypothesis_pays_for_a_detection_another_track_holds():
    """Scored jointly, a hypothesis landing on the object of a track outside the group
    is assigned what is left (here a detection at d2 ~8), not the held one (d2 ~1)."""
    tracker = _group([2, 7], SPEED)  # 7: a right track outside the group, on object 7
    frame = _look()
    pairs, gated, gates = _assigned(tracker, frame)
    rows = tracker.rows
    own = rows.x[gated[:1]].copy()
    P = rows.P[gated[:1]]
    hyp = own.copy()
    hyp[0, POS] = _objects(8)[7] + [0.0, 0.0, 30.0]  # the hypothesis: 30 m from object 7
    near = joint_costs([hyp], P, np.array([0]), pairs.gating, gates, frame, 9.0)
    alone = joint_costs([hyp], P, np.array([0]), _only(pairs.gating, 0), gates, frame, 9.0)
    assert alone[0, 0] < 1.0  # by itself it would fit
    assert near[0, 0] == 9.0  # the held object's detection is track 7's: nothing left


OFF_M = 60.0  # m along the path: an out-of-phase alias track's last update off its object


def _mixed(on_phase: list[tuple[int, float]]):
    """Held boost tracks on the k = 1 alias (``ALIAS``), each of which sat on object
    ``j`` at its last look ``phase_s`` before T1 (``(j, phase_s)``; ``OFF_M`` off it when
    ``phase_s`` > 0, as an update is), predicted to T1."""
    tracker = _group([j for j, _ in on_phase], ALIAS)
    rows = tracker.rows
    for trk, (j, phase_s) in zip(tracker.tracks, on_phase, strict=True):
        trk.last_update_ns = T1 - int(phase_s * NS_PER_S)
        off = (ALIAS - SPEED) * phase_s + (OFF_M if phase_s > 0.0 else 0.0)
        rows.x[trk.row, POS] = _objects(j + 1)[j] + [0.0, 0.0, off]
    return tracker


def test_the_neighbours_holding_the_true_velocitys_detections_shift_with_the_group(monkeypatch):
    """Three alias tracks last updated 0.3 s before the look are strained; six more on
    the same alias, updated in phase with the straining satellite (on objects 3, 5, 7 at
    its looks, and 8-10 so that the gaps give the spacing), are not, and at its next
    looks three of them hold the detections of objects 2, 4, 6: where the strained
    tracks' true-velocity hypotheses go. Scored alone, those hypotheses find their
    detections taken and the group keeps the alias; with the neighbours branched and
    shifted with it (``GROUP_SHIFT``) the whole stream takes the true velocity."""
    from tracklayer.fusion.tracker import regroup

    on = [(2, PHASE_S), (4, PHASE_S), (6, PHASE_S)] + [(j, 0.0) for j in (3, 5, 7, 8, 9, 10)]
    for shift in (False, True):
        monkeypatch.setattr(regroup, "GROUP_SHIFT", shift)
        tracker = _mixed(on)
        frame = _look()
        s = before_update(tracker, *_assigned(tracker, frame), frame)
        assert s is not None and len(s.tracks) == (9 if shift else 3)
        branch_group(tracker, frame, s)
        for dt in (1.0, 2.0):
            frame = _look(dt)
            before_update(tracker, *_assigned(tracker, frame), frame)
        decide(tracker, T1 + int(CFG.alias_decide_s * NS_PER_S))
        speed = np.array([tracker.rows.x[t.row, 5] for t in tracker.tracks])
        if shift:
            assert np.all(np.abs(speed - SPEED) < 100.0), speed
        else:
            assert np.all(np.abs(speed - ALIAS) < 100.0), speed
