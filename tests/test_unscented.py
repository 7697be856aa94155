"""fusion/unscented.py: filterpy's Julier sigma points and unscented transform, bit for
bit, and the moments the sigma points must carry."""

import numpy as np
import pytest
from filterpy.kalman import JulierSigmaPoints as FilterpyJulier
from filterpy.kalman import unscented_transform as filterpy_transform

from tracklayer.fusion.impact import _eig_sqrt
from tracklayer.fusion.unscented import JulierSigmaPoints, unscented_transform


def _gaussian(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A mean and an SPD covariance with scales from metres to ln(beta) (impact's mix)."""
    scale = np.array([1e6, 2e6, 3e6, 1e3, 2e3, 3e3, 0.5])[:n]
    a = rng.standard_normal((n, n)) * scale[:, None] * 1e-3
    return rng.standard_normal(n) * scale, a @ a.T + 1e-9 * np.eye(n)


@pytest.mark.parametrize("kappa", [0.0, 1.0, 3.0])
def test_sigma_points_and_weights_are_filterpys_floats(kappa: float) -> None:
    rng = np.random.default_rng(13)
    for n in (3, 6, 7):
        ours = JulierSigmaPoints(n, kappa=kappa, sqrt_method=_eig_sqrt)
        theirs = FilterpyJulier(n, kappa=kappa, sqrt_method=_eig_sqrt)
        assert ours.Wm.tobytes() == theirs.Wm.tobytes()
        assert ours.Wc.tobytes() == theirs.Wc.tobytes()
        for _ in range(20):
            x, P = _gaussian(rng, n)
            assert ours.sigma_points(x, P).tobytes() == theirs.sigma_points(x, P).tobytes()


def test_unscented_transform_is_filterpys_floats() -> None:
    rng = np.random.default_rng(7)
    julier = JulierSigmaPoints(7, kappa=0.0, sqrt_method=_eig_sqrt)
    wm, wc = julier.Wm[1:], julier.Wc[1:]  # impact drops the zero-weight centre
    for _ in range(50):
        pts = rng.standard_normal((14, 3)) * 1e4 + rng.standard_normal(3) * 6e6
        mean, cov = unscented_transform(pts, wm, wc)
        f_mean, f_cov = filterpy_transform(pts, wm, wc)
        assert mean.tobytes() == f_mean.tobytes()
        assert cov.tobytes() == f_cov.tobytes()


def test_sigma_points_carry_the_mean_and_covariance() -> None:
    """The symmetric set reproduces its Gaussian's first two moments exactly in
    arithmetic; the tolerance is rounding on sums of 2n terms of the state's scale."""
    rng = np.random.default_rng(3)
    for kappa in (0.0, 2.0):
        julier = JulierSigmaPoints(7, kappa=kappa, sqrt_method=_eig_sqrt)
        x, P = _gaussian(rng, 7)
        mean, cov = unscented_transform(julier.sigma_points(x, P), julier.Wm, julier.Wc)
        np.testing.assert_allclose(mean, x, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(cov, P, rtol=1e-7, atol=1e-9 * np.abs(P).max())


def test_a_mean_of_the_wrong_size_is_refused() -> None:
    julier = JulierSigmaPoints(3, sqrt_method=_eig_sqrt)
    with pytest.raises(ValueError, match="expected 3"):
        julier.sigma_points(np.zeros(4), np.eye(3))
