"""The compiled kernels (fusion/kernels.py) against the numpy code they stand in for.

Each kernel must compute what its numpy original computes, to rounding: random states
and covariances of the sizes the tracker meets (orbits, boost accelerations, short and
negative steps, Singer rates zero and not), compared element by element. And the
tracker must work without them: ``TRACKLAYER_JIT=0`` or a numba that fails to compile
falls back to numpy (one warning), with the same decisions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tracklayer.fusion import association, filters, kernels
from tracklayer.fusion.dynamics import process_noise, propagate_short

rng = np.random.default_rng(20261207)


def _states(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random states (N, 9) at 6,400-7,400 km with km/s speeds and boost accelerations,
    and random positive definite covariances (N, 9, 9) spanning a few decades."""
    x = np.empty((n, 9))
    d = rng.normal(size=(n, 3))
    x[:, :3] = d / np.linalg.norm(d, axis=1)[:, None] * rng.uniform(6.4e6, 7.4e6, (n, 1))
    x[:, 3:6] = rng.normal(size=(n, 3)) * 3_000.0
    x[:, 6:] = rng.normal(size=(n, 3)) * 20.0
    L = rng.normal(size=(n, 9, 9)) * np.geomspace(1e-2, 1e2, 9)[None, :, None]
    P = L @ np.swapaxes(L, 1, 2) + np.eye(9)
    return x, P


def _numpy(fn):
    kernels.set_enabled(False)
    try:
        return fn()
    finally:
        kernels.set_enabled(True)


@pytest.fixture(autouse=True)
def _jit_on():
    kernels.set_enabled(True)
    if not kernels.enabled():
        pytest.skip("numba is not installed")
    yield
    kernels.set_enabled(True)


def _rel(a: np.ndarray, b: np.ndarray, axes: tuple[int, ...]) -> float:
    """Largest |a - b| relative to the largest |a| of each matrix (over ``axes``)."""
    scale = np.abs(a).max(axis=axes, keepdims=True)
    return float((np.abs(a - b) / scale).max())


def test_predict_kernel_equals_numpy_taylor_step_noise_and_covariance():
    x, P = _states(400)
    dt = rng.uniform(-2.0, 2.0, 400)
    inv_tau = np.where(rng.random(400) < 0.3, 0.0, rng.uniform(1e-3, 0.5, 400))
    qa, qj = rng.uniform(0, 10, 400), rng.uniform(0, 10, 400)
    xk, Pk = filters.predict(x, P, dt, inv_tau, qa, qj)
    xn, Pn = _numpy(lambda: filters.predict(x, P, dt, inv_tau, qa, qj))
    # an independent check of the numpy side itself: Phi P Phi^T + Q from dynamics
    xs, phi = propagate_short(x, dt, inv_tau)
    ref = phi @ P @ np.swapaxes(phi, 1, 2) + process_noise(dt, qa, qj)
    np.testing.assert_allclose(Pn, 0.5 * (ref + np.swapaxes(ref, 1, 2)), rtol=0, atol=1e-9)
    assert np.abs(xk - xn).max() <= 1e-15 * np.abs(xn).max() * 10
    assert _rel(Pn, Pk, (1, 2)) < 1e-12
    assert np.array_equal(Pk, np.swapaxes(Pk, 1, 2))  # symmetric exactly, as numpy's
    # one dt for every row, as the life-cycle tick predicts
    xk, Pk = filters.predict(x, P, 0.25, inv_tau, qa, qj)
    xn, Pn = _numpy(lambda: filters.predict(x, P, 0.25, inv_tau, qa, qj))
    assert np.abs(xk - xn).max() <= 1e-14 * np.abs(xn).max()
    assert _rel(Pn, Pk, (1, 2)) < 1e-12


def test_update_kernel_equals_numpy_joseph_form():
    x, P = _states(300)
    y = rng.normal(size=(300, 2)) * 1e-5
    H = rng.normal(size=(300, 2, 3)) * 1e-7
    sigma = rng.uniform(1e-6, 5e-5, 300)
    xk, Pk, nk = filters.update(x, P, y, H, sigma)
    xn, Pn, nn = _numpy(lambda: filters.update(x, P, y, H, sigma))
    assert np.abs(xk - xn).max() <= 1e-14 * np.abs(xn).max()
    assert _rel(Pn, Pk, (1, 2)) < 1e-11
    np.testing.assert_allclose(nk, nn, rtol=1e-12)
    # the update shrinks the position variance along the measured directions
    assert np.all(
        np.trace(Pk[:, :3, :3], axis1=1, axis2=2) < np.trace(P[:, :3, :3], axis1=1, axis2=2)
    )


