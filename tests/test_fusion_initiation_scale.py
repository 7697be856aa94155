"""Initiation pairing with a conservative screen gives exactly the results of the
all-pairs computation it replaces (issue 13): the same candidates, in the same order,
with the same triangulated points and covariances, bit for bit, and the same buffer
left behind. Compared with a copy of the former all-pairs code on random raids and
edge cases, with the screen in numpy and compiled (fusion/kernels.py: its rounding
differs from numpy's product, its slack covers that, so the results may not)."""

import numpy as np
import pytest

from tracklayer.fusion import kernels
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.dynamics import ellipsoid_height
from tracklayer.fusion.initiation import (
    Candidate,
    InitiationBuffer,
    closest_points,
    earth_blocks,
    greedy_pairs,
    triangulate,
)

# The random and edge-case inputs include degenerate rays (NaN, parallel, through the
# sensor): numpy warns on them in the old and the new code alike; only the results matter here.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

R_EARTH = 6.378e6  # m


@pytest.fixture(params=[False, True], ids=["numpy", "kernels"])
def jit(request):
    """The pairing's screen in numpy, then compiled (skipped without numba)."""
    kernels.set_enabled(request.param)
    if request.param and not kernels.enabled():
        pytest.skip("numba is not installed")
    yield request.param
    kernels.set_enabled(True)


