"""Young boost tracks in an unresolved crowd: a hold on confirmation, surplus deleted.

In a pad stream early in boost (objects of one path launched 0.2-0.5 s apart, tens to a
few hundred metres apart, 1-6 sigma in each image) a track's gate holds its neighbours'
detections, and the global nearest neighbour of :mod:`..association` hands it one of
them in a large share of looks (DESIGN §6): tracks are born, slide along the stream,
duplicate one another and die, and each one reported makes an identity switch for the
objects it passes. Which object a young track follows is ambiguous there, so it is not
reported (confirmed) until it is ``crowd_hold_s`` old, the way a multiple-hypothesis
tracker reports a track once its hypothesis has survived: a track that cannot confirm
between then and ``tentative_max_age_s`` is deleted unreported, as any other.

A look puts a track in a crowd when the track is BOOST, below ``alias_min_altitude_m``
(where the velocity hypotheses of :mod:`.aliases` do not act) and its gate holds at least
``crowd_min_gated`` detections, one of them inside another track's gate too. A track is
held while it is younger than ``crowd_hold_s`` and its last crowd look is at most
``_RECENT_S`` old. Sparse scenes never gate so many detections, so they are untouched.

Surplus tracks (:class:`Surplus`, ``crowd_surplus_looks``, on by default): a tentative
BOOST track that takes no detection while other tracks take every one inside its gate,
that many looks in a row, has no object of its own and is deleted. Most identity switches
of a pad stream are confirmed tracks sliding onto a neighbour's object, half of them onto
young tracks (DESIGN §6): a surplus track deleted young is one fewer that can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..association import Gating
from ..config import FusionConfig
from ..domain import NS_PER_S, TrackStatus
from ..dynamics import POS, ellipsoid_height
from .rows import StateRows
from .track import Mode, Track

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .lifecycle import Lifecycle

_RECENT_S = 2.0  # s: a crowd look this recent holds a young track
_PRUNE_EVERY_NS = NS_PER_S  # data time between two prunings of stale crowd looks
_NONE = np.zeros(0, int)  # no track (read only: a sparse look allocates nothing)
_NONE.flags.writeable = False
_SURPLUS_PRUNE_AT = 256  # surplus counts kept before those of deleted tracks are dropped


def crowded(gating: Gating, gates: np.ndarray, min_gated: int) -> np.ndarray:
    """(N,) bool per gated track: its gate (chi-square ``gates`` (N,)) holds at least
    ``min_gated`` detections of the frame, one of them inside another track's gate."""
    n_trk = gating.u.shape[0]
    inside = gating.d2 <= gates[gating.track]
    ti, di = gating.track[inside], gating.det[inside]
    if ti.size < min_gated:
        return np.zeros(n_trk, bool)
    per_trk = np.bincount(ti, minlength=n_trk)
    per_det = np.bincount(di)
    shared = np.bincount(ti, weights=per_det[di] >= 2, minlength=n_trk) > 0
    return (per_trk >= min_gated) & shared


class CrowdHold:
    """The last crowd look of each track (by key) and the hold it puts on confirmation."""

    def __init__(self, cfg: FusionConfig) -> None:
        self.min_gated = cfg.crowd_min_gated
        self.hold_ns = int(cfg.crowd_hold_s * NS_PER_S)
        self.max_altitude_m = cfg.alias_min_altitude_m
        self.last: dict[int, int] = {}  # track key -> data time (ns) of its last crowd look
        self._pruned_ns = -1

    def look(
        self,
        rows: StateRows,
        gating: Gating,
        gates: np.ndarray,
        main_rows: np.ndarray,
        keys: np.ndarray,
        track_idx: np.ndarray,
        t_ns: int,
    ) -> None:
        """Note the crowd looks of a frame at ``t_ns``: ``gating`` of the tracks in rows
        ``main_rows`` (N,), keys ``keys`` (N,), chi-square gates ``gates`` (N,), of which
        those at ``track_idx`` (K,) took a detection."""
        if t_ns - self._pruned_ns >= _PRUNE_EVERY_NS:
            stale = t_ns - int(_RECENT_S * NS_PER_S)
            self.last = {k: v for k, v in self.last.items() if v >= stale}
            self._pruned_ns = t_ns
        idx = track_idx[crowded(gating, gates, self.min_gated)[track_idx]]
        if idx.size == 0:
            return
        mode = rows.owner_columns()[1][main_rows[idx]]
        idx = idx[mode == Mode.BOOST]
        if idx.size == 0:
            return
        low = ellipsoid_height(rows.x[main_rows[idx]][:, POS]) < self.max_altitude_m
        for key in keys[idx[low]].tolist():
            self.last[key] = t_ns

    def holds(self, trk: Track, t_ns: int) -> bool:
        """``trk`` may not be confirmed at ``t_ns``: younger than the hold, in a crowd
        lately."""
        last = self.last.get(trk.key)
        if last is None or t_ns - last > _RECENT_S * NS_PER_S:
            return False
        return t_ns - trk.created_ns < self.hold_ns


