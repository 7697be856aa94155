"""Angle-only measurement model: lines of sight from a sensor to predicted positions.

For a predicted object position ``r`` and the sensor's reported position ``s`` (both ECI,
m), the predicted line of sight is ``u = (r - s) / rho`` with range ``rho``. Residuals
live in the 2-D tangent plane of ``u`` (orthonormal basis ``e1, e2`` perpendicular to
it; no azimuth, so no wrap-around): a measured unit LOS ``m`` maps to the gnomonic
coordinates ``y = (e1.m, e2.m) / (u.m)``, and the prediction maps to ``(0, 0)``.
The Jacobian of the predicted coordinates with respect to the object position at the
prediction is ``E / rho`` (E: rows e1, e2); velocity and acceleration do not enter.
R is ``sigma^2 I`` from each detection's ``angular_sigma`` (rad per axis).
"""

from __future__ import annotations

import numpy as np

_AXES = np.arange(3)


def tangent_basis(u: np.ndarray) -> np.ndarray:
    """Orthonormal bases (..., 2, 3) perpendicular to unit vectors ``u`` (..., 3).

    ``e1`` is ``u x k`` normalised, with ``k`` the coordinate axis least aligned with
    ``u`` (well conditioned everywhere); ``e2 = u x e1``.
    """
    u = np.asarray(u, dtype=float)
    # the axis least aligned: 1.0 there, 0.0 elsewhere (np.put_along_axis costs ~10x more)
    k = (np.argmin(np.abs(u), axis=-1)[..., None] == _AXES).astype(float)
    e1 = _cross(u, k)
    e1 /= np.sqrt(np.einsum("...i,...i->...", e1, e1))[..., None]
    e2 = _cross(u, e1)
    return np.stack([e1, e2], axis=-2)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (np.cross costs ~10x more on small arrays)."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    out[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    out[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return out


def predict_los(
    r: np.ndarray, sensor_position: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted LOS of positions ``r`` (N, 3) from ``sensor_position`` (3,) or (N, 3).

    Returns ``u`` (N, 3) unit vectors, ``rho`` (N,) ranges (m) and the tangent bases
    ``E`` (N, 2, 3).
    """
    d = np.asarray(r, dtype=float) - np.asarray(sensor_position, dtype=float)
    rho = np.sqrt(np.einsum("...i,...i->...", d, d))
    u = d / rho[..., None]
    return u, rho, tangent_basis(u)


def residuals(u: np.ndarray, basis: np.ndarray, los: np.ndarray) -> np.ndarray:
    """Gnomonic tangent-plane residuals (N, M, 2) of measured unit LOS ``los`` (M, 3)
    against predictions ``u`` (N, 3) with bases ``basis`` (N, 2, 3). Pairs whose measured
    LOS points away from the prediction (``u.m <= 0``) get ``inf``."""
    los = np.asarray(los, dtype=float)
    num = np.einsum("nkj,mj->nmk", basis, los)
    den = u @ los.T
    with np.errstate(divide="ignore", invalid="ignore"):
        y = num / den[..., None]
    y[den <= 0.0] = np.inf
    return y


def position_jacobian(basis: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """d(residual prediction)/d(position) (N, 2, 3) = E / rho (1/m)."""
    return basis / rho[:, None, None]


def jacobian(basis: np.ndarray, rho: np.ndarray, n_state: int = 9) -> np.ndarray:
    """Full measurement Jacobian H (N, 2, n_state): position block E / rho, zeros elsewhere."""
    h = np.zeros(basis.shape[:-2] + (2, n_state))
    h[..., :3] = position_jacobian(basis, rho)
    return h


def los_to(r: np.ndarray, sensor_position: np.ndarray) -> np.ndarray:
    """Exact unit LOS (N, 3) from ``sensor_position`` to positions ``r``."""
    d = np.asarray(r, dtype=float) - np.asarray(sensor_position, dtype=float)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)
