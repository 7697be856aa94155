"""The compiled assignment behind :func:`.kernels.assign_pairs` (the tracker's global
nearest neighbour, :func:`.association.assign_pairs`): plain Python over arrays, compiled
by numba there (correct but slow if run uncompiled).

It chooses what scipy's ``min_weight_full_bipartite_matching`` (LAPJVsp) chooses on the
graph :func:`.association.assign_pairs` builds, ties included: the same weights, the same
float operations in the same order, the same decision rules. On that graph (``n`` track
rows, ``m`` detection columns and a dummy column per row, ``m + n > n``) LAPJVsp skips its
square-case initialisation and runs one shortest augmenting path search per row, rows in
order, each scanning the row's edges by ascending column (scipy's CSR is canonical). A
search reads and writes only the duals, labels and assignments of the columns it reaches,
all in the row's connected component, and its scans for the next distance visit columns
in ascending order: so it runs here over the component's columns only (ascending), which
gives the same result as over all ``m + n`` without the per-row pass over every column
(the LAPJVsp row loop is quadratic in the frame's tracks, the component loop in the
component's). The reference of each decision is Jonker and Volgenant (1987), *A shortest
augmenting path algorithm for dense and sparse linear assignment problems*.

:data:`HELPERS` are the functions the loop calls (compiled and bound here first).
"""

from __future__ import annotations

import numpy as np

#: the functions the loop calls: compiled (and bound in this module) before it
HELPERS: tuple[str, ...] = ("_ranks", "_graph", "_search")

_NO_KERNEL = -1  # a weight the scipy path would treat otherwise (not finite, or zero)


def _ranks(values: np.ndarray, size: int, out: np.ndarray) -> int:
    """``out[k]`` = rank of ``values[k]`` (< ``size``) among the distinct values (what
    ``np.unique(values, return_inverse=True)`` gives); returns how many are distinct."""
    rank = np.full(size, -1, np.int64)
    for v in values:
        rank[v] = 0
    count = 0
    for v in range(size):
        if rank[v] == 0:
            rank[v] = count
            count += 1
    for k in range(values.shape[0]):
        out[k] = rank[values[k]]
    return count


