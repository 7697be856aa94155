"""Detection threads (fusion/threads.py): one sensor's detections chained look to look.

Checked against synthetic images whose truth is known: objects moving at constant
angular rates with 20 urad of noise. A thread must never join two objects (purity),
must refuse where two objects are too close to tell apart, must bridge a missed
detection, and the assignment must prefer the detection that continues a track's thread
without ever opening the gate for it.
"""

from __future__ import annotations

import numpy as np
import pytest

from tracklayer.fusion.association import assign_pairs
from tracklayer.fusion.threads import MAX_GAP_S, SensorThreads, ThreadBook, _velocity

SIGMA = 20e-6  # rad


def _image(t_s: float, start: np.ndarray, rate: np.ndarray, rng: np.random.Generator):
    """Unit LOS of objects at angles ``start + rate * t`` (rad, about +x) with noise."""
    ang = start + rate * t_s + rng.normal(0.0, SIGMA, start.shape)
    v = np.column_stack([np.ones(len(ang)), ang[:, 0], ang[:, 1]])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _true_rates(start: np.ndarray, rate: np.ndarray, t_s: float) -> np.ndarray:
    """d(unit LOS)/dt at ``t_s`` for the objects of :func:`_image` (no noise)."""
    ang = start + rate * t_s
    v = np.column_stack([np.ones(len(ang)), ang[:, 0], ang[:, 1]])
    n = np.linalg.norm(v, axis=1, keepdims=True)
    dv = np.column_stack([np.zeros(len(ang)), rate[:, 0], rate[:, 1]])
    u = v / n
    return (dv - np.einsum("ki,ki->k", dv, u)[:, None] * u) / n


def _run(start, rate, n_looks, rng, drop=None):
    """Feed looks at 1 Hz; the first look's threads get the true rates (as a track
    would seed them). Returns per look the thread ids and the object index of each
    detection."""
    th = SensorThreads()
    nid = 0
    out = []
    for k in range(n_looks):
        t = float(k)
        los = _image(t, start, rate, rng)
        obj = np.arange(len(start))
        if drop is not None and k in drop:
            keep = obj != drop[k]
            los, obj = los[keep], obj[keep]
        ids, _, nid = th.observe(t, los, np.full(len(los), SIGMA), nid)
        if k == 0:
            th.seed_rates(ids, _true_rates(start, rate, t)[obj])
        out.append((ids, obj))
    return out


def _links(out):
    """(pure, impure) continuations over the looks: a thread id seen again."""
    owner: dict[int, int] = {}
    pure = impure = 0
    for ids, obj in out:
        for i, o in zip(ids.tolist(), obj.tolist(), strict=True):
            if i in owner:
                pure += owner[i] == o
                impure += owner[i] != o
            owner[i] = o
    return pure, impure


@pytest.mark.parametrize("spacing_urad, min_share", [(600.0, 0.95), (300.0, 0.6)])
def test_resolved_objects_are_threaded_without_a_wrong_link(spacing_urad, min_share) -> None:
    rng = np.random.default_rng(1)
    n = 40
    # a line of objects 30 (15) sigma apart, all turning at ~2 mrad/s (satellite motion)
    # with their own small rate differences; at 15 sigma a thread that lost its rate
    # (one borrowed from a neighbour) is not always sure of its first link
    start = np.column_stack([np.arange(n) * spacing_urad * 1e-6, np.zeros(n)])
    rate = np.column_stack([2e-3 + rng.normal(0, 20e-6, n), 1e-3 + rng.normal(0, 20e-6, n)])
    out = _run(start, rate, 30, rng)
    pure, impure = _links(out)
    assert impure == 0
    assert pure >= min_share * n * 29  # share of detections after the first look continued


def test_objects_closer_than_the_noise_allows_are_not_linked() -> None:
    rng = np.random.default_rng(2)
    n = 20
    # 40 urad apart: two sigma; no continuation can be sure, so none is made
    start = np.column_stack([np.arange(n) * 40e-6, np.zeros(n)])
    rate = np.tile([2e-3, 0.0], (n, 1))
    pure, impure = _links(_run(start, rate, 20, rng))
    assert impure <= 0.01 * max(pure, 1)
    assert pure + impure < 0.2 * n * 19


def test_crossing_objects_never_swap_threads() -> None:
    rng = np.random.default_rng(3)
    # two objects whose images cross at t = 10 s at 100 urad/s relative rate
    start = np.array([[0.0, -1e-3], [0.0, 1e-3]])
    rate = np.array([[2e-3, 1e-4], [2e-3, -1e-4]])
    out = _run(start, rate, 25, rng)
    pure, impure = _links(out)
    assert impure == 0
    assert pure >= 15  # threaded away from the crossing (both objects, 24 looks)


