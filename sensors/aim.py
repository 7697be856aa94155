"""The aim solver shared by the ballistic (:mod:`.missiles`) and glide (:mod:`.glide`)
flights: damped Newton on finite differences over a few flight parameters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .missile_profiles import MissileError


def damped_newton(
    residual: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    steps: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    converged: Callable[[np.ndarray], bool],
    iterations: int,
) -> np.ndarray:
    """Parameters ``x`` (n,) driving ``residual(x)`` (m,) towards zero: forward-difference
    Jacobian with ``steps`` (n,), least-squares Newton step, halved (8 times at most)
    until the residual norm falls, clipped to [``lo``, ``hi``]; stops when
    ``converged(residual)``, after ``iterations`` steps, or when no step helps. A
    parameter set whose flight fails (MissileError) counts as no improvement."""
    f = residual(x)
    for _ in range(iterations):
        if converged(f):
            break
        jac = np.empty((f.size, x.size))
        for j in range(x.size):
            xp = x.copy()
            xp[j] += steps[j]
            jac[:, j] = (residual(xp) - f) / steps[j]
        dx = np.linalg.lstsq(jac, -f, rcond=None)[0]
        lam = 1.0
        for _ls in range(8):  # damped Newton: accept the first step that reduces the miss
            xn = np.clip(x + lam * dx, lo, hi)
            try:
                fn = residual(xn)
            except MissileError:
                fn = None
            if fn is not None and np.linalg.norm(fn) < np.linalg.norm(f):
                break
            lam *= 0.5
        else:
            break
        x, f = xn, fn
    return x