def _graph(
    ri: np.ndarray, ci: np.ndarray, cost: np.ndarray, dummy: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The graph as CSR rows, each row's entries by ascending column as scipy's canonical
    CSR has them: its pairs (``ri``, ``ci``, weights ``cost`` (K,)), then its dummy
    column ``m + r`` (weight ``dummy[r]``). Returns (row start (n + 1,), column, weight,
    pair index (-1 for a dummy))."""
    k_n, n = ri.shape[0], dummy.shape[0]
    first = np.zeros(n + 1, np.int64)
    for k in range(k_n):
        first[ri[k] + 1] += 1
    for r in range(n):
        first[r + 1] += first[r] + 1  # (+1: the dummy)
    fill = first[:n].copy()
    col = np.empty(k_n + n, np.int64)
    pair = np.empty(k_n + n, np.int64)
    for k in range(k_n):
        r = ri[k]
        p = fill[r]
        fill[r] += 1
        # insertion into the row's sorted entries (a row has a few pairs)
        while p > first[r] and col[p - 1] > ci[k]:
            col[p], pair[p] = col[p - 1], pair[p - 1]
            p -= 1
        col[p], pair[p] = ci[k], k
    for r in range(n):
        col[fill[r]], pair[fill[r]] = m + r, -1
    w = np.empty(k_n + n)
    for t in range(k_n + n):
        w[t] = cost[pair[t]] if pair[t] >= 0 else dummy[col[t] - m]
    return first, col, w, pair


def _search(
    i0: int,
    first: np.ndarray,
    col: np.ndarray,
    w: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    todo: np.ndarray,
    seen: np.ndarray,
) -> bool:
    """One shortest augmenting path search from free row ``i0``, LAPJVsp's decisions
    step for step (module doc); ``state`` = (d, done, lab, v, x, y), updated in place,
    ``d`` infinite and ``done`` False on every column at entry and exit; ``todo`` and
    ``seen`` scratch. False if no free column is reachable."""
    d, done, lab, v, x, y = state
    min_diff, td1, found, n_seen = np.inf, -1, -1, 0
    for t in range(first[i0], first[i0 + 1]):
        j = col[t]
        dj = w[t] - v[j]
        d[j] = dj
        lab[j] = i0
        seen[n_seen] = j
        n_seen += 1
        if dj <= min_diff:
            if dj < min_diff:
                td1, min_diff = -1, dj
            td1 += 1
            todo[td1] = j
    td2 = last = todo.shape[0]
    while True:
        for hp in range(td1 + 1):  # the columns at the least distance, ascending
            if y[todo[hp]] == -1:
                found = todo[hp]
                break
            done[todo[hp]] = True
        while found < 0 and td1 >= 0:
            j0 = todo[td1]
            td1 -= 1
            i = y[j0]
            td2 -= 1
            todo[td2] = j0
            tp = first[i]
            while col[tp] != j0:
                tp += 1
            h = w[tp] - v[j0] - min_diff
            for t in range(first[i], first[i + 1]):
                j = col[t]
                if not done[j]:
                    vj = w[t] - v[j] - h
                    if vj < d[j]:
                        if d[j] == np.inf:
                            seen[n_seen] = j
                            n_seen += 1
                        d[j] = vj
                        lab[j] = i
                        if vj == min_diff:
                            if y[j] == -1:
                                found = j
                                break
                            td1 += 1
                            todo[td1] = j
                            done[j] = True
        if found >= 0:
            break
        # LAPJVsp scans every column in ascending order for the least distance left and
        # keeps those at it in that order: the same list, from the columns reached
        min_diff, last = np.inf, td2
        for k in range(n_seen):
            j = seen[k]
            if not done[j] and d[j] <= min_diff:
                if d[j] < min_diff:
                    td1, min_diff = -1, d[j]
                td1 += 1
                todo[td1] = j
        if td1 < 0:
            break
        if td1 > 0:
            todo[: td1 + 1].sort()
    for k in range(last, todo.shape[0]):  # the duals of the columns settled before the scan
        v[todo[k]] += d[todo[k]] - min_diff
    for k in range(n_seen):
        d[seen[k]] = np.inf
        done[seen[k]] = False
    while found >= 0:  # augment along the labels back to i0
        i = lab[found]
        y[found] = i
        k = found
        found = x[i]
        x[i] = k
        if i == i0:
            return True
    return False


def _assign_pairs(
    track: np.ndarray,
    det: np.ndarray,
    d2: np.ndarray,
    logdet: np.ndarray,
    gates: np.ndarray,
    adjust: np.ndarray,
    out: np.ndarray,
) -> int:
    """:func:`.association.assign_pairs` of K pairs (``adjust`` (K,) or empty): writes the
    chosen pairs' indices, by track, to ``out`` (K,) and returns how many; -1 where
    scipy's path would see a weight this loop does not reproduce (not finite, or zero
    after the shift: scipy drops zeros), so the caller runs that path."""
    ok = np.flatnonzero(d2 <= gates[track])
    cnt = ok.shape[0]
    if cnt <= 1:  # none, or one pair: unambiguous
        out[:cnt] = ok
        return cnt
    ri, ci = np.empty(cnt, np.int64), np.empty(cnt, np.int64)
    n = _ranks(track[ok], gates.shape[0], ri)
    m = _ranks(det[ok], det[ok].max() + 1, ci)
    if n == cnt and m == cnt:  # one candidate each way: no solver
        for k in range(cnt):
            out[ri[k]] = ok[k]
        return cnt
    cost, row_gate, ld_min = np.empty(cnt), np.empty(n), np.full(n, np.inf)
    for k in range(cnt):
        o, r = ok[k], ri[k]
        if not np.isfinite(logdet[o]):
            return _NO_KERNEL
        cost[k] = d2[o] + logdet[o] if adjust.shape[0] == 0 else d2[o] + logdet[o] + adjust[o]
        row_gate[r] = gates[track[o]]
        ld_min[r] = min(ld_min[r], logdet[o])
    dummy = row_gate + ld_min
    low = min(cost.min(), dummy.min())
    if not (np.isfinite(low) and np.isfinite(cost).all() and np.isfinite(dummy).all()):
        return _NO_KERNEL
    shift = 1.0 - low
    cost += shift
    dummy += shift
    if (cost == 0.0).any() or (dummy == 0.0).any():
        return _NO_KERNEL
    first, col, w, pair = _graph(ri, ci, cost, dummy, m)
    nc = n + m
    state = (np.full(nc, np.inf), np.zeros(nc, np.bool_), np.zeros(nc, np.int64), np.zeros(nc),
             np.full(n, -1, np.int64), np.full(nc, -1, np.int64))  # fmt: skip
    todo, seen = np.empty(nc, np.int64), np.empty(nc, np.int64)
    for r in range(n):
        if not _search(r, first, col, w, state, todo, seen):
            return _NO_KERNEL
    x, count = state[4], 0
    for r in range(n):
        if x[r] < m:  # a detection, not the dummy: find the pair
            t = first[r]
            while col[t] != x[r]:
                t += 1
            out[count] = ok[pair[t]]
            count += 1
    return count
