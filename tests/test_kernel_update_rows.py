"""filters.update_rows (the tracker's in-place update of its stacked rows) writes the
floats filters.update computes for the gathered rows, compiled (the same per-row loop as
kernels.update) and in numpy, and leaves every other row untouched."""

from __future__ import annotations

import numpy as np
import pytest

from tracklayer.fusion import kernels
from tracklayer.fusion.filters import update, update_rows


def _stack(rng: np.random.Generator, n: int):
    x = rng.normal(0.0, 1.0, (n, 9)) * np.r_[[7e6] * 3, [7e3] * 3, [10.0] * 3]
    A = rng.normal(0.0, 1.0, (n, 9, 9))
    P = A @ np.swapaxes(A, 1, 2) * 1e4 + np.eye(9) * 1e3
    return x, P


@pytest.mark.parametrize("flag", [True, False])
def test_update_rows_in_place_is_update_of_the_gathered_rows(flag):
    kernels.set_enabled(flag)
    try:
        if flag and not kernels.enabled():
            pytest.skip("numba is not installed")
        rng = np.random.default_rng(7)
        x, P = _stack(rng, 6)
        rows = np.array([4, 1, 2])
        y = rng.normal(0.0, 2e-5, (3, 2))
        basis = rng.normal(0.0, 1.0, (3, 2, 3))
        hpos = basis / 3e6
        sigma = np.array([2e-5, 1e-5, 3e-5])
        xe, Pe, nis_e = update(x[rows], P[rows], y, hpos, sigma)
        x2, P2 = x.copy(), P.copy()
        nis = update_rows(x2, P2, rows, y, hpos, sigma)
        assert nis.tobytes() == nis_e.tobytes()
        assert x2[rows].tobytes() == xe.tobytes() and P2[rows].tobytes() == Pe.tobytes()
        other = np.setdiff1d(np.arange(6), rows)
        assert x2[other].tobytes() == x[other].tobytes()
        assert P2[other].tobytes() == P[other].tobytes()
        # the update moved the rows, and the NIS is y^T S^-1 y
        assert not np.array_equal(x2[rows], x[rows])
        S = hpos @ P[rows][:, :3, :3] @ np.swapaxes(hpos, 1, 2) + sigma[
            :, None, None
        ] ** 2 * np.eye(2)
        ref = np.einsum("ki,kij,kj->k", y, np.linalg.inv(S), y)
        np.testing.assert_allclose(nis, ref, rtol=1e-9)
    finally:
        kernels.set_enabled(True)
