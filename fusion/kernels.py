"""Compiled kernels for the tracker's per-row loops (numba), with numpy fallbacks.

The batched filter and gating functions of :mod:`.filters`, :mod:`.association` and
:mod:`.dynamics` are written over arrays with numpy; for the small matrices of one
track (9x9 covariances, 2x2 innovations) each numpy call costs ~1-3 us of overhead
whatever its size, so a predict of a few rows pays ~100 calls and a raid frame's
screen of 3,000 rows builds several (N, M) temporaries. Here the same formulas run
as one compiled loop per row (numba, ``@njit(cache=True)``): the short-step predict
with its process noise and ``Phi P Phi^T``, the angular screen ``may_gate``, the
gating of candidate pairs, and the Joseph-form update.

The kernels compute the same quantities as the numpy code they stand in for, with
the same formulas, but their sums run in a fixed in-order loop where numpy uses BLAS
(``dgemm`` blocks its products its own way) or pairwise sums: results agree to
rounding (relative ~1e-15 per operation), not bit for bit. Digests of ``/tracks``
were recorded with the kernels on (DESIGN §9).

Compilation: lazily, at the first call of each kernel, and cached on disk by numba
(``cache=True``: next to this module in ``__pycache__``, or numba's user cache
directory where that is not writable; ``NUMBA_CACHE_DIR`` overrides). A fresh
checkout compiles once (~2-3 s for all kernels) and later processes load the cache
(~0.1-0.2 s). Set ``TRACKLAYER_JIT=0`` to use the numpy fallbacks; a machine where
numba is missing or fails to compile falls back by itself (one warning), so the
tracker never depends on a working JIT.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .constants import GM_EARTH, J2, OMEGA_EARTH, R_EARTH_EQ, R_EARTH_POLAR
from .dynamics import AIR_TOP_M, RHO0_KG_M3, SCALE_HEIGHT_M

#: environment variable: "0" turns the compiled kernels off (numpy fallbacks)
JIT_ENV = "TRACKLAYER_JIT"

_K_J2 = 1.5 * J2 * GM_EARTH * R_EARTH_EQ**2  # m^5/s^2 (as dynamics._K_J2)
_G_MAX = 10.0  # m/s^2 (association._G_MAX)
_MISS_FLOOR_M = 10.0  # m (association._MISS_FLOOR_M)
_MAY_GATE_FACTOR = 2.0  # association._MAY_GATE_FACTOR
_SCREEN_FACTOR = 2.0  # association._SCREEN_FACTOR
_SCREEN_FLOOR = 1e-14  # association._SCREEN_FLOOR
_SCREEN_MAX_COND = 1e6  # association._SCREEN_MAX_COND
_SCREEN_COS_MARGIN = 1.0 - 1e-12  # association._SCREEN_COS_MARGIN
_TINY = float(np.nextafter(0.0, 1.0))


# ---------------------------------------------------------------------- the kernels
# Plain Python over arrays (compiled by numba; slow but correct if run uncompiled).


def _predict_short(
    x: np.ndarray,
    P: np.ndarray,
    dt: np.ndarray,
    inv_tau: np.ndarray,
    qa: np.ndarray,
    qj: np.ndarray,
    xo: np.ndarray,
    Po: np.ndarray,
) -> None:
    """Short-step predict of rows ``x`` (N, 9), ``P`` (N, 9, 9) over ``dt`` (N,) s into
    ``xo``, ``Po``: dynamics.propagate_short's Taylor step and transition matrix,
    ``Phi P Phi^T`` plus dynamics.process_noise over ``|dt|`` (PSDs ``qa`` m^2/s^3,
    ``qj`` m^2/s^5), symmetrised (the steps of filters.predict)."""
    n = x.shape[0]
    g = np.empty(3)
    G = np.empty((3, 3))
    C = np.empty((3, 3))
    D = np.empty((3, 3))
    phi = np.empty((9, 9))
    tmp = np.empty((9, 9))
    Q = np.empty((3, 3))
    for k in range(n):
        t = dt[k]
        it = inv_tau[k]
        # point-mass + J2 gravity and its gradient (dynamics.gravity, gravity_gradient)
        rx, ry, rz = x[k, 0], x[k, 1], x[k, 2]
        r2 = rx * rx + ry * ry + rz * rz
        inv_r2 = 1.0 / r2
        inv_r3 = 1.0 / (r2 * math.sqrt(r2))
        inv_r5 = inv_r3 * inv_r2
        s = rz * rz * inv_r2
        kr5 = _K_J2 * inv_r5
        for i in range(3):
            w = 5.0 * s - (3.0 if i == 2 else 1.0)
            ri = x[k, i]
            g[i] = ri * (-GM_EARTH * inv_r3 + kr5 * w)
            c_rr = 3.0 * GM_EARTH * inv_r5 - kr5 * inv_r2 * (10.0 * s + 5.0 * w)
            for j in range(3):
                G[i, j] = ri * c_rr * x[k, j]
            G[i, i] += -GM_EARTH * inv_r3 + kr5 * w
            G[i, 2] += 10.0 * kr5 * inv_r2 * rz * ri
        t2 = t * t
        t3 = t2 * t
        t4 = t3 * t
        xi = t * it
        e = math.exp(-xi)
        if abs(xi) < 1e-4:
            i1 = t - 0.5 * t2 * it
            i2 = 0.5 * t2 - t3 * it / 6.0
        else:
            i1 = (1.0 - e) / it
            i2 = (t - i1) / it
        for i in range(3):
            jg = G[i, 0] * x[k, 3] + G[i, 1] * x[k, 4] + G[i, 2] * x[k, 5]
            sg = (
                G[i, 0] * (g[0] + x[k, 6])
                + G[i, 1] * (g[1] + x[k, 7])
                + G[i, 2] * (g[2] + x[k, 8])
            )
            r, v, a = x[k, i], x[k, 3 + i], x[k, 6 + i]
            xo[k, i] = r + v * t + g[i] * (0.5 * t2) + a * i2 + jg * (t3 / 6.0) + sg * (t4 / 24.0)
            xo[k, 3 + i] = v + g[i] * t + a * i1 + jg * (0.5 * t2) + sg * (t3 / 6.0)
            xo[k, 6 + i] = a * e
        C[0, 0] = 1.0
        C[0, 1] = t
        C[0, 2] = i2
        C[1, 0] = 0.0
        C[1, 1] = 1.0
        C[1, 2] = i1
        C[2, 0] = 0.0
        C[2, 1] = 0.0
        C[2, 2] = e
        D[0, 0] = 0.5 * t2
        D[0, 1] = t3 / 6.0
        D[0, 2] = t4 / 24.0
        D[1, 0] = t
        D[1, 1] = 0.5 * t2
        D[1, 2] = t3 / 6.0
        D[2, 0] = 0.0
        D[2, 1] = 0.0
        D[2, 2] = 0.0
        for bi in range(3):
            for bj in range(3):
                for a_ in range(3):
                    for b_ in range(3):
                        val = D[bi, bj] * G[a_, b_]
                        if a_ == b_:
                            val += C[bi, bj]
                        phi[3 * bi + a_, 3 * bj + b_] = val
        # tmp = phi P, then Po = tmp phi^T
        for i in range(9):
            for j in range(9):
                acc = 0.0
                for m in range(9):
                    acc += phi[i, m] * P[k, m, j]
                tmp[i, j] = acc
        for i in range(9):
            for j in range(9):
                acc = 0.0
                for m in range(9):
                    acc += tmp[i, m] * phi[j, m]
                Po[k, i, j] = acc
        # process noise: qa kron(A, I3) + qj kron(J, I3) over |dt|
        ta = abs(t)
        s2 = ta * ta
        s3 = s2 * ta
        s4 = s3 * ta
        s5 = s4 * ta
        A = qa[k]
        B = qj[k]
        Q[0, 0] = A * (s3 / 3.0) + B * (s5 / 20.0)
        Q[0, 1] = A * (s2 / 2.0) + B * (s4 / 8.0)
        Q[0, 2] = B * (s3 / 6.0)
        Q[1, 0] = Q[0, 1]
        Q[1, 1] = A * ta + B * (s3 / 3.0)
        Q[1, 2] = B * (s2 / 2.0)
        Q[2, 0] = Q[0, 2]
        Q[2, 1] = Q[1, 2]
        Q[2, 2] = B * ta
        for bi in range(3):
            for bj in range(3):
                for a_ in range(3):
                    Po[k, 3 * bi + a_, 3 * bj + a_] += Q[bi, bj]
        for i in range(9):
            for j in range(i + 1, 9):
                m = 0.5 * (Po[k, i, j] + Po[k, j, i])
                Po[k, i, j] = m
                Po[k, j, i] = m


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
    n = x.shape[0]
    m = los.shape[0]
    found = False
    for k in range(n):
        t = dt[k]
        dx = x[k, 0] + x[k, 3] * t - sensor[0]
        dy = x[k, 1] + x[k, 4] * t - sensor[1]
        dz = x[k, 2] + x[k, 5] * t - sensor[2]
        rho = math.sqrt(dx * dx + dy * dy + dz * dz)
        s_r = math.sqrt(var[k, 0] + var[k, 1] + var[k, 2])
        s_v = math.sqrt(var[k, 3] + var[k, 4] + var[k, 5])
        s_a = math.sqrt(var[k, 6] + var[k, 7] + var[k, 8])
        a_norm = math.sqrt(x[k, 6] * x[k, 6] + x[k, 7] * x[k, 7] + x[k, 8] * x[k, 8])
        sigma_pos = s_r + t * s_v + 0.5 * t * t * s_a
        miss_m = 0.5 * (_G_MAX + a_norm) * t * t + _MISS_FLOOR_M
        keep = False
        if not (rho > 0.0) or not math.isfinite(rho):
            keep = True
        else:
            q = sigma_pos / rho
            tan_gate = math.sqrt(gates[k] * (q * q + s2_max))
            angle = _MAY_GATE_FACTOR * math.atan(tan_gate) + miss_m / rho
            if not math.isfinite(angle) or not (angle < math.pi):
                keep = True
            else:
                c_min = math.cos(angle) * rho  # compare d . l against cos * rho
                for j in range(m):
                    if dx * los[j, 0] + dy * los[j, 1] + dz * los[j, 2] >= c_min:
                        keep = True
                        break
        out[k] = keep
        if keep:
            found = True
            if first_only:
                return True
    return found


def _gate(
    x: np.ndarray,
    P: np.ndarray,
    sensor: np.ndarray,
    los: np.ndarray,
    s2: np.ndarray,
    gates: np.ndarray,
    u: np.ndarray,
    rho: np.ndarray,
    basis: np.ndarray,
    hpos: np.ndarray,
    A: np.ndarray,
    c_min: np.ndarray,
) -> int:
    """First pass of association.gate: predicted LOS ``u`` (N, 3), ranges ``rho`` (N,),
    tangent bases ``basis`` (N, 2, 3) (measurement.tangent_basis), position Jacobians ``hpos`` (N, 2, 3), projected covariances ``A`` (N, 2, 2) and
    the screen's cosine ``c_min`` (N,) (association._candidates); returns the number of
    candidate pairs."""
    n = x.shape[0]
    m = los.shape[0]
    s2_min = np.inf
    s2_max = -np.inf
    mm_min = np.inf
    for j in range(m):
        s2_min = min(s2_min, s2[j])
        s2_max = max(s2_max, s2[j])
        mm_min = min(mm_min, los[j, 0] * los[j, 0] + los[j, 1] * los[j, 1] + los[j, 2] * los[j, 2])
    if m == 0:
        s2_min = s2_max = 0.0
        mm_min = 1.0
    count = 0
    for k in range(n):
        e = basis[k]
        dx = x[k, 0] - sensor[0]
        dy = x[k, 1] - sensor[1]
        dz = x[k, 2] - sensor[2]
        rk = math.sqrt(dx * dx + dy * dy + dz * dz)
        ux, uy, uz = dx / rk, dy / rk, dz / rk
        u[k, 0], u[k, 1], u[k, 2] = ux, uy, uz
        rho[k] = rk
        # tangent basis: e1 = u x k (k the axis least aligned with u), e2 = u x e1
        ax, ay, az = abs(ux), abs(uy), abs(uz)
        if ax <= ay and ax <= az:
            e1x, e1y, e1z = 0.0, uz, -uy
        elif ay <= az:
            e1x, e1y, e1z = -uz, 0.0, ux
        else:
            e1x, e1y, e1z = uy, -ux, 0.0
        nrm = math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
        e1x, e1y, e1z = e1x / nrm, e1y / nrm, e1z / nrm
        e[0, 0], e[0, 1], e[0, 2] = e1x, e1y, e1z
        e[1, 0] = uy * e1z - uz * e1y
        e[1, 1] = uz * e1x - ux * e1z
        e[1, 2] = ux * e1y - uy * e1x
        for a_ in range(2):
            for b_ in range(3):
                hpos[k, a_, b_] = e[a_, b_] / rk
        for a_ in range(2):
            for b_ in range(2):
                acc = 0.0
                for i in range(3):
                    row = 0.0
                    for j in range(3):
                        row += P[k, i, j] * hpos[k, b_, j]
                    acc += hpos[k, a_, i] * row
                A[k, a_, b_] = acc
        a00, a11, a01 = A[k, 0, 0], A[k, 1, 1], A[k, 0, 1]
        lam_hi = max(a00, a11) + abs(a01)
        half = 0.5 * (a00 - a11)
        lam_lo = 0.5 * (a00 + a11) - math.sqrt(half * half + a01 * a01)
        bound = _SCREEN_FACTOR * gates[k] * (lam_hi + s2_max) + _SCREEN_FLOOR
        cm = math.sqrt(mm_min / (1.0 + bound)) * _SCREEN_COS_MARGIN
        safe = lam_lo + s2_min > (lam_hi + s2_min) / _SCREEN_MAX_COND
        if not (safe and cm > _TINY):
            cm = _TINY
        c_min[k] = cm
        for j in range(m):
            if ux * los[j, 0] + uy * los[j, 1] + uz * los[j, 2] >= cm:
                count += 1
    return count


def _gate_pairs(
    x: np.ndarray,
    P: np.ndarray,
    sensor: np.ndarray,
    los: np.ndarray,
    s2: np.ndarray,
    u: np.ndarray,
    basis: np.ndarray,
    A: np.ndarray,
    c_min: np.ndarray,
    ti: np.ndarray,
    mi: np.ndarray,
    y: np.ndarray,
    d2: np.ndarray,
    logdet: np.ndarray,
) -> None:
    """Second pass of association.gate: each candidate pair's residual ``y`` (K, 2) rad,
    ``d2`` and ``ln det S`` (track-major, detections ascending)."""
    n = x.shape[0]
    m = los.shape[0]
    p = 0
    for k in range(n):
        ux, uy, uz = u[k, 0], u[k, 1], u[k, 2]
        e = basis[k]
        for j in range(m):
            den = ux * los[j, 0] + uy * los[j, 1] + uz * los[j, 2]
            if den >= c_min[k]:
                ti[p] = k
                mi[p] = j
                y0 = (e[0, 0] * los[j, 0] + e[0, 1] * los[j, 1] + e[0, 2] * los[j, 2]) / den
                y1 = (e[1, 0] * los[j, 0] + e[1, 1] * los[j, 1] + e[1, 2] * los[j, 2]) / den
                y[p, 0] = y0
                y[p, 1] = y1
                s00 = A[k, 0, 0] + s2[j]
                s11 = A[k, 1, 1] + s2[j]
                s01 = A[k, 0, 1]
                det = s00 * s11 - s01 * s01
                v = (s11 * y0 * y0 - 2.0 * s01 * y0 * y1 + s00 * y1 * y1) / det
                d2[p] = v if math.isfinite(v) else np.inf
                logdet[p] = math.log(det) if det > 0.0 else (-np.inf if det == 0.0 else np.nan)
                p += 1


def _update(
    x: np.ndarray,
    P: np.ndarray,
    y: np.ndarray,
    H: np.ndarray,
    sigma: np.ndarray,
    xo: np.ndarray,
    Po: np.ndarray,
    nis: np.ndarray,
) -> None:
    """Joseph-form EKF update (filters.update) of K rows with 2-D residuals ``y`` (K, 2)
    rad, position Jacobians ``H`` (K, 2, 3) 1/m, noise ``sigma`` (K,) rad."""
    n = x.shape[0]
    PHt = np.empty((9, 2))
    Kg = np.empty((9, 2))
    IKH = np.empty((9, 9))
    tmp = np.empty((9, 9))
    for k in range(n):
        s2 = sigma[k] * sigma[k]
        for i in range(9):
            for a_ in range(2):
                acc = 0.0
                for j in range(3):
                    acc += P[k, i, j] * H[k, a_, j]
                PHt[i, a_] = acc
        s00 = s2
        s01 = 0.0
        s10 = 0.0
        s11 = s2
        for i in range(3):
            s00 += H[k, 0, i] * PHt[i, 0]
            s01 += H[k, 0, i] * PHt[i, 1]
            s10 += H[k, 1, i] * PHt[i, 0]
            s11 += H[k, 1, i] * PHt[i, 1]
        det = s00 * s11 - s01 * s10
        i00, i01, i10, i11 = s11 / det, -s01 / det, -s10 / det, s00 / det
        y0, y1 = y[k, 0], y[k, 1]
        for i in range(9):
            Kg[i, 0] = PHt[i, 0] * i00 + PHt[i, 1] * i10
            Kg[i, 1] = PHt[i, 0] * i01 + PHt[i, 1] * i11
            xo[k, i] = x[k, i] + Kg[i, 0] * y0 + Kg[i, 1] * y1
        nis[k] = y0 * (i00 * y0 + i01 * y1) + y1 * (i10 * y0 + i11 * y1)
        for i in range(9):
            for j in range(9):
                v = 1.0 if i == j else 0.0
                if j < 3:
                    v -= Kg[i, 0] * H[k, 0, j] + Kg[i, 1] * H[k, 1, j]
                IKH[i, j] = v
        for i in range(9):
            for j in range(9):
                acc = 0.0
                for m in range(9):
                    acc += IKH[i, m] * P[k, m, j]
                tmp[i, j] = acc
        for i in range(9):
            for j in range(9):
                acc = 0.0
                for m in range(9):
                    acc += tmp[i, m] * IKH[j, m]
                Po[k, i, j] = acc + s2 * (Kg[i, 0] * Kg[j, 0] + Kg[i, 1] * Kg[j, 1])
        for i in range(9):
            for j in range(i + 1, 9):
                v = 0.5 * (Po[k, i, j] + Po[k, j, i])
                Po[k, i, j] = v
                Po[k, j, i] = v


def _accel_at(r: np.ndarray, v: np.ndarray, inv_beta: float, air: bool, out: np.ndarray) -> None:
    """Gravity (point mass + J2) plus, with ``air``, exponential-atmosphere drag of
    ``1/beta`` (co-rotating air) at ECI ``r`` m, ``v`` m/s into ``out`` (3,) m/s^2: the
    formulas of dynamics.gravity and dynamics.drag."""
    rx, ry, rz = r[0], r[1], r[2]
    r2 = rx * rx + ry * ry + rz * rz
    rn = math.sqrt(r2)
    inv_r3 = 1.0 / (r2 * rn)
    s = rz * rz / r2
    kj = _K_J2 * inv_r3 / r2
    for i in range(3):
        w = 5.0 * s - (3.0 if i == 2 else 1.0)
        out[i] = r[i] * (-GM_EARTH * inv_r3 + kj * w)
    if air:
        s2 = (rz / rn) ** 2
        a, b = R_EARTH_EQ, R_EARTH_POLAR
        h = rn - a * b / math.sqrt(b * b * (1.0 - s2) + a * a * s2)
        if h < AIR_TOP_M:
            rho = RHO0_KG_M3 * math.exp(-max(h, 0.0) / SCALE_HEIGHT_M)
            wx = v[0] + OMEGA_EARTH * ry
            wy = v[1] - OMEGA_EARTH * rx
            wz = v[2]
            c = -0.5 * rho * math.sqrt(wx * wx + wy * wy + wz * wz) * inv_beta
            out[0] += c * wx
            out[1] += c * wy
            out[2] += c * wz


def _height(r: np.ndarray) -> float:
    """dynamics.ellipsoid_height of one ECI/ECEF position (m)."""
    rn = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
    s2 = (r[2] / rn) ** 2
    a, b = R_EARTH_EQ, R_EARTH_POLAR
    return rn - a * b / math.sqrt(b * b * (1.0 - s2) + a * a * s2)


def _to_surface(
    r0: np.ndarray,
    v0: np.ndarray,
    inv_beta: np.ndarray,
    max_flight_s: float,
    step_s: float,
    atmosphere_step_s: float,
    limits: np.ndarray,
    hit_r: np.ndarray,
    hit_t: np.ndarray,
) -> None:
    """impact.propagate_to_surface: RK4 steps of all objects in lockstep (long in vacuum,
    shortened towards and inside the atmosphere; drag computed in a step when any live
    object is below the last limit, as there) until each one's height changes sign,
    then the Hermite crossing. ``limits`` = (top of the atmosphere, approach margin,
    height per air step, air step factor, height below which drag is computed) m;
    ``hit_r`` (K, 3) and ``hit_t`` (K,) stay NaN for an object that does not land in
    ``max_flight_s``."""
    top, margin, per_step, factor, air_below = limits[0], limits[1], limits[2], limits[3], limits[4]
    n = r0.shape[0]
    r = r0.copy()
    v = v0.copy()
    h = np.empty(n)
    t = np.zeros(n)
    done = np.zeros(n, np.bool_)
    rs = np.empty(3)
    vs = np.empty(3)
    k1 = np.empty(3)
    k2 = np.empty(3)
    k3 = np.empty(3)
    k4 = np.empty(3)
    rn = np.empty(3)
    vn = np.empty(3)
    for k in range(n):
        h[k] = _height(r[k])
        if h[k] <= 0.0:
            hit_r[k, :] = r[k, :]
            hit_t[k] = 0.0
            done[k] = True
    while True:
        hmin = np.inf
        live = 0
        for k in range(n):
            if not done[k] and t[k] < max_flight_s:
                live += 1
                hmin = min(hmin, h[k])
        if live == 0:
            break
        air = hmin < air_below
        for k in range(n):
            if done[k] or not t[k] < max_flight_s:
                continue
            rk, vk, hk, ib = r[k], v[k], h[k], inv_beta[k]
            vr = (rk[0] * vk[0] + rk[1] * vk[1] + rk[2] * vk[2]) / math.sqrt(
                rk[0] * rk[0] + rk[1] * rk[1] + rk[2] * rk[2]
            )
            air_dt = min(max(hk / per_step, atmosphere_step_s), factor * atmosphere_step_s)
            if hk > top + margin:
                if vr >= 0.0:
                    dt = step_s
                else:
                    dt = min(max((hk - top) / max(-vr, 1.0), air_dt), step_s)
            else:
                dt = air_dt
            _accel_at(rk, vk, ib, air, k1)
            for i in range(3):
                rs[i] = rk[i] + 0.5 * dt * vk[i]
                vs[i] = vk[i] + 0.5 * dt * k1[i]
            _accel_at(rs, vs, ib, air, k2)
            for i in range(3):
                rn[i] = vs[i]  # v2, kept for the final sum
                rs[i] = rk[i] + 0.5 * dt * vs[i]
                vs[i] = vk[i] + 0.5 * dt * k2[i]
            _accel_at(rs, vs, ib, air, k3)
            for i in range(3):
                vn[i] = vs[i]  # v3
                rs[i] = rk[i] + dt * vs[i]
                vs[i] = vk[i] + dt * k3[i]
            _accel_at(rs, vs, ib, air, k4)
            for i in range(3):
                v2, v3, v4 = rn[i], vn[i], vs[i]
                rn[i] = rk[i] + dt / 6.0 * (vk[i] + 2.0 * (v2 + v3) + v4)
                vn[i] = vk[i] + dt / 6.0 * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i])
            hn = _height(rn)
            if hn <= 0.0:
                f = hk / (hk - hn)
                h00 = 2 * f**3 - 3 * f**2 + 1
                h10 = f**3 - 2 * f**2 + f
                h01 = -2 * f**3 + 3 * f**2
                h11 = f**3 - f**2
                for i in range(3):
                    hit_r[k, i] = h00 * rk[i] + h10 * dt * vk[i] + h01 * rn[i] + h11 * dt * vn[i]
                hit_t[k] = t[k] + f * dt
                done[k] = True
            for i in range(3):
                rk[i] = rn[i]
                vk[i] = vn[i]
            h[k] = hn
            t[k] += dt


def _launch_fit(
    tau: np.ndarray,
    r: np.ndarray,
    w: np.ndarray,
    order: int,
    grid: np.ndarray,
    lowest_max_m: float,
    out: np.ndarray,
) -> bool:
    """impact.estimate_launch's fit and ground search: weighted least squares of
    ``r(tau) = c0 + c1 tau (+ c2 tau^2)`` (``order`` 1 or 2) to Earth-fixed positions
    ``r`` (K, 3) m at ``tau`` (K,) s with weights ``w`` (K,) 1/m^2, then the first
    ground crossing along ``grid`` (s, from 0 backwards; linear between grid points),
    or the lowest grid point if no crossing comes lower than ``lowest_max_m``. Writes
    (x, y, z of the point m, its variance m^2 per axis, its time on ``tau`` s) into
    ``out`` (5,); False when no point qualifies."""
    m = order + 1
    n = tau.size
    N = np.zeros((3, 3))
    rhs = np.zeros((3, 3))
    for k in range(n):
        a0, a1 = 1.0, tau[k]
        pw = (a0, a1, a1 * a1)
        for i in range(m):
            for j in range(m):
                N[i, j] += pw[i] * w[k] * pw[j]
            for c in range(3):
                rhs[i, c] += pw[i] * w[k] * r[k, c]
    # inverse of the (m, m) normal matrix by Gauss-Jordan with partial pivoting
    A = N[:m, :m].copy()
    Ninv = np.eye(m)
    for col in range(m):
        piv = col
        for i in range(col + 1, m):
            if abs(A[i, col]) > abs(A[piv, col]):
                piv = i
        if A[piv, col] == 0.0:
            return False
        for j in range(m):
            A[col, j], A[piv, j] = A[piv, j], A[col, j]
            Ninv[col, j], Ninv[piv, j] = Ninv[piv, j], Ninv[col, j]
        d = A[col, col]
        for j in range(m):
            A[col, j] /= d
            Ninv[col, j] /= d
        for i in range(m):
            if i != col:
                f = A[i, col]
                for j in range(m):
                    A[i, j] -= f * A[col, j]
                    Ninv[i, j] -= f * Ninv[col, j]
    coef = np.zeros((3, 3))
    for i in range(m):
        for c in range(3):
            acc = 0.0
            for j in range(m):
                acc += Ninv[i, j] * rhs[j, c]
            coef[i, c] = acc
    chi2 = 0.0
    for k in range(n):
        for c in range(3):
            e = r[k, c] - (coef[0, c] + coef[1, c] * tau[k] + coef[2, c] * tau[k] * tau[k])
            chi2 += w[k] * e * e
    dof = max(1, n - m)
    scale = max(1.0, chi2 / (3 * dof))
    p = np.empty(3)
    h_prev = 0.0
    h_min = np.inf
    j_min = 0
    tl = np.nan
    for g in range(grid.size):
        tt = grid[g]
        for c in range(3):
            p[c] = coef[0, c] + coef[1, c] * tt + coef[2, c] * tt * tt
        h = _height(p)
        if h <= 0.0:
            if g == 0:
                tl = 0.0
            else:
                f = h_prev / (h_prev - h)
                tl = grid[g - 1] + f * (grid[g] - grid[g - 1])
            break
        if h < h_min:
            h_min = h
            j_min = g
        h_prev = h
    if not math.isfinite(tl):
        if h_min > lowest_max_m:
            return False
        tl = grid[j_min]
    for c in range(3):
        out[c] = coef[0, c] + coef[1, c] * tl + coef[2, c] * tl * tl
    av = (1.0, tl, tl * tl)
    var = 0.0
    for i in range(m):
        for j in range(m):
            var += av[i] * Ninv[i, j] * av[j]
    out[3] = var * scale
    out[4] = tl
    return True


# ------------------------------------------------------------------ compile or fall back
class _Kernel:
    """One kernel: compiled by numba at its first call (cached on disk), or None when
    the JIT is off or fails (then the caller uses its numpy code)."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.compiled: Callable[..., Any] | None = None
        self.failed = False


