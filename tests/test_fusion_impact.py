"""Impact prediction and launch estimation (fusion.impact)."""

import numpy as np
from ballistic_synthetic import j2_accel
from scipy.integrate import solve_ivp

from tracklayer.fusion import frames
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.dynamics import ellipsoid_height
from tracklayer.fusion.impact import estimate_launch, predict_impacts, propagate_to_surface

T0 = 1_767_225_600.0


def _descending_state():
    r = np.array([4.2e6, 1.0e6, 5.3e6])
    r *= (6.378137e6 + 600e3) / np.linalg.norm(r)
    up = r / np.linalg.norm(r)
    east = np.cross([0.0, 0.0, 1.0], up)
    east /= np.linalg.norm(east)
    v = 6500.0 * (0.95 * east - 0.3 * up)
    return r, v


def test_vacuum_surface_crossing_matches_an_independent_integration():
    """No air (1/beta = 0): the crossing equals solve_ivp with a height-zero event on the
    test's own J2 model."""
    r, v = _descending_state()
    hit, t_hit, ok = propagate_to_surface(r[None], v[None], np.zeros(1), 4000.0, 60.0, 0.25)

    def ev(_t, y):
        return ellipsoid_height(y[:3])

    ev.terminal = True
    sol = solve_ivp(
        lambda _t, y: np.concatenate([y[3:], j2_accel(y[:3])]),
        (0.0, 4000.0),
        np.concatenate([r, v]),
        method="DOP853",
        rtol=1e-11,
        atol=1e-4,
        events=ev,
    )
    assert ok[0]
    np.testing.assert_allclose(t_hit[0], sol.t_events[0][0], atol=0.01)
    # RK4 with 60 s vacuum steps and the crossing interpolation: well under 100 m
    assert np.linalg.norm(hit[0] - sol.y_events[0][0][:3]) < 100.0


def test_drag_delays_the_impact_more_for_lighter_vehicles():
    r, v = _descending_state()
    inv_beta = np.array([0.0, 1 / 50000.0, 1 / 5000.0])  # vacuum, ICBM RV, SRBM RV
    _, t_hit, ok = propagate_to_surface(np.tile(r, (3, 1)), np.tile(v, (3, 1)), inv_beta, 4000.0)
    assert ok.all()
    # the air slows the fall: the lower the ballistic coefficient, the later the impact
    assert t_hit[0] < t_hit[1] < t_hit[2]


def test_impact_ellipse_grows_with_the_state_uncertainty_and_covers_the_scatter():
    r, v = _descending_state()
    cfg = FusionConfig().replace(impact_ballistic_coefficient_log_sigma=1e-3)
    x6 = np.concatenate([r, v])[None]
    small = np.diag([30.0**2] * 3 + [0.3**2] * 3)[None]
    big = small * 16.0
    e_small, e_big = predict_impacts(np.vstack([x6, x6]), np.vstack([small, big]), T0, cfg)
    # sigma-point spread is linear in the state sigma for small errors: x4 sigma, x4 ellipse
    np.testing.assert_allclose(e_big.semi_major_m / e_small.semi_major_m, 4.0, rtol=0.1)
    # Monte Carlo of the same uncertainty: the 1-sigma along-track extent agrees
    rng = np.random.default_rng(5)
    samples = x6 + rng.multivariate_normal(np.zeros(6), big[0], size=300)
    hit, t_hit, _ = propagate_to_surface(
        samples[:, :3], samples[:, 3:], np.full(300, 1 / 30000.0), 4000.0
    )
    ecef = frames.teme_to_ecef(hit, T0 + t_hit)
    lat, lon, _ = frames.ecef_to_geodetic(ecef.mean(axis=0))
    enu = frames.enu_matrix(float(lat), float(lon))
    d = (ecef - ecef.mean(axis=0)) @ enu[:2].T
    major_mc = np.sqrt(np.linalg.eigvalsh(np.cov(d.T))[-1])
    # 300 samples: the sample sigma is within ~10% (3 sd of a sample sd is ~12%)
    np.testing.assert_allclose(e_big.semi_major_m, major_mc, rtol=0.15)


def test_launch_point_of_a_constant_acceleration_climb_is_found():
    """Positions of a climb from a known pad with constant Earth-fixed acceleration:
    back-extrapolation returns the pad and the lift-off time."""
    pad = frames.geodetic_to_ecef(40.0, 100.0, 0.0)
    up = pad / np.linalg.norm(pad)
    east = np.cross([0.0, 0.0, 1.0], up)
    east /= np.linalg.norm(east)
    acc = 15.0 * up + 2.0 * east  # m/s^2, Earth-fixed
    t_launch = T0 + 30.0
    t = t_launch + np.arange(3.0, 20.0, 0.5)
    tau = (t - t_launch)[:, None]
    rng = np.random.default_rng(6)
    pos = pad + 0.5 * acc * tau**2 + rng.normal(scale=50.0, size=(t.size, 3))
    est = estimate_launch(t, pos, np.full(t.size, 50.0**2))
    lat, lon, _ = frames.ecef_to_geodetic(pad)
    err = frames.great_circle_m(est.latitude_deg, est.longitude_deg, lat, lon)
    # 34 samples of 50 m noise, extrapolated 3 s back: a few tens of metres
    assert err < 150.0
    assert abs(est.time_ns / 1e9 - t_launch) < 1.0
    assert est.semi_major_m > 0.0
