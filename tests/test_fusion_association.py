"""Chi-square gating and global-nearest-neighbour assignment (fusion.association)."""

import numpy as np

from tracklayer.fusion.association import assign, gate, gate_threshold
from tracklayer.fusion.measurement import los_to

SENSOR = np.array([7.0e6, 0.0, 1.0e6])


def _track(pos, sigma_m=100.0):
    x = np.zeros((1, 9))
    x[0, :3] = pos
    P = np.zeros((1, 9, 9))
    P[0, :3, :3] = sigma_m**2 * np.eye(3)
    P[0, 3:6, 3:6] = np.eye(3)
    return x, P


def test_gate_holds_its_probability_of_true_detections():
    """Detections drawn from the track's own uncertainty plus the sensor noise fall inside
    the gate with the gate's probability (Monte Carlo, 20000 draws)."""
    rng = np.random.default_rng(2)
    pos = np.array([4.0e6, 2.0e6, 4.0e6])
    x, P = _track(pos, 150.0)
    sigma = 20e-6
    true_pos = pos + rng.normal(scale=150.0, size=(20000, 3))
    m = los_to(true_pos, SENSOR)
    e = rng.normal(size=(20000, 3))
    m = m + sigma * (e - np.sum(e * m, axis=1, keepdims=True) * m)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    g = gate(x, P, SENSOR, m, np.full(20000, sigma), np.full(1, gate_threshold(0.99)))
    inside = np.mean(g.dense_d2(20000)[0] <= gate_threshold(0.99))
    # binomial sd at p=0.99, n=20000 is 0.0007; linearisation error over 150 m at 4000 km
    # range is negligible
    assert abs(inside - 0.99) < 0.003


def test_d2_of_the_predicted_los_is_zero():
    pos = np.array([4.0e6, 2.0e6, 4.0e6])
    x, P = _track(pos)
    g = gate(x, P, SENSOR, los_to(pos[None], SENSOR), np.array([20e-6]), np.array([9.21]))
    assert g.dense_d2(1)[0, 0] < 1e-12


def test_assignment_minimises_the_total_cost_not_each_track_greedily():
    # Track 0 is slightly closer to detection 0 than track 1 is, but detection 1 is only
    # feasible for track 0: GNN gives 0->1 and 1->0.
    d2 = np.array([[1.0, 3.0], [2.0, np.inf]])
    pairs = assign(d2, np.zeros((2, 2)), np.full(2, 9.21))
    assert pairs == [(0, 1), (1, 0)]


def test_assignment_never_forces_a_pair_outside_the_gate():
    d2 = np.array([[50.0, 1.0], [2.0, 80.0]])
    assert assign(d2, np.zeros((2, 2)), np.full(2, 9.21)) == [(0, 1), (1, 0)]
    assert assign(np.array([[50.0]]), np.zeros((1, 1)), np.array([9.21])) == []


def test_a_track_may_stay_unassigned_rather_than_take_a_costly_pair():
    # One detection, two tracks: the better track takes it, the other stays free.
    d2 = np.array([[4.0], [0.5]])
    assert assign(d2, np.zeros((2, 1)), np.full(2, 9.21)) == [(1, 0)]


def _total(pairs: tuple[int, ...], ti: np.ndarray, cost: np.ndarray, stay: np.ndarray) -> float:
    """Chosen pairs' cost plus the stay-unassigned cost of every other track that has one."""
    rows = {int(ti[k]) for k in pairs}
    return sum(cost[k] for k in pairs) + sum(
        float(stay[t]) for t in range(stay.size) if t not in rows and np.isfinite(stay[t])
    )


def test_sparse_assignment_matches_exhaustive_search_on_random_problems():
    """assign_pairs (sparse LAPJVsp on the gated pairs) against an exhaustive search of
    every feasible assignment: same minimum total cost (chosen pairs plus each
    unassigned track's gate + its smallest ln det), on random problems with thread
    adjustments that can make a gated pair dearer than staying unassigned."""
    import itertools

    from tracklayer.fusion.association import assign_pairs

    rng = np.random.default_rng(3)
    for _ in range(150):
        n, m = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        keep = rng.random((n, m)) < 0.6
        ti, mi = np.nonzero(keep)
        d2 = rng.uniform(0.0, 12.0, ti.size)
        logdet = rng.uniform(-45.0, -40.0, ti.size)
        adjust = rng.choice([-16.0, 0.0, 16.0], ti.size)
        gates = np.full(n, 9.21)
        chosen = assign_pairs(ti, mi, d2, logdet, gates, adjust)
        ok = d2 <= gates[ti]
        stay = np.full(n, np.inf)
        for t in range(n):
            if np.any(ok & (ti == t)):
                stay[t] = gates[t] + logdet[ok & (ti == t)].min()

        cost = d2 + logdet + adjust
        best = min(
            _total(c, ti, cost, stay)
            for r in range(min(n, m) + 1)
            for c in itertools.combinations(np.flatnonzero(ok).tolist(), r)
            if len({int(ti[k]) for k in c}) == r and len({int(mi[k]) for k in c}) == r
        )
        assert ok[chosen].all()
        assert len(set(ti[chosen].tolist())) == chosen.size
        assert len(set(mi[chosen].tolist())) == chosen.size
        k_ok = int(np.count_nonzero(ok))
        if len(set(ti[ok].tolist())) == k_ok and len(set(mi[ok].tolist())) == k_ok:
            assert chosen.size == k_ok  # no conflict: every gated pair is taken, no solver
        else:
            assert abs(_total(tuple(chosen.tolist()), ti, cost, stay) - best) <= 1e-9
