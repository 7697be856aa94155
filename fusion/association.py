"""Gating and global-nearest-neighbour association of one frame's detections.

For (track, detection) pairs of one frame, vectorised: the tangent-plane residual of the
detection against the track's predicted LOS, its innovation covariance
``S = H P_rr H^T + sigma^2 I`` and the squared Mahalanobis distance ``d2 = y^T S^-1 y``.
Pairs with ``d2`` above the track's chi-square gate are infeasible. The assignment
minimises the total ``d2 + ln det S`` (the negative log-likelihood up to a constant)
on the sparse graph of gated pairs (:func:`scipy.sparse.csgraph.
min_weight_full_bipartite_matching`, LAPJVsp: its cost follows the pairs, not tracks x
detections; 4.5x cheaper than the dense solver on the first 200 s of ``raid``, same
assignments; with numba the same algorithm compiled, :func:`.kernels.assign_pairs`); each
track may instead stay unassigned at the cost of its gate (a dummy column of its own), so
a far pair is never forced.

Only the candidate pairs are computed in full: an angular screen over all pairs (the
cosines ``u . m`` of one matrix product) drops every pair whose angle alone puts it
beyond its track's gate (:func:`_candidates`). The screen is conservative, and the
candidates' residuals and distances are the same numbers, bit for bit, as those of the
full (N, M) computation, so gates and assignments do not depend on it. With numba,
:func:`gate` and :func:`may_gate` run as compiled loops (:mod:`.kernels`: the same
formulas, equal to this code to rounding); the numpy code here is their fallback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.special import gammaincinv

from . import kernels
from .domain import NS_PER_S
from .dynamics import ACC, POS, VEL
from .filters import projected_cov
from .measurement import position_jacobian, predict_los

_SCREEN_FACTOR = 2.0  # the angular screen keeps pairs up to twice its bound (rounding)
_SCREEN_FLOOR = 1e-14  # rad^2: absolute slack on tan^2 of the angle (rounding of 1 - c^2)
_SCREEN_MAX_COND = 1e6  # tracks whose S may be worse conditioned are not screened
_SCREEN_COS_MARGIN = 1.0 - 1e-12  # the cosine threshold lowered by far more than rounding
_TINY = float(np.nextafter(0.0, 1.0))  # den >= _TINY: den > 0
_MAY_GATE_FACTOR = 2.0  # may_gate keeps rows up to twice the angle its bound allows
_G_MAX = 10.0  # m/s^2, gravity at or above the surface (may_gate's straight-line miss)
_MISS_FLOOR_M = 10.0  # m, added to that miss
_QUICK_MAX_ROWS = 16  # may_gate_any screens in Python up to this many rows ...
_QUICK_SLACK = 1e-9  # ... with this slack on the cosines (rounding is ~1e-16)


def chi2_quantile(probability: float, dof: int) -> float:
    """Quantile of the chi-square distribution with ``dof`` degrees of freedom: the same
    float as ``scipy.stats.chi2.ppf`` (which computes ``2 gammaincinv(dof / 2, p)``),
    without importing ``scipy.stats`` (~0.5 s of every start)."""
    return float(2 * gammaincinv(dof / 2, probability))


def gate_threshold(probability: float, dof: int = 2) -> float:
    """Chi-square gate on ``dof`` degrees of freedom holding ``probability`` of true pairs."""
    return chi2_quantile(probability, dof)


@dataclass(slots=True)
class Gating:
    """Gating of N tracks against M detections of one frame: its K candidate pairs
    (track-major, detections ascending), every other pair being beyond its gate."""

    track: np.ndarray  # (K,) track index of each candidate pair
    det: np.ndarray  # (K,) detection index of each candidate pair
    d2: np.ndarray  # (K,) squared Mahalanobis distances (inf where not computable)
    logdet: np.ndarray  # (K,) ln det S
    residual: np.ndarray  # (K, 2) rad
    hpos: np.ndarray  # (N, 2, 3) position Jacobians at the prediction, 1/m
    rho: np.ndarray  # (N,) predicted ranges, m
    u: np.ndarray  # (N, 3) predicted LOS

    def dense_d2(self, n_det: int) -> np.ndarray:
        """d2 as an (N, M) matrix, ``inf`` for the pairs the screen dropped."""
        out = np.full((self.u.shape[0], n_det), np.inf)
        out[self.track, self.det] = self.d2
        return out


def may_gate(
    x: np.ndarray,
    P: np.ndarray,
    dt: np.ndarray,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
) -> np.ndarray:
    """Which of N rows (states ``x`` (N, 9), covariances ``P`` (N, 9, 9) or only their
    diagonals (N, 9), each ``dt`` (N,) s older than the frame) may pass its chi-square
    gate ``gates`` (N,) with any detection ``los`` (M, 3) (unit, ECI), ``sigma`` (M,)
    rad, of the sensor at
    ``sensor_position`` (3,) ECI m, once predicted to the frame: a conservative screen
    that needs no prediction (boolean (N,)).

    At the frame, ``d2 >= tan^2(angle) / lmax(S)`` and ``lmax(S) <= tr(P_rr) / rho^2 +
    sigma^2``; ``sqrt(tr P_rr)`` grows over ``dt`` by at most ``dt sqrt(tr P_vv) +
    dt^2/2 sqrt(tr P_aa)`` (sigmas add at worst), and the straight-line position
    ``r + v dt`` misses the predicted one by ``(|g| + |a|) dt^2 / 2``. A row is kept if
    some detection lies within twice the angle that bound allows plus that miss.
    """
    n = x.shape[0]
    if n == 0 or los.shape[0] == 0:
        return np.zeros(n, bool)
    compiled = kernels.may_gate(x, _diagonals(P), dt, sensor_position, los, sigma, gates)
    if compiled is not None:
        return compiled[1]
    dt = np.asarray(dt, float)
    d = x[:, POS] + x[:, VEL] * dt[:, None] - sensor_position
    rho = np.sqrt(np.einsum("ni,ni->n", d, d))
    u = d / rho[:, None]
    # the traces of the blocks, summed in order (the floats of einsum "nii->n")
    var = P.diagonal(axis1=1, axis2=2) if P.ndim == 3 else P
    s_r = np.sqrt(var[:, 0] + var[:, 1] + var[:, 2])
    s_v = np.sqrt(var[:, 3] + var[:, 4] + var[:, 5])
    s_a = np.sqrt(var[:, 6] + var[:, 7] + var[:, 8])
    a_norm = np.sqrt(np.einsum("ni,ni->n", x[:, ACC], x[:, ACC]))
    sigma_pos = s_r + dt * s_v + 0.5 * dt * dt * s_a
    miss_m = 0.5 * (_G_MAX + a_norm) * dt * dt + _MISS_FLOOR_M
    s2_max = float(np.max(np.asarray(sigma, float) ** 2))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        tan_gate = np.sqrt(np.asarray(gates, float) * ((sigma_pos / rho) ** 2 + s2_max))
        angle = _MAY_GATE_FACTOR * np.arctan(tan_gate) + miss_m / rho
        c_min = np.where(angle < np.pi, np.cos(angle), -1.0)
    # u is finite iff the sum of its components is (finite ones are at most 1)
    ok = np.isfinite(angle) & np.isfinite(u[:, 0] + u[:, 1] + u[:, 2])
    # a row that is not a number is kept: the gate decides (it passes no pair). Any
    # detection within reach, as a boolean matrix product: numpy's any(axis=1) over a
    # few dozen columns costs ~6x more
    near = u @ np.asarray(los, float).T >= c_min[:, None]
    return (near @ np.ones(near.shape[1], bool)) | ~ok


def may_gate_any(
    x: np.ndarray,
    P: np.ndarray,
    dt: np.ndarray,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
) -> bool:
    """False only if :func:`may_gate` keeps no row (same arguments): its bound in
    Python floats with slack on the cosines, cheaper than numpy for a few rows. True
    (not known) for more than ``_QUICK_MAX_ROWS`` rows or any number out of range."""
    n = x.shape[0]
    if n == 0 or los.shape[0] == 0:
        return False
    compiled = kernels.may_gate(x, _diagonals(P), dt, sensor_position, los, sigma, gates, True)
    if compiled is not None:
        return compiled[0]
    if n > _QUICK_MAX_ROWS:
        return True
    diag = (P.diagonal(axis1=1, axis2=2) if P.ndim == 3 else P).tolist()
    rays = np.asarray(los, float).tolist()
    s2_max = float(np.max(np.asarray(sigma, float) ** 2))
    sx, sy, sz = (float(c) for c in sensor_position)
    for xr, pr, t, g in zip(
        x.tolist(), diag, np.asarray(dt, float).tolist(), gates.tolist(), strict=True
    ):
        try:
            dx, dy, dz = xr[0] + xr[3] * t - sx, xr[1] + xr[4] * t - sy, xr[2] + xr[5] * t - sz
            rho = math.sqrt(dx * dx + dy * dy + dz * dz)
            s_pos = math.sqrt(pr[0] + pr[1] + pr[2]) + t * math.sqrt(pr[3] + pr[4] + pr[5])
            s_pos += 0.5 * t * t * math.sqrt(pr[6] + pr[7] + pr[8])
            a_norm = math.sqrt(xr[6] * xr[6] + xr[7] * xr[7] + xr[8] * xr[8])
            miss_m = 0.5 * (_G_MAX + a_norm) * t * t + _MISS_FLOOR_M
            tan_gate = math.sqrt(g * ((s_pos / rho) ** 2 + s2_max))
            angle = _MAY_GATE_FACTOR * math.atan(tan_gate) + miss_m / rho
            if not angle < math.pi - _QUICK_SLACK:
                return True
            c_min = math.cos(angle) - _QUICK_SLACK
            if any((dx * lx + dy * ly + dz * lz) / rho >= c_min for lx, ly, lz in rays):
                return True
        except (ValueError, ZeroDivisionError, OverflowError):
            return True
    return False


def may_gate_rows(
    x: np.ndarray,
    P: np.ndarray,
    dt: np.ndarray,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
) -> np.ndarray:
    """Indices of the rows :func:`may_gate` keeps (same arguments): compiled, one pass
    over the rows; in numpy, :func:`may_gate_any`'s Python floats first (most frames of
    a sparse scene keep nothing), :func:`may_gate` only when they say maybe."""
    n = x.shape[0]
    if n == 0 or los.shape[0] == 0:
        return np.zeros(0, int)
    compiled = kernels.may_gate(x, _diagonals(P), dt, sensor_position, los, sigma, gates)
    if compiled is not None:
        return np.flatnonzero(compiled[1]) if compiled[0] else np.zeros(0, int)
    if not may_gate_any(x, P, dt, sensor_position, los, sigma, gates):
        return np.zeros(0, int)
    return np.flatnonzero(may_gate(x, P, dt, sensor_position, los, sigma, gates))


def may_gate_at(
    x: np.ndarray,
    P: np.ndarray,
    t_ns: np.ndarray,
    rows: np.ndarray,
    frame_ns: int,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
) -> np.ndarray:
    """:func:`may_gate_rows` of the rows ``rows`` (R,) of a stack (states ``x`` (N, 9),
    covariances ``P`` (N, 9, 9) at data times ``t_ns`` (N,) ns; ``gates`` (R,)) for a
    frame at ``frame_ns`` ns: the positions in ``rows`` of the rows kept. Compiled, it
    reads the stack in place (no gathers)."""
    if rows.size == 0 or los.shape[0] == 0:
        return np.zeros(0, int)
    compiled = kernels.may_gate_at(x, P, t_ns, rows, frame_ns, sensor_position, los, sigma, gates)
    if compiled is not None:
        return compiled
    dt = (frame_ns - t_ns[rows]) / NS_PER_S
    # the variances only: a copy of every row's P would cost more than the screen
    var = P.diagonal(axis1=1, axis2=2)[rows]
    return may_gate_rows(x[rows], var, dt, sensor_position, los, sigma, gates)


def _diagonals(P: np.ndarray) -> np.ndarray:
    """The diagonals (N, 9) of covariances ``P`` (N, 9, 9), or ``P`` if it is them."""
    return P.diagonal(axis1=1, axis2=2) if P.ndim == 3 else P


def gate(
    x: np.ndarray,
    P: np.ndarray,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
) -> Gating:
    """Candidate pairs, residuals and Mahalanobis distances of detections ``los`` (M, 3)
    (unit, ECI) with ``sigma`` (M,) (rad) from one sensor at ``sensor_position`` (3,)
    (ECI, m) against tracks ``x`` (N, 9), ``P`` (N, 9, 9) with chi-square gates ``gates``
    (N,). Pairs left out have ``d2`` above their track's gate."""
    compiled = kernels.gate(x, P, sensor_position, los, sigma, gates)
    if compiled is not None:
        return Gating(*compiled)
    u, rho, e = predict_los(x[:, POS], sensor_position)
    hpos = position_jacobian(e, rho)
    A = projected_cov(P, hpos)  # (N, 2, 2)
    los = np.asarray(los, dtype=float)
    s2 = np.asarray(sigma, float) ** 2
    den = u @ los.T  # (N, M) cosines, as measurement.residuals computes them
    ti, mi = _candidates(den, los, A, s2, np.asarray(gates, float))
    # the same contraction, per pair, as residuals()'s einsum "nkj,mj->nmk"
    y = np.einsum("pkj,pj->pk", e[ti], los[mi]) / den[ti, mi][:, None]
    # S = A + sigma^2 I per pair, inverted in closed form (2x2)
    s00 = A[ti, 0, 0] + s2[mi]
    s11 = A[ti, 1, 1] + s2[mi]
    s01 = A[ti, 0, 1]
    det = s00 * s11 - s01 * s01
    y0, y1 = y[:, 0], y[:, 1]
    with np.errstate(invalid="ignore"):
        d2 = (s11 * y0 * y0 - 2.0 * s01 * y0 * y1 + s00 * y1 * y1) / det
    d2[~np.isfinite(d2)] = np.inf
    return Gating(ti, mi, d2, np.log(det), y, hpos, rho, u)


