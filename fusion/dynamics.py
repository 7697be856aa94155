"""Motion model of the tracker: point-mass + J2 gravity in ECI (TEME), batched.

Track state, 9 components, ECI: ``x = (r, v, a)`` with position ``r`` (m), velocity
``v`` (m/s) and the non-gravitational acceleration ``a`` (m/s^2: thrust in boost, drag
in reentry). A ballistic track holds ``a = 0`` with zero covariance, so one batched
code path serves every track:

    dr/dt = v,   dv/dt = g(r) + a,   da/dt = -a / tau + w_a

``g`` is point-mass + J2 gravity; ``w_a`` white jerk noise (Singer model, tau per
track; ``1/tau = 0`` gives a random walk). The state-transition matrix comes from
integrating the variational equations ``dPhi/dt = F(x) Phi`` with the same RK4 steps
as the state, with the analytic gravity gradient in ``F``.

Everything works on arrays with a leading track axis ``N``.
"""

from __future__ import annotations

import numpy as np

from .constants import GM_EARTH, J2, OMEGA_EARTH, R_EARTH_EQ, R_EARTH_POLAR

N_STATE = 9
POS = slice(0, 3)
VEL = slice(3, 6)
ACC = slice(6, 9)

_K_J2 = 1.5 * J2 * GM_EARTH * R_EARTH_EQ**2  # m^5/s^2
_C_J2 = np.array([1.0, 1.0, 3.0])
_EYE3 = np.eye(3)

# Exponential atmosphere assumed by the tracker below 100 km (impact prediction only).
RHO0_KG_M3 = 1.225  # kg/m^3, sea-level density
SCALE_HEIGHT_M = 7_200.0  # m, density scale height
AIR_TOP_M = 200_000.0  # m; the model atmosphere has no density above this


def gravity(r: np.ndarray) -> np.ndarray:
    """Point-mass + J2 acceleration (m/s^2) at ECI positions ``r`` (..., 3) m."""
    r = np.asarray(r, dtype=float)
    r2 = np.einsum("...i,...i->...", r, r)[..., None]
    rn = np.sqrt(r2)
    inv_r3 = 1.0 / (r2 * rn)
    s = r[..., 2:3] ** 2 / r2
    j2 = _K_J2 * inv_r3 / r2 * (5.0 * s - _C_J2)
    return r * (-GM_EARTH * inv_r3 + j2)


def gravity_gradient(r: np.ndarray) -> np.ndarray:
    """Analytic Jacobian d g / d r (1/s^2), shape (..., 3, 3), of :func:`gravity`.

    Point mass: ``-mu/r^3 I + 3 mu/r^5 r r^T``. J2 (``f_i = r_i w_i / r^5`` with
    ``w_i = 5 s - c_i``, ``s = z^2/r^2``, ``c = (1, 1, 3)``, times ``K = 1.5 J2 mu Re^2``):
    ``K/r^5 [diag(w) - (10 s + 5 w_i) r_i r_j / r^2 + 10 z r_i d_jz / r^2]``.
    """
    r = np.asarray(r, dtype=float)
    r2 = np.einsum("...i,...i->...", r, r)
    inv_r2 = 1.0 / r2
    inv_r3 = inv_r2 / np.sqrt(r2)
    inv_r5 = inv_r3 * inv_r2
    z = r[..., 2]
    s = z * z * inv_r2
    w = 5.0 * s[..., None] - _C_J2  # (..., 3) indexed by i
    kr5 = (_K_J2 * inv_r5)[..., None]
    c_rr = (3.0 * GM_EARTH * inv_r5)[..., None] - kr5 * inv_r2[..., None] * (
        10.0 * s[..., None] + 5.0 * w
    )
    G = (r * c_rr)[..., :, None] * r[..., None, :]
    diag = (-GM_EARTH * inv_r3)[..., None] + kr5 * w
    G[..., 0, 0] += diag[..., 0]
    G[..., 1, 1] += diag[..., 1]
    G[..., 2, 2] += diag[..., 2]
    G[..., :, 2] += (10.0 * _K_J2 * inv_r5 * inv_r2 * z)[..., None] * r
    return G


def norm3(r: np.ndarray) -> np.ndarray:
    """Euclidean norms of 3-vectors ``r`` (..., 3): the same floats as
    ``np.linalg.norm(r, axis=-1)`` (squares summed in axis order), without its overhead."""
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    return np.sqrt(x * x + y * y + z * z)


def ellipsoid_height(r: np.ndarray) -> np.ndarray:
    """Height (m) above the WGS-84 ellipsoid of ECI/ECEF positions ``r`` (..., 3), measured
    along the geocentric radius (differs from geodetic height by < 1 m below 3000 km)."""
    r = np.asarray(r, dtype=float)
    rn = norm3(r)
    s2 = (r[..., 2] / rn) ** 2
    a, b = R_EARTH_EQ, R_EARTH_POLAR
    r_surf = a * b / np.sqrt(b * b * (1.0 - s2) + a * a * s2)
    return rn - r_surf


