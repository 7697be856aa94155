"""The compiled loops over the tracker's stacked rows (:class:`.tracker.rows.StateRows`)
behind :mod:`.kernels`: the ``may_gate`` screen (:mod:`.association`), over gathered rows
or, indexed, over the stack itself, and the short-step predict of rows in place (the
stack's ``sync``); plain Python over arrays, compiled by numba there (correct but slow if
run uncompiled). The indexed loops compute each row with the same per-row code as the
loops over gathered rows (:func:`_may_gate_row`, :func:`.kernel_filters._predict_row`),
so the floats and decisions are the same; they only skip the gathers and the scatter
back. :data:`HELPERS` are the functions the loops call (compiled first)."""

from __future__ import annotations

import math

import numpy as np

from .kernel_filters import _predict_row, _predict_scratch

_G_MAX = 10.0  # m/s^2 (association._G_MAX)
_MISS_FLOOR_M = 10.0  # m (association._MISS_FLOOR_M)
_MAY_GATE_FACTOR = 2.0  # association._MAY_GATE_FACTOR
_NS_PER_S = 1_000_000_000  # domain.NS_PER_S
#: the functions the loops call: compiled (and bound in this module) before any loop
HELPERS = ("_may_gate_row", "_predict_row", "_predict_scratch")


def _may_gate(
    x: np.ndarray,
    var: np.ndarray,
    dt: np.ndarray,
    sensor: np.ndarray,
    los: np.ndarray,
    s2_max: float,
    gates: np.ndarray,
    first_only: bool,
    out: np.ndarray,
) -> bool:
    """association.may_gate's bound per row (``var`` (N, 9) the diagonals of P), into
    ``out`` (N,) bool; with ``first_only``, stops at the first row kept. Returns whether
    any row was kept."""
    found = False
    for k in range(x.shape[0]):
        keep = _may_gate_row(x[k], var[k], dt[k], sensor, los, s2_max, gates[k])
        out[k] = keep
        if keep:
            found = True
            if first_only:
                return True
    return found


def _may_gate_row(
    x: np.ndarray,
    var: np.ndarray,
    t: float,
    sensor: np.ndarray,
    los: np.ndarray,
    s2_max: float,
    gate: float,
) -> bool:
    """association.may_gate's bound for one row ``x`` (9,) with the diagonal ``var``
    (9,) of its P, ``t`` s older than the frame: may it gate a detection ``los``?"""
    dx = x[0] + x[3] * t - sensor[0]
    dy = x[1] + x[4] * t - sensor[1]
    dz = x[2] + x[5] * t - sensor[2]
    rho = math.sqrt(dx * dx + dy * dy + dz * dz)
    s_r = math.sqrt(var[0] + var[1] + var[2])
    s_v = math.sqrt(var[3] + var[4] + var[5])
    s_a = math.sqrt(var[6] + var[7] + var[8])
    a_norm = math.sqrt(x[6] * x[6] + x[7] * x[7] + x[8] * x[8])
    sigma_pos = s_r + t * s_v + 0.5 * t * t * s_a
    miss_m = 0.5 * (_G_MAX + a_norm) * t * t + _MISS_FLOOR_M
    if not (rho > 0.0) or not math.isfinite(rho):
        return True
    q = sigma_pos / rho
    tan_gate = math.sqrt(gate * (q * q + s2_max))
    angle = _MAY_GATE_FACTOR * math.atan(tan_gate) + miss_m / rho
    if not math.isfinite(angle) or not (angle < math.pi):
        return True
    c_min = math.cos(angle) * rho  # compare d . l against cos * rho
    for j in range(los.shape[0]):
        if dx * los[j, 0] + dy * los[j, 1] + dz * los[j, 2] >= c_min:
            return True
    return False


def _may_gate_at(
    x: np.ndarray,
    P: np.ndarray,
    t_ns: np.ndarray,
    rows: np.ndarray,
    frame_ns: int,
    sensor: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
    out: np.ndarray,
) -> int:
    """:func:`_may_gate` of the stack's rows ``rows`` (R,) (states ``x`` (N, 9), ``P``
    (N, 9, 9) at data times ``t_ns`` (N,) ns; ``gates`` (R,)) for a frame at ``frame_ns``
    with detections ``los`` (M >= 1, 3), ``sigma`` (M,) rad: writes the positions in
    ``rows`` of the rows kept to ``out`` (R,), returns how many."""
    s2_max = -np.inf  # numpy's max of sigma**2 (not a number if any is not)
    for s in sigma:
        v = s * s
        if v != v:
            s2_max = v
            break
        s2_max = max(s2_max, v)
    var = np.empty(9)
    count = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        for i in range(9):
            var[i] = P[r, i, i]
        t = (frame_ns - t_ns[r]) / _NS_PER_S  # (numpy's int64 difference, true-divided)
        if _may_gate_row(x[r], var, t, sensor, los, s2_max, gates[k]):
            out[count] = k
            count += 1
    return count


def _predict_at(
    x: np.ndarray,
    P: np.ndarray,
    t_ns: np.ndarray,
    rows: np.ndarray,
    to_ns: int,
    inv_tau: np.ndarray,
    qa: np.ndarray,
    qj: np.ndarray,
    max_step: float,
) -> int:
    """Short-step predict, in place, of the stack's rows among ``rows`` (indices, any
    order, repeats allowed) whose data time ``t_ns`` is before ``to_ns``, to ``to_ns``
    (per-row Singer rate ``inv_tau`` 1/s, PSDs ``qa``, ``qj``; all (N,)): what
    ``filters.predict`` gives those rows gathered in ascending order, written back.
    Returns how many rows moved, or -1 (nothing done) if a step exceeds ``max_step`` s
    (then the whole batch takes the long-step path)."""
    stale = np.zeros(x.shape[0], np.bool_)
    for r in rows:
        if t_ns[r] < to_ns:
            stale[r] = True
    idx = np.flatnonzero(stale)
    if idx.shape[0] == 0:
        return 0
    dt = np.empty(idx.shape[0])
    for k in range(idx.shape[0]):
        dt[k] = (to_ns - t_ns[idx[k]]) / _NS_PER_S
        if not abs(dt[k]) <= max_step:
            return -1
    scratch = _predict_scratch()
    x_in, P_in = np.empty(9), np.empty((9, 9))
    for k in range(idx.shape[0]):
        r = idx[k]
        x_in[:] = x[r]
        P_in[:, :] = P[r]
        _predict_row(x_in, P_in, dt[k], inv_tau[r], qa[r], qj[r], x[r], P[r], scratch)
        t_ns[r] = to_ns
    return idx.shape[0]
