"""Track initiation from lines of sight of two satellites (least-squares intersection).

A detection no track claimed waits in an :class:`InitiationBuffer` for ``init_window_s``.
A new unclaimed detection from another sensor pairs with a waiting one when the two
rays nearly intersect: both closest points lie in front of their sensors and within
range, the rays cross at a useful angle, the miss distance is within
``init_miss_sigmas`` geometric sigmas plus what the target can move between the two
looks, the point is at a plausible height and neither ray passes through the Earth to
reach it. The new track's position is the weighted least-squares intersection of the
two rays (information ``(I - u u^T) / (sigma * range)^2`` per ray; the older ray's
noise inflated by the possible motion between the looks), its covariance the inverse
of that information. Ghost pairs (clutter, or rays of two different objects) are
rejected later by the track's own confirmation test (a third sensor, consistency over
frames, not Earth-fixed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import kernel_initiation as _kn
from . import kernels
from .config import FusionConfig
from .dynamics import ellipsoid_height, norm3

_EYE3 = np.eye(3)
_EARTH_BLOCK_DEPTH_M = -50_000.0  # m; a ray dipping this far below the surface is blocked
_AT_END_M = 1.0  # m; the dip at the segment's own end (a point on the ground) is allowed
_GREEDY_ROUNDS = 8  # vectorised rounds of the greedy matching before a Python walk


def closest_points(
    s1: np.ndarray, u1: np.ndarray, s2: np.ndarray, u2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Closest approach of rays ``s1 + t1 u1`` and ``s2 + t2 u2`` (broadcast over ``...``).

    Returns ``t1``, ``t2`` (m along each ray), the miss distance (m) and ``sin`` of the
    crossing angle. Parallel rays get ``t = nan``.
    """
    w = s1 - s2
    b = np.einsum("...i,...i->...", u1, u2)
    d = np.einsum("...i,...i->...", u1, w)
    e = np.einsum("...i,...i->...", u2, w)
    den = 1.0 - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (b * e - d) / den
        t2 = (e - b * d) / den
    p1 = s1 + t1[..., None] * u1
    p2 = s2 + t2[..., None] * u2
    miss = norm3(p1 - p2)  # (np.linalg.norm's floats, tests/test_fusion_same_floats.py)
    return t1, t2, miss, np.sqrt(den.clip(0.0, None))