def air_density(h: np.ndarray) -> np.ndarray:
    """Exponential-atmosphere density (kg/m^3) at height ``h`` (m); 0 above 200 km."""
    h = np.asarray(h, dtype=float)
    return np.where(h < AIR_TOP_M, RHO0_KG_M3 * np.exp(-np.clip(h, 0.0, None) / SCALE_HEIGHT_M), 0)


def drag(r: np.ndarray, v: np.ndarray, inv_beta: np.ndarray) -> np.ndarray:
    """Drag acceleration (m/s^2) in ECI for ballistic coefficients ``1/inv_beta`` (kg/m^2);
    the atmosphere co-rotates with the Earth."""
    v_rel = v - cross_omega(r)
    rho = air_density(ellipsoid_height(r))
    speed = norm3(v_rel)
    return (-0.5 * rho * speed * inv_beta)[..., None] * v_rel


def cross_omega(r: np.ndarray) -> np.ndarray:
    """Earth-rotation term ``omega x r`` (m/s) for positions (..., 3), omega along z."""
    out = np.empty_like(r)
    out[..., 0] = -OMEGA_EARTH * r[..., 1]
    out[..., 1] = OMEGA_EARTH * r[..., 0]
    out[..., 2] = 0.0
    return out


def propagate_short(
    x: np.ndarray, dt: np.ndarray | float, inv_tau: np.ndarray | float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Short step (|dt| <~ 2 s; one ``dt`` for all, or (N,) one per row) of states ``x``
    (N, 9) with its transition matrices (N, 9, 9).

    Gravity by a Taylor expansion about the start (``g``, gradient ``G``, jerk ``G v``,
    snap ``G (g + a)``); the Singer acceleration ``a exp(-t/tau)`` and its integrals
    exactly. The first neglected gravity terms (d^2 G/dt^2) stay below 1e-5 m and 1e-5 m/s
    for t <= 2 s in Earth orbit. One gravity and one gradient evaluation instead of the
    eight of an RK4 step with variational equations.
    """
    n = x.shape[0]
    per_row = np.ndim(dt) > 0
    t = np.asarray(dt, dtype=float) if per_row else float(dt)
    it = np.broadcast_to(np.asarray(inv_tau, dtype=float), (n,))
    r, v, a = x[:, POS], x[:, VEL], x[:, ACC]
    g = gravity(r)
    G = gravity_gradient(r)
    jg = np.einsum("nij,nj->ni", G, v)
    sg = np.einsum("nij,nj->ni", G, g + a)
    t2, t3, t4 = t * t, t**3, t**4
    # Singer integrals: e = exp(-t/tau); i1 = int_0^t e, i2 = int_0^t int_0^s e
    x_ = t * it
    e = np.exp(-x_)
    small = np.abs(x_) < 1e-4
    safe = np.where(small, 1.0, it)
    i1 = np.where(small, t - 0.5 * t2 * it, (1.0 - e) / safe)
    i2 = np.where(small, 0.5 * t2 - t3 * it / 6.0, (t - i1) / safe)
    c = (lambda q: q[:, None]) if per_row else (lambda q: q)
    out = np.empty_like(x)
    out[:, POS] = (
        r + v * c(t) + g * c(0.5 * t2) + a * i2[:, None] + jg * c(t3 / 6.0) + sg * c(t4 / 24.0)
    )
    out[:, VEL] = v + g * c(t) + a * i1[:, None] + jg * c(0.5 * t2) + sg * c(t3 / 6.0)
    out[:, ACC] = a * e[:, None]
    # Phi = kron(C, I3) + kron(D, G): C holds the kinematic coefficients, D the gravity ones
    C = np.zeros((n, 3, 3))
    C[:, 0, 0] = C[:, 1, 1] = 1.0
    C[:, 0, 1] = t
    C[:, 0, 2] = i2
    C[:, 1, 2] = i1
    C[:, 2, 2] = e
    D = np.zeros((n, 3, 3))
    D[:, 0] = np.stack([t2 / 2, t3 / 6, t4 / 24], axis=-1)
    D[:, 1] = np.stack([t, t2 / 2, t3 / 6], axis=-1)
    phi = (C[:, :, None, :, None] * _EYE3[None, None, :, None, :]).reshape(n, 9, 9)
    phi += (D[:, :, None, :, None] * G[:, None, :, None, :]).reshape(n, 9, 9)
    return out, phi


def _deriv(x: np.ndarray, phi: np.ndarray | None, inv_tau: np.ndarray):
    r, v, a = x[:, POS], x[:, VEL], x[:, ACC]
    dx = np.empty_like(x)
    dx[:, POS] = v
    dx[:, VEL] = gravity(r) + a
    dx[:, ACC] = -inv_tau[:, None] * a
    if phi is None:
        return dx, None
    dphi = np.empty_like(phi)
    dphi[:, POS] = phi[:, VEL]
    dphi[:, VEL] = gravity_gradient(r) @ phi[:, POS] + phi[:, ACC]
    dphi[:, ACC] = -inv_tau[:, None, None] * phi[:, ACC]
    return dx, dphi


def propagate(
    x: np.ndarray,
    dt: np.ndarray | float,
    inv_tau: np.ndarray | float = 0.0,
    max_step: float = 2.0,
    with_stm: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Fixed-step RK4 of states ``x`` (N, 9) over ``dt`` (s, scalar or (N,); may be < 0).

    Every track takes the same number of steps, ``ceil(max|dt| / max_step)``, each of its
    own length ``dt / n``. Returns the propagated states and, if ``with_stm``, the
    state-transition matrices (N, 9, 9) from the variational equations.
    """
    x = np.array(x, dtype=float, copy=True)
    n = x.shape[0]
    dt = np.broadcast_to(np.asarray(dt, dtype=float), (n,))
    inv_tau = np.broadcast_to(np.asarray(inv_tau, dtype=float), (n,))
    phi = np.broadcast_to(np.eye(N_STATE), (n, N_STATE, N_STATE)).copy() if with_stm else None
    if n == 0:
        return x, phi
    span = float(np.max(np.abs(dt)))
    steps = max(1, int(np.ceil(span / max_step - 1e-12))) if span > 0 else 0
    if steps == 0:
        return x, phi
    h = dt / steps
    hx = h[:, None]
    hp = h[:, None, None]
    for _ in range(steps):
        k1, p1 = _deriv(x, phi, inv_tau)
        k2, p2 = _deriv(x + 0.5 * hx * k1, None if phi is None else phi + 0.5 * hp * p1, inv_tau)
        k3, p3 = _deriv(x + 0.5 * hx * k2, None if phi is None else phi + 0.5 * hp * p2, inv_tau)
        k4, p4 = _deriv(x + hx * k3, None if phi is None else phi + hp * p3, inv_tau)
        x = x + hx / 6.0 * (k1 + 2.0 * (k2 + k3) + k4)
        if phi is not None:
            phi = phi + hp / 6.0 * (p1 + 2.0 * (p2 + p3) + p4)
    return x, phi


def process_noise(
    dt: np.ndarray | float, accel_psd: np.ndarray | float, jerk_psd: np.ndarray | float
) -> np.ndarray:
    """Discrete process noise (N, 9, 9) over ``|dt|`` (s; scalar or (N,)): white
    acceleration of PSD ``accel_psd`` (m^2/s^3) on the velocity plus white jerk of PSD
    ``jerk_psd`` (m^2/s^5) driving the acceleration state (the standard
    constant-acceleration integrals; the gravity gradient and Singer decay are neglected
    over one step)."""
    qa = np.atleast_1d(np.asarray(accel_psd, float))
    qj = np.atleast_1d(np.asarray(jerk_psd, float))
    if np.ndim(dt) == 0:
        qa, qj = np.broadcast_arrays(qa, qj)
        ba, bj = _noise_blocks(abs(float(dt)))
        return qa[:, None, None] * ba + qj[:, None, None] * bj
    t = np.abs(np.atleast_1d(np.asarray(dt, dtype=float)))
    t, qa, qj = np.broadcast_arrays(t, qa, qj)
    t2, t3, t4, t5 = t * t, t**3, t**4, t**5
    z = np.zeros_like(t)
    h2, h3, s3, e4 = t2 / 2, t3 / 3, t3 / 6, t4 / 8
    a = np.stack([h3, h2, z, h2, t, z, z, z, z], axis=-1)
    j = np.stack([t5 / 20, e4, s3, e4, h3, h2, s3, h2, t], axis=-1)
    # the 3x3 coefficients first, then spread: the same products and sums per element as
    # qa kron(a, I3) + qj kron(j, I3), on (N, 9) instead of (N, 9, 9)
    c = (qa[:, None] * a + qj[:, None] * j).reshape(-1, 3, 3)
    return c[:, _BLK, _BLK.T] * _DIAG


def _noise_blocks(t: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit-PSD noise matrices (9, 9) over ``t``: white acceleration, white jerk."""
    t2, t3, t4, t5 = t * t, t**3, t**4, t**5
    a = np.array([[t3 / 3, t2 / 2, 0.0], [t2 / 2, t, 0.0], [0.0, 0.0, 0.0]])
    j = np.array([[t5 / 20, t4 / 8, t3 / 6], [t4 / 8, t3 / 3, t2 / 2], [t3 / 6, t2 / 2, t]])
    return a[_BLK, _BLK.T] * _DIAG, j[_BLK, _BLK.T] * _DIAG


# kron(c, I3) for a 3x3 c as one gather and one product: c[_BLK, _BLK.T] * _DIAG
_BLK = np.repeat(np.arange(3), 3)[:, None] * np.ones(9, dtype=int)[None, :]
_DIAG = (np.arange(9)[:, None] % 3 == np.arange(9)[None, :] % 3).astype(float)
