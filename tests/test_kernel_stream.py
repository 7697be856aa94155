"""The compiled stream groups (fusion/kernel_stream.py) answer what the numpy code of
fusion/tracker/stream.py answers (scipy's k-d tree, numpy's sorts), bit for bit: the same
crowd tracks, group sizes, medians (an even count's mean of the two middle values
included) and median deviations; with non-finite states the numpy code decides."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from tracklayer.fusion import kernels
from tracklayer.fusion.tracker import stream

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="numba not available")


def _streams(rng: np.random.Generator, n_streams: int, per: int) -> np.ndarray:
    """States (N, 9) of ``n_streams`` pad streams of ``per`` boosting objects each, 0.5 s
    of flight apart, velocities and accelerations jittered as a raid's tracks are."""
    out = []
    for _ in range(n_streams):
        start = rng.normal(size=3)
        start *= 6.4e6 / np.linalg.norm(start)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        speed, accel = rng.uniform(500.0, 4_000.0), rng.uniform(10.0, 60.0)
        for k in range(per):
            tau = k * 0.5 + rng.uniform(0.0, 0.2)
            x = np.empty(9)
            x[:3] = start + axis * (speed * tau + 0.5 * accel * tau**2) + rng.normal(size=3) * 300
            x[3:6] = axis * (speed + accel * tau) * rng.uniform(0.7, 1.1) + rng.normal(size=3) * 30
            x[6:] = axis * accel + rng.normal(size=3) * 3.0
            out.append(x)
    x = np.array(out)
    return x[rng.permutation(len(x))]


def _same(a, b) -> None:
    assert a is not None and b is not None
    for u, v in zip(a, b, strict=True):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert np.array_equal(u, v)  # bit for bit (no NaN here)


