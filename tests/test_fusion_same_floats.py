"""The tracker's faster equivalents give the same floats as what they replace.

The built-in ``/tracks`` digests depend on every bit of the tracker's arithmetic, so
each shortcut taken for speed (issue 13: no scipy.stats or filterpy import at start,
norms and screens without numpy's slow reductions, a cached rotation) is checked here
against the library call it replaces, bit for bit, on many random inputs. (Not every
replacement can be: numpy's ``dot`` goes to BLAS, whose rounding may follow the
operands' addresses, so the impact prediction keeps filterpy's unscented transform,
imported at its first use.)
"""

import dataclasses

import numpy as np
import pytest
from filterpy.common import Q_discrete_white_noise
from scipy.stats import chi2

from tracklayer.fusion import geodesy
from tracklayer.fusion.association import chi2_quantile, may_gate
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.dynamics import norm3
from tracklayer.fusion.tracker.modes import boost_inflation


def _same(a, b) -> bool:
    """Equal bit for bit (sign of zero and NaNs included)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 10, 20, 40])
def test_chi2_quantile_is_scipy_stats_ppf(dof):
    for p in np.concatenate([np.linspace(0.5, 0.999999, 300), [0.9, 0.99, 0.997, 0.999]]):
        assert chi2_quantile(float(p), dof) == float(chi2.ppf(p, dof))


def test_boost_inflation_is_filterpys_discrete_white_noise():
    for dt in (0.1, 0.25, 0.5, 1.0, 1.7, 3.3):
        for sigma in (0.3, 1.0, 7.5, 20.0):
            cfg = dataclasses.replace(
                FusionConfig(), boost_inflate_lag_s=dt, init_accel_sigma_mps2=sigma
            )
            ref = Q_discrete_white_noise(
                dim=3, dt=dt, var=sigma**2, block_size=3, order_by_dim=False
            )
            assert _same(boost_inflation(cfg), ref)


def test_norm3_is_numpys_norm_over_the_last_axis():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(200_000, 3)) * rng.uniform(1e-3, 1e7, size=(200_000, 1))
    assert _same(norm3(v), np.linalg.norm(v, axis=-1))
    assert _same(norm3(v[:7]), np.linalg.norm(v[:7], axis=1))
    assert _same(norm3(v[5]), np.linalg.norm(v[5], axis=-1))
    v[3, 1] = np.nan
    assert _same(norm3(v[:10]), np.linalg.norm(v[:10], axis=-1))


def test_cached_teme_rotation_is_the_computed_one():
    t = 1_767_225_600.0 + np.arange(0.0, 3.0, 0.125)
    r = np.array([4.2e6, 1.0e6, 5.3e6])
    for ts in t:
        for _ in range(2):  # the second call comes from the cache
            ref = np.einsum("ij,j->i", geodesy.teme_to_ecef_matrix(ts), r)
            assert _same(geodesy.teme_to_ecef(r, ts), ref)
            assert _same(geodesy.teme_to_ecef(r, float(ts)), ref)
    assert _same(geodesy.teme_to_ecef(np.tile(r, (t.size, 1)), t)[4], geodesy.teme_to_ecef(r, t[4]))


def test_positions_of_one_time_to_ecef_elementwise_are_numpys():
    """The launch samples' batched conversions (geodesy.teme_to_ecef_points, elementwise
    products and sums) give teme_to_ecef's floats, one position at a time and a stack at
    once: random positions of every scale at random times, and the axes, zeros of both
    signs and infinities (einsum starts each sum from +0.0)."""
    rng = np.random.default_rng(13)
    special = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf]
    edge = np.array([[a, b, c] for a in special for b in special for c in special])
    for k in range(20):
        t = 1_767_225_600.0 + rng.uniform(0.0, 86_400.0)
        r = rng.normal(size=(1_000, 3)) * 10.0 ** rng.uniform(0.0, 8.0, (1_000, 1))
        if k == 0:
            r = np.vstack([r, edge])
        batch = geodesy.teme_to_ecef_points(r, t)
        for ri, bi in zip(r, batch, strict=True):
            ref = geodesy.teme_to_ecef(ri, t)
            assert _same(geodesy.teme_to_ecef_points(ri[None], t)[0], ref)
            assert _same(bi, ref)


def test_one_position_to_geodetic_is_pymap3ds():
    """A launch or impact centre's geodetic conversion (geodesy.ecef_to_geodetic_point,
    pymap3d's operations written out) gives ecef_to_geodetic's floats: random points from
    inside the Earth to far above it, on and near the poles, the axis and the centre
    (pymap3d's own branches) and points that are not finite."""
    rng = np.random.default_rng(15)
    points = []
    for spread in (1.0, 1e3, 1e5, 3e6):
        d = rng.normal(size=(4_000, 3))
        d /= np.linalg.norm(d, axis=1)[:, None]
        points.append(d * (6.37e6 + rng.uniform(-1.0, 1.0, (4_000, 1)) * spread))
    special = [[0.0, 0.0, 6.4e6], [0.0, 0.0, -6.3e6], [1e-9, 0.0, 6.4e6], [0.0, 0.0, 0.0],
               [6378137.0, 0.0, 0.0], [0.0, -6.4e6, -0.0], [1e3, 1e3, 6356752.0],
               [np.nan, 0.0, 1.0], [np.inf, 1.0, 1.0]]  # fmt: skip
    for r in np.vstack(points + [np.array(special)]):
        with np.errstate(all="ignore"):
            ref = geodesy.ecef_to_geodetic(r)
            got = geodesy.ecef_to_geodetic_point(r)
        assert all(_same(g, f) for g, f in zip(got, ref, strict=True)), r


def test_trace_of_three_in_python_floats_is_numpys():
    """A launch sample's variance: trace(P_rr) / 3 summed in order as Python floats is
    numpy's trace (pairing the last two would differ in about one case in four)."""
    rng = np.random.default_rng(14)
    P = rng.random((20_000, 9, 9)) * 10.0 ** rng.uniform(-3.0, 9.0, (20_000, 1, 1))
    batch = ((P[:, 0, 0] + P[:, 1, 1]) + P[:, 2, 2]) / 3.0  # reports.sample_launches
    for p, b in zip(P, batch, strict=True):
        ours = (float(p[0, 0]) + float(p[1, 1]) + float(p[2, 2])) / 3.0
        assert _same(ours, np.trace(p[:3, :3]) / 3.0)
        assert _same(float(b), ours)


def _may_gate_reference(x, P, dt, sensor, los, sigma, gates):
    """may_gate as first written: numpy's any over the (N, M) cosine test."""
    d = x[:, :3] + x[:, 3:6] * dt[:, None] - sensor
    rho = np.sqrt(np.einsum("ni,ni->n", d, d))
    u = d / rho[:, None]
    s_r = np.sqrt(np.einsum("nii->n", P[:, :3, :3]))
    s_v = np.sqrt(np.einsum("nii->n", P[:, 3:6, 3:6]))
    s_a = np.sqrt(np.einsum("nii->n", P[:, 6:, 6:]))
    a_norm = np.sqrt(np.einsum("ni,ni->n", x[:, 6:], x[:, 6:]))
    sigma_pos = s_r + dt * s_v + 0.5 * dt * dt * s_a
    miss = 0.5 * (10.0 + a_norm) * dt * dt + 10.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        tan_gate = np.sqrt(gates * ((sigma_pos / rho) ** 2 + float(np.max(sigma**2))))
        angle = 2.0 * np.arctan(tan_gate) + miss / rho
        c_min = np.where(angle < np.pi, np.cos(angle), -1.0)
    ok = np.isfinite(angle) & np.all(np.isfinite(u), axis=1)
    return np.any(u @ los.T >= c_min[:, None], axis=1) | ~ok


def test_may_gate_keeps_the_same_rows_as_numpys_any():
    rng = np.random.default_rng(11)
    sensor = np.array([7.0e6, 1.0e6, 2.0e6])
    n = 3000
    x = np.zeros((n, 9))
    x[:, :3] = rng.normal(size=(n, 3)) * 3e6 + np.array([3e6, 0.0, 0.0])
    x[:, 3:6] = rng.normal(size=(n, 3)) * 3e3
    x[:, 6:] = rng.normal(size=(n, 3)) * 5.0
    a = rng.normal(size=(n, 9, 9)) * rng.uniform(1.0, 3e3, size=(n, 1, 1))
    P = a @ np.swapaxes(a, -1, -2)
    x[5, 0] = np.nan  # rows that are not numbers are kept
    x[6, :3] = sensor  # a row at the sensor itself
    dt = rng.uniform(0.0, 3.0, size=n)
    gates = np.full(n, 13.8)
    d = x[:40, :3] - sensor + rng.normal(size=(40, 3)) * 2e4  # near some rows
    los = d / np.linalg.norm(d, axis=1)[:, None]
    sigma = np.full(los.shape[0], 5e-5)
    with np.errstate(invalid="ignore", divide="ignore"):
        got = may_gate(x, P, dt, sensor, los, sigma, gates)
        ref = _may_gate_reference(x, P, dt, sensor, los, sigma, gates)
        from_var = may_gate(x, P.diagonal(axis1=1, axis2=2)[:], dt, sensor, los, sigma, gates)
    assert 0 < got.sum() < n
    assert np.array_equal(got, ref)
    assert np.array_equal(from_var, ref)  # the variances alone, as the tracker passes them


def test_filterpy_and_scipy_stats_are_not_imported_to_track():
    """Importing the tracker and the offline runner costs no scipy.stats (~0.5 s)."""
    import subprocess
    import sys

    code = (
        "import sys, tracklayer.fusion.core, tracklayer.fusion.tracker, "
        "tracklayer.services.offline; "
        "print(sorted(m for m in ('scipy.stats', 'filterpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_launch_grid_search_in_chunks_finds_what_the_whole_grid_does():
    """The launch fit's look for the ground, chunk by chunk, gives the whole grid's
    heights (up to the crossing) and crossing index, bit for bit."""
    from tracklayer.fusion.dynamics import ellipsoid_height
    from tracklayer.fusion.impact import _heights_to_ground

    rng = np.random.default_rng(5)
    grid = -np.arange(0.0, 300.0 + 0.1, 0.1)
    up = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    found = 0
    for _ in range(300):
        order = int(rng.integers(1, 3))
        coef = np.zeros((order + 1, 3))
        coef[0] = up * (6.37e6 + rng.uniform(-5e3, 4e5))  # start near the surface
        coef[1] = up * rng.uniform(-500.0, 3000.0) + rng.normal(size=3) * 100.0
        if order == 2:
            coef[2] = up * rng.uniform(-20.0, 60.0)

        def pos(tt, coef=coef, order=order):
            return np.vander(np.atleast_1d(tt), order + 1, increasing=True) @ coef

        h_all = ellipsoid_height(pos(grid))
        below = np.flatnonzero(h_all <= 0.0)
        h, j = _heights_to_ground(pos, grid)
        if below.size:
            found += 1
            assert j == int(below[0])
            assert _same(h, h_all[: h.size]) and h.size > j
        else:
            assert j is None and _same(h, h_all)
    assert 50 < found < 300  # both cases seen


def _in_view_numpy(sensor, positions, limit, floor):
    """Existence.in_view's numpy arithmetic (the path for many rows)."""
    from tracklayer.fusion.tracker.existence import _geometry

    rng, clearance, limb = _geometry(sensor, positions)
    return (rng <= limit) & np.where(limb, clearance >= floor, clearance >= 0.0)


def test_in_view_of_a_few_rows_in_python_floats_is_numpys():
    """The sparse frame's view test in Python floats answers as numpy does, and leaves
    the answer to numpy (None) where a value sits at a limit."""
    from tracklayer.fusion.tracker.existence import _in_view_floats

    rng = np.random.default_rng(19)
    sensor = np.array([3.0e6, -5.5e6, 3.9e6])  # ~7,500 km from the centre
    limit, floor = 9.0e6, 60e3
    decided = 0
    for _ in range(3000):
        pos = rng.normal(size=(4, 3)) * 4e6
        got = _in_view_floats(sensor, pos, limit, floor)
        if got is not None:
            decided += 1
            assert np.array_equal(got, _in_view_numpy(sensor, pos, limit, floor))
    assert decided > 2900
    d = np.array([0.3, 0.8, -0.5]) / np.linalg.norm([0.3, 0.8, -0.5])
    at_limit = sensor + limit * d  # exactly at the range limit (to rounding)
    assert _in_view_floats(sensor, at_limit[None], limit, floor) is None
    beside = np.array([[np.nan, 0.0, 0.0]])  # not a number: numpy decides
    assert _in_view_floats(sensor, beside, limit, floor) is None


def test_in_view_of_many_rows_compiled_is_numpys():
    """The compiled view test (kernels.in_view, the few-row path's arithmetic over any
    number of rows) answers as numpy does, and leaves the frame to numpy (None) where one
    value sits at a limit."""
    from tracklayer.fusion import kernels
    from tracklayer.fusion.tracker.existence import _AXES, _MARGINS

    if not kernels.enabled():
        pytest.skip("kernels off")
    rng = np.random.default_rng(23)
    sensor = np.array([3.0e6, -5.5e6, 3.9e6])
    limit, floor = 9.0e6, 60e3
    decided = 0
    for _ in range(300):
        pos = rng.normal(size=(int(rng.integers(9, 400)), 3)) * 4e6
        got = kernels.in_view(sensor, pos, limit, floor, _AXES, _MARGINS)
        if got is not None:
            decided += 1
            assert np.array_equal(got, _in_view_numpy(sensor, pos, limit, floor))
    assert decided > 250
    d = np.array([0.3, 0.8, -0.5]) / np.linalg.norm([0.3, 0.8, -0.5])
    pos = rng.normal(size=(50, 3)) * 4e6
    pos[17] = sensor + limit * d  # one row exactly at the range limit (to rounding)
    assert kernels.in_view(sensor, pos, limit, floor, _AXES, _MARGINS) is None
    pos[17] = np.nan
    assert kernels.in_view(sensor, pos, limit, floor, _AXES, _MARGINS) is None


def test_plainly_valid_detections_are_valid_to_numpys_checks():
    """The Python-float pass over a few detections only ever lets through what the
    vectorised checks accept; what it doubts goes to them."""
    from tracklayer.fusion.validation import LOS_NORM_TOLERANCE, _plainly_valid

    rng = np.random.default_rng(23)
    passed = 0
    for _ in range(4000):
        n = int(rng.integers(1, 6))
        u = rng.normal(size=(n, 3))
        u /= np.linalg.norm(u, axis=1)[:, None]
        u *= 1.0 + rng.choice([0.0, 1.0, -1.0]) * rng.uniform(0.0, 2.0) * LOS_NORM_TOLERANCE
        sigma = rng.choice([5e-5, 1e-2, 2e-2, 0.0, np.nan], size=n, p=[0.9, 0.04, 0.02, 0.02, 0.02])
        if rng.random() < 0.02:
            u[0, 1] = rng.choice([np.nan, np.inf])
        if _plainly_valid(u, sigma):
            passed += 1
            with np.errstate(invalid="ignore"):
                err = np.abs(np.sqrt(np.einsum("ij,ij->i", u, u)) - 1.0)
            assert np.isfinite(u).all() and (err <= LOS_NORM_TOLERANCE).all()
            assert ((sigma > 0.0) & (sigma <= 1e-2)).all()
    assert 1000 < passed < 3900


def test_view_statistics_of_a_few_rows_in_python_floats_are_numpys(monkeypatch):
    """Existence.learn of a few positions at a time (Python floats, numpy near a bin
    edge) fills the histograms and learns the limits numpy's arithmetic does."""
    from tracklayer.fusion.tracker import existence

    rng = np.random.default_rng(29)
    sensor = np.array([3.0e6, -5.5e6, 3.9e6])
    batches = []
    for _ in range(600):
        d = rng.normal(size=(int(rng.integers(1, 40)), 3))
        d /= np.linalg.norm(d, axis=1)[:, None]
        batches.append(sensor + d * rng.uniform(1e6, 1.2e7, size=(d.shape[0], 1)))
    fast = existence.Existence(FusionConfig())
    for pos in batches:
        fast.learn(sensor, pos)
    monkeypatch.setattr(existence, "_FEW_LEARNED", 0)  # numpy only
    ref = existence.Existence(FusionConfig())
    for pos in batches:
        ref.learn(sensor, pos)
    assert ref._clear_hist.sum() > 100  # limb views were counted
    assert np.array_equal(fast._range_hist, ref._range_hist)
    assert np.array_equal(fast._clear_hist, ref._clear_hist)
    assert (fast.max_range_m, fast.min_clearance_m) == (ref.max_range_m, ref.min_clearance_m)
    assert fast.max_range_m > 0.0


def _unit(v):
    return v / np.linalg.norm(v, axis=1)[:, None]


def test_two_nearest_compiled_is_the_kd_trees():
    """The threads' compiled nearest neighbours (kernels.two_nearest) give what
    ``cKDTree(b).query(a, k=2)`` gives, squared: the same distances bit for bit and the
    same nearest index, on clouds of lines of sight of one sensor's view (random, a
    raid's objects strung along one path, a few points, repeats of one point)."""
    from scipy.spatial import cKDTree

    from tracklayer.fusion import kernels

    if not kernels.enabled():
        pytest.skip("kernels off")
    rng = np.random.default_rng(31)
    for case in range(240):
        n, m = (int(v) for v in rng.integers(1, 600, 2))
        centre = _unit(rng.normal(size=(1, 3)))
        spread = 10.0 ** rng.uniform(-5.0, -1.5)
        a = _unit(centre + spread * rng.normal(size=(n, 3)))
        if case % 3 == 0:  # strung along a line, a few urad across
            t = rng.uniform(0.0, 1.0, (m, 1))
            b = _unit(centre + spread * (t * rng.normal(size=3) + 1e-3 * rng.normal(size=(m, 3))))
        else:
            b = _unit(centre + spread * rng.normal(size=(m, 3)))
        if case % 5 == 0 and m > 3:  # the same point twice (a tie at the nearest)
            b[m // 2] = b[1]
        d1, j1, d2 = kernels.two_nearest(a, b)
        k = min(2, m)
        d, j = cKDTree(b).query(a, k=k)
        d, j = d.reshape(n, k) ** 2, j.reshape(n, k)
        assert _same(d1, d[:, 0]) and _same(d2, d[:, 1] if k > 1 else np.full(n, np.inf))
        tied = d1 == d2  # the tree's choice among exact ties is its own
        assert np.array_equal(j1[~tied], j[~tied, 0])
        assert np.array_equal(b[j1], b[j[:, 0]])  # (a tie: the same point)


def test_assignment_compiled_chooses_what_lapjvsp_chooses():
    """The compiled assignment (kernels.assign_pairs) picks the same pairs as scipy's
    LAPJVsp on the same graph (association._assign_scipy), ties included: random gated
    pairs with continuous costs, integer costs (many exact ties between assignments of
    equal total), the threads' +-16 adjustments, and raid-like bands of crossing
    candidates that chain hundreds of tracks into one component."""
    from tracklayer.fusion import association, kernels

    if not kernels.enabled():
        pytest.skip("kernels off")
    rng = np.random.default_rng(13)
    solved = 0
    for case in range(700):
        if case % 7 == 6:  # a band: each track gates a few neighbouring detections
            n, m = (int(v) for v in rng.integers(100, 400, 2))
            track = np.repeat(np.arange(n), rng.integers(1, 10, n))
            det = np.clip(track * m // n + rng.integers(-5, 6, track.size), 0, m - 1)
            key = np.unique(track * m + det)
            track, det = key // m, key % m
        else:
            n, m = (int(v) for v in rng.integers(1, 60, 2))
            track, det = np.nonzero(rng.random((n, m)) < 10.0 ** rng.uniform(-2.0, 0.0))
        k = track.size
        if case % 2:  # small integers: exact ties everywhere
            d2 = rng.integers(0, 5, k).astype(float)
            logdet = rng.integers(-3, 1, k).astype(float)
            gates = np.full(n, 3.0)
        else:
            d2, logdet = rng.uniform(0.0, 14.0, k), rng.normal(-25.0, 2.0, k)
            gates = np.where(rng.random(n) < 0.5, 9.21, 11.34)
        adjust = rng.choice([-16.0, 0.0, 16.0], k) if case % 3 else None
        ref = association._assign_scipy(track, det, d2, logdet, gates, adjust)
        got = kernels.assign_pairs(track, det, d2, logdet, gates, adjust)
        assert got is not None and np.array_equal(got, ref), case
        solved += ref.size > 1
    assert solved > 300
    # a weight scipy would treat otherwise is left to scipy
    nan = np.array([np.nan, -20.0])
    pairs = (np.array([0, 1]), np.array([0, 0]), np.ones(2))
    assert kernels.assign_pairs(*pairs, nan, np.full(2, 9.0), None) is None
