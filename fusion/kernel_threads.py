"""The compiled nearest-neighbour loop behind :func:`.kernels.two_nearest` (the detection
threads' :func:`.threads._two_nearest` above its dense size): plain Python over arrays,
compiled by numba there (correct but slow if run uncompiled).

It answers what scipy's ``cKDTree(b).query(a, k=2)`` answers, float for float: each
squared distance is summed as the k-d tree sums it (``s = 0; s += d*d`` per axis in axis
order, ``d = a - b``; scipy's ``sqeuclidean_distance_double`` for three axes), ranked
by that sum as the tree ranks it, and returned as ``sqrt(s)`` squared (the tree returns
``sqrt(s)``, the caller squares it). The search is a sweep along the axis of ``b``'s
widest spread instead of a tree; a candidate is skipped only when its squared difference
along that axis alone already exceeds the second-best sum (a sum of non-negative
squares rounds to no less than any of its terms, so nothing that could rank is skipped).
Of two points at exactly the same sum the lower index ranks first (the tree's order among
exact ties is its own; the threads never accept a pick whose runner-up ties it).
:data:`HELPERS` are the functions the loop calls."""

from __future__ import annotations

import math

import numpy as np

#: the functions the loop calls: compiled (and bound in this module) before it
HELPERS: tuple[str, ...] = ("_sweep_axis",)


def _sweep_axis(b: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """The axis ``c`` of the widest spread of the points ``b`` (M, 3) (the first of equal
    spreads), the order ``order`` (M,) of the points along it (stable) and their sorted
    coordinates ``key`` (M,) on it: a sweep's index (:func:`_two_nearest`,
    :mod:`.kernel_stream`)."""
    c, widest = 0, -1.0
    for k in range(3):
        lo, hi = np.inf, -np.inf
        for j in range(b.shape[0]):
            lo, hi = min(lo, b[j, k]), max(hi, b[j, k])
        if hi - lo > widest:
            c, widest = k, hi - lo
    col = np.empty(b.shape[0])
    for j in range(b.shape[0]):
        col[j] = b[j, c]
    order = np.argsort(col, kind="mergesort")
    return c, order, col[order]


def _two_nearest(
    a: np.ndarray, b: np.ndarray, d1: np.ndarray, j1: np.ndarray, d2: np.ndarray
) -> None:
    """For each row of ``a`` (N, 3): the squared distance ``d1`` (N,) to its nearest row
    of ``b`` (M, 3), that row ``j1`` (N,) (-1 if ``b`` is empty) and the squared distance
    ``d2`` (N,) to the second nearest (inf if none), in cKDTree's floats (module doc)."""
    n, m = a.shape[0], b.shape[0]
    c, order, key = _sweep_axis(b)
    for i in range(n):
        x0, x1, x2, xc = a[i, 0], a[i, 1], a[i, 2], a[i, c]
        s1, s2, k1 = np.inf, np.inf, -1
        start = np.searchsorted(key, xc)
        for step in (1, -1):  # up the sorted axis from start, then down from start - 1
            p = start if step == 1 else start - 1
            while 0 <= p < m:
                dc = xc - key[p]
                if dc * dc > s2:
                    break
                j = order[p]
                e0, e1, e2 = x0 - b[j, 0], x1 - b[j, 1], x2 - b[j, 2]
                s = 0.0
                s += e0 * e0
                s += e1 * e1
                s += e2 * e2
                if s < s1 or (s == s1 and j < k1):
                    s2, s1, k1 = s1, s, j
                elif s < s2:
                    s2 = s
                p += step
        r1, r2 = math.sqrt(s1), math.sqrt(s2)
        d1[i], j1[i], d2[i] = r1 * r1, k1, r2 * r2
