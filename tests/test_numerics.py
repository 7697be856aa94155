"""``fusion/numerics``: the tracker's chi-square quantiles, discrete white noise and
sigma points are the same bits as the scipy.stats / filterpy functions they stand in
for, and building a tracker (as the fusion service does before answering SERVING) no
longer imports scipy.stats or filterpy (~0.8 CPU s at every restart, issue 15)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from filterpy.common import Q_discrete_white_noise as fp_q_white
from filterpy.kalman import JulierSigmaPoints as FpJulier
from filterpy.kalman import unscented_transform as fp_unscented
from scipy.stats import chi2 as sp_chi2

from tracklayer.fusion import numerics
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.impact import _eig_sqrt
from tracklayer.fusion.tracker.track import NIS_WINDOW


def same_bits(a: object, b: object) -> bool:
    """Equal to the last bit (shape, dtype and every byte)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_chi2_quantiles_the_tracker_uses_are_scipys_bits():
    cfg = FusionConfig()
    used = [(cfg.gate_probability, 2), (cfg.boost_gate_probability, 2)]
    used += [(0.999, 2 * n) for n in range(1, NIS_WINDOW + 1)]  # lifecycle's NIS limits
    used += [(0.99, 2 * n) for n in range(1, 1025)]  # modes' burnout limits (lru 1,024)
    for q, df in used:
        mine, ref = numerics.chi2.ppf(q, df), sp_chi2.ppf(q, df)
        assert same_bits(mine, ref), (q, df, mine, ref)
        assert float(mine) == float(ref)


def test_chi2_quantile_matches_scipy_over_its_domain_and_edges():
    rng = np.random.default_rng(15)
    q = np.concatenate([rng.uniform(0, 1, 400), 1 - 10.0 ** -rng.uniform(1, 12, 100)])
    df = np.concatenate([rng.integers(1, 80, 400), rng.uniform(0.1, 40, 100)])
    assert same_bits(numerics.chi2.ppf(q, df), sp_chi2.ppf(q, df))
    for q_, df_ in [(0.0, 2), (1.0, 2), (-0.1, 2), (1.1, 2), (0.5, 0), (0.5, -3)]:
        mine, ref = numerics.chi2.ppf(q_, df_), sp_chi2.ppf(q_, df_)
        assert same_bits(mine, ref), (q_, df_, mine, ref)
    # the median of chi2(2) is 2 ln 2 (an exponential with mean 2), independently of scipy
    assert numerics.chi2.ppf(0.5, 2) == pytest.approx(2 * np.log(2), rel=1e-14)


@pytest.mark.parametrize("dim", [2, 3, 4])
@pytest.mark.parametrize("block_size", [1, 2, 3])
@pytest.mark.parametrize("order_by_dim", [True, False])
def test_discrete_white_noise_is_filterpys(dim, block_size, order_by_dim):
    rng = np.random.default_rng(dim * 10 + block_size)
    for dt, var in zip(rng.uniform(1e-3, 30, 20), rng.uniform(1e-3, 1e3, 20), strict=True):
        mine = numerics.Q_discrete_white_noise(dim, float(dt), float(var), block_size, order_by_dim)
        ref = fp_q_white(dim, float(dt), float(var), block_size, order_by_dim)
        assert same_bits(mine, ref)


def test_discrete_white_noise_is_the_integrated_white_acceleration_model():
    # dim 2 over dt: G = [dt^2/2, dt], Q = G G^T var (independent of filterpy)
    dt, var = 0.7, 3.0
    g = np.array([dt**2 / 2, dt])
    np.testing.assert_allclose(numerics.Q_discrete_white_noise(2, dt, var), np.outer(g, g) * var)
    with pytest.raises(ValueError, match="dim"):
        numerics.Q_discrete_white_noise(5, dt, var)


def test_boost_inflation_is_the_same_matrix():
    from tracklayer.fusion.tracker.modes import boost_inflation

    cfg = FusionConfig()
    ref = fp_q_white(
        dim=3,
        dt=cfg.boost_inflate_lag_s,
        var=cfg.init_accel_sigma_mps2**2,
        block_size=3,
        order_by_dim=False,
    )
    assert same_bits(boost_inflation(cfg), ref)


def _spd(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.normal(size=(n, n)) * rng.uniform(1, 1e4, n)
    return a @ a.T + 1e-6 * np.eye(n)


def test_sigma_points_and_unscented_transform_are_filterpys():
    rng = np.random.default_rng(7)
    for n, kappa in [(7, 0.0), (3, 1.0), (4, 2.5)]:
        mine = numerics.JulierSigmaPoints(n, kappa=kappa, sqrt_method=_eig_sqrt)
        ref = FpJulier(n, kappa=kappa, sqrt_method=_eig_sqrt)
        assert same_bits(mine.Wm, ref.Wm) and same_bits(mine.Wc, ref.Wc)
        for _ in range(30):
            x, P = rng.normal(size=n) * 1e6, _spd(rng, n)
            s_mine, s_ref = mine.sigma_points(x, P), ref.sigma_points(x, P)
            assert same_bits(s_mine, s_ref)
            m_mine, c_mine = numerics.unscented_transform(s_mine[1:], mine.Wm[1:], mine.Wc[1:])
            m_ref, c_ref = fp_unscented(s_ref[1:], ref.Wm[1:], ref.Wc[1:])
            assert same_bits(m_mine, m_ref) and same_bits(c_mine, c_ref)
    # the symmetric set reproduces the mean and covariance it was drawn from
    x, P = rng.normal(size=3), _spd(rng, 3)
    sp = numerics.JulierSigmaPoints(3, kappa=0.0, sqrt_method=_eig_sqrt)
    m, c = numerics.unscented_transform(sp.sigma_points(x, P)[1:], sp.Wm[1:], sp.Wc[1:])
    np.testing.assert_allclose(m, x, atol=1e-12 * np.sqrt(P.diagonal().max()))
    np.testing.assert_allclose(c, P, rtol=1e-9)
    with pytest.raises(ValueError, match="x: 2 values, expected 3"):
        sp.sigma_points(np.zeros(2), P)


_NO_SCIPY_STATS = """
import sys
from tracklayer.services.cli.main import main  # the entry point of `tracklayer fusion`
from tracklayer.services.fusion_service.engine import FusionEngine
from tracklayer.fusion.core import FusionCore
from tracklayer.fusion.config import FusionConfig
FusionCore("f", FusionConfig(), live=True)  # what the service builds before SERVING
heavy = sorted(m for m in sys.modules if m.startswith(("scipy.stats", "filterpy")))
print(",".join(heavy))
"""


def test_building_the_service_and_a_tracker_does_not_import_scipy_stats_or_filterpy():
    out = subprocess.run(
        [sys.executable, "-c", _NO_SCIPY_STATS], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"imported at start: {out[:300]}"