def _candidates(
    den: np.ndarray, los: np.ndarray, A: np.ndarray, s2: np.ndarray, gates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(track, detection) indices of the pairs that may pass their gate.

    ``den`` (N, M) cosines between predicted and measured LOS, ``A`` (N, 2, 2)
    projected covariances (rad^2), ``s2`` (M,) detection variances (rad^2), ``gates``
    (N,). For a positive definite ``S``, ``d2 >= |y|^2 / lmax(S)``, with ``|y|^2 =
    tan^2`` of the angle ``= (|m|^2 - c^2) / c^2`` and ``lmax(S) <= max(A00, A11) +
    |A01| + max s2`` (Gershgorin); a pair is dropped if that lower bound exceeds twice
    the gate, i.e. if ``c`` is below a per-track cosine. A pair pointing away (``c <=
    0``, or not a number) has ``d2 = inf`` and is always dropped. Tracks whose S is not
    safely positive definite keep all other pairs.
    """
    a00, a11, a01 = A[:, 0, 0], A[:, 1, 1], A[:, 0, 1]
    lam_hi = np.maximum(a00, a11) + np.abs(a01)
    s2_min, s2_max = (s2.min(), s2.max()) if s2.size else (0.0, 0.0)
    mm_min = np.einsum("mj,mj->m", los, los).min() if s2.size else 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        half_gap = np.sqrt((0.5 * (a00 - a11)) ** 2 + a01 * a01)
        lam_lo = 0.5 * (a00 + a11) - half_gap
        safe = lam_lo + s2_min > (lam_hi + s2_min) / _SCREEN_MAX_COND
        # tan^2 <= bound  <=>  c^2 (1 + bound) >= |m|^2 (for c > 0)
        bound = _SCREEN_FACTOR * gates * (lam_hi + s2_max) + _SCREEN_FLOOR
        c_min = np.sqrt(mm_min / (1.0 + bound)) * _SCREEN_COS_MARGIN
    c_min = np.where(safe & (c_min > _TINY), c_min, _TINY)
    return np.nonzero(den >= c_min[:, None])


def assign(d2: np.ndarray, logdet: np.ndarray, gates: np.ndarray) -> list[tuple[int, int]]:
    """Global nearest neighbour over dense (N, M) ``d2`` and ``logdet``: (track,
    detection) pairs, sorted by track index (see :func:`assign_pairs`)."""
    ti, mi = np.indices(d2.shape).reshape(2, -1)
    k = assign_pairs(ti, mi, d2.ravel(), logdet.ravel(), gates)
    return [(int(ti[i]), int(mi[i])) for i in k]


def assign_pairs(
    track: np.ndarray,
    det: np.ndarray,
    d2: np.ndarray,
    logdet: np.ndarray,
    gates: np.ndarray,
    adjust: np.ndarray | None = None,
) -> np.ndarray:
    """Global nearest neighbour over K candidate pairs (``track``, ``det``, ``d2``,
    ``logdet`` (K,), no pair twice): the indices of the chosen pairs, by track index.

    ``gates`` (N,) per-track chi-square thresholds. Cost of a pair ``d2 + ln det S``
    (plus ``adjust`` (K,) where given: the detection-thread evidence of
    :mod:`.threads`, which weighs pairs inside the gate and never opens it); a track
    may stay unassigned at cost ``gate + ln det S`` (its best pair's). With numba, a
    compiled loop (:func:`.kernels.assign_pairs`) makes LAPJVsp's choices, ties included,
    per connected component of the pairs; :func:`_assign_scipy` is its fallback.
    """
    compiled = kernels.assign_pairs(track, det, d2, logdet, gates, adjust)
    if compiled is not None:
        return compiled
    return _assign_scipy(track, det, d2, logdet, gates, adjust)


def _assign_scipy(
    track: np.ndarray,
    det: np.ndarray,
    d2: np.ndarray,
    logdet: np.ndarray,
    gates: np.ndarray,
    adjust: np.ndarray | None,
) -> np.ndarray:
    """:func:`assign_pairs` (same arguments and result) by scipy's LAPJVsp."""
    ok = np.flatnonzero(d2 <= gates[track])
    if ok.size <= 1:  # none, or one pair: unambiguous (a sparse frame's usual case)
        return ok
    rows, ri = np.unique(track[ok], return_inverse=True)
    cols, ci = np.unique(det[ok], return_inverse=True)
    # Unambiguous pairs (one candidate each way) need no solver.
    if rows.size == ok.size and cols.size == ok.size:
        return ok[np.argsort(track[ok], kind="stable")]
    n, m = rows.size, cols.size
    cost = d2[ok] + logdet[ok] if adjust is None else d2[ok] + logdet[ok] + adjust[ok]
    # Each track's "stay unassigned" cost: its gate plus the smallest ln det of its pairs
    # (a pair beyond the gate would cost more than that): a dummy column of its own.
    # (per row of the sorted pairs: ufunc.at costs ~0.3 ms for a raid frame's pairs)
    by_row = np.argsort(ri, kind="stable")
    starts = np.flatnonzero(np.r_[True, ri[by_row][1:] != ri[by_row][:-1]])
    ld_min = np.minimum.reduceat(logdet[ok][by_row], starts)
    weights = np.concatenate([cost, gates[rows] + ld_min])
    # Every row is matched exactly once (to a detection or its dummy), so a common shift
    # leaves the optimum unchanged; it keeps the stored weights positive (never dropped).
    weights += 1.0 - weights.min()
    eye = np.arange(n)
    graph = csr_matrix(
        (weights, (np.concatenate([ri, eye]), np.concatenate([ci, m + eye]))), shape=(n, m + n)
    )
    r_idx, c_idx = min_weight_full_bipartite_matching(graph)
    real = c_idx < m
    # back from (row, column) to the candidate pair
    key = ri.astype(np.int64) * m + ci
    by_key = np.argsort(key)
    hit = np.searchsorted(key[by_key], r_idx[real].astype(np.int64) * m + c_idx[real])
    chosen = ok[by_key[hit]]
    return chosen[np.argsort(track[chosen], kind="stable")]
