"""How the sensor registration's uncertainty widens the looks (:mod:`.registration`,
DESIGN §6, *Use* and *Bias scale*).

The tracker's filters treat each look's noise as white, but a sensor's bias error is
common to all its looks, so it is counted in each look's variance as many times as a
track's estimate averages looks of that sensor (a consider / Schmidt-Kalman
approximation without per-track cross-covariances): ``registration_consider_looks`` in
the gate and in boost, and for a ballistic track's update its looks per sensor so far in
ballistic flight (its near-constant state averages them all), capped by
``registration_consider_looks_max``, that cap shrunk towards the former by the bias scale
(a scene found unbiased keeps its weighting). The bias covariance used is the estimator's under a
prior rescaled to the size the data show the biases have (the *bias scale*), so a sensor
found unbiased is barely widened.
"""

from __future__ import annotations

import numpy as np

SCALE_PSEUDO_AXES = 1.0  # the prior counts as this many fully seen axes in the bias scale
SCALE_MIN = 0.01  # smallest bias variance scale (x the prior variance: sigma 1 urad of 10)
_EYE3 = np.eye(3)


def bias_scale(theta: np.ndarray, L: np.ndarray, Cn: np.ndarray, p0: float) -> float:
    """Variance of the true biases over the prior's ``p0`` (rad^2; empirical Bayes, method
    of moments) from the estimate ``theta`` (3 S,) rad = ``L b + w`` with ``w``'s
    covariance ``Cn``: with ``b ~ N(0, s p0 I)``, ``E[theta' theta] = s p0 tr(L L') + tr
    Cn``; the prior counts as ``SCALE_PSEUDO_AXES`` axes at scale 1. In [SCALE_MIN, 1]."""
    num = float(theta @ theta) - float(np.trace(Cn))
    den = p0 * (float(np.einsum("ij,ij->", L, L)) + SCALE_PSEUDO_AXES)
    return min(1.0, max(SCALE_MIN, (num + SCALE_PSEUDO_AXES * p0) / den))


def rescaled(
    th: np.ndarray, pk: np.ndarray, scale: float, p0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sensors' estimates (..., 3) rad and covariances (..., 3, 3) rad^2 under the prior
    ``p0`` (rad^2) rescaled by ``scale``: ``P'^-1 = P^-1 + (1/s - 1) / p0 I``, ``theta' =
    P' P^-1 theta``, each sensor's block taken alone (stacked: the same floats as one
    block at a time). P' is conservative (the other sensors' priors shrink too), theta'
    shrinks the well-determined relative part too, so it only widens (an unapplied
    estimate's second moment), never moves a LOS."""
    if scale >= 1.0:
        return th, pk
    info = np.linalg.inv(pk / p0)  # in prior units: well conditioned
    pn = np.linalg.inv(info + (1.0 / scale - 1.0) * _EYE3)
    pn = 0.5 * (pn + np.swapaxes(pn, -1, -2))
    return (pn @ (info @ th[..., None]))[..., 0], pn * p0


class SensorTerms:
    """Every sensor's consider terms at one state of the estimator (``theta`` (3 S,) rad,
    ``P`` (3 S, 3 S) rad^2, bias ``scale``, prior ``p0`` rad^2), computed for all sensors
    at once (numpy over the stack): its estimate (3,), and the covariance to widen by
    (3, 3; :func:`rescaled`, plus the rescaled estimate's second moment when the estimate
    is not applied) with its trace. Built when a frame needs them after the state
    changed, instead of once per sensor and frame."""

    def __init__(self, theta: np.ndarray, P: np.ndarray, scale: float, p0: float) -> None:
        n = theta.size // 3
        pk = np.ascontiguousarray(P.reshape(n, 3, n, 3)[np.arange(n), :, np.arange(n), :])
        self.theta = theta.reshape(n, 3).copy()
        self.blocks = pk  # (S, 3, 3): each sensor's own block of P
        th_s, pk_s = rescaled(self.theta, pk, scale, p0)
        moment = pk_s + th_s[:, :, None] * th_s[:, None, :]
        self.widen = (pk_s, moment)  # applied, not applied
        self.trace = (
            np.trace(pk_s, axis1=1, axis2=2).tolist(),
            np.trace(moment, axis1=1, axis2=2).tolist(),
        )

    def use(self, k: int, applied: bool) -> tuple[np.ndarray, np.ndarray, float]:
        """Sensor ``k``'s estimate (3,) rad, covariance to widen by (3, 3) rad^2 and its
        trace, its estimate ``applied`` or not."""
        j = 0 if applied else 1
        return self.theta[k], self.widen[j][k], self.trace[j][k]


def significant(th: np.ndarray, pk: np.ndarray, drift: float, chi2: float) -> bool:
    """``th' (pk + drift I)^-1 th >= chi2``: an estimate ``th`` (3,) rad significantly
    non-zero under its covariance ``pk`` (3, 3) rad^2 plus an isotropic ``drift`` rad^2.
    Closed form in floats (a tenth of a LAPACK call's time); where that could round to
    the other side of ``chi2`` (within 1e-6 of it, or a nearly singular block) it is
    decided by ``np.linalg.solve``, so the answer is always that of the solve."""
    (a, b, c), (_, d, e), (_, _, f) = pk.tolist()
    a, d, f = a + drift, d + drift, f + drift
    x, y, z = th.tolist()
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    diag = a * d * f
    if diag > 0.0 and det > 1e-4 * diag:  # well conditioned: the closed form is exact enough
        q = x * x * c00 + y * y * c11 + z * z * c22
        q += 2.0 * (x * y * c01 + x * z * c02 + y * z * c12)
        v = q / det
        if abs(v - chi2) > 1e-6 * chi2:
            return v >= chi2
    return float(th @ np.linalg.solve(pk + drift * _EYE3, th)) >= chi2


def widened(
    sigma: np.ndarray, across: np.ndarray | None, looks: list[int], k0: float, k1: float
) -> np.ndarray:
    """Sigmas (rad) of looks already widened ``k0`` times by their bias variance across
    the LOS ``across`` (rad^2; None: not widened), for tracks whose estimates average
    ``looks`` looks per sensor: widened ``clip(looks, k0, k1)`` times instead. ``sigma``
    itself when no look counts more than ``k0``."""
    if across is None or k1 <= k0 or max(looks, default=0) <= k0:
        return sigma
    extra = np.minimum(np.maximum(np.array(looks, float), k0), k1) - k0  # np.clip's floats
    return np.sqrt(sigma**2 + extra * across)
