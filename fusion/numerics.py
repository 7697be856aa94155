"""The few statistics helpers the tracker used to take from ``scipy.stats`` and filterpy,
computed with the same floating-point operations, so the results are the same bits.

Why (issue 15, fast restart): ``scipy.stats`` costs ~0.8 CPU s to import (it parses
hundreds of docstrings at import), and every filterpy import pulls it in
(``filterpy.common`` -> ``filterpy.kalman`` -> ``filterpy.stats`` -> ``scipy.stats``).
The fusion service builds a tracker before it can answer SERVING, so that import was
most of a restart's CPU. What the tracker needs of them fits in a page:

- :data:`chi2` ``.ppf(q, df)``: the chi-square quantile, ``2 * gammaincinv(df / 2, q)``
  (``scipy.special``), exactly what ``scipy.stats.chi2.ppf`` evaluates for
  ``0 <= q <= 1``, ``df > 0`` (gates, NIS limits, the burnout test);
- :func:`Q_discrete_white_noise`: filterpy's discrete white-noise process noise (a
  piecewise-constant jerk, i.e. white acceleration increments, over ``dt``);
- :class:`JulierSigmaPoints` and :func:`unscented_transform`: filterpy's symmetric
  sigma-point set (Julier's, weights ``1 / (2 (n + kappa))``) and the weighted mean
  and covariance of transformed points (impact prediction).

Each is checked bit for bit against the library it stands in for
(``tests/test_numerics.py``); filterpy is MIT-licensed (R. Labbe), scipy BSD.
Units are those of the caller (``dt`` in s, ``var`` in (unit/s^k)^2 of the modelled
derivative; sigma points in the units of ``x``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import gammaincinv


class _Chi2:
    """The chi-square distribution's quantile function (``scipy.stats.chi2.ppf``)."""

    @staticmethod
    def ppf(q: float | np.ndarray, df: float | np.ndarray) -> np.ndarray:
        """Quantile ``x`` with ``P(X <= x) = q`` for ``X ~ chi2(df)``; ``q`` in [0, 1],
        ``df > 0`` degrees of freedom (``nan`` outside, as scipy.stats gives)."""
        q_arr = np.asarray(q, dtype=np.float64)
        df_arr = np.asarray(df)
        ok = (df_arr > 0) & (q_arr >= 0) & (q_arr <= 1)
        out = 2 * gammaincinv(df_arr / 2, q_arr)
        return np.where(ok, out, np.nan)[()]


chi2 = _Chi2()


def Q_discrete_white_noise(
    dim: int,
    dt: float = 1.0,
    var: float = 1.0,
    block_size: int = 1,
    order_by_dim: bool = True,
) -> np.ndarray:
    """Process noise (``dim * block_size`` square) of the discrete white-noise model of
    order ``dim`` (2: position, velocity; 3: + acceleration; 4: + jerk) over ``dt`` s,
    times the variance ``var``, for ``block_size`` independent axes: ordered by axis
    (``[x x' x'' y y' y'']``) or, with ``order_by_dim=False``, by derivative
    (``[x y z x' y' z' x'' y'' z'']``)."""
    if dim == 2:
        q = [[0.25 * dt**4, 0.5 * dt**3], [0.5 * dt**3, dt**2]]
    elif dim == 3:
        q = [
            [0.25 * dt**4, 0.5 * dt**3, 0.5 * dt**2],
            [0.5 * dt**3, dt**2, dt],
            [0.5 * dt**2, dt, 1],
        ]
    elif dim == 4:
        q = [
            [(dt**6) / 36, (dt**5) / 12, (dt**4) / 6, (dt**3) / 6],
            [(dt**5) / 12, (dt**4) / 4, (dt**3) / 2, (dt**2) / 2],
            [(dt**4) / 6, (dt**3) / 2, dt**2, dt],
            [(dt**3) / 6, (dt**2) / 2, dt, 1.0],
        ]
    else:
        raise ValueError(f"dim: {dim!r}; must be 2, 3 or 4")
    block = np.array(q, dtype=np.float64)
    out = np.zeros((dim * block_size, dim * block_size))
    for b in range(block_size):
        for i in range(dim):
            for j in range(dim):
                if order_by_dim:  # axis b's block on the diagonal
                    out[b * dim + i, b * dim + j] = block[i, j]
                else:  # derivative i, j of axis b
                    out[i * block_size + b, j * block_size + b] = block[i, j]
    return out * var


class JulierSigmaPoints:
    """Julier's symmetric sigma points of an ``n``-dimensional Gaussian: the mean and
    ``x +- U[k]`` for the rows of ``U`` with ``U^T U = (n + kappa) P``; weights
    ``kappa / (n + kappa)`` for the mean, ``1 / (2 (n + kappa))`` for the others
    (``Wm`` = ``Wc``). ``sqrt_method(M)`` returns that ``U``."""

    def __init__(
        self, n: int, kappa: float = 0.0, *, sqrt_method: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        self.n = n
        self.kappa = kappa
        self.sqrt = sqrt_method
        self.Wm = np.full(2 * n + 1, 0.5 / (n + kappa))
        self.Wm[0] = kappa / (n + kappa)
        self.Wc = self.Wm

    def sigma_points(self, x: np.ndarray, P: np.ndarray) -> np.ndarray:
        """The ``2n + 1`` sigma points (rows) of mean ``x`` (n,) and covariance ``P``
        (n, n), the mean first, then ``x + U[k]``, then ``x - U[k]``."""
        n = self.n
        if np.size(x) != n:
            raise ValueError(f"x: {np.size(x)} values, expected {n}")
        U = self.sqrt((n + self.kappa) * np.atleast_2d(P))
        sigmas = np.zeros((2 * n + 1, n))
        sigmas[0] = x
        for k in range(n):
            sigmas[k + 1] = np.subtract(x, -U[k])
            sigmas[n + k + 1] = np.subtract(x, U[k])
        return sigmas


def unscented_transform(
    sigmas: np.ndarray, Wm: np.ndarray, Wc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean (n,) and covariance (n, n) of the points ``sigmas`` (k, n) with mean
    weights ``Wm`` (k,) and covariance weights ``Wc`` (k,)."""
    x = np.dot(Wm, sigmas)
    y = sigmas - x[np.newaxis, :]
    return x, np.dot(y.T, np.dot(np.diag(Wc), y))