class _AllPairsBuffer(InitiationBuffer):
    """The buffer with the former pairing: exact tests over every (new, waiting) pair."""

    def pair(self, t_s, sensor_id, origin, los, sigma):
        cfg = self.config
        self.prune(t_s)
        m_count = los.shape[0]
        code = self._codes.get(sensor_id, -1)
        sel = np.flatnonzero((self._code != code) & (self._t <= t_s))
        if m_count == 0 or sel.size == 0:
            return [], np.arange(m_count)
        s2 = self._origin[sel]
        u2 = self._los[sel]
        sig2 = self._sigma[sel]
        dt = t_s - self._t[sel]
        t1, t2, miss, sin_a = closest_points(
            origin[None, None, :], los[:, None, :], s2[None, :, :], u2[None, :, :]
        )
        with np.errstate(invalid="ignore"):
            geo = np.sqrt((sigma[:, None] * t1) ** 2 + (sig2[None, :] * t2) ** 2)
            tol = cfg.init_miss_sigmas * geo + cfg.init_max_speed_mps * dt[None, :]
            ok = (
                (t1 > 0.0)
                & (t2 > 0.0)
                & (t1 < cfg.max_range_m)
                & (t2 < cfg.max_range_m)
                & (sin_a >= self._sin_min)
                & (miss <= tol)
            )
        if not np.any(ok):
            return [], np.arange(m_count)
        mi, bi = np.nonzero(ok)
        p1 = origin + t1[mi, bi][:, None] * los[mi]
        h = ellipsoid_height(p1)
        keep = (h >= cfg.init_min_altitude_m) & (h <= cfg.init_max_altitude_m)
        keep &= ~earth_blocks(origin, los[mi], t1[mi, bi])
        keep &= ~earth_blocks(s2[bi], u2[bi], t2[mi, bi])
        mi, bi = mi[keep], bi[keep]
        score = miss[mi, bi] / tol[mi, bi]
        order = np.lexsort((bi, mi, score))
        used_m, used_b, out = set(), set(), []
        for k in order:
            m, b = int(mi[k]), int(bi[k])
            if m in used_m or b in used_b:
                continue
            used_m.add(m)
            used_b.add(b)
            motion = cfg.init_velocity_sigma_mps * dt[b]
            var = np.array([(sigma[m] * t1[m, b]) ** 2, (sig2[b] * t2[m, b]) ** 2 + motion**2])
            pos, cov = triangulate(np.stack([origin, s2[b]]), np.stack([los[m], u2[b]]), var)
            other = self._names[int(self._code[sel[b]])]
            out.append((m, Candidate(pos, cov, (sensor_id, other), float(score[k]))))
        if used_b:
            keep_mask = np.ones(self._t.size, bool)
            keep_mask[sel[sorted(used_b)]] = False
            self._keep(keep_mask)
        out.sort(key=lambda c: c[0])
        left = np.array([m for m in range(m_count) if m not in used_m], dtype=int)
        return out, left


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _raid(rng, n_obj, n_sat):
    """Targets at -10 to 2,000 km altitude (some clustered), LEO sensors at ~1,000 km."""
    targets = _unit(rng.normal(size=(n_obj, 3))) * (R_EARTH + rng.uniform(-1e4, 2e6, (n_obj, 1)))
    targets[: n_obj // 3] = targets[0] + rng.normal(scale=2e4, size=(n_obj // 3, 3))
    sats = _unit(rng.normal(size=(n_sat, 3)) + _unit(targets[0]) * 1.5) * (R_EARTH + 1e6)
    return targets, sats


def _frame(rng, sat, targets, t_s):
    """Noisy lines of sight (m, unit ECI) to moving targets plus clutter, and sigmas."""
    pos = targets + rng.normal(scale=3e3, size=3) * t_s
    los = _unit(pos - sat + rng.normal(scale=200.0, size=pos.shape))
    los = los[rng.random(los.shape[0]) < 0.7]
    clutter = _unit(rng.normal(size=(rng.integers(0, 8), 3)))
    los = np.concatenate([los, clutter, -_unit(sat)[None, :]])
    rng.shuffle(los)
    return los, rng.uniform(5e-6, 60e-6, los.shape[0])


def _same(a, b):
    (ca, la), (cb, lb) = a, b
    assert np.array_equal(la, lb)
    assert len(ca) == len(cb)
    for (ia, xa), (ib, xb) in zip(ca, cb, strict=True):
        assert ia == ib and xa.sensors == xb.sensors
        assert xa.position.tobytes() == xb.position.tobytes()
        assert xa.position_cov.tobytes() == xb.position_cov.tobytes()
        assert np.float64(xa.score).tobytes() == np.float64(xb.score).tobytes()


def _run(new, old, t_s, name, sat, los, sigma):
    a = new.pair(t_s, name, sat, los, sigma)
    b = old.pair(t_s, name, sat, los, sigma)
    _same(a, b)
    for buf, (_, left) in ((new, a), (old, b)):
        buf.add(t_s, name, sat, los[left], sigma[left])
    for field in ("_t", "_code", "_origin", "_los", "_sigma"):
        assert getattr(new, field).tobytes() == getattr(old, field).tobytes()
    return len(a[0])


@pytest.mark.parametrize("seed", range(6))
def test_screened_pairing_matches_all_pairs_bit_for_bit(seed, jit):
    rng = np.random.default_rng(seed)
    cfg = FusionConfig()
    targets, sats = _raid(rng, 60, 6)
    new, old = InitiationBuffer(cfg, capacity=300), _AllPairsBuffer(cfg, capacity=300)
    accepted = 0
    for step in range(30):
        k = int(rng.integers(0, sats.shape[0]))
        t_s = 0.1 * step + rng.uniform(0.0, 0.05)
        sat = sats[k] + rng.normal(scale=7e3, size=3) * t_s
        los, sigma = _frame(rng, sat, targets, t_s)
        accepted += _run(new, old, t_s, f"sat{k}", sat, los, sigma)
    assert accepted > 20  # the comparison covers accepted pairs, not only rejections


def test_screened_pairing_matches_all_pairs_on_edge_cases(jit):
    """Sensors on a waiting ray's line (not screenable), parallel and crossing rays,
    a ray not a number, a window's worth of time between looks, huge sigmas."""
    cfg = FusionConfig()
    rng = np.random.default_rng(99)
    new, old = InitiationBuffer(cfg), _AllPairsBuffer(cfg)
    sat_a = np.array([R_EARTH + 1e6, 0.0, 0.0])
    sat_b = np.array([0.0, R_EARTH + 1e6, 0.0])
    target = np.array([4e6, 4e6, 2e6])
    los_a = _unit(np.stack([target - sat_a, sat_b - sat_a, [0.0, 0.0, 1.0], [np.nan] * 3]))
    los_a = np.concatenate([los_a, _unit(target - sat_a + rng.normal(scale=5e4, size=(40, 3)))])
    sig_a = np.full(los_a.shape[0], 2e-5)
    sig_a[5] = 0.5
    _run(new, old, 0.0, "a", sat_a, los_a, sig_a)
    on_line = sat_a + 3e6 * los_a[0]  # a sensor on the first waiting ray
    for t_s, sat in ((0.5, sat_b), (1.0, on_line), (1.0, sat_b + [0.0, 0.0, 1e3])):
        los_b = _unit(target - sat + rng.normal(scale=5e4, size=(40, 3)))
        los_b = np.concatenate([los_b, _unit(np.stack([target - sat, sat_a - sat, [0, 0, 1.0]]))])
        sig_b = np.full(los_b.shape[0], 3e-5)
        _run(new, old, t_s, f"b{t_s}{sat[2]}", sat, los_b, sig_b)


@pytest.mark.parametrize("seed", range(20))
def test_greedy_pairs_matches_the_sequential_walk(seed):
    """Dense conflicts (many rounds, then the Python walk) and sparse ones."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    span = int(rng.integers(1, 60))
    mi, bi = rng.integers(0, span, n), rng.integers(0, span + 5, n)
    order = rng.permutation(n)
    used_m, used_b, walk = set(), set(), []
    for k in order:
        if mi[k] in used_m or bi[k] in used_b:
            continue
        used_m.add(mi[k])
        used_b.add(bi[k])
        walk.append(k)
    assert greedy_pairs(mi, bi, order).tolist() == walk
