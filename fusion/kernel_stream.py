"""The compiled loop behind :func:`.kernels.stream_groups` (the stream consensus of
:mod:`.tracker.stream`): the neighbour search, the time-of-flight window and the grouped
medians as one pass over the stream's tracks; plain Python over arrays, compiled by numba
there (correct but slow if run uncompiled).

It answers what :func:`.tracker.stream._groups` answers with scipy and numpy, float for
float:

- neighbours: the pairs ``cKDTree(pos).query_pairs(radius)`` finds, a squared distance
  summed as the k-d tree sums it (``s = 0; s += d*d`` per axis in axis order, scipy's
  ``sqeuclidean_distance_double`` for three axes) and kept when ``s <= radius**2`` (the
  tree's test; a sweep along the widest axis instead of a tree, over the points within
  ``radius`` of it along that axis, widened by far more than rounding: a superset);
- the flight time ``dt = (d . v) / (v . v)`` of each neighbour, each dot product summed
  as :func:`.tracker.stream._dot3` sums it, and the window ``|dt| <= window`` (a zero
  ``v . v`` gives numpy's not-a-number or infinity: outside);
- per group, the median of each column of the values and of their absolute deviations
  from it: the middle value, or of an even count the two middle ones' ``0.5 * (a + b)``
  (the padded sort's expression): order statistics, the same whatever the sort.

A non-finite input or value returns -1 (nothing written): the numpy code decides then.
:data:`HELPERS` are the functions the loop calls (compiled and bound here first).
"""

from __future__ import annotations

import numpy as np

from .kernel_threads import _sweep_axis

#: the functions the loop calls: compiled (and bound in this module) before it
HELPERS: tuple[str, ...] = ("_sweep_axis", "_select", "_median")


_INSERTION_MAX = 12  # values up to which a group's column is sorted by insertion


def _median(values: np.ndarray, m: int) -> float:
    """The median of ``values[:m]`` (m >= 1; reordered in place): the middle value, or
    the mean ``0.5 * (a + b)`` of the two middle ones (order statistics: a sort's or a
    selection's, the same values)."""
    if m <= _INSERTION_MAX:
        for i in range(1, m):
            v = values[i]
            j = i - 1
            while j >= 0 and values[j] > v:
                values[j + 1] = values[j]
                j -= 1
            values[j + 1] = v
        return 0.5 * (values[(m - 1) // 2] + values[m // 2])
    k = (m - 1) // 2
    low = _select(values, m, k)
    if m % 2:
        return 0.5 * (low + low)
    high = values[k + 1]  # the next order statistic: the least of what lies above k
    for i in range(k + 2, m):
        if values[i] < high:
            high = values[i]
    return 0.5 * (low + high)


def _select(values: np.ndarray, m: int, k: int) -> float:
    """The ``k``-th smallest of ``values[:m]`` (quickselect, median-of-three pivot, a
    branch-free Lomuto partition; the last few values sorted by insertion), left at
    ``values[k]`` with no greater value before it and no smaller one after."""
    lo, hi = 0, m - 1
    rounds = 0
    while hi - lo > _INSERTION_MAX:
        rounds += 1
        if rounds > 64:  # many equal values: a partition that does not shrink
            break
        mid = (lo + hi) // 2
        if values[mid] < values[lo]:
            values[mid], values[lo] = values[lo], values[mid]
        if values[hi] < values[lo]:
            values[hi], values[lo] = values[lo], values[hi]
        if values[hi] < values[mid]:
            values[hi], values[mid] = values[mid], values[hi]
        values[mid], values[hi] = values[hi], values[mid]  # the pivot to the end
        pivot = values[hi]
        store = lo
        for i in range(lo, hi):
            v = values[i]
            values[i] = values[store]
            values[store] = v
            store += v < pivot
        values[hi] = values[store]
        values[store] = pivot
        if k == store:
            return pivot
        if k < store:
            hi = store - 1
        else:
            lo = store + 1
    for i in range(lo + 1, hi + 1):
        v = values[i]
        j = i - 1
        while j >= lo and values[j] > v:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = v
    return values[k]


def _stream_groups(
    x: np.ndarray,
    radius: float,
    window: float,
    n_min: int,
    crowd: np.ndarray,
    size: np.ndarray,
    med: np.ndarray,
    mad: np.ndarray,
) -> int:
    """For each track (states ``x`` (N, 9): position m, velocity, acceleration) with at
    least ``n_min`` group members (itself and its neighbours within ``radius`` m whose
    flight time to it is within ``window`` s), in order: its index into
    ``crowd`` (N,), its group's size into ``size`` (N,), the per-column medians of the
    members' values (velocity taken back by ``a dt``) into ``med`` (N, 6) and of their
    absolute deviations into ``mad`` (N, 6). Returns how many tracks, or -1 (a value not
    finite: the caller's numpy code decides)."""
    n = x.shape[0]
    pos, va = x[:, :3], x[:, 3:]
    r2 = radius * radius  # (the k-d tree's bound: its squared distances are compared to it)
    for i in range(n):
        for k in range(9):
            if not np.isfinite(x[i, k]):
                return -1
    if n == 0:
        return 0
    c, order, key = _sweep_axis(pos)
    member = np.empty(n, np.int64)
    dts = np.empty(n)
    vals = np.empty((n, 6))
    buf = np.empty(n)
    count = 0
    reach = radius * (1.0 + 1e-9) + 1e-6  # along the axis: a superset of the neighbours
    for i in range(n):
        x0, x1, x2, xc = pos[i, 0], pos[i, 1], pos[i, 2], pos[i, c]
        m = 0
        first = np.searchsorted(key, xc - reach)
        last = np.searchsorted(key, xc + reach, side="right")
        for p in range(first, last):
            j = order[p]
            e0, e1, e2 = x0 - pos[j, 0], x1 - pos[j, 1], x2 - pos[j, 2]
            if j != i:
                s = 0.0
                s += e0 * e0
                s += e1 * e1
                s += e2 * e2
                if not s <= r2:
                    continue
            v0, v1, v2 = va[j, 0], va[j, 1], va[j, 2]
            den = (v0 * v0 + v2 * v2) + v1 * v1
            if den == 0.0:
                continue  # numpy's 0/0 or d/0: not a number or infinite, outside
            dt = ((e0 * v0 + e2 * v2) + e1 * v1) / den
            if not abs(dt) <= window:
                continue
            member[m] = j
            dts[m] = dt
            m += 1
        if m < n_min:
            continue
        for q in range(m):
            j, dt = member[q], dts[q]
            for k in range(3):
                vals[q, k] = va[j, k] + va[j, k + 3] * dt
                vals[q, k + 3] = va[j, k + 3]
        for k in range(6):
            for q in range(m):
                buf[q] = vals[q, k]
                if not np.isfinite(buf[q]):
                    return -1
            mid = _median(buf, m)
            for q in range(m):
                buf[q] = abs(vals[q, k] - mid)
            med[count, k] = mid
            mad[count, k] = _median(buf, m)
        crowd[count] = i
        size[count] = m
        count += 1
    return count
