"""Gating and global-nearest-neighbour association of one frame's detections.

For every (track, detection) pair of one frame, vectorised: the tangent-plane residual
of the detection against the track's predicted LOS, its innovation covariance
``S = H P_rr H^T + sigma^2 I`` and the squared Mahalanobis distance ``d2 = y^T S^-1 y``.
Pairs with ``d2`` above the track's chi-square gate are infeasible. The assignment
minimises the total ``d2 + ln det S`` (the negative log-likelihood up to a constant)
with :func:`scipy.optimize.linear_sum_assignment`; each track may instead stay
unassigned at the cost of its gate, so a far pair is never forced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from .dynamics import POS
from .filters import projected_cov
from .measurement import position_jacobian, predict_los, residuals


def gate_threshold(probability: float, dof: int = 2) -> float:
    """Chi-square gate on ``dof`` degrees of freedom holding ``probability`` of true pairs."""
    return float(chi2.ppf(probability, dof))


@dataclass(slots=True)
class Gating:
    """Result of gating N tracks against M detections of one frame."""

    d2: np.ndarray  # (N, M) squared Mahalanobis distances (inf where not computable)
    logdet: np.ndarray  # (N, M) ln det S
    residual: np.ndarray  # (N, M, 2) rad
    hpos: np.ndarray  # (N, 2, 3) position Jacobians at the prediction, 1/m
    rho: np.ndarray  # (N,) predicted ranges, m
    u: np.ndarray  # (N, 3) predicted LOS


def gate(
    x: np.ndarray, P: np.ndarray, sensor_position: np.ndarray, los: np.ndarray, sigma: np.ndarray
) -> Gating:
    """Residuals and Mahalanobis distances of detections ``los`` (M, 3) with ``sigma`` (M,)
    from one sensor at ``sensor_position`` against tracks ``x`` (N, 9), ``P`` (N, 9, 9)."""
    u, rho, e = predict_los(x[:, POS], sensor_position)
    hpos = position_jacobian(e, rho)
    y = residuals(u, e, los)  # (N, M, 2)
    A = projected_cov(P, hpos)  # (N, 2, 2)
    s2 = np.asarray(sigma, float) ** 2
    # S = A + sigma^2 I per pair, inverted in closed form (2x2)
    s00 = A[:, 0, 0][:, None] + s2[None, :]
    s11 = A[:, 1, 1][:, None] + s2[None, :]
    s01 = A[:, 0, 1][:, None]
    det = s00 * s11 - s01 * s01
    y0, y1 = y[..., 0], y[..., 1]
    with np.errstate(invalid="ignore"):
        d2 = (s11 * y0 * y0 - 2.0 * s01 * y0 * y1 + s00 * y1 * y1) / det
    d2[~np.isfinite(d2)] = np.inf
    return Gating(d2=d2, logdet=np.log(det), residual=y, hpos=hpos, rho=rho, u=u)


def assign(d2: np.ndarray, logdet: np.ndarray, gates: np.ndarray) -> list[tuple[int, int]]:
    """Global nearest neighbour: (track, detection) pairs, sorted by track index.

    ``gates`` (N,) per-track chi-square thresholds. Cost of a pair ``d2 + ln det S``;
    a track may stay unassigned at cost ``gate + ln det S`` (its best pair's).
    """
    ok = d2 <= gates[:, None]
    if not np.any(ok):
        return []
    rows = np.flatnonzero(ok.any(axis=1))
    cols = np.flatnonzero(ok.any(axis=0))
    sub_ok = ok[np.ix_(rows, cols)]
    # Unambiguous pairs (one candidate each way) need no solver.
    if np.all(sub_ok.sum(axis=1) == 1) and np.all(sub_ok.sum(axis=0) == 1):
        pairs = [(int(r), int(cols[np.argmax(sub_ok[i])])) for i, r in enumerate(rows)]
        return pairs
    cost = np.where(sub_ok, d2[np.ix_(rows, cols)] + logdet[np.ix_(rows, cols)], np.inf)
    n = rows.size
    # Each track's "stay unassigned" cost: its gate plus the smallest ln det of its pairs
    # (a pair beyond the gate would cost more than that).
    ld = np.where(sub_ok, logdet[np.ix_(rows, cols)], np.inf).min(axis=1)
    dummy = np.full((n, n), np.inf)
    dummy[np.arange(n), np.arange(n)] = gates[rows] + ld
    full = np.hstack([cost, dummy])
    r_idx, c_idx = linear_sum_assignment(full)
    pairs = [
        (int(rows[r]), int(cols[c])) for r, c in zip(r_idx, c_idx, strict=True) if c < cols.size
    ]
    pairs.sort()
    return pairs
