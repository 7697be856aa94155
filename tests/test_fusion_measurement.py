"""LOS measurement model in the tangent plane of the predicted LOS (fusion.measurement)."""

import numpy as np

from tracklayer.fusion.measurement import (
    jacobian,
    los_to,
    predict_los,
    residuals,
    tangent_basis,
)

RNG = np.random.default_rng(3)


def test_tangent_basis_is_orthonormal_and_perpendicular_to_the_los():
    u = RNG.normal(size=(50, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    u[0] = [0.0, 0.0, 1.0]  # along an axis
    u[1] = [1.0, 0.0, 0.0]
    e = tangent_basis(u)
    gram = e @ np.swapaxes(e, 1, 2)
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(2), gram.shape), atol=1e-15)
    np.testing.assert_allclose(np.einsum("nkj,nj->nk", e, u), 0.0, atol=1e-15)


def test_residual_of_a_small_rotation_equals_the_rotation_angles():
    s = np.array([7.0e6, 0.0, 0.0])
    r = np.array([[5.0e6, 3.0e6, 1.0e6]])
    u, rho, e = predict_los(r, s)
    angles = np.array([30e-6, -20e-6])  # rad, typical noise
    m = u[0] + angles @ e[0]
    m /= np.linalg.norm(m)
    y = residuals(u, e, m[None, :])[0, 0]
    # gnomonic coordinates of a unit vector at angle theta: tan(theta) ~ theta + theta^3/3
    np.testing.assert_allclose(y, angles, rtol=1e-9)


def test_residual_is_infinite_for_a_los_pointing_away():
    u, _, e = predict_los(np.array([[1.0, 0.0, 0.0]]), np.zeros(3))
    assert np.all(np.isinf(residuals(u, e, np.array([[-1.0, 0.0, 0.0]]))))


def test_jacobian_matches_finite_differences_of_the_gnomonic_prediction():
    s = np.array([2.0e6, -6.5e6, 3.0e6])
    r0 = np.array([[1.0e6, -4.0e6, 5.5e6]])
    u0, rho, e = predict_los(r0, s)
    H = jacobian(e, rho)[0]

    def h(r):
        m = los_to(r[None, :], s)
        return residuals(u0, e, m)[0, 0]

    fd = np.zeros((2, 9))
    for j in range(3):
        d = np.zeros(3)
        d[j] = 1.0  # m; second-order term ~ (1 m / 3000 km)^2 rad, negligible
        fd[:, j] = (h(r0[0] + d) - h(r0[0] - d)) / 2.0
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-15)
    assert np.all(H[:, 3:] == 0.0)  # angles do not depend on velocity or thrust
