"""Truth-to-track assignment per evaluation time by GOSPA (p = 2, c = 5 km, alpha = 2).

At each evaluation time the objects in flight (truth span covers t; an object that
ended less than a report age before t may still be matched but is not counted missed)
are assigned to the selected tracks; a pair at distance >= c (m) is no assignment.
Distances are between the report position and the truth interpolated to the report's
own time (TEME, m). The localisation part (m^2) is the sum of d^p over assigned pairs.

Beside it, the identity switches counted the CLEAR-MOT way (Bernardin & Stiefelhagen
2008, "mismatches"): an object keeps the track it had at its previous assignment while
that track is selected and within ``clear_mot_m`` of it; the other objects and tracks
are assigned by GOSPA; a switch is an object's new track differing from its previous
one. A fresh assignment every second flips between tracks of objects closer together
than the tracks' errors (a boost stream's objects 100-300 m apart); this count does
not, so it shows the switches a track really made. Each such switch is also counted as
a *slide* when the object's previous track is still selected at that time (it moved
more than ``clear_mot_m`` off the object: drifted along a stream onto another) and
otherwise as *lost* (that track is no longer reported: deleted, coasting, re-initiated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..domain import NS_PER_S
from . import reports as col
from .measures import assign_gospa, gospa_distance, nearest_index
from .reports import ReportTable
from .settings import EvaluationSettings
from .truth import TruthObject

_PAIR_CHUNK = 2_000_000  # (selected report, object) distances computed per chunk
_GATE_MARGIN_M = 2000.0  # m: curvature of the path between truth samples, with room to spare


@dataclass(slots=True)
class Assignment:
    """The outcome per evaluation time (rows) and object (columns).

    ``present`` (n_eval, n_obj) object in flight; ``assigned`` (n_eval, n_obj) the
    report index assigned, -1 for none; ``sel_k``/``sel_r`` evaluation and report index
    of every selected report with ``sel_assigned`` whether it got an object; per time:
    ``n_selected``, ``n_missed``, ``n_false``, ``localisation_m2`` and ``gospa_m`` (m).
    """

    present: np.ndarray
    assigned: np.ndarray
    sel_k: np.ndarray
    sel_r: np.ndarray
    sel_assigned: np.ndarray
    n_selected: np.ndarray
    n_missed: np.ndarray
    n_false: np.ndarray
    localisation_m2: np.ndarray
    gospa_m: np.ndarray
    clear_mot_switches: np.ndarray  # (n_obj,) switches counted the CLEAR-MOT way
    clear_mot_slides: np.ndarray  # (n_obj,) of those, the previous track still selected


def _presence(
    truth: list[TruthObject], eval_s: np.ndarray, age_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """(present, candidate) per evaluation time and object."""
    first = np.array([tr.t_s[0] if tr.n_samples else np.inf for tr in truth])
    last = np.array([tr.t_s[-1] if tr.n_samples else -np.inf for tr in truth])
    present = (eval_s[:, None] >= first[None, :]) & (eval_s[:, None] <= last[None, :])
    # an object that ended (impact) less than a report age ago may still be matched by a
    # report of its last seconds, but is not counted missed
    cand = present | ((eval_s[:, None] > last[None, :]) & (eval_s[:, None] <= last + age_s))
    return present, cand


def _distances(
    table: ReportTable, rr: np.ndarray, truth: list[TruthObject], cand: np.ndarray, c: float
) -> np.ndarray:
    """Distance (m) of each report ``rr`` to each candidate object; inf when not a
    candidate or farther than a coarse gate allows."""
    dist = np.full((rr.size, len(truth)), np.inf)
    for o, tr in enumerate(truth):
        if tr.n_samples == 0:
            continue
        idx = np.flatnonzero(cand[:, o])
        if idx.size == 0:
            continue
        # coarse gate on the nearest truth sample: a pair farther than c plus the
        # distance the object can cover to the report time cannot be assigned
        tq = table.t_s[rr[idx]]
        near = nearest_index(tr.t_s, tq)
        dc = np.linalg.norm(table.floats[rr[idx], col.POS] - tr.position_m[near], axis=1)
        reach = tr.speed_max_mps * np.abs(tq - tr.t_s[near]) + _GATE_MARGIN_M
        idx = idx[dc <= c + reach]
        if idx.size == 0:
            continue
        tp, _ = tr.interpolate(table.t_s[rr[idx]])
        d = np.linalg.norm(table.floats[rr[idx], col.POS] - tp, axis=1)
        dist[idx, o] = np.where(np.isfinite(d), d, np.inf)
    return dist


def assign(
    table: ReportTable,
    truth: list[TruthObject],
    eval_s: np.ndarray,
    selected: tuple[np.ndarray, np.ndarray],
    settings: EvaluationSettings,
) -> Assignment:
    """GOSPA assignment at every evaluation time, in chunks of whole evaluation times."""
    sel_k, sel_r = selected
    n_obj, n_eval = len(truth), eval_s.size
    c, p = settings.gospa_c_m, settings.gospa_p
    present, cand = _presence(truth, eval_s, settings.max_age_ns / NS_PER_S)
    loc = np.zeros(n_eval)
    n_missed = present.sum(axis=1).astype(int)
    n_sel = np.bincount(sel_k, minlength=n_eval) if sel_k.size else np.zeros(n_eval, int)
    n_false = n_sel.copy()
    assigned = np.full((n_eval, n_obj), -1, dtype=np.int64)  # report index
    sel_assigned = np.zeros(sel_k.size, bool)
    kb = np.searchsorted(sel_k, np.arange(n_eval + 1))
    per_chunk = max(1, _PAIR_CHUNK // max(1, n_obj))
    held = _HeldPairs(n_obj, settings.clear_mot_m, c, p)
    s0 = 0
    while s0 < sel_k.size:
        s1 = min(sel_k.size, s0 + per_chunk)
        s1 = kb[min(n_eval, sel_k[s1 - 1] + 1)]  # end on a whole evaluation time
        dist = _distances(table, sel_r[s0:s1], truth, cand[sel_k[s0:s1]], c)
        for k in range(sel_k[s0], sel_k[s1 - 1] + 1):
            a, b = kb[k] - s0, kb[k + 1] - s0
            cols = np.flatnonzero(cand[k])
            if b <= a or cols.size == 0:
                continue
            dm = dist[a:b][:, cols]
            rows, cc = assign_gospa(dm, c, p)
            held.step(dm, table.ints[sel_r[s0 + a : s0 + b], col.TRACK], cols)
            loc[k] = float(np.sum(dm[rows, cc] ** p))
            n_missed[k] -= int(np.sum(present[k, cols[cc]]))
            n_false[k] -= rows.size
            assigned[k, cols[cc]] = sel_r[s0 + a + rows]
            sel_assigned[s0 + a + rows] = True
        s0 = s1
    gospa_m = gospa_distance(loc, n_missed, n_false, c, p)
    return Assignment(
        present,
        assigned,
        sel_k,
        sel_r,
        sel_assigned,
        n_sel,
        n_missed,
        n_false,
        loc,
        gospa_m,
        held.switches,
        held.slides,
    )


class _HeldPairs:
    """The CLEAR-MOT count (module docstring): per object its last track id (-1: none)
    and its switches, advanced one evaluation time at a time."""

    def __init__(self, n_obj: int, keep_m: float, c: float, p: float) -> None:
        self.track = np.full(n_obj, -1, dtype=np.int64)
        self.switches = np.zeros(n_obj, dtype=np.int64)
        self.slides = np.zeros(n_obj, dtype=np.int64)
        self.keep_m, self.c, self.p = keep_m, c, p

    def step(self, dm: np.ndarray, track_ids: np.ndarray, cols: np.ndarray) -> None:
        """One evaluation time: ``dm`` (reports, objects ``cols``) distances (m),
        ``track_ids`` (reports,) each report's track."""
        prev = self.track[cols]
        order = np.argsort(track_ids, kind="stable")
        pos = np.minimum(np.searchsorted(track_ids[order], prev), order.size - 1)
        row = order[pos]
        kept = (prev >= 0) & (track_ids[row] == prev)
        kept &= dm[row, np.arange(cols.size)] < self.keep_m
        free_r = np.ones(dm.shape[0], bool)
        free_r[row[kept]] = False
        free_c = np.flatnonzero(~kept)
        sub = dm[np.flatnonzero(free_r)][:, free_c]
        rows, cc = assign_gospa(sub, self.c, self.p)
        new_ids = track_ids[np.flatnonzero(free_r)[rows]]
        objs = cols[free_c[cc]]
        old = self.track[objs]
        switched = (old >= 0) & (old != new_ids)
        self.switches[objs] += switched
        self.slides[objs] += switched & np.isin(old, track_ids)
        self.track[objs] = new_ids
