"""Two-ray initiation (fusion.initiation): intersections, covariance, pairing rules."""

import numpy as np

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.initiation import InitiationBuffer, closest_points, triangulate

TARGET = np.array([4.5e6, 1.2e6, 4.6e6])  # m, ~700 km up
SAT_A = np.array([6.0e6, -1.5e6, 4.0e6])
SAT_B = np.array([3.0e6, 3.5e6, 5.5e6])
SAT_C = np.array([6.5e6, 2.5e6, 2.0e6])


def _unit(v):
    return v / np.linalg.norm(v)


def test_closest_points_of_exact_rays_meet_at_the_target():
    t1, t2, miss, sin_a = closest_points(SAT_A, _unit(TARGET - SAT_A), SAT_B, _unit(TARGET - SAT_B))
    assert miss < 1e-6  # exact rays through one point: zero miss up to rounding
    np.testing.assert_allclose(t1, np.linalg.norm(TARGET - SAT_A), rtol=1e-12)
    np.testing.assert_allclose(t2, np.linalg.norm(TARGET - SAT_B), rtol=1e-12)
    assert 0.0 < sin_a <= 1.0


def test_closest_points_miss_distance_of_offset_rays():
    # Shift ray B by 500 m perpendicular to both rays: the miss distance is 500 m.
    ua, ub = _unit(TARGET - SAT_A), _unit(TARGET - SAT_B)
    n = _unit(np.cross(ua, ub))
    _, _, miss, _ = closest_points(SAT_A, ua, SAT_B + 500.0 * n, ub)
    np.testing.assert_allclose(miss, 500.0, rtol=1e-9)


def test_triangulation_covariance_matches_monte_carlo_scatter():
    """Noisy rays (20 urad): the scatter of the LSQ point matches the returned covariance."""
    rng = np.random.default_rng(4)
    sats = np.stack([SAT_A, SAT_B, SAT_C])
    rho = np.linalg.norm(TARGET - sats, axis=1)
    sigma = 20e-6
    pts = []
    for _ in range(2000):
        u = np.array([_unit(_unit(TARGET - s) + rng.normal(scale=sigma, size=3)) for s in sats])
        p, cov = triangulate(sats, u, (sigma * rho) ** 2)
        pts.append(p)
    pts = np.array(pts)
    # isotropic 3-D noise on the unit vector leaves sigma per tangent axis
    np.testing.assert_allclose(pts.mean(axis=0), TARGET, atol=5.0)  # mean of 2000: ~1 m
    emp = np.cov(pts.T)
    # 2000 samples: variances within ~10% (3 sigma of a sample variance is ~9.5%)
    np.testing.assert_allclose(np.diag(emp), np.diag(cov), rtol=0.12)


def _frame_rays(sat, points, sigma=20e-6):
    los = np.array([_unit(p - sat) for p in points])
    return los, np.full(len(points), sigma)


def test_pair_creates_a_candidate_at_the_intersection_of_two_sensors_rays():
    buf = InitiationBuffer(FusionConfig())
    los_a, sig = _frame_rays(SAT_A, [TARGET])
    cands, left = buf.pair(100.0, "a", SAT_A, los_a, sig)
    assert cands == [] and list(left) == [0]
    buf.add(100.0, "a", SAT_A, los_a, sig)
    los_b, sig = _frame_rays(SAT_B, [TARGET])
    cands, left = buf.pair(100.0, "b", SAT_B, los_b, sig)
    assert len(cands) == 1 and left.size == 0
    idx, cand = cands[0]
    assert idx == 0 and cand.sensors == ("b", "a")
    np.testing.assert_allclose(cand.position, TARGET, atol=1e-3)  # exact rays
    assert len(buf) == 0  # the waiting detection was used


