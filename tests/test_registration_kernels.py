"""The registration's fast paths against the code they stand in for, bit for bit (DESIGN
§6, *Cost*): a frame's correction by the compiled loop (fusion/kernel_registration.py)
against its numpy code, and the ``/sensor_bias`` snapshot built for all sensors at once
against each sensor's block taken alone."""

from __future__ import annotations

import numpy as np
import pytest

from tracklayer.fusion import kernel_registration, kernels
from tracklayer.fusion.registration_consider import widened
from tracklayer.fusion.registration_output import sensor_biases

rng = np.random.default_rng(20261207)


def _frame(n: int) -> tuple[np.ndarray, ...]:
    """Unit lines of sight (n, 3), a bias (3,) of 0.1 urad-1 mrad, a covariance (3, 3) of
    0.1-100 urad and sigmas (n,) of 1-100 urad."""
    los = rng.normal(size=(n, 3))
    los /= np.linalg.norm(los, axis=1)[:, None]
    th = rng.normal(size=3) * 10 ** rng.uniform(-7, -3)
    A = rng.normal(size=(3, 3)) * 10 ** rng.uniform(-7, -4)
    return los, th, A @ A.T, rng.uniform(1e-6, 1e-4, n)


def test_make_venv_warms_every_registration_loop():
    kernels.set_enabled(True)
    if not kernels.enabled():
        pytest.skip("numba is not installed")
    assert kernel_registration.warm()


