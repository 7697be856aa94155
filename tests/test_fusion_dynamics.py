"""Gravity model, its Jacobian, RK4 propagation and process noise (fusion.dynamics)."""

import numpy as np
from scipy.integrate import solve_ivp

from tracklayer.fusion.constants import GM_EARTH, J2, R_EARTH_EQ
from tracklayer.fusion.dynamics import (
    gravity,
    gravity_gradient,
    process_noise,
    propagate,
)

RNG = np.random.default_rng(7)


def _random_positions(n: int) -> np.ndarray:
    d = RNG.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * RNG.uniform(6.4e6, 8.5e6, size=(n, 1))


def _potential(r: np.ndarray) -> np.ndarray:
    """Point-mass + J2 potential, written independently of the module."""
    rn = np.linalg.norm(r, axis=-1)
    sphi = r[..., 2] / rn
    return GM_EARTH / rn * (1.0 - J2 * (R_EARTH_EQ / rn) ** 2 * 0.5 * (3.0 * sphi**2 - 1.0))


def test_gravity_is_the_gradient_of_the_j2_potential():
    r = _random_positions(20)
    h = 1.0  # m; central differences of a ~6e7 m^2/s^2 potential: error ~ 1e-9 m/s^2
    grad = np.stack(
        [(_potential(r + h * e) - _potential(r - h * e)) / (2 * h) for e in np.eye(3)], axis=1
    )
    np.testing.assert_allclose(gravity(r), grad, rtol=0, atol=1e-6)


def test_gravity_gradient_matches_finite_differences():
    r = _random_positions(20)
    h = 10.0  # m; gradient ~1e-6 /s^2, central-difference truncation ~ h^2 * 1e-19
    fd = np.stack([(gravity(r + h * e) - gravity(r - h * e)) / (2 * h) for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(gravity_gradient(r), fd, rtol=1e-6, atol=1e-14)


def test_gravity_gradient_is_symmetric_and_trace_free():
    # A potential field's Hessian is symmetric; outside the Earth Laplace's equation
    # makes it trace-free.
    g = gravity_gradient(_random_positions(5))
    np.testing.assert_allclose(g, np.swapaxes(g, 1, 2), atol=1e-18)
    np.testing.assert_allclose(np.trace(g, axis1=1, axis2=2), 0.0, atol=1e-18)


def _reference(x0: np.ndarray, dt: float) -> np.ndarray:
    def f(_t, y):
        return np.concatenate([y[3:], gravity(y[None, :3])[0]])

    sol = solve_ivp(f, (0.0, dt), x0, method="DOP853", rtol=1e-12, atol=1e-6)
    return sol.y[:, -1]


def _suborbital_states(n: int) -> np.ndarray:
    r = _random_positions(n) * (6.9e6 / 8.5e6)
    v = np.cross(r, RNG.normal(size=(n, 3)))
    v *= (6500.0 / np.linalg.norm(v, axis=1))[:, None]
    return np.hstack([r, v, np.zeros((n, 3))])


def test_rk4_matches_high_accuracy_integration_over_ten_minutes():
    x0 = _suborbital_states(4)
    xp, _ = propagate(x0, 600.0, max_step=2.0, with_stm=False)
    ref = np.array([_reference(x[:6], 600.0) for x in x0])
    # RK4 local error ~ (dt/T)^5 r per step with T ~ 900 s: << 1 mm over 300 steps
    np.testing.assert_allclose(xp[:, :3], ref[:, :3], atol=1e-2)
    np.testing.assert_allclose(xp[:, 3:6], ref[:, 3:], atol=1e-5)


def test_propagation_conserves_energy_and_polar_angular_momentum():
    # J2 is axially symmetric and time independent: energy and h_z are conserved.
    x0 = _suborbital_states(3)
    xp, _ = propagate(x0, 1200.0, max_step=5.0, with_stm=False)

    def energy(x):
        return 0.5 * np.sum(x[:, 3:6] ** 2, axis=1) - _potential(x[:, :3])

    def hz(x):
        return np.cross(x[:, :3], x[:, 3:6])[:, 2]

    # RK4 with 5 s steps drifts ~0.5 J/kg over 20 min (1e-8 of |E|): equivalent to
    # < 0.1 mm/s of speed, far below what LOS tracking resolves.
    np.testing.assert_allclose(energy(xp), energy(x0), rtol=0, atol=1.0)
    np.testing.assert_allclose(hz(xp), hz(x0), rtol=1e-8)


def test_forward_then_backward_returns_to_start():
    x0 = _suborbital_states(3)
    x1, _ = propagate(x0, 300.0, with_stm=False)
    x2, _ = propagate(x1, -300.0, with_stm=False)
    np.testing.assert_allclose(x2, x0, atol=1e-4)  # RK4 error, both ways, << 1 mm


def test_state_transition_matrix_matches_finite_differences():
    x0 = _suborbital_states(2)
    x0[:, 6:] = [[3.0, -2.0, 5.0], [0.0, 1.0, 0.0]]  # thrust acceleration, m/s^2
    inv_tau = np.array([1.0 / 60.0, 0.0])
    _, phi = propagate(x0, 20.0, inv_tau, max_step=1.0)
    steps = np.array([10.0, 10.0, 10.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1])
    fd = np.empty_like(phi)
    for j in range(9):
        d = np.zeros(9)
        d[j] = steps[j]
        xp, _ = propagate(x0 + d, 20.0, inv_tau, max_step=1.0, with_stm=False)
        xm, _ = propagate(x0 - d, 20.0, inv_tau, max_step=1.0, with_stm=False)
        fd[:, :, j] = (xp - xm) / (2 * steps[j])
    # linear map up to second-order terms ~ gradient' * dx^2 * dt^2: below 1e-6 relative
    np.testing.assert_allclose(phi, fd, rtol=1e-6, atol=1e-8)


def test_process_noise_of_random_walk_acceleration_matches_monte_carlo():
    # Integrate white jerk exactly in fine steps and compare the sample covariance of
    # (r, v, a) per axis with the closed form; 20000 samples -> ~2% sampling error.
    q, dt, n, sub = 4.0, 2.0, 20000, 200
    h = dt / sub
    rng = np.random.default_rng(1)
    s = np.zeros((n, 3))
    for _ in range(sub):
        j = rng.normal(scale=np.sqrt(q / h), size=n)
        s[:, 0] += s[:, 1] * h + 0.5 * s[:, 2] * h * h + j * h**3 / 6
        s[:, 1] += s[:, 2] * h + 0.5 * j * h * h
        s[:, 2] += j * h
    Q = process_noise(dt, 0.0, q)[0]
    block = Q[np.ix_([0, 3, 6], [0, 3, 6])]
    np.testing.assert_allclose(np.cov(s.T), block, rtol=0.06)
    assert np.all(Q[np.ix_([1, 4, 7], [0, 3, 6])] == 0.0)  # axes independent