def test_a_missed_detection_is_bridged_and_a_long_gap_ends_the_thread() -> None:
    rng = np.random.default_rng(4)
    start = np.array([[0.0, 0.0], [5e-3, 0.0]])
    rate = np.array([[2e-3, 0.0], [2e-3, 5e-5]])
    out = _run(start, rate, 8, rng, drop={4: 0})
    first = {int(o): int(i) for i, o in zip(*out[1], strict=True)}
    last = {int(o): int(i) for i, o in zip(*out[7], strict=True)}
    assert first == last  # object 0 kept its thread across the missed look
    th = SensorThreads()
    ids0, _, nid = th.observe(0.0, _image(0.0, start, rate, rng), np.full(2, SIGMA), 0)
    th.seed_rates(ids0, _true_rates(start, rate, 0.0))
    t_late = MAX_GAP_S + 0.5
    ids1, ended, _ = th.observe(t_late, _image(t_late, start, rate, rng), np.full(2, SIGMA), nid)
    assert set(ended.tolist()) == set(ids0.tolist())
    assert not set(ids1.tolist()) & set(ids0.tolist())


def test_thread_book_weighs_pairs_by_who_holds_the_thread() -> None:
    book = ThreadBook()
    los = np.array([[1.0, 0.0, 0.0], [1.0, 1e-2, 0.0]])
    los /= np.linalg.norm(los, axis=1, keepdims=True)
    ids = book.label("sat-1", 0.0, np.zeros(3), los, np.full(2, SIGMA))
    keys = np.array([7, 9])
    book.claim("sat-1", keys, ids, np.zeros((2, 3)), los, np.full(2, 1e6), np.zeros(2))
    adj = book.adjustments("sat-1", np.array([7, 7, 9]), ids[[0, 1, 1]], 8.0)
    assert adj.tolist() == [-8.0, 8.0, -8.0]
    assert book.adjustments("sat-2", np.array([7]), ids[[0]], 8.0).tolist() == [0.0]
    book.forget({9})
    assert book.adjustments("sat-1", np.array([7]), ids[[1]], 8.0).tolist() == [0.0]


def _held_by_scan(book: ThreadBook) -> dict[int, set[tuple[str, int]]]:
    """Who holds what, read sensor by sensor from the book's holders."""
    out: dict[int, set[tuple[str, int]]] = {}
    for sensor in book._sensors:
        for t, k in book.holders(sensor).items():
            out.setdefault(k, set()).add((sensor, t))
    return out


def test_forgetting_deleted_tracks_frees_exactly_their_threads() -> None:
    """Random looks of three sensors, claims that move threads between tracks, threads
    ended by long gaps and tracks deleted: after every claim the claiming tracks hold
    what they took, the pairs' weights follow the holders, and after every deletion
    each deleted track holds nothing and the others keep what they held."""
    rng = np.random.default_rng(7)
    book = ThreadBook()
    start = rng.uniform(-0.05, 0.05, (12, 2))
    rate = rng.normal(0.0, 1e-4, (12, 2))
    dead: set[int] = set()
    for step in range(40):
        t = step * (MAX_GAP_S + 0.5 if step % 9 == 8 else 1.0)  # some threads end
        sensor = f"sat-{step % 3}"
        los = _image(t, start, rate, rng)
        ids = book.label(sensor, t, np.zeros(3), los, np.full(len(los), SIGMA))
        pick = rng.choice(len(ids), size=6, replace=False)
        keys = rng.integers(0, 10, size=6)  # keys 0..9; a thread may change hands
        keys = np.array([k if k not in dead else 10 + k for k in keys.tolist()])
        book.claim(sensor, keys, ids[pick], np.zeros((6, 3)), los[pick], np.full(6, 1e6),
                   np.zeros(6))  # fmt: skip
        owner = book.holders(sensor)
        assert all(owner[t] == k for t, k in zip(ids[pick].tolist(), keys.tolist(), strict=True))
        probe = np.concatenate([ids, ids[:3] + 10_000])  # (some no thread of this look)
        probe_keys = rng.integers(0, 12, size=probe.size)
        ref = [
            0.0 if owner.get(t) is None else (-8.0 if owner[t] == k else 8.0)
            for t, k in zip(probe.tolist(), probe_keys.tolist(), strict=True)
        ]
        assert book.adjustments(sensor, probe_keys, probe, 8.0).tolist() == ref
        if step % 7 == 6:
            gone = {int(k) for k in rng.choice(keys, size=2, replace=False)}
            before = _held_by_scan(book)
            book.forget(gone)
            dead |= gone
            after = _held_by_scan(book)
            assert not set(after) & gone
            assert after == {k: v for k, v in before.items() if k not in gone}