_KERNELS = {
    "predict_short": _Kernel(_predict_short),
    "may_gate": _Kernel(_may_gate),
    "gate": _Kernel(_gate),
    "gate_pairs": _Kernel(_gate_pairs),
    "update": _Kernel(_update),
    "to_surface": _Kernel(_to_surface),
    "launch_fit": _Kernel(_launch_fit),
}
#: functions the kernels call: compiled (and bound in this module) before any kernel
_HELPERS = ("_accel_at", "_height")
_numba: Any = None


def enabled() -> bool:
    """Whether compiled kernels are in use: numba importable and not turned off by
    ``TRACKLAYER_JIT=0`` (read once) or :func:`set_enabled`. Imports numba at the first
    call (~0.15 s)."""
    global _numba
    if _numba is None:
        if os.environ.get(JIT_ENV, "1").strip() == "0":
            _numba = False
        else:
            try:
                import numba
            except Exception as exc:  # noqa: BLE001 - any failure to import means no JIT
                warnings.warn(f"numba unavailable ({exc}); using numpy kernels", stacklevel=2)
                _numba = False
            else:
                _numba = numba
    return _numba is not False


def set_enabled(flag: bool) -> None:
    """Turn the compiled kernels on (if numba imports) or off, for this process."""
    global _numba
    _numba = None
    if flag:
        os.environ.pop(JIT_ENV, None)
    else:
        os.environ[JIT_ENV] = "0"
    enabled()


