"""Negative evidence: a track that satellites look at and do not see is not there.

Every frame is a look of one satellite at everything in its field of regard. A real
object in view is detected with probability ``pd`` (DESIGN §2: 0.85-0.98); a ghost (the
crossing of two satellites' rays from two different objects of one cloud, or a track
that has lost its object and lives on one satellite's detections of others) is "seen"
only by the satellites whose lines of sight happen to pass through it. Each track keeps a
sequential log-likelihood ratio (SPRT) of "real, detected with ``existence_pd``" against
"ghost, seen with ``ghost_pd``": a look that updated it adds ``ln(pd / pd0)``, a look that
did not adds ``ln((1 - pd) / (1 - pd0))``; the score is capped above (a long-lived track
that becomes a ghost is found as fast as a new one) and a track whose score falls below
``-existence_delete_llr`` is deleted (Earth-fixed sources are left to their own rules).

What counts as a look is learned from the data, never assumed: the fusion core does not
know the sensors' range or limb limits (they differ by scenario), so a look counts only
inside the range (times ``look_range_fraction``) and above the limb clearance (plus
``look_grazing_margin_m``) that all but a small tail (``_TAIL``) of the detections of
well-held tracks (confirmed, three satellites in the last seconds) stayed within. A
quantile, not the extreme: a track that has drifted off its object (and is therefore
wrong about its range and clearance) must not widen the view. Until ``_MIN_SAMPLES``
such detections there is no look, so a track is never judged by a view the data has not
shown. Looking down at a target against the Earth is always in view (DESIGN §2: the
see-to-ground band).
"""

from __future__ import annotations

import math

import numpy as np

from .. import kernels
from ..config import FusionConfig
from ..constants import R_EARTH_EQ, R_EARTH_POLAR
from ..dynamics import ellipsoid_height, norm3

_TAIL = 0.005  # share of detections of well-held tracks allowed beyond a learned limit
_MIN_SAMPLES = 500  # detections before any look counts
_REFRESH_SAMPLES = 500  # limits recomputed after this many new detections
_RANGE_BIN_M = 10e3  # m; histogram of ranges, 0 to 20,000 km
_CLEAR_BIN_M = 1e3  # m; histogram of limb clearances, -1,000 to +3,000 km
_CLEAR_LOW_M = -1_000e3
_N_RANGE_BINS = 2_000
_N_CLEAR_BINS = 4_000
_FEW_ROWS = 8  # up to this many positions, the view is decided in Python floats first
_FEW_SCORED = 8  # up to this many rows in view, a look's scores are Python floats
_FEW_LEARNED = 32  # ... and the view statistics learned (numpy's bincounts cost ~50 us)
_EDGE_U = 1e-9  # |u| or |u - 1| closer than this: too near the limb test's edge
_EDGE_RANGE = 1e-9  # relative distance to the range limit below which numpy decides
_EDGE_CLEARANCE_M = 1e-3  # distance to a clearance limit below which numpy decides
_EDGE_BIN = 1e-6  # distance to a histogram bin edge (in bins: 1 cm, 1 mm) below which too
_AXES = (R_EARTH_EQ, R_EARTH_POLAR)  # the compiled view test's ellipsoid (kernels.in_view)
_MARGINS = (_EDGE_U, _EDGE_RANGE, _EDGE_CLEARANCE_M)  # ... and its margins