def crowded_out(
    gating: Gating, gates: np.ndarray, matched: np.ndarray, claimed: np.ndarray
) -> np.ndarray:
    """Indices (ascending) of the gated tracks that took no detection of the frame while
    another track took one inside their gate: ``gating`` of N tracks, ``gates`` (N,)
    their chi-square gates, ``matched`` the chosen pairs' indices, ``claimed`` (M,) the
    detections taken."""
    if gating.track.size == matched.size:  # every candidate pair chosen: nobody left out
        return _NONE
    left = np.ones(gating.u.shape[0], bool)
    left[gating.track[matched]] = False
    inside = gating.d2 <= gates[gating.track]
    return np.unique(gating.track[inside & claimed[gating.det] & left[gating.track]])


class Surplus:
    """Tentative BOOST tracks crowded out look after look are surplus: deleted.

    With every object resolved in each image (the simulator's default), a look whose
    detections inside a track's gate all went to other tracks, the track taking none,
    says the track has no object of its own there: it duplicates a neighbour's track or
    is a ghost of crossing rays. A tentative BOOST track crowded out in ``looks``
    consecutive looks (no update between them) is deleted before it can be confirmed and
    slide onto a neighbour's object (DESIGN §6). Confirmed tracks are left alone: one
    crowded out has held an object and often takes it back.
    """

    def __init__(self, looks: int) -> None:
        self.looks = looks
        #: track key -> (crowded-out looks in a row, its last update time (ns) then, track)
        self.count: dict[int, tuple[int, int, Track]] = {}
        self._prune_at = _SURPLUS_PRUNE_AT

    def look(
        self,
        lifecycle: Lifecycle,
        gating: Gating,
        gates: np.ndarray,
        matched: np.ndarray,
        claimed: np.ndarray,
        main_rows: np.ndarray,
    ) -> None:
        """Delete (``lifecycle.mark_deleted``) the tentative BOOST tracks a look has crowded
        out ``looks`` times in a row: ``gating`` of the tracks in rows ``main_rows`` (N,),
        ``gates`` (N,) their chi-square gates, ``matched`` the chosen pairs, ``claimed``
        (M,) the detections taken (:func:`crowded_out`)."""
        crowded = crowded_out(gating, gates, matched, claimed)
        if crowded.size == 0:
            return
        rows = lifecycle.rows
        r = main_rows[crowded]
        r = r[rows.owner_columns()[1][r] == Mode.BOOST]
        for row in r.tolist():
            trk = rows.track_of(row)
            if trk.status != TrackStatus.TENTATIVE or trk.deleted:
                continue
            n, upd_ns, _ = self.count.get(trk.key, (0, trk.last_update_ns, trk))
            n = n + 1 if upd_ns == trk.last_update_ns else 1
            if n >= self.looks:
                lifecycle.mark_deleted(trk)
                self.count.pop(trk.key, None)
            else:
                self.count[trk.key] = (n, trk.last_update_ns, trk)
        if len(self.count) > self._prune_at:  # drop the counts of tracks gone since
            self.count = {k: v for k, v in self.count.items() if not v[2].deleted}
            self._prune_at = max(_SURPLUS_PRUNE_AT, 2 * len(self.count))
