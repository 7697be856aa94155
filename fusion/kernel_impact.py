"""The compiled impact loops behind :mod:`.kernels`: plain Python over arrays, compiled
by numba there (correct but slow if run uncompiled). The propagation of ballistic
objects to the WGS-84 surface (:func:`.impact.propagate_to_surface`) and the launch
fit (:func:`.impact.estimate_launch`); ECI/ECEF metres and seconds as there.
:data:`HELPERS` are the functions the loops call (compiled first)."""

from __future__ import annotations

import math

import numpy as np

from .constants import GM_EARTH, J2, OMEGA_EARTH, R_EARTH_EQ, R_EARTH_POLAR
from .dynamics import AIR_TOP_M, RHO0_KG_M3, SCALE_HEIGHT_M

_K_J2 = 1.5 * J2 * GM_EARTH * R_EARTH_EQ**2  # m^5/s^2 (as dynamics._K_J2)
#: the functions the loops call: compiled (and bound in this module) before any loop
HELPERS = ("_accel_at", "_height")


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