def _scene(n: int, m: int):
    x, P = _states(n)
    P[:, :3, :3] *= 1e2  # ~100 m position sigma
    sensor = np.array([4.0e7, 1.0e6, 2.0e6])
    d = x[:, :3] - sensor
    u = d / np.linalg.norm(d, axis=1)[:, None]
    los = u[rng.choice(n, m)] + rng.normal(size=(m, 3)) * 3e-6
    los /= np.linalg.norm(los, axis=1)[:, None]
    return x, P, sensor, los, np.full(m, 2e-5), np.where(rng.random(n) < 0.5, 13.8, 23.0)


def test_gate_kernel_gives_the_same_pairs_and_distances():
    x, P, sensor, los, sigma, gates = _scene(600, 80)
    k = association.gate(x, P, sensor, los, sigma, gates)
    n = _numpy(lambda: association.gate(x, P, sensor, los, sigma, gates))
    assert k.track.size > 40  # the scene has pairs to compare
    assert np.array_equal(k.track, n.track) and np.array_equal(k.det, n.det)
    np.testing.assert_allclose(k.d2, n.d2, rtol=1e-9)
    np.testing.assert_allclose(k.logdet, n.logdet, rtol=1e-12)
    np.testing.assert_allclose(k.residual, n.residual, rtol=1e-9, atol=1e-18)
    np.testing.assert_allclose(k.hpos, n.hpos, rtol=1e-13, atol=1e-22)
    np.testing.assert_allclose(k.rho, n.rho, rtol=1e-15)
    np.testing.assert_allclose(k.u, n.u, rtol=0, atol=1e-15)
    # the assignment over them is the same
    a_k = association.assign_pairs(k.track, k.det, k.d2, k.logdet, gates)
    a_n = association.assign_pairs(n.track, n.det, n.d2, n.logdet, gates)
    assert np.array_equal(a_k, a_n) and a_k.size > 20


def test_may_gate_kernel_keeps_the_same_rows():
    x, P, sensor, los, sigma, gates = _scene(800, 30)
    dt = rng.uniform(0, 1.0, 800)
    k = association.may_gate(x, P, dt, sensor, los, sigma, gates)
    n = _numpy(lambda: association.may_gate(x, P, dt, sensor, los, sigma, gates))
    assert 0 < k.sum() < 800
    assert np.array_equal(k, n)
    assert association.may_gate_any(x, P, dt, sensor, los, sigma, gates)
    # no detection near any row: nothing kept, by either
    far = -los
    assert not association.may_gate_any(x, P, dt, sensor, far, sigma, gates)
    assert not association.may_gate(x, P, dt, sensor, far, sigma, gates).any()
    # a row that is not a number is kept (the gate decides)
    x[0, 0] = np.nan
    assert association.may_gate(x[:1], P[:1], dt[:1], sensor, far, sigma, gates[:1])[0]


