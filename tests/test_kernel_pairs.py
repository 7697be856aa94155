"""The compiled near pairs (fusion/kernel_pairs.py, the merge's candidates) are the pairs
the numpy code finds (a k-d tree, then the full distance matrix's test) and the full
distance matrix's own, in row-major order, bit for bit: on raid-like clouds (streams of
tracks 100 m to kilometres apart, most within the radius of many others), on pairs exactly
on and just inside the radius, with non-finite positions, and with no pair at all."""

from __future__ import annotations

import numpy as np
import pytest

from tracklayer.fusion import kernels
from tracklayer.fusion.tracker import lifecycle

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="numba not available")

RADIUS = 20_000.0


def _cloud(rng: np.random.Generator, n: int) -> np.ndarray:
    """Positions (n, 3) m: a few pad streams (points along a line, 50 m to 3 km apart)
    and scattered points, shuffled; a pair on the radius and one just inside it."""
    out = []
    while len(out) < n:
        start = rng.normal(size=3)
        start *= 6.5e6 / np.linalg.norm(start)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        step = rng.uniform(50.0, 3_000.0)
        for k in range(int(rng.integers(1, 80))):
            out.append(start + axis * step * k + rng.normal(size=3) * 30.0)
    pos = np.array(out[:n])[rng.permutation(n)]
    if n > 4:
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        pos[1] = pos[0] + d * RADIUS  # on the radius: not a pair
        pos[3] = pos[2] + d * np.nextafter(RADIUS, 0.0)  # just inside
    return pos


def _numpy_pairs(pos: np.ndarray, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as m:
        m.setattr(kernels, "near_pairs", lambda *_: None)
        return lifecycle.near_pairs(pos, RADIUS)


@pytest.mark.parametrize("seed", range(8))
def test_compiled_pairs_are_the_k_d_trees_and_the_full_matrixs(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 700))
    pos = _cloud(rng, n)
    if seed % 2:
        pos[rng.integers(0, n, 3), rng.integers(0, 3, 3)] = [np.nan, np.inf, -np.inf]
    got = lifecycle.near_pairs(pos, RADIUS)
    want = _numpy_pairs(pos, monkeypatch)
    assert got[0].dtype == want[0].dtype == np.int64
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    with np.errstate(invalid="ignore"):
        near = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1) < RADIUS
    ii, jj = np.nonzero(np.triu(near, 1))
    assert np.array_equal(got[0], ii) and np.array_equal(got[1], jj)
    assert got[0].size > n // 4  # crowded: many pairs, as in a raid


def test_far_apart_points_and_tiny_inputs_have_no_pairs():
    pos = np.arange(30, dtype=float)[:, None] * np.array([[3.0 * RADIUS, 0.0, 0.0]])
    for p in (pos, pos[:1], pos[:0]):
        got = kernels.near_pairs(p, RADIUS)
        assert got[0].size == 0 and got[1].size == 0


@pytest.mark.parametrize("seed", range(6))
def test_the_merge_screen_in_the_kernel_keeps_numpys_candidates(seed, monkeypatch):
    """lifecycle._candidates compiled (search and trace screen in one pass) against its
    numpy path: the same pairs in the same order, the screen dropping most of a crowd."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(50, 600))
    pos = _cloud(rng, n)
    trace = rng.uniform(1e2, 1e7, size=n) * rng.choice([1.0, 1e-3], size=n)
    trace[rng.integers(0, n)] = np.nan  # never screened out (comparisons with NaN)
    got = lifecycle._candidates(pos, trace, 13.0)
    with monkeypatch.context() as m:
        m.setattr(kernels, "near_pairs", lambda *_: None)
        want = lifecycle._candidates(pos, trace, 13.0)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    everything = lifecycle.near_pairs(pos, RADIUS)
    assert 0 < got[0].size < everything[0].size
