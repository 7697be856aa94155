"""The compiled initiation meeting (fusion/kernel_initiation.py) finds the same pairs as
the numpy code, with the same ranges and scores bit for bit, and writes the buffer's rows
with the same values (the moments, read only by the screen, to rounding)."""

from __future__ import annotations

import numpy as np
import pytest

from tracklayer.fusion import kernels
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.initiation import InitiationBuffer, closest_points

R_SAT = 7.0e6  # m, a LEO satellite's radius


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _scene(rng: np.random.Generator, n_obj: int = 60):
    """Two satellites and objects around them: real targets at 0-1500 km height, some
    underground or far above (they fail the height band), some behind the Earth."""
    sat_a = R_SAT * _unit(np.array([1.0, 0.1, 0.2]))
    sat_b = R_SAT * _unit(np.array([0.9, -0.35, 0.25]))
    mid = _unit(sat_a + sat_b)
    heights = rng.choice([-60e3, -10e3, 0.0, 50e3, 300e3, 1.5e6, 3.5e6], n_obj)
    spread = rng.normal(0.0, 0.12, (n_obj, 3))
    targets = _unit(mid + spread) * (6.371e6 + heights)[:, None]
    sigma = 20e-6
    los_a = _unit(targets - sat_a + rng.normal(0.0, sigma * 2e6, (n_obj, 3)))
    los_b = _unit(targets - sat_b + rng.normal(0.0, sigma * 2e6, (n_obj, 3)))
    clutter = _unit(rng.normal(0.0, 1.0, (n_obj, 3)) - sat_b / R_SAT)
    los_b = np.concatenate([los_b, clutter])
    return sat_a, sat_b, los_a, los_b, sigma


def _meeting(buf: InitiationBuffer, flag: bool, *args):
    kernels.set_enabled(flag)
    try:
        return buf._meeting(*args)
    finally:
        kernels.set_enabled(True)


@pytest.mark.parametrize("seed", range(6))
def test_compiled_meeting_is_numpys_bit_for_bit(seed):
    kernels.set_enabled(True)
    if not kernels.enabled():
        pytest.skip("numba is not installed: nothing to compare")
    rng = np.random.default_rng(seed)
    sat_a, sat_b, los_a, los_b, sigma = _scene(rng)
    buf = InitiationBuffer(FusionConfig())
    buf.add(10.0, "a", sat_a, los_a, np.full(len(los_a), sigma))
    sig_b = np.full(len(los_b), sigma) * rng.uniform(0.5, 2.0, len(los_b))
    args = (10.4, "b", sat_b, los_b, sig_b)
    numpy_found = _meeting(buf, False, *args)
    compiled = _meeting(buf, True, *args)
    assert numpy_found is not None and compiled is not None
    assert len(numpy_found[0]) >= 10  # real pairs, and the height tests dropped some
    for a, b in zip(numpy_found, compiled, strict=True):
        assert a.dtype.kind == b.dtype.kind
        assert a.tobytes() == b.tobytes()
    # the ranges are closest_points', recomputed independently for the pairs found
    mi, bi, t1, t2, _ = compiled
    ref = closest_points(sat_b, los_b[mi], np.broadcast_to(sat_a, (mi.size, 3)), los_a[bi])
    assert ref[0].tobytes() == t1.tobytes() and ref[1].tobytes() == t2.tobytes()


def test_compiled_meeting_keeps_no_pair_of_one_sensor_or_a_later_look():
    kernels.set_enabled(True)
    if not kernels.enabled():
        pytest.skip("numba is not installed: nothing to compare")
    rng = np.random.default_rng(1)
    sat_a, sat_b, los_a, los_b, sigma = _scene(rng)
    buf = InitiationBuffer(FusionConfig())
    buf.add(10.0, "a", sat_a, los_a, np.full(len(los_a), sigma))
    assert buf._meeting(10.4, "a", sat_b, los_b, np.full(len(los_b), sigma)) is None
    assert buf._meeting(9.9, "b", sat_b, los_b, np.full(len(los_b), sigma)) is None
    assert buf._meeting(10.4, "b", sat_b, los_b, np.full(len(los_b), sigma)) is not None


def test_compiled_rows_are_numpys():
    kernels.set_enabled(True)
    if not kernels.enabled():
        pytest.skip("numba is not installed: nothing to compare")
    rng = np.random.default_rng(3)
    sat_a, _, los_a, _, sigma = _scene(rng, 40)
    sig = sigma * rng.uniform(0.5, 2.0, len(los_a)) * rng.choice([-1.0, 1.0], len(los_a))
    bufs = []
    for flag in (False, True):
        kernels.set_enabled(flag)
        buf = InitiationBuffer(FusionConfig())
        for k in range(0, 40, 8):  # several frames, the buffer grown on the way
            buf.add(10.0 + k, "a", sat_a, los_a[k : k + 8], sig[k : k + 8])
        bufs.append(buf)
    kernels.set_enabled(True)
    a, b = (buf._live for buf in bufs)
    assert a.shape == b.shape == (40, 13)
    assert a[:, :10].tobytes() == b[:, :10].tobytes()  # all but the moments exactly
    np.testing.assert_allclose(b[:, 10:], a[:, 10:], rtol=0, atol=1e-8 * R_SAT)
    # the compiled writer ran (it says so), and the moment is origin x LOS
    assert kernels.add_rows(np.zeros((8, 13)), 0, 1.0, 0, sat_a, los_a[:8], sig[:8], 1.0)
    np.testing.assert_allclose(b[:, 10:], np.cross(sat_a, los_a), rtol=0, atol=1e-8 * R_SAT)


def test_einsum_sums_three_terms_in_the_order_the_kernel_does():
    """The kernel's dot products mirror numpy's einsum: ``(x0 y0 + x2 y2) + x1 y1``
    (another numpy that sums otherwise would fail here first)."""
    rng = np.random.default_rng(5)
    for k in (1, 3, 8, 1000):
        a, b = rng.normal(size=(k, 3)), rng.normal(size=(k, 3)) * 1e6
        o = rng.normal(size=3) * 7e6
        for x, y in ((a, b), (o, b)):
            ref = np.einsum("...i,...i->...", x, y)
            mine = (x[..., 0] * y[..., 0] + x[..., 2] * y[..., 2]) + x[..., 1] * y[..., 1]
            assert ref.tobytes() == mine.tobytes()