def test_indexed_kernels_read_and_write_the_stack_as_the_gathered_ones():
    """The tracker's screen and its rows' sync read the stack in place
    (kernels.may_gate_at, kernels.predict_at): the same rows kept and the same floats,
    bit for bit, as the kernels on the gathered rows with the scatter back."""
    x, P, sensor, los, sigma, gates = _scene(900, 40)
    t_ns = rng.integers(0, 2_000_000_000, 900)
    rows = np.sort(rng.choice(900, 500, replace=False))
    frame_ns = 2_000_000_000
    dt = (frame_ns - t_ns[rows]) / 1_000_000_000
    var = P.diagonal(axis1=1, axis2=2)[rows]
    ref = association.may_gate_rows(x[rows], var, dt, sensor, los, sigma, gates[rows])
    got = association.may_gate_at(x, P, t_ns, rows, frame_ns, sensor, los, sigma, gates[rows])
    assert 0 < ref.size < rows.size and np.array_equal(got, ref)
    noise = (rng.uniform(0.0, 0.1, 900), rng.uniform(1.0, 9.0, 900), rng.uniform(0.0, 5.0, 900))
    asked = np.concatenate([rows, rows[:50]])  # (repeats: each row moves once)
    xs, Ps, ts = x.copy(), P.copy(), t_ns.copy()
    stale = np.unique(asked[t_ns[asked] < frame_ns])
    step = (frame_ns - t_ns[stale]) / 1_000_000_000
    want_x, want_P = filters.predict(
        x[stale], P[stale], step, *(a[stale] for a in noise), max_step=2.0
    )
    assert kernels.predict_at(xs, Ps, ts, asked, frame_ns, noise, 2.0) == stale.size
    assert xs[stale].tobytes() == want_x.tobytes() and Ps[stale].tobytes() == want_P.tobytes()
    others = np.setdiff1d(np.arange(900), stale)
    assert np.array_equal(xs[others], x[others]) and np.array_equal(Ps[others], P[others])
    assert np.all(ts[stale] == frame_ns) and np.array_equal(ts[others], t_ns[others])
    # a step beyond max_step: nothing moves, the caller predicts the batch (long steps)
    xs2 = x.copy()
    assert kernels.predict_at(xs2, P.copy(), t_ns.copy(), asked, frame_ns, noise, 1.0) is None
    assert np.array_equal(xs2, x)


def test_without_numba_the_numpy_code_runs(monkeypatch):
    """TRACKLAYER_JIT=0: every kernel entry point says 'not here' and the callers use
    numpy; the tracker's functions still give their results."""
    x, P = _states(5)
    monkeypatch.setenv(kernels.JIT_ENV, "0")
    monkeypatch.setattr(kernels, "_numba", None)
    assert not kernels.enabled()
    assert kernels.predict_short(x, P, 0.5, 0.0, 1.0, 1.0) is None
    assert kernels.update(x, P, np.zeros((5, 2)), np.ones((5, 2, 3)), np.ones(5)) is None
    xp, Pp = filters.predict(x, P, 0.5, 0.0, 1.0, 1.0)
    assert np.all(np.isfinite(Pp)) and not np.array_equal(xp, x)


def test_a_jit_that_fails_to_compile_falls_back_with_a_warning(monkeypatch):
    """A numba whose compiler raises (a broken LLVM, an unsupported CPU): the first call
    warns, marks the kernel failed and returns None; the caller computes with numpy."""

    class BrokenNumba:
        class core:  # noqa: N801 - mimics numba.core.errors
            class errors:  # noqa: N801
                class NumbaError(Exception):
                    pass

        @staticmethod
        def njit(**_kw):
            def wrap(_fn):
                def run(*_a):
                    raise BrokenNumba.core.errors.NumbaError("no LLVM here")

                return run

            return wrap

    saved = {name: (k.compiled, k.failed) for name, k in kernels._KERNELS.items()}
    for module in kernels.LOOP_MODULES:  # restored at teardown (the broken JIT wraps
        for helper in module.HELPERS:  # every helper not yet compiled in this process)
            monkeypatch.setattr(module, helper, getattr(module, helper))
    monkeypatch.setattr(kernels, "_numba", BrokenNumba)
    for k in kernels._KERNELS.values():
        k.compiled, k.failed = None, False
    try:
        x, P = _states(4)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = filters.predict(x, P, 0.5, 0.0, 1.0, 1.0)
        assert any("failed to compile" in str(w.message) for w in caught)
        assert kernels._KERNELS["predict_short"].failed
        ref = _numpy(lambda: filters.predict(x, P, 0.5, 0.0, 1.0, 1.0))
        monkeypatch.setattr(kernels, "_numba", BrokenNumba)
        assert np.array_equal(out[0], ref[0]) and np.array_equal(out[1], ref[1])
    finally:
        for name, (compiled, failed) in saved.items():
            kernels._KERNELS[name].compiled, kernels._KERNELS[name].failed = compiled, failed