@pytest.mark.parametrize("seed", range(6))
def test_kernel_groups_equal_numpys_on_pad_streams(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = _streams(rng, n_streams=8, per=int(rng.integers(3, 40)))
    for n_min in (2, 3, 5):
        got = kernels.stream_groups(x, stream.RADIUS_M, stream.WINDOW_S, n_min)
        want = stream._groups_numpy(x, n_min)
        _same(got, want)
        sizes = got[1]
        assert np.any(sizes % 2 == 0) and np.any(sizes % 2 == 1)  # both median rules ran


def test_even_groups_take_the_mean_of_the_two_middle_values() -> None:
    """Four tracks at one place, at rest relative to each other (flight time 0): every
    group is the four, and the median of each column the mean of its middle two."""
    x = np.zeros((4, 9))
    x[:, 0] = 6.4e6
    x[:, 3:6] = [[1000.0, 1.0, 2.0], [1003.0, 5.0, 2.5], [1001.0, 2.0, 9.0], [1010.0, 3.0, 4.0]]
    x[:, 6:] = [[1.0, 0.1, 0.3], [2.0, 0.2, 0.1], [3.0, 0.3, 0.7], [4.0, 0.4, 0.2]]
    crowd, size, med, mad = kernels.stream_groups(x, stream.RADIUS_M, stream.WINDOW_S, 3)
    assert crowd.tolist() == [0, 1, 2, 3] and size.tolist() == [4, 4, 4, 4]
    want = 0.5 * (np.sort(x[:, 3:], axis=0)[1] + np.sort(x[:, 3:], axis=0)[2])
    assert np.array_equal(med, np.repeat(want[None], 4, axis=0))
    dev = np.sort(np.abs(x[:, 3:] - want), axis=0)
    assert np.array_equal(mad[0], 0.5 * (dev[1] + dev[2]))
    _same((crowd, size, med, mad), stream._groups_numpy(x, 3))


def test_neighbours_are_the_k_d_trees_pairs() -> None:
    """A cloud spread around the search radius: each crowd track's group size is one
    more than its k-d tree neighbours whose flight time is in the window (here all: the
    velocities are perpendicular to the offsets' spread, so every dt is near zero)."""
    rng = np.random.default_rng(7)
    x = np.zeros((300, 9))
    x[:, :2] = rng.uniform(-3.0 * stream.RADIUS_M, 3.0 * stream.RADIUS_M, size=(300, 2))
    x[:, 0] += 6.4e6
    x[:, 5] = 2_000.0 + rng.normal(size=300)  # along z, the offsets in x and y
    x[:, 3:5] = rng.normal(size=(300, 2)) * 1e-3
    crowd, size, _, _ = kernels.stream_groups(x, stream.RADIUS_M, stream.WINDOW_S, 1)
    tree = cKDTree(x[:, :3])
    degree = np.array([len(tree.query_ball_point(p, stream.RADIUS_M)) for p in x[:, :3]])
    assert crowd.tolist() == list(range(300))
    assert np.array_equal(size, degree)  # (query_ball_point counts the point itself)
    _same(kernels.stream_groups(x, stream.RADIUS_M, stream.WINDOW_S, 4), stream._groups_numpy(x, 4))


def test_a_track_at_rest_is_in_no_group_and_non_finite_states_go_to_numpy() -> None:
    x = _streams(np.random.default_rng(3), n_streams=2, per=6)
    x[0, 3:6] = 0.0  # v . v = 0: its flight time is not a number, in no group (its own)
    _same(kernels.stream_groups(x, stream.RADIUS_M, stream.WINDOW_S, 3), stream._groups_numpy(x, 3))
    x[1, 4] = np.nan
    assert kernels.stream_groups(x, stream.RADIUS_M, stream.WINDOW_S, 3) is None


def test_the_numpy_dot_order_is_einsums() -> None:
    """stream._dot3 sums as np.einsum does here (the pre-kernel code's floats)."""
    rng = np.random.default_rng(11)
    a = rng.normal(size=(20_000, 3)) * rng.uniform(1.0, 1e6, size=(20_000, 1))
    b = rng.normal(size=(20_000, 3)) * rng.uniform(1.0, 1e4, size=(20_000, 1))
    assert np.array_equal(stream._dot3(a, b), np.einsum("ij,ij->i", a, b))
    assert np.array_equal(stream._dot3(b, b), np.einsum("ij,ij->i", b, b))


def test_large_groups_take_the_selected_medians() -> None:
    """A crowd of 150 tracks within a kilometre flying together (every group the whole
    crowd or most of it, past the insertion sort), odd and even group sizes: numpy's."""
    rng = np.random.default_rng(5)
    for n in (150, 151):
        x = np.zeros((n, 9))
        x[:, :3] = [6.4e6, 0.0, 0.0] + rng.normal(size=(n, 3)) * 300.0
        x[:, 3:6] = [0.0, 0.0, 3_000.0] + rng.normal(size=(n, 3)) * 50.0
        x[:, 6:] = [0.0, 0.0, 40.0] + rng.normal(size=(n, 3))
        x[rng.integers(0, n, 20), 3] = 7.0  # ties among the values
        got = kernels.stream_groups(x, stream.RADIUS_M, stream.WINDOW_S, 3)
        assert got[1].min() > 100 and {n % 2} <= set((got[1] % 2).tolist())
        _same(got, stream._groups_numpy(x, 3))


def test_crowds_of_equal_values_end_in_the_insertion_sort() -> None:
    """A crowd whose velocity and acceleration columns take a handful of values each
    (partitions that barely shrink: the selection's round limit, then its insertion sort
    of what is left) gives numpy's medians."""
    rng = np.random.default_rng(9)
    for n in (120, 121):
        x = np.zeros((n, 9))
        x[:, :3] = [6.4e6, 0.0, 0.0] + rng.normal(size=(n, 3)) * 300.0
        x[:, 3:6] = [0.0, 0.0, 3_000.0] + rng.integers(0, 3, size=(n, 3)) * 10.0
        x[:, 6:] = [0.0, 0.0, 40.0] + rng.integers(0, 2, size=(n, 3)).astype(float)
        got = kernels.stream_groups(x, stream.RADIUS_M, stream.WINDOW_S, 3)
        assert got[1].min() > 60
        _same(got, stream._groups_numpy(x, 3))


@pytest.mark.parametrize("m", [1, 2, 13, 14, 65, 200])
def test_selection_leaves_the_order_statistic_in_place(m: int) -> None:
    """The compiled selection (kernel_stream._select) of every k of random values, with
    and without ties and sorted runs: the k-th value of a sort, nothing greater before it
    and nothing smaller after (the even median's scan of the rest relies on it)."""
    kernels.stream_groups(np.ones((2, 9)), 1.0, 1.0, 2)  # compiles the helpers
    from tracklayer.fusion import kernel_stream

    select = kernel_stream._select
    assert hasattr(select, "py_func")  # the compiled one
    rng = np.random.default_rng(m)
    cases = [
        rng.normal(size=m),
        rng.integers(0, 4, size=m).astype(float),
        np.sort(rng.normal(size=m)),
    ]
    cases.append(np.abs(cases[2] - np.median(cases[2])))  # V-shaped: deviations of a sorted run
    for values in cases:
        want = np.sort(values)
        for k in range(m):
            buf = np.concatenate([values, [np.inf]])  # past m: left alone
            got = select(buf, m, k)
            assert got == want[k] and buf[k] == got and buf[m] == np.inf
            assert np.all(buf[:k] <= got) and np.all(buf[k + 1 : m] >= got)
            assert np.array_equal(np.sort(buf[:m]), want)  # a permutation of the values
