"""Velocity hypotheses of a new boost track in a stream (issue 13: aliases).

A new track starts at rest with a wide velocity prior (``init_velocity_sigma_mps``). Its
first look about a second later fixes its velocity: the filter takes the detection
nearest to where it stood. Alone that is the object it was born on. In a stream of
objects flying one path a kilometre apart at 2-3 km/s it is the object *arriving* where
the track stood, and the track keeps a velocity one or two spacings per second wrong (an
alias). Satellites whose frames come at nearly the same phase cannot tell the alias from
the truth (at their instants the alias sits on an object); a satellite framing a quarter
second later sees the alias a quarter spacing off every object, which is still inside the
boost gate, so the filter averages it in. Such a track slides along the stream, one
object a second, and every object it passes counts an ID switch.

So the look that fixes the velocity does not choose: a *family* of hypotheses. When a
young tentative boost track above ``alias_min_altitude_m`` (velocity still unknown: the
sigma of some axis above ``alias_branch_velocity_sigma_mps``, at least
``alias_branch_min_age_s`` old) takes a detection of a look in which it gated at least
``ALIAS_MIN_GATED`` detections (a crowd), the next ``alias_hypotheses`` gated detections
that no track took (by squared Mahalanobis distance) each start a sibling: the track's
predicted state updated with that detection, its history copied. A member whose velocity
is still unknown on some axis branches again at a later look, into the same family (at
most ``alias_family_max`` live members, counted before the look: members branching in
one look may together exceed it; enforcing it per look measured no better on three seeds
of the dense scene, DESIGN §6). The siblings are ordinary tentative tracks,
gated and assigned with the rest, but held from confirmation until the family is
decided. Each
member is scored by the looks after the branch: the NIS of every update, and
``alias_miss_cost`` for a look that updated a sibling but not it (it lost the detection
or had none). A sensor in phase with the birth's fits every alias equally; a sensor out
of phase fits only the true velocity, and its looks' NIS separate them (log-likelihood
ratio over the family's looks: track-oriented MHT over a track's first seconds, N-scan
pruning at ``alias_decide_s``). Then the member with the least cost stays and the others
are deleted; a member more than ``PRUNE_MARGIN`` behind the best goes at once.

Only births in a crowd branch (three gated detections or more in one look; the
built-in scenarios' new tracks never gate so many), so sparse scenes are untouched. The
families live here, keyed by the track keys, with no state in :class:`.track.Track`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import FusionConfig
from ..domain import NS_PER_S, SensorFrame, TrackStatus
from ..dynamics import POS, VEL, ellipsoid_height
from ..filters import update
from .bookkeeping import book_updates
from .rows import StateRows
from .track import LaunchFit, Mode, Plume, Reporting, RowMemory, Track

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .tracker import Tracker, _Assigned

ALIAS_MIN_GATED = 3  # detections a track must gate in one look to branch (a stream)
PRUNE_MARGIN = 40.0  # cost behind the family's best at which a member goes at once


@dataclass(slots=True)
class Family:
    """The hypotheses of one branched track: its members (the branched track first) and
    the cost (NIS and misses since the branch) of each."""

    branch_ns: int  # data time of the first branching look (the decision counts from it)
    members: list[Track]
    cost: list[float]
    scored: set[int] = field(default_factory=set)  # indices updated by the look scored
    branched: set[int] = field(default_factory=set)  # keys that branched at ...
    branched_ns: int = -1  # ... this look (not scored by it)


class AliasFamilies:
    """The open families of velocity hypotheses (module docstring)."""

    def __init__(self, cfg: FusionConfig, rows: StateRows) -> None:
        self.cfg = cfg
        self.rows = rows
        self._of: dict[int, Family] = {}  # track key -> its family
        # held tracks' velocity hypotheses (.regroup): by track key, and the data time of
        # each one's last branching (a cool-down)
        self.groups: dict[int, Any] = {}
        self.regrouped: dict[int, int] = {}

    # ------------------------------------------------------------------ branching
    def candidates(
        self,
        gating_track: np.ndarray,
        gating_det: np.ndarray,
        d2: np.ndarray,
        track_idx: np.ndarray,
        det_idx: np.ndarray,
        upd_rows: np.ndarray,
        claimed: np.ndarray,
        t_ns: int,
    ) -> list[tuple[int, list[int]]]:
        """Which updated tracks branch, and onto which detections: ``[(k, [candidate
        pair indices, best first])]``, ``k`` indexing the frame's K assigned pairs
        (``track_idx`` gated track, ``det_idx`` detection, ``upd_rows`` state row);
        ``gating_track``/``gating_det``/``d2`` the gating's candidate pairs, ``claimed``
        (M,) the detections some track took."""
        cfg = self.cfg
        n_max = cfg.alias_hypotheses
        if n_max <= 0 or track_idx.size == 0:
            return []
        counts = np.bincount(gating_track, minlength=int(track_idx.max()) + 1)
        crowd = np.flatnonzero(counts[track_idx] >= ALIAS_MIN_GATED)
        if crowd.size == 0:  # every frame of a sparse scene
            return []
        min_age = int(cfg.alias_branch_min_age_s * NS_PER_S)
        v_min2 = cfg.alias_branch_velocity_sigma_mps**2
        out = []
        h = ellipsoid_height(self.rows.x[upd_rows[crowd]][:, POS])
        for k in crowd[h >= cfg.alias_min_altitude_m].tolist():
            trk = self.rows.track_of(int(upd_rows[k]))
            if (
                trk.status != TrackStatus.TENTATIVE
                or trk.mode != Mode.BOOST
                or trk.shadow is not None
                or t_ns - trk.created_ns < min_age
            ):
                continue
            fam = self._of.get(trk.key)
            room = n_max if fam is None else cfg.alias_family_max - self._live(fam)
            if room <= 0:
                continue
            if float(np.max(np.diagonal(self.rows.P[trk.row][VEL, VEL]))) < v_min2:
                continue
            ti = track_idx[k]  # the pairs are track-major
            pairs = np.arange(
                np.searchsorted(gating_track, ti), np.searchsorted(gating_track, ti, "right")
            )
            dets = gating_det[pairs]
            free = pairs[(~claimed[dets]) & (dets != det_idx[k]) & np.isfinite(d2[pairs])]
            if free.size == 0:
                continue
            free = free[np.argsort(d2[free], kind="stable")][: min(n_max, room)]
            out.append((k, free.tolist()))
        return out

    def open(self, parent: Track, siblings: list[Track], t_ns: int) -> None:
        """``parent`` branched into ``siblings`` at ``t_ns``: a new family, or more
        members of the parent's (starting from the parent's cost)."""
        fam = self._of.get(parent.key)
        if fam is None:
            fam = Family(t_ns, [parent], [0.0])
            self._of[parent.key] = fam
        base = fam.cost[fam.members.index(parent)]
        for m in siblings:
            fam.members.append(m)
            fam.cost.append(base)
            self._of[m.key] = fam
        fam.branched = {parent.key, *(m.key for m in siblings)}
        fam.branched_ns = t_ns

    @staticmethod
    def _live(fam: Family) -> int:
        return sum(1 for m in fam.members if not m.deleted)

    # ------------------------------------------------------------------ scoring
    @property
    def active(self) -> bool:
        """Some family is open (else nothing here needs the frame's updates)."""
        return bool(self._of)

    def score(self, sensor_id: str, t_ns: int, updated: list[Track], nis: np.ndarray) -> None:
        """The look ``(sensor_id, t_ns)`` updated ``updated`` with ``nis`` (its first
        ``len(updated)`` entries): add each family member's cost (module docstring). The
        tracks that branched at this look are not scored by it."""
        if not self._of:
            return
        touched: dict[int, Family] = {}
        for trk, q in zip(updated, nis[: len(updated)].tolist(), strict=True):
            fam = self._of.get(trk.key)
            if fam is None or (fam.branched_ns == t_ns and trk.key in fam.branched):
                continue
            i = fam.members.index(trk)
            fam.cost[i] += q
            fam.scored.add(i)
            touched[id(fam)] = fam
        miss = self.cfg.alias_miss_cost
        for fam in touched.values():
            for i in range(len(fam.members)):
                if i not in fam.scored:
                    fam.cost[i] += miss
            fam.scored = set()

    def is_open(self, trk: Track) -> bool:
        """``trk`` is a hypothesis of an undecided family: not to be confirmed yet."""
        return trk.key in self._of

    # ------------------------------------------------------------------ decisions
    def decide(self, t_ns: int) -> list[Track]:
        """Close the families ``alias_decide_s`` old (keep the least cost) and drop
        members far behind; returns the tracks to delete."""
        if not self._of:
            return []
        decide_ns = int(self.cfg.alias_decide_s * NS_PER_S)
        out: list[Track] = []
        seen: set[int] = set()
        for fam in list(self._of.values()):
            if id(fam) in seen:
                continue
            seen.add(id(fam))
            live = [i for i, m in enumerate(fam.members) if not m.deleted]
            if len(live) <= 1:
                self._close(fam)
                continue
            best = min(live, key=lambda i: (fam.cost[i], i))
            if t_ns - fam.branch_ns >= decide_ns:
                out += [fam.members[i] for i in live if i != best]
                self._close(fam)
                continue
            for i in live:
                if fam.cost[i] > fam.cost[best] + PRUNE_MARGIN:
                    out.append(fam.members[i])
        return out

    def _close(self, fam: Family) -> None:
        for m in fam.members:
            if self._of.get(m.key) is fam:
                del self._of[m.key]


def clone_track(parent: Track, key: int, memory: RowMemory | None = None) -> Track:
    """A copy of ``parent``'s bookkeeping (histories copied, no shadow, not reported) as
    a new track ``key``, with its row's memories ``memory`` (a parent in the rows) or
    the copy ``parent``'s own (never written in place: shared)."""
    trk = Track(key=key, created_ns=parent.created_ns, last_update_ns=parent.last_update_ns)
    trk.mode = parent.mode
    trk.update_count = parent.update_count
    trk.sensors_seen = dict(parent.sensors_seen)
    trk.memory = parent.memory if parent.memory is not None else memory
    p = parent.plume
    shots = deque(p.snapshots, maxlen=p.snapshots.maxlen)
    trk.plume = Plume(p.bright_seen, p.bright_run, p.dim_run, shots)
    trk.plume.bright = getattr(p, "bright", None)  # never written in place: shared
    la = parent.launch
    trk.launch = LaunchFit(la.enabled, deque(la.samples, maxlen=la.samples.maxlen))
    trk.report = Reporting(since=set(parent.report.since))
    return trk


def branch_start(tracker: Tracker, pairs: _Assigned, claimed: np.ndarray, t_ns: int) -> list:
    """The tracks of this frame's assigned ``pairs`` that branch (``claimed`` (M,): the
    detections some track took), each with its predicted state, existence score and
    bookkeeping before the frame's update: ``[(parent, copy, x (9,), P (9, 9), score,
    [gating pair indices])]``."""
    rows, g = tracker.rows, pairs.gating
    cands = tracker._aliases.candidates(
        g.track, g.det, g.d2, pairs.track_idx, pairs.det_idx, pairs.rows, claimed, t_ns
    )
    out = []
    for k, pair_list in cands:
        r = int(pairs.rows[k])
        parent = rows.track_of(r)
        copy = clone_track(parent, -1, rows.memory(r))
        out.append((parent, copy, rows.x[r].copy(), rows.P[r].copy(), float(rows.score[r]),
                    pair_list))  # fmt: skip
    return out


def branch_out(
    tracker: Tracker, frame: SensorFrame, pairs: _Assigned, branch: list, claimed: np.ndarray
) -> None:
    """Start the siblings of ``branch`` (from :func:`branch_start`, after the frame's
    update): each a copy of its parent before the update, updated with one of the other
    detections its parent gated (marked ``claimed``), in one batched update."""
    rows, g = tracker.rows, pairs.gating
    sib_rows, sib_pairs, families = [], [], []
    for parent, copy, x0, P0, score, pair_list in branch:
        sibs = []
        for p in pair_list:
            trk = clone_track(copy, tracker._next_key)
            tracker._next_key += 1
            tracker._tracks.append(trk)
            rows.append(x0, P0, trk, False, frame.time_ns)
            rows.score[trk.row] = score
            sib_rows.append(trk.row)
            sib_pairs.append(p)
            sibs.append(trk)
        families.append((parent, sibs))
    pidx = np.array(sib_pairs, dtype=int)
    srows = np.array(sib_rows, dtype=int)
    tidx, didx = g.track[pidx], g.det[pidx]
    y, hpos, sigma = g.residual[pidx], g.hpos[tidx], frame.sigma[didx]
    rows.x[srows], rows.P[srows], nis = update(rows.x[srows], rows.P[srows], y, hpos, sigma)
    sib_pairs_t: Any = pairs._replace(pair_idx=pidx, rows=srows, track_idx=tidx, det_idx=didx)
    book_updates(tracker, frame, sib_pairs_t, nis)
    claimed[didx] = True
    for parent, sibs in families:
        tracker._aliases.open(parent, sibs, frame.time_ns)
