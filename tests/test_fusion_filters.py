"""Batched EKF (fusion.filters) against filterpy and against its own statistics."""

import numpy as np
from filterpy.kalman import ExtendedKalmanFilter
from scipy import stats

from tracklayer.fusion.dynamics import gravity
from tracklayer.fusion.evaluation import nees
from tracklayer.fusion.filters import (
    condition_on_zero_accel,
    predict,
    update,
)
from tracklayer.fusion.measurement import jacobian, los_to, predict_los, residuals


def _state():
    x = np.zeros(9)
    x[:3] = [4.0e6, 2.0e6, 4.8e6]
    x[3:6] = [-3000.0, 5000.0, 1000.0]
    x[6:] = [5.0, -2.0, 10.0]
    return x


def _cov():
    a = np.random.default_rng(0).normal(size=(9, 9))
    d = np.sqrt(np.array([1e4] * 3 + [1e2] * 3 + [1.0] * 3))
    return d[:, None] * (a @ a.T / 9.0 + np.eye(9)) * d[None, :]


def test_update_equals_filterpy_extended_kalman_filter():
    x, P = _state(), _cov()
    s = np.array([6.0e6, -3.0e6, 4.0e6])
    sigma = 20e-6
    rng = np.random.default_rng(1)
    truth = x[:3] + rng.normal(scale=100.0, size=3)
    m = los_to(truth[None, :], s)[0]

    u, rho, e = predict_los(x[None, :3], s)
    y = residuals(u, e, m[None, :])[:, 0, :]
    xn, Pn, nis = update(x[None], P[None], y, jacobian(e, rho)[:, :, :3], np.array([sigma]))

    ekf = ExtendedKalmanFilter(dim_x=9, dim_z=2)
    ekf.x = x.copy()
    ekf.P = P.copy()
    ekf.R = sigma**2 * np.eye(2)
    ekf.update(
        y[0],
        HJacobian=lambda _x: jacobian(e, rho)[0],
        Hx=lambda _x: np.zeros(2),  # the residual is already z - h(x)
    )
    np.testing.assert_allclose(xn[0], ekf.x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(Pn[0], ekf.P, rtol=1e-7, atol=1e-9)
    assert nis[0] >= 0.0


def test_conditioning_on_zero_thrust_equals_a_perfect_measurement_of_it():
    # Conditioning a Gaussian on a = 0 is a Kalman update with a noiseless a-measurement.
    x, P = _state(), _cov()
    xc, Pc = condition_on_zero_accel(x[None], P[None])
    H = np.zeros((3, 9))
    H[:, 6:] = np.eye(3)
    K = P @ H.T @ np.linalg.inv(H @ P @ H.T)
    np.testing.assert_allclose(xc[0], x - K @ (H @ x), atol=1e-6)
    np.testing.assert_allclose(Pc[0], P - K @ H @ P, atol=1e-6)


def test_filter_on_synthetic_ballistic_arc_is_consistent():
    """NEES of the 6-D state over 200 s of a J2 arc seen by 3 satellites."""
    rng = np.random.default_rng(11)
    x = np.zeros(9)
    x[:3] = [3.0e6, 1.0e6, 6.5e6]
    x[3:6] = [-4000.0, 5000.0, 2000.0]
    sats = np.array([[8.0e6, 0, 0], [0, 8.0e6, 0], [0, 0, 8.5e6]]) * 0.9 + 1e6
    sigma = 20e-6
    est = x.copy()
    est[:6] += rng.normal(size=6) * np.array([300.0] * 3 + [30.0] * 3)
    P = np.diag([300.0**2] * 3 + [30.0**2] * 3 + [0.0] * 3)
    n = []
    for k in range(600):
        dt = 1.0 / 3.0
        x[:6] = _truth_step(x[:6], dt)
        est, P = (a[0] for a in predict(est[None], P[None], dt, 0.0, 1e-8, 0.0))
        s = sats[k % 3]
        m = los_to(x[None, :3], s)[0]
        m = m + rng.normal(scale=sigma, size=3)
        m /= np.linalg.norm(m)
        u, rho, e = predict_los(est[None, :3], s)
        y = residuals(u, e, m[None])[:, 0, :]
        est, P, _ = (
            a[0]
            for a in update(est[None], P[None], y, jacobian(e, rho)[:, :, :3], np.array([sigma]))
        )
        if k >= 150:
            n.append(nees((est - x)[None, :6], P[None, :6, :6])[0])
    n = np.asarray(n)
    # 450 strongly correlated samples (~30 independent): the mean of a chi2(6) variable
    # lies within [3, 10] with overwhelming probability if the filter is consistent
    # (isotropic 3-D noise on a unit vector leaves sigma per tangent axis once normalised).
    assert 3.0 < n.mean() < 10.0
    assert np.mean(n > stats.chi2.ppf(0.999, 6)) < 0.05


def _truth_step(y, dt):
    from scipy.integrate import solve_ivp

    sol = solve_ivp(
        lambda _t, s: np.concatenate([s[3:], gravity(s[None, :3])[0]]),
        (0.0, dt),
        y,
        method="DOP853",
        rtol=1e-12,
        atol=1e-6,
    )
    return sol.y[:, -1]
