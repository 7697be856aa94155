"""Batched extended Kalman filter over many tracks (state layout: :mod:`.dynamics`).

All functions work on a stack of tracks at once: states ``x`` (N, 9), covariances
``P`` (N, 9, 9). One frame predicts every live track to the frame time in one call and
updates every track associated in that frame in one call: the per-track Python
overhead of filterpy's ``ExtendedKalmanFilter`` (~65 us per update, DESIGN §9) would
dominate the run time, so the update is written here in Joseph form over arrays and
checked against filterpy in the tests. With numba, :mod:`.kernels` computes the
short-step :func:`predict` and :func:`update` as compiled loops (equal to this code to
rounding); the numpy code here is their fallback.

Modes of a track's acceleration state:
- thrusting / drag (``a`` estimated, jerk noise), and
- ballistic (``a = 0`` exactly, zero covariance: the 6-D point-mass + J2 filter).
:func:`condition_on_zero_accel` switches a track to ballistic by conditioning the
Gaussian on ``a = 0``; :func:`open_accel` reopens the acceleration with a prior.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .dynamics import ACC, N_STATE, POS, process_noise, propagate, propagate_short

_I9 = np.eye(N_STATE)
_I2 = np.eye(2)


def predict(
    x: np.ndarray,
    P: np.ndarray,
    dt: np.ndarray | float,
    inv_tau: np.ndarray | float,
    accel_psd: np.ndarray | float,
    jerk_psd: np.ndarray | float,
    max_step: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict states (N, 9) and covariances (N, 9, 9) over ``dt`` (s; scalar or (N,)):
    short-step or RK4 mean, ``Phi P Phi^T + Q`` covariance (Q from
    :func:`dynamics.process_noise`)."""
    if x.shape[0] == 0:
        return x.copy(), P.copy()
    if float(np.abs(dt).max()) <= max_step:  # (the method: no np.max wrapper per call)
        compiled = kernels.predict_short(x, P, dt, inv_tau, accel_psd, jerk_psd)
        if compiled is not None:
            return compiled
        xp, phi = propagate_short(x, dt, inv_tau)
    else:
        xp, phi = propagate(x, dt, inv_tau, max_step=max_step)
    Pp = phi @ P @ np.swapaxes(phi, -1, -2)
    Pp += process_noise(dt, accel_psd, jerk_psd)
    return xp, 0.5 * (Pp + np.swapaxes(Pp, -1, -2))


def inv2(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and determinants of 2x2 matrices (..., 2, 2), closed form."""
    a, b, c, d = S[..., 0, 0], S[..., 0, 1], S[..., 1, 0], S[..., 1, 1]
    det = a * d - b * c
    inv = np.empty_like(S)
    inv[..., 0, 0] = d
    inv[..., 0, 1] = -b
    inv[..., 1, 0] = -c
    inv[..., 1, 1] = a
    return inv / det[..., None, None], det


def projected_cov(P: np.ndarray, Hpos: np.ndarray) -> np.ndarray:
    """Predicted-measurement covariances (K, 2, 2) = Hpos P_rr Hpos^T (rad^2): the
    innovation covariance without the measurement noise (states P (K, 9, 9), position
    Jacobians Hpos (K, 2, 3) 1/m)."""
    return Hpos @ (P[:, POS, POS] @ np.swapaxes(Hpos, -1, -2))


def innovation_cov(P: np.ndarray, Hpos: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Innovation covariances (K, 2, 2) = Hpos P_rr Hpos^T + sigma^2 I (``sigma`` (K,)
    rad). The one implementation: :func:`update` and the gating of
    :mod:`.association` (which adds each detection's noise pairwise) use it."""
    return projected_cov(P, Hpos) + (np.asarray(sigma, float) ** 2)[:, None, None] * _I2


def update(
    x: np.ndarray, P: np.ndarray, y: np.ndarray, Hpos: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EKF update of K tracks, each with one 2-D LOS residual.

    ``y`` (K, 2) residuals (rad), ``Hpos`` (K, 2, 3) position Jacobians (1/m), ``sigma``
    (K,) angular noise (rad). Joseph-form covariance. Returns (x, P, NIS (K,)).
    """
    compiled = kernels.update(x, P, y, Hpos, sigma)
    if compiled is not None:
        return compiled
    sigma = np.asarray(sigma, float)
    PHt = P[:, :, POS] @ np.swapaxes(Hpos, -1, -2)  # (K, 9, 2)
    Sinv, _ = inv2(innovation_cov(P, Hpos, sigma))
    K = PHt @ Sinv  # (K, 9, 2)
    xn = x + np.einsum("kij,kj->ki", K, y)
    IKH = _I9 - K @ np.concatenate([Hpos, np.zeros(Hpos.shape[:-1] + (6,))], axis=-1)
    Pn = IKH @ P @ np.swapaxes(IKH, -1, -2)
    Pn += (sigma**2)[:, None, None] * (K @ np.swapaxes(K, -1, -2))
    Pn = 0.5 * (Pn + np.swapaxes(Pn, -1, -2))
    nis = np.einsum("ki,kij,kj->k", y, Sinv, y)
    return xn, Pn, nis


def update_rows(
    x: np.ndarray, P: np.ndarray, rows: np.ndarray, y: np.ndarray, Hpos: np.ndarray,
    sigma: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """:func:`update` of the rows ``rows`` (K,, distinct) of stacked states ``x`` (N, 9)
    and covariances ``P`` (N, 9, 9), written back in place; returns the NIS (K,).
    Compiled, the rows are read and written where they lie (no gathers, no scatters)."""
    nis = kernels.update_at(x, P, rows, y, Hpos, sigma)
    if nis is not None:
        return nis
    x[rows], P[rows], nis = update(x[rows], P[rows], y, Hpos, sigma)
    return nis


def condition_on_zero_accel(x: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Condition Gaussian states (N, 9) on ``a = 0`` (thrust over): the ballistic filter.

    ``x_rv -= P_rv,a P_aa^-1 a``, ``P_rv -= P_rv,a P_aa^-1 P_a,rv``, ``a = 0``, ``P_a* = 0``.
    Tracks whose ``P_aa`` is already zero only get ``a`` zeroed.
    """
    x = x.copy()
    P = P.copy()
    Paa = P[:, ACC, ACC]
    ok = np.trace(Paa, axis1=1, axis2=2) > 0.0
    if np.any(ok):
        Pxa = P[ok][:, :6, ACC]
        G = Pxa @ np.linalg.inv(Paa[ok])  # (k, 6, 3)
        x[ok, :6] -= np.einsum("kij,kj->ki", G, x[ok, ACC])
        P6 = P[ok][:, :6, :6] - G @ np.swapaxes(Pxa, -1, -2)
        Pk = P[ok]
        Pk[:, :6, :6] = 0.5 * (P6 + np.swapaxes(P6, -1, -2))
        P[ok] = Pk
    x[:, ACC] = 0.0
    P[:, ACC, :] = 0.0
    P[:, :, ACC] = 0.0
    return x, P


def open_accel(
    x: np.ndarray, P: np.ndarray, sigma: float, mean: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reopen the acceleration state with prior ``mean`` (default 0) and ``sigma`` (m/s^2)
    per axis, uncorrelated with position and velocity."""
    x = x.copy()
    P = P.copy()
    x[:, ACC] = 0.0 if mean is None else mean
    P[:, ACC, :] = 0.0
    P[:, :, ACC] = 0.0
    P[:, ACC, ACC] = sigma**2 * np.eye(3)
    return x, P
