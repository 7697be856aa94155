"""Raid-scale shortcuts give exactly the results of the all-pairs computations they
replace (issue 13): merge candidates from a k-d tree and a batched screen, and gating of
only the pairs an angular screen keeps. Each test compares, bit for bit, with a copy of
the former all-pairs code on random and edge-case inputs."""

import numpy as np
import pytest

from tracklayer.fusion import kernels
from tracklayer.fusion.association import assign, assign_pairs, gate
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import TrackStatus
from tracklayer.fusion.filters import projected_cov
from tracklayer.fusion.measurement import position_jacobian, predict_los, residuals
from tracklayer.fusion.tracker.lifecycle import Lifecycle, _merge_rank, near_pairs
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import Track

SENSOR = np.array([7.0e6, 0.0, 1.0e6])


def _full_gate(x, P, los, sigma):
    """The former gate over every (track, detection) pair: d2, ln det, residuals (N, M)."""
    u, rho, e = predict_los(x[:, :3], SENSOR)
    y = residuals(u, e, los)
    A = projected_cov(P, position_jacobian(e, rho))
    s2 = sigma**2
    s00 = A[:, 0, 0][:, None] + s2[None, :]
    s11 = A[:, 1, 1][:, None] + s2[None, :]
    s01 = A[:, 0, 1][:, None]
    det = s00 * s11 - s01 * s01
    y0, y1 = y[..., 0], y[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        d2 = (s11 * y0 * y0 - 2.0 * s01 * y0 * y1 + s00 * y1 * y1) / det
        logdet = np.log(det)
    d2[~np.isfinite(d2)] = np.inf
    return d2, logdet, y


def _scene(rng, n, m):
    """Tracks ~1,500 km from the sensor with covariances from 10 m to 30 km (some
    strongly correlated, one not positive definite, one not a number) and detections
    near some of them, plus random ones."""
    centre = SENSOR + np.array([-1.0e6, 1.0e6, 5.0e5])
    x = np.zeros((n, 9))
    x[:, :3] = centre + rng.normal(scale=2.0e4, size=(n, 3))
    L = rng.normal(size=(n, 3, 3)) * 10.0 ** rng.uniform(1.0, 4.5, size=(n, 1, 1))
    P = np.zeros((n, 9, 9))
    P[:, :3, :3] = L @ np.swapaxes(L, 1, 2)
    P[:, 3:6, 3:6] = np.eye(3)
    if n > 2:
        P[1, :3, :3] = -np.eye(3) * 1.0e6  # not positive definite: never screened
        x[2, 0] = np.nan
    pick = rng.integers(0, n, m)
    true = x[pick, :3] + rng.normal(scale=300.0, size=(m, 3))
    true[: m // 4] = centre + rng.normal(scale=5.0e4, size=(m // 4, 3))
    los = true - SENSOR
    los /= np.linalg.norm(los, axis=1, keepdims=True)
    sigma = rng.uniform(5e-6, 50e-6, m)
    return x, P, los, sigma


@pytest.mark.parametrize("jit", [False, True], ids=["numpy", "kernels"])
def test_gate_keeps_every_pair_within_its_gate_with_the_same_bits(jit):
    """The screen drops no pair within its gate; the numpy gate gives the full
    computation's bits, the compiled one (fusion/kernels.py) the same to rounding."""
    kernels.set_enabled(jit)
    if jit and not kernels.enabled():
        pytest.skip("numba is not installed")
    try:
        _check_gate_against_the_full_computation(exact=not jit)
    finally:
        kernels.set_enabled(True)


def _check_gate_against_the_full_computation(exact: bool) -> None:
    rng = np.random.default_rng(13)
    same = np.testing.assert_array_equal if exact else _to_rounding
    for trial in range(40):
        n, m = int(rng.integers(1, 300)), int(rng.integers(1, 60))
        x, P, los, sigma = _scene(rng, n, m)
        gates = np.where(rng.random(n) < 0.5, 18.4, 23.0)
        d2, logdet, y = _full_gate(x, P, los, sigma)
        with np.errstate(invalid="ignore", divide="ignore"):
            g = gate(x, P, SENSOR, los, sigma, gates)
        inside = d2 <= gates[:, None]
        kept = np.zeros_like(inside)
        kept[g.track, g.det] = True
        assert not np.any(inside & ~kept), trial  # nothing within a gate is dropped
        assert kept.sum() < n * m or n * m < 4  # and the screen drops something
        same(g.d2, d2[g.track, g.det])
        same(g.logdet, logdet[g.track, g.det])
        same(g.residual, y[g.track, g.det])
        pairs = [
            (int(g.track[k]), int(g.det[k]))
            for k in assign_pairs(g.track, g.det, g.d2, g.logdet, gates)
        ]
        with np.errstate(invalid="ignore"):
            assert pairs == assign(d2, logdet, gates), trial


def _to_rounding(a: np.ndarray, b: np.ndarray) -> None:
    """Equal to rounding (relative 1e-9; the same infinities and NaNs)."""
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)


def test_near_pairs_equal_the_full_distance_matrix_in_row_major_order():
    rng = np.random.default_rng(7)
    radius = 20_000.0
    for trial in range(60):
        n = int(rng.integers(0, 250))
        pos = 6.5e6 + rng.normal(scale=3.0e4, size=(n, 3))
        if n > 4:
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            pos[1] = pos[0] + d * radius  # on the radius: not a pair
            pos[3] = pos[2] + d * np.nextafter(radius, 0.0)  # just inside
            pos[4, 1] = np.nan
        near = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1) < radius
        np.fill_diagonal(near, False)
        ii, jj = np.nonzero(np.triu(near))
        a, b = near_pairs(pos, radius)
        assert np.array_equal(ii, a) and np.array_equal(jj, b), trial