def triangulate(
    origins: np.ndarray, directions: np.ndarray, variances: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares intersection of K rays.

    ``origins`` (K, 3) m, unit ``directions`` (K, 3), ``variances`` (K,) m^2: the
    variance of the miss distance across each ray at the solution (``(sigma rho)^2``).
    Minimises ``sum |(I - u u^T)(p - s)|^2 / var`` and returns the point (3,) and its
    covariance (3, 3) = the inverse of ``sum (I - u u^T) / var``.
    """
    proj = _EYE3 - directions[:, :, None] * directions[:, None, :]
    info = proj / np.asarray(variances, float)[:, None, None]
    A = info.sum(axis=0)
    b = np.einsum("kij,kj->i", info, origins)
    cov = np.linalg.inv(A)
    return cov @ b, 0.5 * (cov + cov.T)


def intersections(origins: np.ndarray, directions: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """:func:`triangulate`'s point for K pairs of rays at once: ``origins`` and unit
    ``directions`` (K, 2, 3) (m, one ECI frame), ``variances`` (K, 2) m^2; returns (K, 3)
    m. The same least squares solved as one batch (equal to :func:`triangulate` to
    rounding, not bit for bit): for screening pairs before the exact solution."""
    proj = _EYE3 - directions[..., :, None] * directions[..., None, :]
    info = proj / np.asarray(variances, float)[..., None, None]
    A = info.sum(axis=1)
    b = np.einsum("kmij,kmj->ki", info, origins)
    return np.linalg.solve(A, b[..., None])[..., 0]


def earth_blocks(origin: np.ndarray, direction: np.ndarray, t: np.ndarray) -> np.ndarray:
    """True where the segment from ``origin`` to ``origin + t direction`` dips more than
    50 km below the WGS-84 surface before its end (a sensor cannot see through the Earth;
    a point on the ground itself is allowed)."""
    tc = np.clip(-np.einsum("...i,...i->...", origin, direction), 0.0, None)
    tc = np.minimum(tc, t)
    p = origin + tc[..., None] * direction
    return (ellipsoid_height(p) < _EARTH_BLOCK_DEPTH_M) & (tc < t - _AT_END_M)


def skew(v: np.ndarray) -> np.ndarray:
    """The matrix ``K`` with ``K @ w = v x w`` (3, 3)."""
    x, y, z = v.tolist()  # (Python floats of the float64 components, one call)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def screen_pairs(
    origin: np.ndarray, los: np.ndarray, lines: np.ndarray, far: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(m, b)`` (row-major order) of new rays ``origin + t los[m]`` and
    waiting lines ``b`` that may pass the exact miss test of
    :meth:`InitiationBuffer.pair`; a superset of them.

    ``lines`` (B, 6) are the waiting rays in Pluecker coordinates ``(u, s x u)`` (unit
    ``u``, origin ``s``; m, one ECI frame), ``far`` (B,) m a bound on each one's
    tolerance ``T`` (the largest at ranges below ``max_range``, plus slack). A pair
    passes only if the rays come within ``T`` at ``0 < t < max_range``. With ``c = (s -
    origin) x u`` (``|c| = D``, the waiting line's distance from ``origin``), the new
    ray's point then is at least ``D - T`` from ``origin`` and within ``T`` of the plane
    of ``origin`` and the line, so ``|los . c| <= D T / (D - T) <= 2 T`` where ``D >=
    2 T``, and ``|los . c| <= D < 2 T`` elsewhere. ``los . c = (origin x los) . u + los .
    (s x u)``: one (M, 6) x (6, B) product per frame, no per-pair geometry.
    """
    new = np.empty((los.shape[0], 6))
    new[:, :3] = los @ skew(origin).T
    new[:, 3:] = los
    return np.nonzero(np.abs(new @ lines.T) <= 2.0 * far)


def greedy_pairs(mi: np.ndarray, bi: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Pairs ``k`` taken by a greedy one-to-one matching that walks ``order`` and takes
    a pair ``(mi[k], bi[k])`` (indices of a new and a waiting detection) when neither
    index was taken before; returned in walk order.

    Vectorised in rounds: a remaining pair that comes first among the remaining pairs of
    both its indices is taken (no earlier pair can block it), and the remaining pairs
    sharing an index with a taken one are dropped. After a few rounds the rest (if any)
    is walked in Python. The result is exactly the sequential walk's.
    """
    rest = np.asarray(order)
    taken: list[np.ndarray] = []
    for _ in range(_GREEDY_ROUNDS):
        if rest.size == 0:
            break
        m, b = mi[rest], bi[rest]
        first = np.zeros(rest.size, bool)
        first[np.unique(m, return_index=True)[1]] = True
        first_b = np.zeros(rest.size, bool)
        first_b[np.unique(b, return_index=True)[1]] = True
        first &= first_b
        taken.append(rest[first])
        rest = rest[~(np.isin(m, m[first]) | np.isin(b, b[first]))]
    used_m = set(mi[np.concatenate(taken)].tolist()) if taken else set()
    used_b = set(bi[np.concatenate(taken)].tolist()) if taken else set()
    tail = []
    for k in rest.tolist():
        if int(mi[k]) in used_m or int(bi[k]) in used_b:
            continue
        used_m.add(int(mi[k]))
        used_b.add(int(bi[k]))
        tail.append(k)
    taken.append(np.array(tail, dtype=rest.dtype))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    out = np.concatenate(taken)
    return out[np.argsort(rank[out], kind="stable")]


@dataclass(slots=True)
class Candidate:
    """A two-ray intersection proposed as a new track (position at the newer look)."""

    position: np.ndarray  # (3,) m ECI
    position_cov: np.ndarray  # (3, 3) m^2
    sensors: tuple[str, str]  # (newer, older)
    score: float  # miss distance in units of its tolerance (smaller is better)


# Columns of the buffer's packed rows (one row per waiting detection).
_T, _CODE, _SIGMA, _REACH = 0, 1, 2, 3  # s, sensor code, rad, m (miss_sigmas * range * sigma)
_ORIGIN, _LOS, _MOMENT = slice(4, 7), slice(7, 10), slice(10, 13)  # m, unit, m
_LINE = slice(7, 13)  # Pluecker coordinates (los, origin x los)
_N_COLS = 13
_FAR_SLACK = 1.0 + 1e-6  # relative and ...
_FAR_SLACK_M = 1.0  # ... absolute slack on the screen's tolerance (rounding)


@functools.cache
@functools.lru_cache(maxsize=8)  # one array per configuration, not one per frame
def _meet_limits(
    miss_sigmas: float, max_range: float, sin_min: float, min_alt: float, max_alt: float
) -> np.ndarray:
    """The exact tests' limits of the compiled meeting (:mod:`.kernel_initiation`: its
    ``limits`` entries), one array per configuration (do not modify)."""
    out = np.empty(7)
    out[_kn.MISS_SIGMAS], out[_kn.MAX_RANGE], out[_kn.SIN_MIN] = miss_sigmas, max_range, sin_min
    out[_kn.MIN_ALT], out[_kn.MAX_ALT] = min_alt, max_alt
    out[_kn.BLOCK_DEPTH], out[_kn.AT_END] = _EARTH_BLOCK_DEPTH_M, _AT_END_M
    return out


class InitiationBuffer:
    """Unclaimed detections of the last ``init_window_s`` and the pairing of new ones.

    Bounded: detections older than the window are dropped, and at most ``capacity``
    are kept (the oldest go first). Stored as packed rows (time, sensor code, origin,
    LOS, ``origin x LOS``, sigma, the screen's reach) in time order, live from ``_lo``
    to ``_hi``: expiry moves ``_lo``, no copy.
    """

    def __init__(self, config: FusionConfig, capacity: int = 4096) -> None:
        self.config = config
        self.capacity = capacity
        self._sin_min = float(np.sin(np.radians(config.init_min_angle_deg)))
        self._reach_per_sigma = config.init_miss_sigmas * config.max_range_m
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self._rows = np.zeros((256, _N_COLS))
        self._lo = self._hi = 0

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def _live(self) -> np.ndarray:
        return self._rows[self._lo : self._hi]

    @property
    def _t(self) -> np.ndarray:
        return self._live[:, _T]

    @property
    def _code(self) -> np.ndarray:
        return self._live[:, _CODE].astype(np.int64)

    @property
    def _origin(self) -> np.ndarray:
        return self._live[:, _ORIGIN]

    @property
    def _los(self) -> np.ndarray:
        return self._live[:, _LOS]

    @property
    def _sigma(self) -> np.ndarray:
        return self._live[:, _SIGMA]

    def _keep(self, mask: np.ndarray) -> None:
        """Keep the live rows where ``mask`` is true (compacted to the front)."""
        kept = self._live[mask]
        self._rows[: kept.shape[0]] = kept
        self._lo, self._hi = 0, kept.shape[0]

    def prune(self, t_s: float) -> None:
        """Drop detections older than ``t_s - init_window_s`` (the rows are in time order:
        the expired ones are a prefix, dropped by moving ``_lo``)."""
        cut = t_s - self.config.init_window_s
        if self._hi > self._lo and self._rows[self._lo, _T] < cut:
            self._lo += int(self._t.searchsorted(cut))

    def add(
        self, t_s: float, sensor_id: str, origin: np.ndarray, los: np.ndarray, sigma: np.ndarray
    ) -> None:
        """Queue unclaimed detections ``los`` (M, 3) of one frame."""
        m = los.shape[0]
        if m == 0:
            return
        code = self._codes.setdefault(sensor_id, len(self._codes))
        if code == len(self._names):
            self._names.append(sensor_id)
        if self._hi + m > self._rows.shape[0]:
            live = self._live.copy()
            size = max(self._rows.shape[0], 2 * (live.shape[0] + m))
            self._rows = np.zeros((size, _N_COLS))
            self._rows[: live.shape[0]] = live
            self._lo, self._hi = 0, live.shape[0]
        if kernels.add_rows(self._rows, self._hi, t_s, code, origin, los, sigma,
                            self._reach_per_sigma):  # fmt: skip
            self._hi += m
            self._lo = max(self._lo, self._hi - self.capacity)
            return
        new = self._rows[self._hi : self._hi + m]
        new[:, _T] = t_s
        new[:, _CODE] = code
        new[:, _ORIGIN] = origin
        new[:, _LOS] = los
        new[:, _MOMENT] = los @ skew(origin).T
        new[:, _SIGMA] = sigma
        new[:, _REACH] = self._reach_per_sigma * np.abs(sigma)
        self._hi += m
        self._lo = max(self._lo, self._hi - self.capacity)

    def _meeting(
        self, t_s: float, sensor_id: str, origin: np.ndarray, los: np.ndarray, sigma: np.ndarray
    ) -> tuple[np.ndarray, ...] | None:
        """The (new, waiting) ray index pairs ``(mi, bi)`` that pass the exact miss test
        (rays meet within ``init_miss_sigmas`` of their angular noise plus the motion
        ``init_max_speed_mps`` allows between the looks; forward, within range, crossing
        at ``init_min_angle_deg`` or more, at a plausible height, neither through the
        Earth), with their ranges ``t1``/``t2`` (m) and scores miss / tolerance; None
        when no pair passes."""
        cfg = self.config
        live = self._live
        sigma_max = float(np.abs(sigma).max())  # (np.max's floats without its wrapper)
        if sigma_max != sigma_max:  # a sigma not a number passes no pair: the others
            sigma_max = float(np.nanmax(np.abs(sigma))) if np.any(sigma == sigma) else 0.0
        speed = cfg.init_max_speed_mps
        # hypot(sigma, sigma_b) <= sigma + sigma_b: the tolerance bound of screen_pairs
        extra, own = self._reach_per_sigma * sigma_max, self._codes.get(sensor_id, -1)
        screen = (float(own), speed, extra, _FAR_SLACK, _FAR_SLACK_M)
        limits = _meet_limits(
            cfg.init_miss_sigmas, cfg.max_range_m, self._sin_min, cfg.init_min_altitude_m,
            cfg.init_max_altitude_m,
        )  # fmt: skip
        met = kernels.meet(origin, los, sigma, live, t_s, screen, limits)
        if met is not None:  # compiled: the screen and the exact tests, numpy's floats
            return met if met[0].size else None
        far = live[:, _REACH] + speed * (t_s - live[:, _T])
        far = (far + extra) * _FAR_SLACK + _FAR_SLACK_M
        far[(live[:, _CODE] == own) | (live[:, _T] > t_s)] = -1.0
        mi, bi = screen_pairs(origin, los, live[:, _LINE], far)
        if mi.size == 0:  # the usual case in clutter: no ray comes near enough
            return None
        s2 = live[:, _ORIGIN]  # (B, 3) views of the live rows
        u2 = live[:, _LOS]
        sig2 = live[:, _SIGMA]
        dt = t_s - live[:, _T]
        t1, t2, miss, sin_a = closest_points(origin, los[mi], s2[bi], u2[bi])  # (K,)
        with np.errstate(invalid="ignore"):
            geo = np.sqrt((sigma[mi] * t1) ** 2 + (sig2[bi] * t2) ** 2)
            tol = cfg.init_miss_sigmas * geo + cfg.init_max_speed_mps * dt[bi]
            ok = (
                (t1 > 0.0)
                & (t2 > 0.0)
                & (t1 < cfg.max_range_m)
                & (t2 < cfg.max_range_m)
                & (sin_a >= self._sin_min)
                & (miss <= tol)
            )
        if not np.any(ok):
            return None
        mi, bi, t1, t2, miss, tol = mi[ok], bi[ok], t1[ok], t2[ok], miss[ok], tol[ok]
        p1 = origin + t1[:, None] * los[mi]
        h = ellipsoid_height(p1)
        keep = (h >= cfg.init_min_altitude_m) & (h <= cfg.init_max_altitude_m)
        keep &= ~earth_blocks(origin, los[mi], t1)
        keep &= ~earth_blocks(s2[bi], u2[bi], t2)
        return mi[keep], bi[keep], t1[keep], t2[keep], miss[keep] / tol[keep]

    def pair(
        self,
        t_s: float,
        sensor_id: str,
        origin: np.ndarray,
        los: np.ndarray,
        sigma: np.ndarray,
        wanted: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> tuple[list[tuple[int, Candidate]], np.ndarray]:
        """Pair this frame's unclaimed detections with waiting ones of other sensors.

        Returns ``[(detection index, candidate)]`` (each waiting detection and each new
        one used at most once, best pairs first, then by index) and the indices of the
        new detections left unpaired (the caller queues them with :meth:`add`).
        ``wanted`` (S > 1 shards): given the pairs' points (K, 3) (m, ECI, solved as one
        batch by :func:`intersections`), which to return; the others still use their two
        detections up, as without it, but no candidate is made of them.
        """
        self.prune(t_s)
        m_count = los.shape[0]
        if m_count == 0 or self._hi == self._lo:
            return [], np.arange(m_count)
        found = self._meeting(t_s, sensor_id, origin, los, sigma)
        if found is None:
            return [], np.arange(m_count)
        mi, bi, t1, t2, score = found
        cfg = self.config
        live = self._live
        s2 = live[:, _ORIGIN]  # (B, 3) views of the live rows
        u2 = live[:, _LOS]
        sig2 = live[:, _SIGMA]
        dt = t_s - live[:, _T]
        order = np.lexsort((bi, mi, score))
        used_m: set[int] = set()
        used_b: set[int] = set()
        out: list[tuple[int, Candidate]] = []
        chosen = greedy_pairs(mi, bi, order)
        motion = cfg.init_velocity_sigma_mps * dt
        make = np.ones(chosen.size, bool)
        if wanted is not None and chosen.size:  # the screen, before the exact solutions
            m_, b_ = mi[chosen], bi[chosen]
            origins = np.stack([np.broadcast_to(origin, (chosen.size, 3)), s2[b_]], 1)
            rays = np.stack([los[m_], u2[b_]], 1)
            var_ = np.stack([(sigma[m_] * t1[chosen]) ** 2,
                             (sig2[b_] * t2[chosen]) ** 2 + motion[b_] ** 2], 1)  # fmt: skip
            make = np.asarray(wanted(intersections(origins, rays, var_)), bool)
        used_m.update(mi[chosen].tolist())  # every chosen pair uses its two detections up
        used_b.update(bi[chosen].tolist())
        for k in chosen[make]:
            m, b = int(mi[k]), int(bi[k])
            var = np.array([(sigma[m] * t1[k]) ** 2, (sig2[b] * t2[k]) ** 2 + motion[b] ** 2])
            pos, cov = triangulate(np.stack([origin, s2[b]]), np.stack([los[m], u2[b]]), var)
            other = self._names[int(live[b, _CODE])]
            out.append((m, Candidate(pos, cov, (sensor_id, other), float(score[k]))))
        if used_b:
            keep_mask = np.ones(len(self), bool)
            keep_mask[sorted(used_b)] = False
            self._keep(keep_mask)
        out.sort(key=lambda c: c[0])
        left = np.array([m for m in range(m_count) if m not in used_m], dtype=int)
        return out, left