def _compiled(name: str) -> Callable[..., Any] | None:
    """The compiled kernel ``name`` or None (JIT off or failed)."""
    k = _KERNELS[name]
    if k.compiled is not None:
        return k.compiled
    if k.failed or not enabled():
        return None
    try:
        module = globals()
        for helper in _HELPERS:
            if not hasattr(module[helper], "py_func"):
                module[helper] = _numba.njit(cache=True, nogil=True)(module[helper])
        k.compiled = _numba.njit(cache=True, nogil=True)(k.fn)
    except Exception as exc:  # noqa: BLE001 - a broken JIT must not stop the tracker
        warnings.warn(f"numba kernel {name} unavailable ({exc}); using numpy", stacklevel=2)
        k.failed = True
        return None
    return k.compiled


def _call(name: str, *args: Any) -> Any:
    """Run kernel ``name``; a failure of its first compilation marks it failed and
    raises :class:`_NoKernel` so the caller falls back to numpy."""
    fn = _compiled(name)
    if fn is None:
        raise _NoKernel(name)
    try:
        return fn(*args)
    except Exception as exc:
        if _is_compile_error(exc):
            warnings.warn(f"numba kernel {name} failed to compile ({exc}); using numpy", stacklevel=3)
            _KERNELS[name].failed = True
            _KERNELS[name].compiled = None
            raise _NoKernel(name) from exc
        raise


