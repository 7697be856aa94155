"""Hold the confirmation of young boost tracks in an unresolved crowd near the pad.

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
"""

from __future__ import annotations

import numpy as np

from ..association import Gating
from ..config import FusionConfig
from ..domain import NS_PER_S
from ..dynamics import POS, ellipsoid_height
from .rows import StateRows
from .track import Mode, Track

_RECENT_S = 2.0  # s: a crowd look this recent holds a young track
_PRUNE_EVERY_NS = NS_PER_S  # data time between two prunings of stale crowd looks


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
