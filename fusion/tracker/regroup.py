"""Re-hypothesis of a stream group's velocity when a look strains it (issue 13, DESIGN §6).

The boost tracks of one pad stream can share a wrong velocity: ``v - k s / T`` for a
stream whose objects are ``s`` apart along the path, seen by satellites framing every
``T`` in one phase (at each of their frames the alias sits on an object: they support
it). The stream consensus (:mod:`.stream`) cannot tell such a group from a right one
(its median is the alias). A satellite of another frame phase can: it sees every track
of the group off its object by the same fraction of a spacing, so several of the
group's tracks take its look with a large innovation at once. That look is the trigger:
each strained track (a held BOOST track whose assigned detection of the look is beyond
``STRAIN_D2``, with at least ``stream_regroup_min - 1`` others strained by the same look within
``RADIUS_M``) branches into siblings on ``v + k s / T`` (``k`` in ``STEPS``; ``s`` the
median along-path gap between the held boost tracks around it, its position moved by
the velocity change times the time since its last update: where its object would be
now), each updated with the look's detection nearest it. The track and its siblings are
one family of :mod:`.aliases`, scored by the same costs (NIS of each look, a miss cost)
from this look on; at the decision the track keeps its key, its number and its history
and takes the best member's state (or keeps its own), and the siblings are deleted. So
nothing new is reported: a right track stays as it was, an aliased one is moved onto the
velocity the later looks support.

A track branches at most once per ``REGROUP_COOLDOWN_S`` (10 s). Sparse scenes never have three
strained boost tracks within 10 km in one look: untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from ..association import Gating, gate
from ..domain import NS_PER_S, SensorFrame, TrackStatus
from ..dynamics import POS, VEL
from ..filters import update
from .aliases import AliasFamilies, branch_out, clone_track
from .stream import stream_members
from .track import Mode, Track

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .tracker import Tracker, _Assigned

STRAIN_D2 = 9.21  # chi-square 2 dof, p 0.99: a look this far off strains a track
RADIUS_M = 10_000.0  # m: neighbourhood of a group (as .stream's)
CROSS_M = 2_000.0  # m: tracks further across the path do not give the spacing
STEPS = (1, 2, -1)  # k of the hypotheses v + k s / T
FRAME_PERIOD_S = 1.0  # s: T, the satellites' frame period (the sensors frame at 1 Hz)
_HELD = (TrackStatus.CONFIRMED, TrackStatus.COASTING)


class Strained(NamedTuple):
    """The strained tracks of one look, before its update."""

    tracks: list[Track]
    x: np.ndarray  # (n, 9) predicted states at the look
    P: np.ndarray  # (n, 9, 9)
    last_ns: np.ndarray  # (n,) data time of each track's update before the look


def before_update(
    tracker: Tracker, pairs: _Assigned, gated_rows: np.ndarray, sensor_id: str, t_ns: int
) -> Strained | None:
    """Before the frame's update: the open groups' families of this sensor scored by the
    look (:func:`score_look`), then the held boost tracks the frame's assigned ``pairs``
    strain as a group (module docstring) with their predicted states; None if none.
    ``gated_rows``: the state row of each gated track (the gating's track index)."""
    fams = tracker._aliases
    if fams is None:
        return None
    if fams.groups:
        score_look(fams, pairs.gating, gated_rows, sensor_id, t_ns)
    return strained(tracker, pairs, t_ns)


def score_look(
    fams: AliasFamilies, g: Gating, gated_rows: np.ndarray, sensor: str, t_ns: int
) -> None:
    """Add to each member of the groups branched by ``sensor`` (earlier) the squared
    distance of the look's detection nearest its prediction, at most ``alias_miss_cost``
    (no detection in its gate costs that): how well the look fits its velocity, whatever
    the assignment gave it."""
    groups = [f for f in fams.groups if f.sensor == sensor and f.branch_ns < t_ns]
    if not groups:
        return
    cap = fams.cfg.alias_miss_cost
    near = np.full(gated_rows.size, np.inf)
    np.minimum.at(near, g.track, g.d2)
    at = np.full(int(gated_rows.max(initial=-1)) + 1, -1)
    at[gated_rows] = np.arange(gated_rows.size)
    for fam in groups:
        for i, m in enumerate(fam.members):
            if m.deleted:
                continue
            j = at[m.row] if m.row < at.size else -1
            fam.cost[i] += cap if j < 0 else min(float(near[j]), cap)


def strained(tracker: Tracker, pairs: _Assigned, t_ns: int) -> Strained | None:
    """The held boost tracks this frame's assigned ``pairs`` strain as a group (module
    docstring), with their predicted states; None if no group."""
    n_min = tracker.config.stream_regroup_min
    d2 = pairs.gating.d2[pairs.pair_idx]
    cand = np.flatnonzero(d2 > STRAIN_D2)
    if n_min <= 0 or cand.size < n_min:  # every frame of a sparse scene
        return None
    rows, fams = tracker.rows, tracker._aliases
    keep, trks = [], []
    for k in cand.tolist():
        trk = rows.track_of(int(pairs.rows[k]))
        if trk.mode == Mode.BOOST and trk.status in _HELD and fams.may_regroup(trk, t_ns):
            keep.append(k)
            trks.append(trk)
    if len(keep) < n_min:
        return None
    r = pairs.rows[np.array(keep)]
    pos = rows.x[r][:, POS]
    n_near = cKDTree(pos).query_ball_point(pos, RADIUS_M, return_length=True)
    sel = np.flatnonzero(n_near >= n_min)
    if sel.size == 0:
        return None
    r = r[sel]
    trks = [trks[i] for i in sel.tolist()]
    last = np.array([t.last_update_ns for t in trks], dtype=np.int64)
    return Strained(trks, rows.x[r].copy(), rows.P[r].copy(), last)


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
    if strain is not None:
        branch_group(tracker, frame, strain)


def branch_group(tracker: Tracker, frame: SensorFrame, s: Strained) -> int:
    """Branch the strained tracks ``s`` (after the frame's update) onto ``v + k s / T``,
    each sibling updated with its nearest detection of ``frame`` (the look is not
    scored: it is the trigger). Opens one family per track; returns the siblings."""
    t_ns = int(frame.time_ns)
    x, P, parents = _hypotheses(tracker, s, t_ns)
    if not parents:
        return 0
    g = gate(x, P, frame.position, frame.los, frame.sigma, np.full(len(x), tracker._gate_boost))
    best = np.full(len(x), -1)
    if g.track.size:
        order = np.lexsort((g.d2, g.track))
        first = order[np.r_[True, g.track[order][1:] != g.track[order][:-1]]]
        best[g.track[first]] = first
    hit = np.flatnonzero(best >= 0)
    if hit.size:
        p = best[hit]
        sigma = frame.sigma[g.det[p]]
        x[hit], P[hit], _ = update(x[hit], P[hit], g.residual[p], g.hpos[hit], sigma)
    rows, made = tracker.rows, 0
    for parent, sibs in _by_parent(parents):
        kids = []
        for i in sibs:
            trk = clone_track(parent, tracker._next_key)
            tracker._next_key += 1
            trk.created_ns = t_ns  # a tentative hypothesis: its own age
            if best[i] >= 0:
                trk.last_update_ns = t_ns
            tracker._tracks.append(trk)
            rows.append(x[i], P[i], trk, False, t_ns)
            rows.score[trk.row] = rows.score[parent.row]
            kids.append(trk)
        tracker._aliases.open_group(parent, kids, frame.sensor_id, t_ns)
        made += len(kids)
    return made


def _hypotheses(
    tracker: Tracker, s: Strained, t_ns: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[Track, int]]]:
    """The siblings' predicted states at ``t_ns`` (x (n, 9), P (n, 9, 9)) and, per
    sibling, its parent and ``k``: ``v + k s / T`` along the track's velocity, the
    position moved as far as that velocity change since the track's last update."""
    rows = tracker.rows
    members = stream_members(tracker.tracks)
    mr = np.array([tracker.tracks[i].row for i in members], dtype=int)
    dt_m = (t_ns - rows.t_ns[mr]) / NS_PER_S
    xm = rows.x[mr]
    pos_m = xm[:, POS] + xm[:, VEL] * dt_m[:, None] + 0.5 * xm[:, 6:9] * dt_m[:, None] ** 2
    tree = cKDTree(pos_m)
    xs, Ps, parents = [], [], []
    for i, trk in enumerate(s.tracks):
        if trk.deleted:
            continue
        v = s.x[i, VEL]
        u = v / max(float(np.linalg.norm(v)), 1e-9)
        spacing = _spacing(pos_m[tree.query_ball_point(s.x[i, POS], RADIUS_M)] - s.x[i, POS], u)
        if spacing is None:
            continue
        since = max(t_ns - int(s.last_ns[i]), 0) / NS_PER_S
        for k in STEPS:
            dv = (k * spacing / FRAME_PERIOD_S) * u
            x = s.x[i].copy()
            x[VEL] += dv
            x[POS] += dv * since
            xs.append(x)
            Ps.append(s.P[i])
            parents.append((trk, k))
    if not xs:
        return np.zeros((0, 9)), np.zeros((0, 9, 9)), []
    return np.array(xs), np.array(Ps), parents


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