@pytest.mark.parametrize("applied", [True, False])
def test_the_compiled_correction_equals_numpy_bit_for_bit(applied):
    kernels.set_enabled(True)
    if kernel_registration._kernel("correct_rows") is None:
        pytest.skip("numba is not installed")
    for trial in range(2_000):
        los, th, pk, sigma = _frame(int(rng.integers(1, 60)))
        tr, drift = float(np.trace(pk)), float(rng.uniform(0.0, 1e-12)) * (trial % 2)
        args = (los, th, pk, tr, drift, sigma, 25, applied)
        want = kernel_registration.correct_rows(*args, compiled=False)
        got = kernel_registration.correct_rows(*args)
        for w, g in zip(want, got, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert np.array_equal(g.view(np.int64), w.view(np.int64)), trial  # signed zeros too


def test_the_correction_rotates_back_and_widens_by_the_variance_across():
    """Against an independent calculation: the lines of sight rotated by -theta (Rodrigues,
    to first order in theta ~ 1e-4: 1e-8), and the variance across = (tr pk - c' pk c) / 2
    (the mean of the two axes across c), plus the drift."""
    los, th, pk, sigma = _frame(40)
    th = th / np.linalg.norm(th) * 1e-4
    c, sig, across = kernel_registration.correct_rows(
        los, th, pk, float(np.trace(pk)), 1e-13, sigma, 25, True
    )
    t = np.linalg.norm(th)
    k = th / t
    back = los * np.cos(t) - np.cross(k, los) * np.sin(t) + k * (los @ k)[:, None] * (1 - np.cos(t))
    assert np.abs(c - back).max() < 1e-8
    for i in range(40):
        e = np.linalg.svd(np.eye(3) - np.outer(c[i], c[i]))[0][:, :2]  # two axes across c
        want = 0.5 * np.trace(e.T @ pk @ e) + 1e-13
        assert across[i] == pytest.approx(want, rel=1e-9, abs=1e-24)
        assert sig[i] == pytest.approx(np.sqrt(sigma[i] ** 2 + 25 * want), rel=1e-9)


def test_without_the_jit_the_correction_is_numpys():
    los, th, pk, sigma = _frame(7)
    args = (los, th, pk, float(np.trace(pk)), 0.0, sigma, 25, True)
    kernels.set_enabled(False)
    try:
        got = kernel_registration.correct_rows(*args)
    finally:
        kernels.set_enabled(True)
    for w, g in zip(kernel_registration.correct_rows(*args, compiled=False), got, strict=True):
        assert np.array_equal(w, g)


def test_the_snapshot_takes_each_sensors_block_as_it_stands():
    for trial in range(100):
        s = int(rng.integers(1, 30))
        A = rng.normal(size=(3 * s, 3 * s)) * 1e-6
        P, theta, used = A @ A.T, rng.normal(size=3 * s) * 1e-5, rng.integers(0, 99, s)
        index = {f"s{k:02d}": int(k) for k in rng.permutation(s)[: int(rng.integers(1, s + 1))]}
        index["late"] = s  # added by another thread: its rows are not there yet
        drift = float(rng.uniform(0.0, 1e-12)) * (trial % 2)
        got = sensor_biases(index, P, theta, used, drift, 7)
        assert [b.sensor_id for b in got] == sorted(k for k in index if k != "late")
        for b in got:
            k = index[b.sensor_id]
            blk = P[3 * k : 3 * k + 3, 3 * k : 3 * k + 3] + drift * np.eye(3)
            assert b.angles_rad == tuple(float(v) for v in theta[3 * k : 3 * k + 3])
            assert b.sigma_rad == tuple(float(np.sqrt(max(blk[i, i], 0.0))) for i in range(3))
            assert b.covariance_rad2 == tuple(float(v) for v in blk[np.triu_indices(3)])
            assert b.windows == used[k] and type(b.windows) is int
            assert b.time_ns == 7


@pytest.mark.parametrize("jit", [True, False])
def test_a_frames_looks_land_in_their_windows_rows(jit):
    """The looks noted for a frame are written to the rows they were given (data time,
    sensor, its position, each look's line of sight and sigma), the other rows untouched."""
    kernels.set_enabled(jit)
    try:
        cols = (np.zeros(40), np.zeros(40, np.int64), np.zeros((40, 3)), np.zeros((40, 3)))
        cols += (np.zeros(40),)
        los, sigma = rng.normal(size=(6, 3)), rng.uniform(1e-6, 1e-4, 6)
        pos = rng.normal(size=3) * 7e6
        rows, looks = [3, 17, 39, 0], [5, 0, 2, 4]
        kernel_registration.write_looks(rows, looks, (12.5, 7, pos, los, sigma), cols)
    finally:
        kernels.set_enabled(True)
    t, sensor, p, m, sg = cols
    assert np.array_equal(np.flatnonzero(t), sorted(rows)) and set(t[rows]) == {12.5}
    assert (sensor[rows] == 7).all() and np.array_equal(p[rows], np.tile(pos, (4, 1)))
    assert np.array_equal(m[rows], los[looks]) and np.array_equal(sg[rows], sigma[looks])
    assert not m[[r for r in range(40) if r not in rows]].any()


def test_the_compiled_widening_by_looks_equals_numpy_bit_for_bit():
    n = 500
    sigma, across = rng.uniform(1e-6, 1e-4, n), rng.uniform(0.0, 1e-9, n)
    across[::7] = 0.0
    for trial in range(300):
        det = rng.integers(0, n, int(rng.integers(1, 40)))
        looks = rng.integers(0, 300, det.size).tolist()
        k0 = 25
        k1 = k0 + float(rng.uniform(0.0, 1.0)) * 75
        want = widened(sigma[det], across[det], looks, k0, k1)
        got = kernel_registration.widened_rows(sigma, across, det, looks, k0, k1)
        assert np.array_equal(want.view(np.int64), got.view(np.int64)), trial
    assert np.array_equal(
        kernel_registration.widened_rows(sigma, None, det, looks, k0, k1), sigma[det]
    )


def test_the_corrected_frame_keeps_every_other_field():
    """The corrected frame is built without re-running the frame's checks: every field but
    the lines of sight and sigmas is the received frame's (a field added to SensorFrame
    later must be copied too)."""
    import dataclasses

    from tracklayer.fusion.domain import SensorFrame
    from tracklayer.fusion.registration import _with_looks

    los, _, _, sigma = _frame(4)
    f = SensorFrame("sat-7", 12, 3_000_000_000, np.ones(3) * 7e6, np.ones(3), los, sigma, sigma)
    g = _with_looks(f, los * 2.0, sigma * 3.0)
    for field in dataclasses.fields(SensorFrame):
        want = getattr(f, field.name)
        if field.name == "los":
            want = los * 2.0
        elif field.name == "sigma":
            want = sigma * 3.0
        assert np.array_equal(getattr(g, field.name), want), field.name