class Existence:
    """Learned view limits and the per-look score arithmetic (scores live in the rows)."""

    def __init__(self, config: FusionConfig) -> None:
        self.config = config
        pd, pd0 = config.existence_pd, config.ghost_pd
        self.hit_llr = math.log(pd / pd0)  # > 0
        self.miss_llr = math.log((1.0 - pd) / (1.0 - pd0))  # < 0
        self.max_range_m = 0.0  # range (m) within which a look counts (0: none yet)
        self.min_clearance_m = math.inf  # limb clearance (m) above which one counts
        self._range_hist = np.zeros(_N_RANGE_BINS, np.int64)
        self._clear_hist = np.zeros(_N_CLEAR_BINS, np.int64)
        self._new = 0

    def learn(self, sensor_position: np.ndarray, positions: np.ndarray) -> None:
        """Add detections of well-held tracks at ``positions`` (k, 3) (m, ECI) seen from
        ``sensor_position`` (3,) to the view statistics."""
        if positions.shape[0] == 0:
            return
        if positions.shape[0] <= _FEW_LEARNED and self._learn_floats(sensor_position, positions):
            return
        rng, clearance, limb = _geometry(sensor_position, positions)
        rb = np.clip((rng / _RANGE_BIN_M).astype(np.int64), 0, _N_RANGE_BINS - 1)
        self._range_hist += np.bincount(rb, minlength=_N_RANGE_BINS)
        if np.any(limb):
            cb = ((clearance[limb] - _CLEAR_LOW_M) / _CLEAR_BIN_M).astype(np.int64)
            self._clear_hist += np.bincount(
                np.clip(cb, 0, _N_CLEAR_BINS - 1), minlength=_N_CLEAR_BINS
            )
        self._counted(positions.shape[0])

    def _counted(self, n: int) -> None:
        """``n`` more detections are in the histograms: refresh the limits when due."""
        self._new += n
        if self._new >= _REFRESH_SAMPLES:
            self._new = 0
            self._refresh()

    def _learn_floats(self, sensor_position: np.ndarray, positions: np.ndarray) -> bool:
        """:meth:`learn` of a few positions in Python floats; False (nothing learned) when
        a value lies so near a bin edge or the limb test's edge that rounding could move
        it (then numpy's arithmetic decides, so the bins are always numpy's)."""
        geos = _points_geometry(sensor_position, positions)
        if geos is None:
            return False
        bins = []
        for rng, clearance, limb in geos:
            q = rng / _RANGE_BIN_M
            c = (clearance - _CLEAR_LOW_M) / _CLEAR_BIN_M if limb else None
            if abs(q - round(q)) < _EDGE_BIN or (c is not None and abs(c - round(c)) < _EDGE_BIN):
                return False
            bins.append((q, c))
        for q, c in bins:  # numpy's astype(int64) truncates toward zero, as int() does
            self._range_hist[min(max(int(q), 0), _N_RANGE_BINS - 1)] += 1
            if c is not None:
                self._clear_hist[min(max(int(c), 0), _N_CLEAR_BINS - 1)] += 1
        self._counted(len(bins))
        return True

    def _refresh(self) -> None:
        """Limits from the histograms: the range below which, and the clearance above
        which, all but ``_TAIL`` of the detections lie (bin edges on the safe side)."""
        n = int(self._range_hist.sum())
        if n < _MIN_SAMPLES:
            return
        below = np.cumsum(self._range_hist)
        self.max_range_m = float(np.searchsorted(below, (1.0 - _TAIL) * n)) * _RANGE_BIN_M
        n_limb = int(self._clear_hist.sum())
        if n_limb >= _MIN_SAMPLES:
            up_to = np.cumsum(self._clear_hist)
            k = int(np.searchsorted(up_to, _TAIL * n_limb)) + 1
            self.min_clearance_m = _CLEAR_LOW_M + k * _CLEAR_BIN_M

    def in_view(self, sensor_position: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Which of ``positions`` (n, 3) (m, ECI) the satellite at ``sensor_position`` is
        known (from the learned limits) to see: bool (n,)."""
        cfg = self.config
        if self.max_range_m <= 0.0 or positions.shape[0] == 0:
            return np.zeros(positions.shape[0], bool)
        limit = cfg.look_range_fraction * self.max_range_m
        floor = self.min_clearance_m + cfg.look_grazing_margin_m
        if positions.shape[0] <= _FEW_ROWS:
            few = _in_view_floats(sensor_position, positions, limit, floor)
            if few is not None:
                return few
        else:  # one compiled pass in the same floats; numpy's near a limit
            got = kernels.in_view(sensor_position, positions, limit, floor, _AXES, _MARGINS)
            if got is not None:
                return got
        rng, clearance, limb = _geometry(sensor_position, positions)
        ok = rng <= limit
        return ok & np.where(limb, clearance >= floor, clearance >= 0.0)

    def score(self, scores: np.ndarray, hit: np.ndarray) -> np.ndarray:
        """New scores after one look each: ``scores`` (k,), ``hit`` (k,) bool."""
        step = np.where(hit, self.hit_llr, self.miss_llr)
        return np.minimum(scores + step, self.config.existence_max_score)

    def look_scores(self, scores: np.ndarray, idx: np.ndarray, touched: list[int]) -> list[int]:
        """:meth:`score` in place of the rows ``idx`` of ``scores`` a look had in view
        (``touched``: the rows it updated or started); returns the rows whose score fell
        below ``-existence_delete_llr``. A few rows in Python floats: one IEEE sum and
        minimum each, numpy's floats without its per-call costs."""
        cap, floor = self.config.existence_max_score, -self.config.existence_delete_llr
        if idx.size > _FEW_SCORED:
            seen = np.zeros(scores.shape[0], bool)
            seen[touched] = True
            scores[idx] = self.score(scores[idx], seen[idx])
            return idx[scores[idx] < floor].tolist()
        hit, miss, seen_rows, low = self.hit_llr, self.miss_llr, set(touched), []
        for r in idx.tolist():
            s = min(float(scores[r]) + (hit if r in seen_rows else miss), cap)
            scores[r] = s
            if s < floor:
                low.append(r)
        return low


def _geometry(
    sensor_position: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position: range (m), clearance (m: height above the ellipsoid of the segment's
    point nearest the Earth's centre, or of the target when that point is the target) and
    whether that point lies strictly between satellite and target (a limb view)."""
    d = positions - sensor_position
    rng = norm3(d)
    u = -(d @ sensor_position) / np.maximum(rng * rng, 1.0)
    limb = (u > 0.0) & (u < 1.0)
    nearest = np.where(limb[:, None], sensor_position + u[:, None] * d, positions)
    return rng, ellipsoid_height(nearest), limb


def _point_geometry(
    sensor_position: np.ndarray, px: float, py: float, pz: float
) -> tuple[float, float, bool] | None:
    """:func:`_geometry` of one position (m, ECI) in Python floats: (range m, clearance
    m, limb view), or None when it is not finite or the limb test's ``u`` is within
    ``_EDGE_U`` of 0 or 1 (numpy's rounding of ``u``, ~1e-16, could decide the view)."""
    sx, sy, sz = sensor_position.tolist()
    dx, dy, dz = px - sx, py - sy, pz - sz
    rng = math.sqrt(dx * dx + dy * dy + dz * dz)
    u = -(dx * sx + dy * sy + dz * sz) / max(rng * rng, 1.0)
    if not (math.isfinite(rng) and math.isfinite(u)) or abs(u) < _EDGE_U or abs(u - 1.0) < _EDGE_U:
        return None
    limb = 0.0 < u < 1.0
    nx, ny, nz = (sx + u * dx, sy + u * dy, sz + u * dz) if limb else (px, py, pz)
    rn = math.sqrt(nx * nx + ny * ny + nz * nz)
    if rn == 0.0:
        return None
    a, b = R_EARTH_EQ, R_EARTH_POLAR
    s2 = (nz / rn) * (nz / rn)
    return rng, rn - a * b / math.sqrt(b * b * (1.0 - s2) + a * a * s2), limb


def _points_geometry(
    sensor_position: np.ndarray, positions: np.ndarray
) -> list[tuple[float, float, bool]] | None:
    """:func:`_point_geometry` of each of ``positions`` (n, 3), None if any is None."""
    out = []
    for px, py, pz in positions.tolist():
        geo = _point_geometry(sensor_position, px, py, pz)
        if geo is None:
            return None
        out.append(geo)
    return out


def _in_view_floats(
    sensor_position: np.ndarray, positions: np.ndarray, limit: float, floor: float
) -> np.ndarray | None:
    """:meth:`Existence.in_view` of a few positions in Python floats (a sparse frame's
    numpy calls cost more than the arithmetic), or None when a value lies so near a
    limit (range ``limit`` m, limb clearance ``floor`` m, ground 0 m, the limb test's
    ``u`` in (0, 1)) that rounding, which differs from numpy's by ~1e-9 m here, could
    decide it: then the numpy path decides, so the answer is always numpy's."""
    geos = _points_geometry(sensor_position, positions)
    if geos is None:
        return None
    out = []
    for rng, clearance, limb in geos:
        edge = floor if limb else 0.0
        if abs(rng - limit) <= _EDGE_RANGE * limit or abs(clearance - edge) < _EDGE_CLEARANCE_M:
            return None
        out.append(rng <= limit and clearance >= edge)
    return np.array(out, dtype=bool)
