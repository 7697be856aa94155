"""The compiled loop behind :func:`.kernels.near_pairs` (the merge's candidate pairs,
:func:`.tracker.lifecycle.near_pairs`): plain Python over arrays, compiled by numba there
(correct but slow if run uncompiled).

It answers what the numpy code answers (a k-d tree asked for a slightly larger radius,
then the full distance matrix's own test): every pair ``(i, j)``, ``i < j``, of finite
positions whose distance ``sqrt((dx*dx + dy*dy) + dz*dz)`` (``d = pos[i] - pos[j]``:
:func:`.dynamics.norm3`'s expression) is below the radius, in row-major order. The search
is a sweep along the axis of the widest spread (:func:`.kernel_threads._sweep_axis`) over
the points within the radius of it along that axis, widened by far more than rounding (a
superset: a distance is no less than its difference along one axis); each row's pairs
sorted by ``j``. The merge's first screen (a pair farther apart than its position
covariances' traces allow is out) can be applied in the same pass, so the pairs it drops
are never gathered. :data:`HELPERS` are the functions the loop calls."""

from __future__ import annotations

import math

import numpy as np

from .kernel_threads import _sweep_axis

#: the functions the loop calls: compiled (and bound in this module) before it
HELPERS: tuple[str, ...] = ("_sweep_axis",)


def _near_pairs(
    pos: np.ndarray, radius: float, trace: np.ndarray, chi2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)``, ``i < j``, row-major, of the positions ``pos`` (N, 3) m (all
    finite) less than ``radius`` m apart (module docstring); with ``chi2 > 0`` only those
    the merge's screen keeps: ``|d|^2 <= chi2 (trace[i] + trace[j]) (1 + 1e-9)``
    (``trace`` (N,) m^2: each position covariance's trace; ``|d|^2`` summed in einsum's
    order, ``(d0 d0 + d2 d2) + d1 d1``)."""
    n = pos.shape[0]
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    c, order, key = _sweep_axis(pos)
    reach = radius * (1.0 + 1e-9) + 1e-6
    start = np.empty(n + 1, np.int64)  # the pairs of row i: [start[i], start[i + 1])
    cap = 4 * n
    jj = np.empty(cap, np.int64)
    count = 0
    for i in range(n):
        start[i] = count
        x0, x1, x2 = pos[i, 0], pos[i, 1], pos[i, 2]
        xc = pos[i, c]
        first = np.searchsorted(key, xc - reach)
        last = np.searchsorted(key, xc + reach, side="right")
        for p in range(first, last):
            j = order[p]
            if j <= i:
                continue
            d0, d1, d2 = x0 - pos[j, 0], x1 - pos[j, 1], x2 - pos[j, 2]
            if not math.sqrt(d0 * d0 + d1 * d1 + d2 * d2) < radius:
                continue
            if chi2 > 0.0 and (d0 * d0 + d2 * d2) + d1 * d1 > chi2 * (trace[i] + trace[j]) * (
                1.0 + 1e-9
            ):
                continue  # surely not one object (lifecycle.Lifecycle.merge's screen)
            if count == cap:
                cap *= 2
                grown = np.empty(cap, np.int64)
                grown[:count] = jj[:count]
                jj = grown
            jj[count] = j
            count += 1
        jj[start[i] : count] = np.sort(jj[start[i] : count])
    start[n] = count
    ii = np.empty(count, np.int64)
    for i in range(n):
        ii[start[i] : start[i + 1]] = i
    return ii, jj[:count].copy()