def test_pair_ignores_the_same_sensor_and_old_detections():
    cfg = FusionConfig()
    buf = InitiationBuffer(cfg)
    los_a, sig = _frame_rays(SAT_A, [TARGET])
    buf.add(100.0, "a", SAT_A, los_a, sig)
    cands, _ = buf.pair(100.5, "a", SAT_A, los_a, sig)  # same sensor: never a pair
    assert cands == []
    los_b, sig = _frame_rays(SAT_B, [TARGET])
    cands, _ = buf.pair(100.0 + cfg.init_window_s + 0.1, "b", SAT_B, los_b, sig)
    assert cands == []  # the waiting detection has expired


def test_pair_rejects_rays_that_do_not_nearly_intersect():
    buf = InitiationBuffer(FusionConfig())
    los_a, sig = _frame_rays(SAT_A, [TARGET])
    buf.add(100.0, "a", SAT_A, los_a, sig)
    # ray from B to a point 50 km away across ray A: far beyond 4 sigma (~0.5 km)
    ua, ub = _unit(TARGET - SAT_A), _unit(TARGET - SAT_B)
    off = TARGET + 50e3 * _unit(np.cross(ua, ub))
    los_b, sig = _frame_rays(SAT_B, [off])
    cands, left = buf.pair(100.0, "b", SAT_B, los_b, sig)
    assert cands == [] and list(left) == [0]


def test_pair_matches_each_detection_with_its_own_partner():
    p2 = TARGET + np.array([30e3, -20e3, 10e3])
    buf = InitiationBuffer(FusionConfig())
    los_a, sig = _frame_rays(SAT_A, [TARGET, p2])
    buf.add(100.0, "a", SAT_A, los_a, sig)
    los_b, sig = _frame_rays(SAT_B, [p2, TARGET])
    cands, _ = buf.pair(100.2, "b", SAT_B, los_b, sig)
    got = {i: c.position for i, c in cands}
    # the 0.2 s motion allowance (1.6 km) is far smaller than the 37 km spacing
    np.testing.assert_allclose(got[0], p2, atol=1.0)
    np.testing.assert_allclose(got[1], TARGET, atol=1.0)


def test_pair_with_a_screen_keeps_the_wanted_candidates_and_uses_the_same_detections():
    """S > 1 shards screen pairs by their point (``wanted``): the candidates returned are
    exactly the unscreened ones whose point is wanted (same bits), and the detections a
    screened-out pair used are used up all the same (``left`` unchanged), so the screen
    changes nothing but which tracks start."""
    rng = np.random.default_rng(8)
    targets = TARGET + rng.normal(scale=300e3, size=(12, 3))  # 12 targets, ~300 km apart
    los_a, sig = _frame_rays(SAT_A, targets)
    los_b, _ = _frame_rays(SAT_B, targets[::-1])  # another order: pairs are found, not given

    def run(wanted):
        buf = InitiationBuffer(FusionConfig())
        buf.add(10.0, "a", SAT_A, los_a, sig)
        return buf.pair(10.5, "b", SAT_B, los_b, sig, wanted)

    every, left = run(None)
    assert len(every) >= 6  # most targets are seen by both (some pairs fail the rules)
    east = targets[:, 1].mean()  # about half the targets on either side
    seen = []

    def wanted(points):
        seen.append(points)
        return points[:, 1] > east

    kept, left_kept = run(wanted)
    assert np.array_equal(left_kept, left)
    expect = [(m, c) for m, c in every if c.position[1] > east]
    assert 0 < len(expect) < len(every)
    assert [m for m, _ in kept] == [m for m, _ in expect]
    for (_, c), (_, e) in zip(kept, expect, strict=True):
        assert np.array_equal(c.position, e.position) and np.array_equal(
            c.position_cov, e.position_cov
        )
    # the batch points the screen saw are the exact ones within a metre (same solution)
    batch = np.sort(seen[0][:, 1])
    np.testing.assert_allclose(batch, np.sort([c.position[1] for _, c in every]), rtol=0, atol=1.0)
