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
    """A sensor's estimate (3,) rad and covariance (3, 3) rad^2 under the prior ``p0``
    (rad^2) rescaled by ``scale``: ``P'^-1 = P^-1 + (1/s - 1) / p0 I``, ``theta' = P' P^-1
    theta``. The sensor's block taken alone: P' is conservative (the other sensors'
    priors shrink too), theta' shrinks the well-determined relative part too, so it
    only widens (an unapplied estimate's second moment), never moves a LOS."""
    if scale >= 1.0:
        return th, pk
    info = np.linalg.inv(pk / p0)  # in prior units: well conditioned
    pn = np.linalg.inv(info + (1.0 / scale - 1.0) * np.eye(3))
    pn = 0.5 * (pn + pn.T)
    return pn @ (info @ th), pn * p0


def widened(
    sigma: np.ndarray, across: np.ndarray | None, looks: list[int], k0: float, k1: float
) -> np.ndarray:
    """Sigmas (rad) of looks already widened ``k0`` times by their bias variance across
    the LOS ``across`` (rad^2; None: not widened), for tracks whose estimates average
    ``looks`` looks per sensor: widened ``clip(looks, k0, k1)`` times instead. ``sigma``
    itself when no look counts more than ``k0``."""
    if across is None or k1 <= k0 or max(looks, default=0) <= k0:
        return sigma
    extra = np.clip(np.array(looks, float), k0, k1) - k0
    return np.sqrt(sigma**2 + extra * across)