def test_a_thread_that_ends_is_held_by_nobody() -> None:
    """A held thread not continued for longer than MAX_GAP_S ends with the sensor's
    next look, and its holder no longer holds it."""
    rng = np.random.default_rng(3)
    book = ThreadBook()
    start = rng.uniform(-0.05, 0.05, (4, 2))
    rate = np.zeros((4, 2))
    ids = book.label("sat-1", 0.0, np.zeros(3), _image(0.0, start, rate, rng), np.full(4, SIGMA))
    book.claim("sat-1", np.arange(4), ids, np.zeros((4, 3)), np.zeros((4, 3)), np.full(4, 1e6),
               np.zeros(4))  # fmt: skip
    assert book.holders("sat-1") == dict(zip(ids.tolist(), range(4), strict=True))
    t = MAX_GAP_S + 0.5
    book.label("sat-1", t, np.zeros(3), _image(t, start, rate, rng), np.full(4, SIGMA))
    assert book.holders("sat-1") == {}


@pytest.mark.parametrize("adjust, chosen_det", [(None, 0), ([0.0, -8.0], 1)])
def test_assignment_prefers_the_threaded_detection_inside_the_gate(adjust, chosen_det) -> None:
    track = np.array([0, 0])
    det = np.array([0, 1])
    d2 = np.array([1.0, 4.0])
    logdet = np.zeros(2)
    gates = np.array([11.0])
    adj = None if adjust is None else np.array(adjust)
    chosen = assign_pairs(track, det, d2, logdet, gates, adj)
    assert det[chosen].tolist() == [chosen_det]


def test_a_thread_never_opens_the_gate() -> None:
    chosen = assign_pairs(
        np.array([0]),
        np.array([0]),
        np.array([30.0]),
        np.zeros(1),
        np.array([11.0]),
        np.array([-100.0]),
    )
    assert chosen.size == 0


def test_sensor_velocity_is_numpys_floats():
    """The sensor velocity between two looks, in Python floats: numpy's
    ``(p1 - p0) / (t1 - t0)`` bit for bit (LEO positions, steps from 1 ms to 5 s,
    and a satellite at the origin); the book keeps it per sensor for the claims."""
    rng = np.random.default_rng(26)
    for _ in range(2000):
        t0 = float(rng.uniform(0.0, 1e4))
        t1 = t0 + float(rng.choice([1e-3, 0.1, 1.0 / 3.0, 5.0]))
        p0, p1 = rng.normal(0.0, 7.0e6, 3), rng.normal(0.0, 7.0e6, 3)
        assert _velocity((t0, p0), p1, t1).tobytes() == ((p1 - p0) / (t1 - t0)).tobytes()
    assert _velocity((1.0, np.zeros(3)), np.zeros(3), 2.0).tolist() == [0.0, 0.0, 0.0]
    book = ThreadBook()
    los = np.array([[0.0, 1.0, 0.0]])
    book.label("sat-1", 1.0, np.array([7.0e6, 0.0, 0.0]), los, np.full(1, SIGMA))
    book.label("sat-1", 1.5, np.array([7.0e6, 3.5e3, -10.0]), los, np.full(1, SIGMA))
    assert book._sensor_vel["sat-1"].tolist() == [0.0, 7.0e3, -20.0]


def test_row_two_is_numpys_selection():
    """Nearest, its column and second nearest of each row (squared chords, ties, zeros,
    NaN and inf included, one to five columns): the value at np.argmin's column and
    np.partition's second (equal values; a zero's sign aside, which no decision sees)."""
    from tracklayer.fusion.threads import _row_two

    rng = np.random.default_rng(7)
    values = [0.0, -0.0, 1e-10, 2e-10, 3.0, np.inf, np.nan]
    for _ in range(600):
        t, m = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        d = rng.choice(values, (t, m), p=[0.15, 0.05, 0.3, 0.2, 0.2, 0.05, 0.05])
        d1, j, d2 = _row_two(d)
        j_want = np.argmin(d, axis=1)
        assert np.array_equal(j, j_want)
        assert np.array_equal(d1, d[np.arange(t), j_want], equal_nan=True)
        want2 = np.partition(d, 1, axis=1)[:, 1] if m > 1 else np.full(t, np.inf)
        assert np.array_equal(d2, want2, equal_nan=True)
