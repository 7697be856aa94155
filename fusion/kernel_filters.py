"""The compiled filter and gating loops behind :mod:`.kernels`: plain Python over
arrays, compiled by numba there (correct but slow if run uncompiled). The short-step
predict (:func:`.filters.predict`), the Joseph update (:func:`.filters.update`), the
``may_gate`` screen and the gating of candidate pairs (:mod:`.association`), the
existence look's view test (:mod:`.tracker.existence`); units and frames as in the
numpy code each mirrors. :data:`HELPERS` are the functions the loops
call (compiled first)."""

from __future__ import annotations

import math

import numpy as np

from .constants import GM_EARTH, J2, R_EARTH_EQ

_K_J2 = 1.5 * J2 * GM_EARTH * R_EARTH_EQ**2  # m^5/s^2 (as dynamics._K_J2)
_SCREEN_FACTOR = 2.0  # association._SCREEN_FACTOR
_SCREEN_FLOOR = 1e-14  # association._SCREEN_FLOOR
_SCREEN_MAX_COND = 1e6  # association._SCREEN_MAX_COND
_SCREEN_COS_MARGIN = 1.0 - 1e-12  # association._SCREEN_COS_MARGIN
_TINY = float(np.nextafter(0.0, 1.0))
#: the functions the loops call: compiled (and bound in this module) before any loop
HELPERS = (
    "_gravity_gradient",
    "_transition",
    "_sandwich",
    "_add_noise",
    "_symmetrise",
    "_predict_scratch",
    "_predict_row",
    "_update_row",
)


def _gravity_gradient(r: np.ndarray, g: np.ndarray, G: np.ndarray) -> None:
    """Point-mass + J2 gravity ``g`` (3,) m/s^2 and its gradient ``G`` (3, 3) 1/s^2 at
    ECI ``r`` (3,) m (dynamics.gravity, gravity_gradient)."""
    rx, ry, rz = r[0], r[1], r[2]
    r2 = rx * rx + ry * ry + rz * rz
    inv_r2 = 1.0 / r2
    inv_r3 = 1.0 / (r2 * math.sqrt(r2))
    inv_r5 = inv_r3 * inv_r2
    s = rz * rz * inv_r2
    kr5 = _K_J2 * inv_r5
    for i in range(3):
        w = 5.0 * s - (3.0 if i == 2 else 1.0)
        ri = r[i]
        g[i] = ri * (-GM_EARTH * inv_r3 + kr5 * w)
        c_rr = 3.0 * GM_EARTH * inv_r5 - kr5 * inv_r2 * (10.0 * s + 5.0 * w)
        for j in range(3):
            G[i, j] = ri * c_rr * r[j]
        G[i, i] += -GM_EARTH * inv_r3 + kr5 * w
        G[i, 2] += 10.0 * kr5 * inv_r2 * rz * ri


def _transition(
    t: float, e: float, i1: float, i2: float, G: np.ndarray, C: np.ndarray, D: np.ndarray,
    phi: np.ndarray,
) -> None:  # fmt: skip
    """Short-step transition matrix ``phi`` (9, 9) over ``t`` s (dynamics.propagate_short):
    per 3x3 block ``C[bi, bj] I + D[bi, bj] G`` with the Singer terms ``e``, ``i1``,
    ``i2``; ``C``, ``D`` (3, 3) scratch."""
    t2 = t * t
    t3 = t2 * t
    C[0, 0], C[0, 1], C[0, 2] = 1.0, t, i2
    C[1, 0], C[1, 1], C[1, 2] = 0.0, 1.0, i1
    C[2, 0], C[2, 1], C[2, 2] = 0.0, 0.0, e
    D[0, 0], D[0, 1], D[0, 2] = 0.5 * t2, t3 / 6.0, t3 * t / 24.0
    D[1, 0], D[1, 1], D[1, 2] = t, 0.5 * t2, t3 / 6.0
    D[2, 0], D[2, 1], D[2, 2] = 0.0, 0.0, 0.0
    for bi in range(3):
        for bj in range(3):
            for a_ in range(3):
                for b_ in range(3):
                    val = D[bi, bj] * G[a_, b_]
                    if a_ == b_:
                        val += C[bi, bj]
                    phi[3 * bi + a_, 3 * bj + b_] = val


def _sandwich(A: np.ndarray, B: np.ndarray, tmp: np.ndarray, out: np.ndarray) -> None:
    """``out = A B A^T`` of 9x9 matrices (``tmp = A B`` first), each element summed in
    loop order from 0.0: ``Phi P Phi^T`` of the predict, ``(I-KH) P (I-KH)^T`` of the
    Joseph update."""
    for i in range(9):
        for j in range(9):
            acc = 0.0
            for m in range(9):
                acc += A[i, m] * B[m, j]
            tmp[i, j] = acc
    for i in range(9):
        for j in range(9):
            acc = 0.0
            for m in range(9):
                acc += tmp[i, m] * A[j, m]
            out[i, j] = acc