def _is_compile_error(exc: Exception) -> bool:
    errors = getattr(getattr(_numba, "core", None), "errors", None)
    base = getattr(errors, "NumbaError", None)
    return base is not None and isinstance(exc, base) or type(exc).__module__.startswith("llvmlite")


class _NoKernel(Exception):
    """The compiled kernel is not available; use the numpy code."""


def _f64(a: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``a`` as a C-contiguous float64 array (of ``shape``, broadcast, if given)."""
    if (
        type(a) is np.ndarray
        and a.dtype == np.float64
        and a.flags.c_contiguous
        and (shape is None or a.shape == shape)
    ):
        return a
    arr = np.asarray(a, dtype=np.float64)
    if shape is not None and arr.shape != shape:
        arr = np.broadcast_to(arr, shape)
    return np.ascontiguousarray(arr)


# ------------------------------------------------------------------ public entry points
def predict_short(
    x: np.ndarray,
    P: np.ndarray,
    dt: np.ndarray | float,
    inv_tau: np.ndarray | float,
    accel_psd: np.ndarray | float,
    jerk_psd: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Compiled short-step predict (filters.predict for ``|dt| <= max_step``) of
    states ``x`` (N, 9) and covariances ``P`` (N, 9, 9) over ``dt`` s (scalar or (N,));
    None when the kernels are off (the caller runs numpy)."""
    if not enabled():
        return None
    n = x.shape[0]
    xo = np.empty((n, 9))
    Po = np.empty((n, 9, 9))
    args = (_f64(x), _f64(P), _f64(dt, (n,)), _f64(inv_tau, (n,)), _f64(accel_psd, (n,)))
    try:
        _call("predict_short", *args, _f64(jerk_psd, (n,)), xo, Po)
    except _NoKernel:
        return None
    return xo, Po


def may_gate(
    x: np.ndarray,
    var: np.ndarray,
    dt: np.ndarray,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
    first_only: bool = False,
) -> tuple[bool, np.ndarray] | None:
    """Compiled association.may_gate (``var`` (N, 9): the diagonals of P): (any row
    kept, which rows (N,) bool; with ``first_only`` only up to the first kept row);
    None when the kernels are off."""
    if not enabled():
        return None
    n = x.shape[0]
    out = np.zeros(n, bool)
    if n == 0 or los.shape[0] == 0:
        return False, out
    s2_max = float(np.max(np.asarray(sigma, float) ** 2))
    args = (_f64(x), _f64(var), _f64(dt, (n,)), _f64(sensor_position), _f64(los), s2_max)
    try:
        found = _call("may_gate", *args, _f64(gates, (n,)), bool(first_only), out)
    except _NoKernel:
        return None
    return bool(found), out


def gate(
    x: np.ndarray,
    P: np.ndarray,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
) -> tuple[np.ndarray, ...] | None:
    """Compiled association.gate: (track, det, d2, logdet, residual, hpos, rho, u) of
    the candidate pairs (the fields of association.Gating); None when the kernels are
    off."""
    if not enabled():
        return None
    n, m = x.shape[0], los.shape[0]
    x, P, spos, los = _f64(x), _f64(P), _f64(sensor_position), _f64(los)
    s2 = _f64(np.asarray(sigma, float) ** 2)
    g = _f64(gates, (n,))
    u, rho, basis = np.empty((n, 3)), np.empty(n), np.empty((n, 2, 3))
    hpos, A, c_min = np.empty((n, 2, 3)), np.empty((n, 2, 2)), np.empty(n)
    try:
        count = _call("gate", x, P, spos, los, s2, g, u, rho, basis, hpos, A, c_min)
        ti, mi = np.empty(count, np.int64), np.empty(count, np.int64)
        y, d2, logdet = np.empty((count, 2)), np.empty(count), np.empty(count)
        if m:
            _call("gate_pairs", x, P, spos, los, s2, u, basis, A, c_min, ti, mi, y, d2, logdet)
    except _NoKernel:
        return None
    return ti, mi, d2, logdet, y, hpos, rho, u


def update(
    x: np.ndarray, P: np.ndarray, y: np.ndarray, Hpos: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Compiled filters.update (Joseph form): (x, P, NIS); None when the kernels are
    off."""
    if not enabled():
        return None
    n = x.shape[0]
    xo, Po, nis = np.empty((n, 9)), np.empty((n, 9, 9)), np.empty(n)
    args = (_f64(x), _f64(P), _f64(y), _f64(Hpos), _f64(sigma, (n,)))
    try:
        _call("update", *args, xo, Po, nis)
    except _NoKernel:
        return None
    return xo, Po, nis


def propagate_to_surface(
    r: np.ndarray,
    v: np.ndarray,
    inv_beta: np.ndarray,
    max_flight_s: float,
    step_s: float,
    atmosphere_step_s: float,
    limits: tuple[float, float, float, float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Compiled impact.propagate_to_surface of K objects (ECI ``r`` m, ``v`` m/s, drag
    ``1/beta`` m^2/kg): surface positions (K, 3) ECI m, flight times (K,) s, landed
    mask; ``limits`` its step constants (see :func:`_to_surface`). None when the
    kernels are off."""
    if not enabled():
        return None
    k = np.shape(r)[0]
    hit_r, hit_t = np.full((k, 3), np.nan), np.full(k, np.nan)
    args = (_f64(r), _f64(v), _f64(inv_beta, (k,)), float(max_flight_s), float(step_s))
    try:
        _call("to_surface", *args, float(atmosphere_step_s), _f64(limits), hit_r, hit_t)
    except _NoKernel:
        return None
    return hit_r, hit_t, np.isfinite(hit_t)


def launch_fit(
    tau: np.ndarray, r_ecef: np.ndarray, w: np.ndarray, order: int, grid: np.ndarray,
    lowest_max_m: float,
) -> tuple[bool, np.ndarray] | None:
    """Compiled fit and ground search of impact.estimate_launch (see :func:`_launch_fit`):
    (found, (x, y, z m ECEF, variance m^2, time s on ``tau``)); None when the kernels
    are off."""
    if not enabled():
        return None
    out = np.empty(5)
    args = (_f64(tau), _f64(r_ecef), _f64(w), int(order), _f64(grid), float(lowest_max_m))
    try:
        found = _call("launch_fit", *args, out)
    except _NoKernel:
        return None
    return bool(found), out
