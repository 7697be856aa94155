"""Julier's symmetric sigma points and the unscented transform, without filterpy.

The same arithmetic as filterpy's ``JulierSigmaPoints.sigma_points`` and
``unscented_transform`` (with numpy's subtraction as the residual), operation for
operation, so the impact prediction's floats are unchanged; importing filterpy.kalman
pulls in ``scipy.stats`` (~0.5 s of CPU at the first impact prediction of every run),
this module only numpy. tests/test_unscented.py holds it to filterpy bit for bit.

Sigma points of an n-dimensional Gaussian (mean x, covariance P), kappa >= 0:
``chi_0 = x``, ``chi_k = x + U_k``, ``chi_(n+k) = x - U_k`` (k = 1..n) where the rows
``U_k`` satisfy ``U^T U = (n + kappa) P``; weights ``kappa / (n + kappa)`` for the centre
and ``1 / (2 (n + kappa))`` for the others, the same for mean and covariance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class JulierSigmaPoints:
    """Julier's 2n + 1 symmetric sigma points in n dimensions (``Wm``/``Wc``: weights)."""

    def __init__(
        self,
        n: int,
        *,
        kappa: float = 0.0,
        sqrt_method: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        self.n = n
        self.kappa = kappa
        self.sqrt = sqrt_method  # M -> U with U^T U = M
        self.Wm = np.full(2 * n + 1, 0.5 / (n + kappa))
        self.Wm[0] = kappa / (n + kappa)
        self.Wc = self.Wm

    def sigma_points(self, x: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Sigma points (2n + 1, n) of mean ``x`` (n,) and covariance ``P`` (n, n), in
        their units; row 0 is the mean, rows 1..n ``x + U_k``, rows n+1..2n ``x - U_k``."""
        n = self.n
        x = np.asarray(x, dtype=float)
        if x.size != n:
            raise ValueError(f"sigma points: mean has {x.size} elements, expected {n}")
        U = self.sqrt((n + self.kappa) * np.atleast_2d(P))
        sigmas = np.empty((2 * n + 1, n))
        sigmas[0] = x
        sigmas[1 : n + 1] = x - (-U)  # filterpy adds as subtract(x, -U_k): same floats
        sigmas[n + 1 :] = x - U
        return sigmas


def unscented_transform(
    sigmas: np.ndarray, Wm: np.ndarray, Wc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean (n,) and covariance (n, n) of ``sigmas`` (k, n) with mean weights
    ``Wm`` (k,) and covariance weights ``Wc`` (k,), in the points' units."""
    x = np.dot(Wm, sigmas)
    y = sigmas - x[np.newaxis, :]
    return x, np.dot(y.T, np.dot(np.diag(Wc), y))