def _add_noise(t: float, qa: float, qj: float, Q: np.ndarray, out: np.ndarray) -> None:
    """Add dynamics.process_noise over ``|t|`` s (PSDs ``qa`` m^2/s^3, ``qj`` m^2/s^5):
    ``qa kron(A, I3) + qj kron(J, I3)`` to ``out`` (9, 9); ``Q`` (3, 3) scratch."""
    ta = abs(t)
    s2 = ta * ta
    s3 = s2 * ta
    s4 = s3 * ta
    s5 = s4 * ta
    Q[0, 0] = qa * (s3 / 3.0) + qj * (s5 / 20.0)
    Q[0, 1] = qa * (s2 / 2.0) + qj * (s4 / 8.0)
    Q[0, 2] = qj * (s3 / 6.0)
    Q[1, 0] = Q[0, 1]
    Q[1, 1] = qa * ta + qj * (s3 / 3.0)
    Q[1, 2] = qj * (s2 / 2.0)
    Q[2, 0] = Q[0, 2]
    Q[2, 1] = Q[1, 2]
    Q[2, 2] = qj * ta
    for bi in range(3):
        for bj in range(3):
            for a_ in range(3):
                out[3 * bi + a_, 3 * bj + a_] += Q[bi, bj]


def _symmetrise(M: np.ndarray) -> None:
    """``M = (M + M^T) / 2`` in place (9, 9), each pair's mean written to both."""
    for i in range(9):
        for j in range(i + 1, 9):
            m = 0.5 * (M[i, j] + M[j, i])
            M[i, j] = m
            M[j, i] = m


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
    ``xo``, ``Po`` (:func:`_predict_row` per row)."""
    scratch = _predict_scratch()
    for k in range(x.shape[0]):
        _predict_row(x[k], P[k], dt[k], inv_tau[k], qa[k], qj[k], xo[k], Po[k], scratch)


def _predict_scratch() -> tuple[np.ndarray, ...]:
    """Work arrays of :func:`_predict_row`: g, G, C, D, phi, tmp, Q."""
    return (np.empty(3), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)),
            np.empty((9, 9)), np.empty((9, 9)), np.empty((3, 3)))  # fmt: skip


def _predict_row(
    x: np.ndarray,
    P: np.ndarray,
    t: float,
    it: float,
    qa: float,
    qj: float,
    xo: np.ndarray,
    Po: np.ndarray,
    scratch: tuple[np.ndarray, ...],
) -> None:
    """Short-step predict of one row ``x`` (9,), ``P`` (9, 9) over ``t`` s into ``xo``,
    ``Po`` (not ``x``, ``P`` themselves): dynamics.propagate_short's Taylor step and
    transition matrix (Singer rate ``it`` 1/s), ``Phi P Phi^T`` plus
    dynamics.process_noise over ``|t|`` (PSDs ``qa`` m^2/s^3, ``qj`` m^2/s^5),
    symmetrised (the steps of filters.predict)."""
    g, G, C, D, phi, tmp, Q = scratch
    _gravity_gradient(x, g, G)
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
        jg = G[i, 0] * x[3] + G[i, 1] * x[4] + G[i, 2] * x[5]
        sg = G[i, 0] * (g[0] + x[6]) + G[i, 1] * (g[1] + x[7]) + G[i, 2] * (g[2] + x[8])
        r, v, a = x[i], x[3 + i], x[6 + i]
        xo[i] = r + v * t + g[i] * (0.5 * t2) + a * i2 + jg * (t3 / 6.0) + sg * (t4 / 24.0)
        xo[3 + i] = v + g[i] * t + a * i1 + jg * (0.5 * t2) + sg * (t3 / 6.0)
        xo[6 + i] = a * e
    _transition(t, e, i1, i2, G, C, D, phi)
    _sandwich(phi, P, tmp, Po)
    _add_noise(t, qa, qj, Q, Po)
    _symmetrise(Po)


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
    """First pass of association.gate: predicted LOS ``u`` (N, 3), ranges ``rho`` (N,)
    m, tangent bases ``basis`` (N, 2, 3) (measurement.tangent_basis), position
    Jacobians ``hpos`` (N, 2, 3) 1/m, projected covariances ``A`` (N, 2, 2) rad^2 and
    the screen's cosine ``c_min`` (N,) (association._candidates); returns the number
    of candidate pairs."""
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
    scratch = (np.empty((9, 2)), np.empty((9, 2)), np.empty((9, 9)), np.empty((9, 9)))
    for k in range(x.shape[0]):
        nis[k] = _update_row(x[k], P[k], y[k], H[k], sigma[k], xo[k], Po[k], scratch)


def _update_at(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    y: np.ndarray,
    H: np.ndarray,
    sigma: np.ndarray,
    nis: np.ndarray,
) -> int:
    """:func:`_update` of the stack's rows ``rows`` (K,) (distinct) in place: the same
    floats, without gathering and scattering the rows; returns K (None means no kernel)."""
    scratch = (np.empty((9, 2)), np.empty((9, 2)), np.empty((9, 9)), np.empty((9, 9)))
    for k in range(rows.shape[0]):
        r = rows[k]
        nis[k] = _update_row(x[r], P[r], y[k], H[k], sigma[k], x[r], P[r], scratch)
    return rows.shape[0]


def _update_row(
    x: np.ndarray,
    P: np.ndarray,
    y: np.ndarray,
    H: np.ndarray,
    sigma: float,
    xo: np.ndarray,
    Po: np.ndarray,
    scratch: tuple[np.ndarray, ...],
) -> float:
    """One row's Joseph update into ``xo`` (9,), ``Po`` (9, 9), which may be ``x``, ``P``
    themselves (each is read before it is written); returns the NIS."""
    PHt, Kg, IKH, tmp = scratch
    s2 = sigma * sigma
    for i in range(9):
        for a_ in range(2):
            acc = 0.0
            for j in range(3):
                acc += P[i, j] * H[a_, j]
            PHt[i, a_] = acc
    s00 = s2
    s01 = 0.0
    s10 = 0.0
    s11 = s2
    for i in range(3):
        s00 += H[0, i] * PHt[i, 0]
        s01 += H[0, i] * PHt[i, 1]
        s10 += H[1, i] * PHt[i, 0]
        s11 += H[1, i] * PHt[i, 1]
    det = s00 * s11 - s01 * s10
    i00, i01, i10, i11 = s11 / det, -s01 / det, -s10 / det, s00 / det
    y0, y1 = y[0], y[1]
    for i in range(9):
        Kg[i, 0] = PHt[i, 0] * i00 + PHt[i, 1] * i10
        Kg[i, 1] = PHt[i, 0] * i01 + PHt[i, 1] * i11
        xo[i] = x[i] + Kg[i, 0] * y0 + Kg[i, 1] * y1
    nis = y0 * (i00 * y0 + i01 * y1) + y1 * (i10 * y0 + i11 * y1)
    for i in range(9):
        for j in range(9):
            v = 1.0 if i == j else 0.0
            if j < 3:
                v -= Kg[i, 0] * H[0, j] + Kg[i, 1] * H[1, j]
            IKH[i, j] = v
    _sandwich(IKH, P, tmp, Po)
    for i in range(9):
        for j in range(9):
            Po[i, j] += s2 * (Kg[i, 0] * Kg[j, 0] + Kg[i, 1] * Kg[j, 1])
    _symmetrise(Po)
    return nis


def _in_view(
    sensor: np.ndarray, pos: np.ndarray, limit: float, floor: float, ab: np.ndarray,
    margins: np.ndarray, out: np.ndarray,
) -> bool:  # fmt: skip
    """Existence.in_view's test of each of ``pos`` (N, 3) (m, ECI) from ``sensor`` (3,)
    within range ``limit`` (m) and above limb clearance ``floor`` (m), in the arithmetic of
    existence._point_geometry (``ab``: the ellipsoid's semi-axes, m), into ``out`` (N,)
    bool. Returns False (undecided) at the first value within ``margins`` (limb-test u,
    range relative, clearance m) of a limit, or not finite: numpy's path decides then."""
    sx, sy, sz = sensor[0], sensor[1], sensor[2]
    a, b = ab[0], ab[1]
    edge_u, edge_range, edge_clear = margins[0], margins[1], margins[2]
    for k in range(pos.shape[0]):
        px, py, pz = pos[k, 0], pos[k, 1], pos[k, 2]
        dx, dy, dz = px - sx, py - sy, pz - sz
        rng = math.sqrt(dx * dx + dy * dy + dz * dz)
        if not math.isfinite(rng):
            return False
        u = -(dx * sx + dy * sy + dz * sz) / max(rng * rng, 1.0)
        if not math.isfinite(u) or abs(u) < edge_u or abs(u - 1.0) < edge_u:
            return False
        limb = 0.0 < u < 1.0
        if limb:
            px, py, pz = sx + u * dx, sy + u * dy, sz + u * dz
        rn = math.sqrt(px * px + py * py + pz * pz)
        if rn == 0.0:
            return False
        s2 = (pz / rn) * (pz / rn)
        clearance = rn - a * b / math.sqrt(b * b * (1.0 - s2) + a * a * s2)
        edge = floor if limb else 0.0
        if abs(rng - limit) <= edge_range * limit or abs(clearance - edge) < edge_clear:
            return False
        out[k] = rng <= limit and clearance >= edge
    return True