def _old_merge(lc, tracks):
    """The former all-pairs merge (one solve per pair within 20 km)."""
    live = [t for t in tracks if not t.deleted]
    rows = np.array([t.row for t in live])
    x6 = lc.rows.x[rows, :6]
    P6 = lc.rows.P[rows][:, :6, :6]
    offset = x6[:, None, :3] - x6[None, :, :3]
    near = np.linalg.norm(offset, axis=-1) < 20_000.0
    np.fill_diagonal(near, False)
    for i, j in zip(*np.nonzero(np.triu(near)), strict=True):
        a, b = live[i], live[j]
        if a.deleted or b.deleted:
            continue
        e = x6[i] - x6[j]
        try:
            d2 = float(e @ np.linalg.solve(P6[i] + P6[j], e))
        except np.linalg.LinAlgError:
            continue
        if d2 <= lc.config.merge_chi2:
            lc.mark_deleted(min((a, b), key=_merge_rank))


def _tracks(rng, n):
    rows = StateRows()
    tracks = []
    for k in range(n):
        x = np.zeros(9)
        x[:3] = 6.8e6 + rng.normal(scale=8.0e3, size=3) * (k % 7 + 1)
        x[3:6] = 7.0e3 + rng.normal(scale=30.0, size=3)
        P = np.zeros((9, 9))
        P[:3, :3] = np.eye(3) * rng.uniform(1e4, 4e6)
        P[3:6, 3:6] = np.eye(3) * rng.uniform(10.0, 2500.0)
        if k == 3:
            P[:6, :6] = 0.0  # singular with track 3's twin below
        trk = Track(key=k, created_ns=0, last_update_ns=0, update_count=int(rng.integers(2, 9)))
        if rng.random() < 0.5:
            trk.status = TrackStatus.CONFIRMED
        rows.append(x, P, trk, False, 0)
        tracks.append(trk)
    if n > 4:
        rows.x[4] = rows.x[3]
        rows.P[4] = 0.0
    return rows, tracks


def test_merge_deletes_exactly_the_tracks_the_all_pairs_merge_deletes():
    cfg = FusionConfig()
    for seed in range(12):
        rows, tracks = _tracks(np.random.default_rng(seed), 150)
        lc = Lifecycle(cfg, rows)
        lc.merge(tracks, 0)
        got = [t.key for t in tracks if t.deleted]
        rows2, tracks2 = _tracks(np.random.default_rng(seed), 150)
        _old_merge(Lifecycle(cfg, rows2), tracks2)
        assert got == [t.key for t in tracks2 if t.deleted], seed
        assert got, seed  # the case merges something