def test_surface_kernel_lands_where_numpy_rk4_lands():
    """impact.propagate_to_surface: the same objects land, at the same places and times
    to rounding, with drag on (low objects in the batch) and objects that never land."""
    from tracklayer.fusion import impact

    k = 200
    d = rng.normal(size=(k, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    r = d * (6.371e6 + rng.uniform(5e4, 1.2e6, (k, 1)))
    v = rng.normal(size=(k, 3)) * 3_000.0
    v[:10] = d[:10] * 11_500.0  # escaping: never land
    ib = np.exp(-rng.uniform(6.0, 9.0, k))
    hit_k, t_k, ok_k = impact.propagate_to_surface(r, v, ib, 3_600.0)
    hit_n, t_n, ok_n = _numpy(lambda: impact.propagate_to_surface(r, v, ib, 3_600.0))
    assert np.array_equal(ok_k, ok_n) and 100 < ok_k.sum() < k - 10
    assert np.abs(hit_k[ok_k] - hit_n[ok_n]).max() < 1e-6  # m
    assert np.abs(t_k[ok_k] - t_n[ok_n]).max() < 1e-9  # s
    assert np.isnan(t_k[~ok_k]).all()
    assert (t_k[ok_k] >= 0.0).all()


def test_launch_fit_kernel_finds_the_same_launch_point():
    """impact.estimate_launch: a rocket climbing from a known site, sampled with noise,
    quadratic and linear fits and a fit that never reaches the ground."""
    from tracklayer.fusion import geodesy, impact

    gen = np.random.default_rng(7)
    site = geodesy.geodetic_to_ecef(28.5, 45.0, 0.0)
    up = site / np.linalg.norm(site)
    east = np.cross([0.0, 0.0, 1.0], up)
    east /= np.linalg.norm(east)
    for t0, span, n in ((6.0, 20.0, 30), (4.0, 3.0, 6), (10.0, 40.0, 80)):
        t = t0 + np.linspace(0.0, span, n)
        path = 0.5 * 25.0 * t**2  # m along the climb
        r = site + path[:, None] * (0.9 * up + 0.436 * east) + gen.normal(size=(n, 3)) * 30.0
        var = np.full(n, 900.0)
        got = impact.estimate_launch(t, r, var)
        ref = _numpy(lambda t=t, r=r, var=var: impact.estimate_launch(t, r, var))
        assert got is not None and ref is not None
        assert abs(got.latitude_deg - ref.latitude_deg) < 1e-9
        assert abs(got.longitude_deg - ref.longitude_deg) < 1e-9
        assert abs(got.time_ns - ref.time_ns) <= 1_000  # ns
        assert abs(got.semi_major_m - ref.semi_major_m) < 1e-6 * ref.semi_major_m
        assert abs(got.semi_minor_m - ref.semi_minor_m) < 1e-6 * ref.semi_minor_m
        # and near the true site (the fit's own error: tens of metres of noise)
        assert abs(got.latitude_deg - 28.5) < 0.05 and abs(got.longitude_deg - 45.0) < 0.05
    # a path that stays 50 km up never reaches the ground: neither fit returns a point
    t = np.linspace(0.0, 20.0, 20)
    r = (site + 50_000.0 * up) + t[:, None] * 100.0 * east
    assert impact.estimate_launch(t, r, np.full(20, 900.0)) is None
    assert _numpy(lambda: impact.estimate_launch(t, r, np.full(20, 900.0))) is None


def test_warm_compiles_every_kernel():
    """``make venv`` runs kernels.warm(): afterwards every kernel is compiled (or loaded
    from numba's cache), so no process compiles at its first frame."""
    assert kernels.warm()
    assert all(k.compiled is not None and not k.failed for k in kernels._KERNELS.values())


def test_without_numba_installed_the_tracker_falls_back(monkeypatch):
    """numba not importable: one warning, kernels off, the numpy code runs."""
    import sys

    monkeypatch.delenv(kernels.JIT_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    monkeypatch.setattr(kernels, "_numba", None)
    with pytest.warns(UserWarning, match="numba unavailable"):
        assert not kernels.enabled()
    x, P = _states(3)
    assert kernels.gate(x, P, np.zeros(3), np.eye(3), np.ones(3), np.ones(3)) is None
    xp, Pp = filters.predict(x, P, 0.25, 0.0, 1.0, 1.0)
    assert np.all(np.isfinite(xp)) and np.all(np.isfinite(Pp))
