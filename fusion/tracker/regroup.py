"""Re-hypothesis of a stream group's velocity when a look strains it (issue 13, DESIGN §6).

The boost tracks of one pad stream can share a wrong velocity: ``v - k s / T`` for a
stream whose objects are ``s`` apart along the path, seen by satellites framing every
``T`` in one phase (at each of their frames the alias sits on an object: they support
it). The stream consensus (:mod:`.stream`) cannot tell such a group from a right one
(its median is the alias). A satellite of another frame phase can: it sees every track
of the group off its object by the same fraction of a spacing, so several of the
group's tracks take its look with a large innovation at once. That look is the trigger:
each strained track (a held BOOST track whose assigned detection of the look is beyond
``STRAIN_D2``, the look more than ``PHASE_MIN`` of a period out of phase with the
track's last update, with at least ``stream_regroup_min - 1`` others strained by the
same look within ``RADIUS_M``) gets hypotheses ``v + k s / T`` (``k`` in ``STEPS``;
``s`` the median along-path gap between the held boost tracks around it; its position
moved by the velocity change times the time since its last update: where its object
would be now). Out of phase, a wrong hypothesis is at least a quarter spacing off every
object at each of that satellite's looks; in phase, it may sit on a neighbour. They are
states kept with the track (:class:`Hypotheses`), not tracks: they take no part in the
frame's assignment. The straining satellite's later looks decide (the other
satellites, in phase with the alias, fit every hypothesis alike): at each, the look's
detections are assigned jointly (:func:`joint_costs`) to the other tracks and to the
group's tracks, all on their own states or all on their ``k``-th hypothesis, and each
pays the d2 of the detection it is assigned (at most ``alias_miss_cost``, as
:mod:`.aliases` scores its families; none: that): a hypothesis landing on a neighbour's
object finds its detection taken. A hypothesis is judged with its track's covariance and
is not updated (a state updated by one satellite alone would drift along its line of
sight onto whatever detection is near, and fit). ``alias_decide_s`` after the branch,
after a look's update, the group decides as one (the alias is the group's): summed over
its tracks, if one ``k`` beats their own cost by ``ADOPT_MARGIN`` a track, each takes
its hypothesis on that ``k`` (keeping its key, number and history); else all keep their
own. Nothing new is reported. ``SCORE_STRAIN`` (off) lets the straining look score too.

``GROUP_SHIFT`` (off; stop 26, no better on the dense seeds): the other held boost tracks
near the group branch with it, so the neighbours owning the detections a shifted group
moves onto are shifted with it (the stream as one) rather than holding them.

A track branches at most once per ``COOLDOWN_S``. Sparse scenes never have three
strained boost tracks within 10 km in one look: untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from ..association import Gating, assign_pairs, gate
from ..domain import NS_PER_S, SensorFrame, TrackStatus
from ..dynamics import POS, VEL
from .aliases import AliasFamilies, branch_out
from .stream import stream_members
from .track import Mode, Track

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .tracker import Tracker, _Assigned

STRAIN_D2 = 9.21  # chi-square 2 dof, p 0.99: a look this far off strains a track
RADIUS_M = 10_000.0  # m: neighbourhood of a group (as .stream's)
CROSS_M = 2_000.0  # m: tracks further across the path do not give the spacing
STEPS = (1, 2, -1)  # k of the hypotheses v + k s / T
COOLDOWN_S = 10.0  # s between two branchings of one held track
ADOPT_MARGIN = 6.0  # cost per track by which a group's hypothesis must beat its tracks
FRAME_PERIOD_S = 1.0  # s: T, the satellites' frame period (the sensors frame at 1 Hz)
RECENT_ONLY = False  # only tracks updated within the last frame period are strained
DECIDE_S = 0.0  # s after the branch at which a group decides (0: alias_decide_s)
MISSED_STRAIN = False  # a gated held track the look assigned nothing is strained too
SCORE_STRAIN = False  # the straining look scores the hypotheses too (jointly, as later looks)
PHASE_MIN = 0.25  # of T: the least phase of a straining look from the track's last update
ANCHORS = (0.0,)  # of T: the alias sat on its objects this long before the last update
GROUP_SHIFT = False  # the held boost tracks near a strained group branch and shift with it
TOLD_D2 = 1.0  # with GROUP_SHIFT: a track whose costs differ less tells nothing (margin)
_KA = [(k, a) for k in STEPS for a in ANCHORS]  # the hypotheses of a track, in order
_HELD = (TrackStatus.CONFIRMED, TrackStatus.COASTING)


class Strained(NamedTuple):
    """The strained tracks of one look, before its update."""

    tracks: list[Track]
    x: np.ndarray  # (n, 9) predicted states at the look
    last_ns: np.ndarray  # (n,) data time of each track's update before the look
    # with SCORE_STRAIN: the hypotheses (x, parents, as _hypotheses) and their cost at the look
    scored: tuple[np.ndarray, list[tuple[Track, int]], np.ndarray] | None = None


@dataclass(slots=True)
class Hypotheses:
    """A held track's velocity hypotheses: states kept here, not tracks (they take no
    part in the assignment), scored by the looks of the sensor that strained it."""

    parent: Track
    sensor: str
    branch_ns: int
    x: np.ndarray  # (k, 9) the hypotheses' states at t_ns (judged with the track's P)
    t_ns: int
    cost: np.ndarray  # (1 + k,) the track's, then each hypothesis's


def before_update(
    tracker: Tracker,
    pairs: _Assigned,
    gated_rows: np.ndarray,
    gates: np.ndarray,
    frame: SensorFrame,
) -> Strained | None:
    """Before the frame's update: the open hypotheses of this sensor scored by the look,
    then the held boost tracks the frame's assigned ``pairs`` strain as a group (module
    docstring) with their predicted states; None if none. ``gated_rows``, ``gates``: the
    state row and chi-square gate of each gated track (the gating's track index)."""
    fams = tracker._aliases
    if fams is None:
        return None
    if fams.groups:
        t_ns = int(frame.time_ns)
        due = [h for h in fams.groups.values() if h.sensor == frame.sensor_id and h.t_ns < t_ns]
        if due:
            score_look(tracker, due, pairs.gating, gated_rows, gates, frame)
    s = strained(tracker, pairs, frame.time_ns, gated_rows)
    if s is not None and SCORE_STRAIN:
        s = _scored(tracker, s, pairs.gating, gated_rows, gates, frame)
    return s


def _scored(
    tracker: Tracker, s: Strained, g: Gating, gated_rows: np.ndarray, gates: np.ndarray,
    frame: SensorFrame,
) -> Strained:  # fmt: skip
    """``s`` with its hypotheses and their joint cost at the straining look (before its
    update; :func:`joint_costs`), the tracks' own states first."""
    t_ns = int(frame.time_ns)
    x, parents = _hypotheses(tracker, s, t_ns)
    groups = _by_parent(parents)
    if not groups:
        return s
    at = dict(zip(gated_rows.tolist(), range(gated_rows.size), strict=True))
    own = np.array([trk.row for trk, _ in groups])
    gi = np.array([at[r] for r in own.tolist()])
    states = [tracker.rows.x[own]] + [x[[i[j] for _, i in groups]] for j in range(len(_KA))]
    cost = joint_costs(states, tracker.rows.P[own], gi, g, gates, frame,
                       tracker.config.alias_miss_cost)  # fmt: skip
    return s._replace(scored=(x, parents, cost))


def score_look(
    tracker: Tracker, hyps: list[Hypotheses], g: Gating, gated_rows: np.ndarray,
    gates: np.ndarray, frame: SensorFrame,
) -> None:  # fmt: skip
    """Add the look's cost to each track of ``hyps`` that it gated and to each of its
    hypotheses: the d2 of the detection it is *assigned* (at most ``alias_miss_cost``;
    none costs that) when the look's detections are assigned jointly to the other gated
    tracks and to these tracks, all on their own states or all on their ``k``-th
    hypothesis (:func:`joint_costs`). A velocity that puts a track on a neighbour's
    object then finds that object's detection taken. A hypothesis is judged with its
    track's covariance (the track has had every satellite's looks since, the hypothesis
    none)."""
    at = dict(zip(gated_rows.tolist(), range(gated_rows.size), strict=True))
    hyps = [h for h in hyps if h.parent.row in at]  # a track out of this look: no news
    if not hyps:
        return
    rows, t_ns = tracker.rows, int(frame.time_ns)
    for h in hyps:
        h.x, h.t_ns = _moved(h.x, (t_ns - h.t_ns) / NS_PER_S), t_ns
    gi = np.array([at[h.parent.row] for h in hyps])
    own = gated_rows[gi]
    states = [rows.x[own]] + [np.stack([h.x[j] for h in hyps]) for j in range(len(_KA))]
    cost = joint_costs(states, rows.P[own], gi, g, gates, frame, tracker.config.alias_miss_cost)
    for i, h in enumerate(hyps):
        h.cost += cost[:, i]


def joint_costs(
    states: list[np.ndarray], P: np.ndarray, gi: np.ndarray, g: Gating, gates: np.ndarray,
    frame: SensorFrame, cap: float,
) -> np.ndarray:  # fmt: skip
    """Per variant ``states[j]`` (n, 9) of the gated tracks ``gi`` (covariances ``P``
    (n, 9, 9)): each track's assigned d2 (capped at ``cap``; unassigned: ``cap``) when the
    frame's detections are assigned (:func:`.association.assign_pairs`) to the tracks
    ``gi`` in that variant and to the other gated tracks of ``g`` (gates ``gates``, per
    gated track) that reach the same detections, on their own states. (1 + ..., n)."""
    n_trk = gates.size
    mine = np.zeros(n_trk, bool)
    mine[gi] = True
    oth = ~mine[g.track]
    gs = [gate(x, P, frame.position, frame.los, frame.sigma, gates[gi]) for x in states]
    seen = np.zeros(frame.n_detections, bool)
    for gh in gs:
        seen[gh.det] = True
    near = np.zeros(n_trk, bool)
    near[g.track[oth & seen[g.det]]] = True
    keep = np.flatnonzero(oth & near[g.track])
    all_gates = np.concatenate([gates, gates[gi]])
    out = np.full((len(states), gi.size), cap)
    for j, gh in enumerate(gs):
        tr = np.concatenate([g.track[keep], n_trk + gh.track])
        de = np.concatenate([g.det[keep], gh.det])
        o = np.lexsort((de, tr))
        tr, de = tr[o], de[o]
        d2 = np.concatenate([g.d2[keep], gh.d2])[o]
        ld = np.concatenate([g.logdet[keep], gh.logdet])[o]
        sel = assign_pairs(tr, de, d2, ld, all_gates)
        sel = sel[tr[sel] >= n_trk]
        out[j, tr[sel] - n_trk] = np.minimum(d2[sel], cap)
    return out


def _moved(x: np.ndarray, dt: float) -> np.ndarray:
    """States (n, 9) moved on ``dt`` s at constant acceleration (a hypothesis's mean: its
    few seconds need no gravity or Earth-rotation terms beyond the acceleration)."""
    out = x.copy()
    out[:, POS] += x[:, VEL] * dt + 0.5 * x[:, 6:9] * dt * dt
    out[:, VEL] += x[:, 6:9] * dt
    return out


def decide(tracker: Tracker, t_ns: int) -> None:
    """Close the hypotheses ``alias_decide_s`` old, a group at a time (the tracks one
    look strained: an alias is the group's, not one track's): summed over the group's
    tracks the looks saw, if one ``k`` beats the tracks' own cost by ``ADOPT_MARGIN`` a
    track, every one of them takes its hypothesis on that ``k`` (keeping its key,
    number and history); else all keep their own."""
    fams, rows, cfg = tracker._aliases, tracker.rows, tracker.config
    decide_ns = int((DECIDE_S or cfg.alias_decide_s) * NS_PER_S)
    due: dict[tuple[str, int], list[Hypotheses]] = {}
    for key, h in list(fams.groups.items()):
        if h.parent.deleted:
            del fams.groups[key]
        elif t_ns - h.branch_ns >= decide_ns:
            due.setdefault((h.sensor, h.branch_ns), []).append(h)
            del fams.groups[key]
    for group in due.values():
        looked = [h for h in group if h.cost[0] > 0.0]
        if not looked:
            continue
        total = np.sum([h.cost for h in looked], axis=0)
        best = int(np.argmin(total[1:]))
        if total[0] - total[1 + best] <= ADOPT_MARGIN * _told(looked, best):
            continue
        for h in looked:  # its velocity, at the track's data time; P kept
            r = h.parent.row
            rows.x[r] = _moved(h.x[best : best + 1], (rows.t_ns[r] - h.t_ns) / NS_PER_S)[0]


def _told(looked: list[Hypotheses], best: int) -> int:
    """The tracks the margin is counted over: all ``looked``; with ``GROUP_SHIFT`` those
    whose own cost and hypothesis ``best``'s differ by more than ``TOLD_D2`` (a neighbour
    on an object at both, in phase with the straining satellite, tells nothing)."""
    if not GROUP_SHIFT:
        return len(looked)
    return max(1, sum(abs(h.cost[0] - h.cost[1 + best]) > TOLD_D2 for h in looked))


def may_regroup(fams: AliasFamilies, trk: Track, t_ns: int) -> bool:
    """``trk`` has no open hypotheses and branched none within ``COOLDOWN_S``."""
    last = fams.regrouped.get(trk.key, -(1 << 62))
    return trk.key not in fams.groups and t_ns - last >= COOLDOWN_S * NS_PER_S


def strained(
    tracker: Tracker, pairs: _Assigned, t_ns: int, gated_rows: np.ndarray | None = None
) -> Strained | None:
    """The held boost tracks this frame's assigned ``pairs`` strain as a group (module
    docstring), with their predicted states; None if no group. With ``gated_rows`` (the
    state row of each gated track) and ``MISSED_STRAIN``, a gated track the look assigned
    nothing is strained too (an alias half a spacing off an out-of-phase satellite's
    objects is outside its gate, or loses the detection to the track on that object)."""
    n_min = tracker.config.stream_regroup_min
    if n_min <= 0:  # off (the default)
        return None
    if gated_rows is None or not MISSED_STRAIN:
        cand = pairs.rows[pairs.gating.d2[pairs.pair_idx] > STRAIN_D2]
    else:
        d2 = np.full(gated_rows.size, np.inf)
        d2[pairs.track_idx] = pairs.gating.d2[pairs.pair_idx]
        cand = gated_rows[d2 > STRAIN_D2]
    if cand.size < n_min:  # every frame of a sparse scene
        return None
    rows, fams = tracker.rows, tracker._aliases
    keep, trks = [], []
    for row in cand.tolist():
        trk = rows.track_of(int(row))
        if (
            trk.mode == Mode.BOOST
            and trk.status in _HELD
            and may_regroup(fams, trk, t_ns)
            and _out_of_phase(t_ns - trk.last_update_ns)
        ):
            keep.append(row)
            trks.append(trk)
    if len(keep) < n_min:
        return None
    r = np.array(keep)
    pos = rows.x[r][:, POS]
    n_near = cKDTree(pos).query_ball_point(pos, RADIUS_M, return_length=True)
    sel = np.flatnonzero(n_near >= n_min)
    if sel.size == 0:
        return None
    r = r[sel]
    trks = [trks[i] for i in sel.tolist()]
    x = rows.x[r].copy()
    if GROUP_SHIFT:
        trks, x = _with_neighbours(tracker, trks, x, t_ns)
    last = np.array([t.last_update_ns for t in trks], dtype=np.int64)
    return Strained(trks, x, last)


def _with_neighbours(
    tracker: Tracker, trks: list[Track], x: np.ndarray, t_ns: int
) -> tuple[list[Track], np.ndarray]:
    """The strained tracks ``trks`` (states ``x`` (n, 9) at ``t_ns``) and every other held
    boost track within ``RADIUS_M`` of one of them at ``t_ns`` that may branch, with their
    states moved on to ``t_ns``: the owners of the detections a shifted group would move
    onto. Branched with the group, they are scored on the same ``k`` jointly with it (the
    whole stream shifted by ``k`` spacings) and adopt or keep with it (``GROUP_SHIFT``)."""
    rows, fams = tracker.rows, tracker._aliases
    have = {t.key for t in trks}
    cand = [
        t for t in (tracker.tracks[i] for i in stream_members(tracker.tracks))
        if t.key not in have and may_regroup(fams, t, t_ns)
    ]  # fmt: skip
    if not cand:
        return trks, x
    cr = np.array([t.row for t in cand])
    dt = ((t_ns - rows.t_ns[cr]) / NS_PER_S)[:, None]
    xc = rows.x[cr].copy()
    xc[:, POS] += xc[:, VEL] * dt + 0.5 * xc[:, 6:9] * dt * dt
    xc[:, VEL] += xc[:, 6:9] * dt
    near = cKDTree(x[:, POS]).query_ball_point(xc[:, POS], RADIUS_M, return_length=True) > 0
    if not near.any():
        return trks, x
    return trks + [cand[i] for i in np.flatnonzero(near).tolist()], np.vstack([x, xc[near]])


def _out_of_phase(since_ns: int) -> bool:
    """A look ``since_ns`` after a track's last update is more than ``PHASE_MIN`` of a
    frame period out of phase with it: an alias the last look's satellites supported
    (``v - k s / T``) is then at least a quarter spacing off every object, and each
    hypothesis ``v + k s / T`` is at least that far from any object unless it is right."""
    since = since_ns / NS_PER_S / FRAME_PERIOD_S
    if RECENT_ONLY and since >= 1.0:  # the last update's phase means little after a period
        return False
    ph = since % 1.0
    return PHASE_MIN < ph < 1.0 - PHASE_MIN


def after_update(
    tracker: Tracker,
    frame: SensorFrame,
    pairs: _Assigned,
    branch: list,
    claimed: np.ndarray,
    nis: np.ndarray,
    strain: Strained | None,
) -> None:
    """After the frame's update: the new tracks' siblings (``branch``, .aliases), the
    open families scored by the look (``nis`` (K,) of the assigned ``pairs``), then the
    strained group's tracks (``strain``) branched."""
    fams, rows = tracker._aliases, tracker.rows
    if branch:
        branch_out(tracker, frame, pairs, branch, claimed)
    if fams.active:
        upd = [rows.track_of(r) for r in pairs.rows.tolist()]
        fams.score(frame.sensor_id, frame.time_ns, upd, nis)
    if fams.groups:  # after the look's update: an adopted state is not updated by it
        decide(tracker, int(frame.time_ns))
    if strain is not None:
        branch_group(tracker, frame, strain)


def branch_group(tracker: Tracker, frame: SensorFrame, s: Strained) -> int:
    """Give each strained track of ``s`` its hypotheses ``v + k s / T`` (the look is not
    scored: it is the trigger, the sensor's later looks decide). Returns how many."""
    t_ns = int(frame.time_ns)
    x, parents, cost0 = s.scored if s.scored is not None else (*_hypotheses(tracker, s, t_ns), None)
    if not parents:
        return 0
    fams = tracker._aliases
    if len(fams.regrouped) > 4096:  # forget the branchings past their cool-down
        old = t_ns - int(COOLDOWN_S * NS_PER_S)
        fams.regrouped = {k: v for k, v in fams.regrouped.items() if v > old}
    for n, (parent, idx) in enumerate(_by_parent(parents)):
        i = np.array(idx)
        cost = np.zeros(1 + i.size) if cost0 is None else cost0[:, n].copy()
        fams.groups[parent.key] = Hypotheses(parent, frame.sensor_id, t_ns, x[i], t_ns, cost)
        fams.regrouped[parent.key] = t_ns
    return len(parents)


def _hypotheses(
    tracker: Tracker, s: Strained, t_ns: int
) -> tuple[np.ndarray, list[tuple[Track, int]]]:
    """The hypotheses' states at ``t_ns`` (x (n, 9)) and, per hypothesis, its track and
    ``k``: ``v + k s / T`` along the track's velocity, the position moved as far as that
    velocity change since the track's last update."""
    rows = tracker.rows
    members = stream_members(tracker.tracks)
    mr = np.array([tracker.tracks[i].row for i in members], dtype=int)
    dt_m = (t_ns - rows.t_ns[mr]) / NS_PER_S
    xm = rows.x[mr]
    pos_m = xm[:, POS] + xm[:, VEL] * dt_m[:, None] + 0.5 * xm[:, 6:9] * dt_m[:, None] ** 2
    tree = cKDTree(pos_m)
    xs, parents = [], []
    for i, trk in enumerate(s.tracks):
        if trk.deleted:
            continue
        v = s.x[i, VEL]
        u = v / max(float(np.linalg.norm(v)), 1e-9)
        near = tree.query_ball_point(s.x[i, POS], RADIUS_M)
        spacing = _spacing(pos_m[near] - s.x[i, POS], u)
        if spacing is None:
            continue
        since = max(t_ns - int(s.last_ns[i]), 0) / NS_PER_S
        x0 = s.x[i]
        for k, a in _KA:
            dv = (k * spacing / FRAME_PERIOD_S) * u
            x = x0.copy()
            x[VEL] += dv
            x[POS] += dv * (since + a * FRAME_PERIOD_S)
            xs.append(x)
            parents.append((trk, k))
    if not xs:
        return np.zeros((0, 9)), []
    return np.array(xs), parents


def _spacing(d: np.ndarray, u: np.ndarray) -> float | None:
    """Along-path spacing (m) of a stream from the offsets ``d`` (n, 3) of the tracks
    near one along its unit direction ``u``: the median gap between consecutive tracks,
    gaps under half the median left out (two tracks on one object); None under 2 gaps."""
    along = d @ u
    cross = np.linalg.norm(d - along[:, None] * u, axis=1)
    a = np.sort(along[cross <= CROSS_M])
    gaps = np.diff(a)
    if gaps.size < 2:
        return None
    gaps = gaps[gaps >= 0.5 * np.median(gaps)]
    return float(np.median(gaps)) if gaps.size else None


def _by_parent(parents: list[tuple[Track, int]]) -> list[tuple[Track, list[int]]]:
    """The siblings' indices grouped by parent, in order."""
    out: list[tuple[Track, list[int]]] = []
    for i, (trk, _k) in enumerate(parents):
        if not out or out[-1][0] is not trk:
            out.append((trk, []))
        out[-1][1].append(i)
    return out
