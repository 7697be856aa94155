"""Per-frame work on what the frame touches (issue 13): rows predicted only when read
(the screen that picks them, per-row steps) and the shadow tests revisited by time.

A frame predicts and gates only the tracks that may gate one of its detections
(``association.may_gate``); every other row keeps its older state until something reads
it (``StateRows.sync``). These tests hold the two promises that makes: the screen never
drops a track the full computation (every row predicted, then gated) would gate, and a
row predicted late in one step lands where the step-by-step prediction does.
"""

from __future__ import annotations

import numpy as np
import pytest

from tracklayer.fusion import kernels
from tracklayer.fusion.association import (
    gate,
    gate_threshold,
    may_gate,
    may_gate_any,
    may_gate_rows,
)
from tracklayer.fusion.domain import NS_PER_S
from tracklayer.fusion.dynamics import process_noise, propagate_short
from tracklayer.fusion.filters import predict
from tracklayer.fusion.measurement import los_to
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import Track

_SENSOR = np.array([7.0e6, 0.0, 0.0])  # m ECI, a LEO satellite


def _cloud(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` boosting or coasting objects 1,000-3,000 km from the sensor, some of them
    very uncertain (new tracks), some tight (converged)."""
    x = np.zeros((n, 9))
    x[:, :3] = _SENSOR + rng.normal(size=(n, 3)) * 6.0e5 + np.array([-2.0e6, 0.0, 0.0])
    x[:, 3:6] = rng.normal(size=(n, 3)) * 3.0e3
    x[:, 6:9] = rng.normal(size=(n, 3)) * 30.0 * (rng.random((n, 1)) < 0.5)
    sig_r = 10.0 ** rng.uniform(0.5, 4.0, n)  # m
    sig_v = 10.0 ** rng.uniform(-0.5, 3.0, n)  # m/s
    sig_a = 10.0 ** rng.uniform(-1.0, 1.6, n)  # m/s^2
    P = np.zeros((n, 9, 9))
    for k in range(3):
        P[:, k, k] = sig_r**2
        P[:, 3 + k, 3 + k] = sig_v**2
        P[:, 6 + k, 6 + k] = sig_a**2
    return x, P


def test_the_screen_keeps_every_track_the_full_gate_would_pass():
    rng = np.random.default_rng(13)
    gates = np.full(400, gate_threshold(0.9999))
    kept_total = gated_total = 0
    for trial in range(30):
        x, P = _cloud(rng, 400)
        dt = rng.uniform(0.0, 0.6, 400)  # s each row is older than the frame
        xp, Pp = predict(x, P, dt, 1.0 / 60.0, 1e-2, 5.0)
        # detections: near some predicted objects (with noise), plus random directions
        near = rng.choice(400, 60, replace=False)
        los = los_to(xp[near, :3], _SENSOR) + rng.normal(size=(60, 3)) * 40e-6
        far = rng.normal(size=(20, 3))
        los = np.concatenate([los, far])
        los /= np.linalg.norm(los, axis=1)[:, None]
        sigma = np.full(los.shape[0], 20e-6)
        full = gate(xp, Pp, _SENSOR, los, sigma, gates)
        passed = np.zeros(400, bool)
        passed[full.track[full.d2 <= gates[full.track]]] = True
        kept = may_gate(x, P, dt, _SENSOR, los, sigma, gates)
        assert not np.any(passed & ~kept), trial
        kept_total += int(kept.sum())
        gated_total += int(passed.sum())
    # and it is a screen: far fewer rows kept than there are
    assert gated_total <= kept_total < 0.5 * 30 * 400


def test_the_screen_keeps_a_row_that_is_not_a_number():
    x = np.zeros((1, 9))
    x[0, 0] = np.nan
    kept = may_gate(
        x, np.eye(9)[None], np.zeros(1), _SENSOR, np.array([[1.0, 0.0, 0.0]]),
        np.array([20e-6]), np.array([9.0]),
    )  # fmt: skip
    assert kept.tolist() == [True]


def test_the_quick_screen_says_no_only_where_the_screen_keeps_nothing():
    """may_gate_any (Python floats, a few rows) is False only if may_gate keeps no row:
    one row at a time, on rows near and far from the detections, with edge cases."""
    rng = np.random.default_rng(7)
    gates = np.full(1, gate_threshold(0.9999))
    seen = {True: 0, False: 0}
    for _ in range(3000):
        x, P = _cloud(rng, 1)
        dt = rng.uniform(0.0, 2.0, 1)
        los = los_to(x[:, :3] + x[:, 3:6] * dt[:, None], _SENSOR)
        los = los + rng.normal(size=(3, 3)) * 10.0 ** rng.uniform(-5.0, -1.0)
        los /= np.linalg.norm(los, axis=1)[:, None]
        sigma = np.full(3, 20e-6)
        kept = bool(may_gate(x, P, dt, _SENSOR, los, sigma, gates)[0])
        quick = may_gate_any(x, P, dt, _SENSOR, los, sigma, gates)
        assert quick or not kept
        seen[kept] += 1
    assert min(seen.values()) > 300  # both outcomes covered
    nan = np.zeros((1, 9))
    nan[0, 0] = np.nan
    args = (np.eye(9)[None], np.zeros(1), _SENSOR, np.array([[1.0, 0.0, 0.0]]))
    assert may_gate_any(nan, *args, np.array([20e-6]), np.array([9.0]))
    at_sensor = np.zeros((1, 9))
    at_sensor[0, :3] = _SENSOR
    assert may_gate_any(at_sensor, *args, np.array([20e-6]), np.array([9.0]))


def test_per_row_steps_equal_one_call_per_row():
    rng = np.random.default_rng(5)
    x, _ = _cloud(rng, 7)
    dt = rng.uniform(0.01, 1.5, 7)
    inv_tau = rng.uniform(0.0, 0.1, 7)
    xs, phis = propagate_short(x, dt, inv_tau)
    qj = rng.uniform(0.0, 10.0, 7)
    q = process_noise(dt, 1e-2, qj)
    for k in range(7):
        np.testing.assert_allclose(q[k], process_noise(float(dt[k]), 1e-2, qj[k])[0], rtol=1e-15)
        x1, phi1 = propagate_short(x[k : k + 1], float(dt[k]), inv_tau[k])
        np.testing.assert_allclose(xs[k], x1[0], rtol=1e-15, atol=1e-9)
        np.testing.assert_allclose(phis[k], phi1[0], rtol=1e-14, atol=1e-15)


def test_a_row_read_late_lands_where_step_by_step_prediction_does():
    """One row synced 28 times (a frame per sensor) and a twin synced once, 0.25 s
    later: the means agree to millimetres, each covariance entry to 0.5% of
    sqrt(P_ii P_jj) (the discrete process noise neglects the Singer decay over a step,
    dt / tau = 0.4% here: its composition over steps is the only difference)."""
    rng = np.random.default_rng(2)
    x, P = _cloud(rng, 1)
    rows = StateRows()

    class Noise:
        def noise(self):
            return np.full(2, 1.0 / 60.0), np.full(2, 1e-2), np.full(2, 5.0)

    rows.noise_source = Noise()
    for k in range(2):
        trk = Track(key=k, created_ns=0, last_update_ns=0)
        rows.append(x[0], P[0], trk, False, 0)
    for step in range(1, 29):
        rows.sync([0], step * 250_000_000 // 28)
    rows.sync(None, 250_000_000)
    assert rows.t_ns.tolist() == [250_000_000, 250_000_000]
    np.testing.assert_allclose(rows.x[0], rows.x[1], rtol=0, atol=1e-3)
    scale = np.sqrt(np.outer(np.diag(rows.P[1]), np.diag(rows.P[1])))
    assert np.all(np.abs(rows.P[0] - rows.P[1]) <= 5e-3 * scale)


def test_shadow_tests_are_revisited_when_their_hold_ends_or_a_track_boosts_again():
    """The per-frame bookkeeping skips tracks the frame did not touch; a burnout test
    that can end without an update (its hold time passed) and a track switched back to
    BOOST must still be looked at, in creation order, and a deleted track never."""
    from tracklayer.fusion.config import FusionConfig
    from tracklayer.fusion.tracker.modes import MotionModes
    from tracklayer.fusion.tracker.track import Mode, ShadowTest

    cfg = FusionConfig()
    rows = StateRows()
    modes = MotionModes(cfg, rows)
    hold_ns = int(cfg.burnout_hold_s * NS_PER_S)
    a, b, c = (Track(key=k, created_ns=0, last_update_ns=0) for k in (3, 1, 2))
    for t in (a, b, c):
        rows.append(np.zeros(9), np.eye(9), t, False, 0)
    assert modes.shadow_candidates([a], 0) == [a]
    # b's shadow starts at t = 0 (as run_shadow_tests spawns it)
    b.update_count = 5
    modes.run_shadow_tests([b], 0)
    assert isinstance(b.shadow, ShadowTest) and b.shadow.start_ns == 0
    assert modes.shadow_candidates([], hold_ns - 1) == []
    c.mode = Mode.BALLISTIC
    modes.set_mode(c, Mode.BOOST)
    got = modes.shadow_candidates([a], hold_ns)
    assert got == [b, c, a]  # keys 1, 2, 3
    assert modes.shadow_candidates([], 2 * hold_ns) == []  # each revisited once
    modes.set_mode(a, Mode.BOOST)
    a.deleted = True
    assert modes.shadow_candidates([], 3 * hold_ns) == []


def _noise_by_owner(rows: StateRows, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-row process noise read owner by owner (as first written), drag rows
    through MotionModes' own air-density law."""
    from tracklayer.fusion.tracker.modes import Mode, MotionModes

    n = len(rows)
    inv_tau, accel, jerk = np.zeros(n), np.full(n, cfg.ballistic_accel_psd), np.zeros(n)
    drag = []
    for i, (trk, shadow) in enumerate(rows.owners):
        if shadow or trk.mode == Mode.BALLISTIC:
            continue
        inv_tau[i] = 1.0 / cfg.accel_time_constant_s
        if trk.mode == Mode.BOOST:
            jerk[i] = cfg.boost_jerk_psd
        elif trk.mode == Mode.GLIDE:
            jerk[i] = cfg.glide_jerk_psd
        else:
            drag.append(i)
    if drag:
        jerk[drag] = MotionModes(cfg, rows)._drag_jerk_psd(np.array(drag))
    return inv_tau, accel, jerk


def test_row_layout_and_noise_follow_appends_removals_and_mode_changes():
    """The cached layout (main rows, each main row's key, gate mode and shadow row) and
    the per-row noise stay what reading every owner afresh gives, through tracks and
    shadows added, rows removed and modes changed (a mode change keeps the layout,
    corrects its row)."""
    from tracklayer.fusion.config import FusionConfig
    from tracklayer.fusion.tracker.modes import Mode, MotionModes

    rng = np.random.default_rng(21)
    cfg = FusionConfig()
    rows = StateRows()
    modes = MotionModes(cfg, rows)
    rows.noise_source = modes
    tracks: list[Track] = []
    for step in range(60):
        op = rng.integers(0, 3)
        if op == 0 or len(tracks) < 3:  # a new track, sometimes with a shadow
            trk = Track(key=step, created_ns=0, last_update_ns=0)
            x = np.zeros(9)
            x[:3] = rng.normal(size=3) * 1e5 + [6.4e6, 0.0, 0.0]
            x[3:6] = rng.normal(size=3) * 1e3
            x[6:] = rng.normal(size=3)
            rows.append(x, np.eye(9), trk, False, 0)
            if rng.random() < 0.4:
                rows.append(x, np.eye(9), trk, True, 0)
            tracks.append(trk)
        elif op == 1:  # a mode change
            trk = tracks[int(rng.integers(len(tracks)))]
            modes.set_mode(trk, Mode(int(rng.integers(0, 4))))
        else:  # a track removed with its shadow
            trk = tracks.pop(int(rng.integers(len(tracks))))
            rows.remove(sorted([trk.row] + ([trk.shadow_row] if trk.shadow_row >= 0 else [])))
        main = [i for i, o in enumerate(rows.owners) if not o.is_shadow]
        assert rows.main_rows().tolist() == main
        shadow, mode, key = rows.owner_columns()
        assert key[main].tolist() == [rows.owners[i].track.key for i in main]
        assert mode[main].tolist() == [int(rows.owners[i].track.mode) for i in main]
        assert shadow.tolist() == [o.is_shadow for o in rows.owners]
        assert (shadow.dtype, mode.dtype, key.dtype) == (bool, np.int64, np.int64)
        shadow_of = {o.track.key: j for j, o in enumerate(rows.owners) if o.is_shadow}
        ref = [shadow_of.get(rows.owners[i].track.key, -1) for i in main]
        assert rows.shadow_of()[main].tolist() == ref
        for i, (trk, is_shadow) in enumerate(rows.owners):  # re-numbered after removals
            assert (trk.shadow_row if is_shadow else trk.row) == i
        for got, ref in zip(modes.noise(), _noise_by_owner(rows, cfg), strict=True):
            assert got.tobytes() == ref.tobytes()


@pytest.mark.parametrize("jit", [False, True], ids=["numpy", "kernels"])
def test_the_rows_the_tracker_screens_are_the_ones_may_gate_keeps(jit):
    """may_gate_rows (one compiled pass, or the quick test then may_gate) gives the
    indices of exactly the rows may_gate keeps, none when it keeps none."""
    kernels.set_enabled(jit)
    if jit and not kernels.enabled():
        pytest.skip("numba is not installed")
    try:
        rng = np.random.default_rng(8)
        for n in (0, 1, 3, 40, 400):
            gates = np.full(n, gate_threshold(0.9999))
            x, P = _cloud(rng, n)
            dt = rng.uniform(0.0, 1.0, n)
            for spread in (1e-5, 1e-2, 1.0):
                los = los_to(x[:6, :3], _SENSOR) if n else rng.normal(size=(3, 3))
                los = los + rng.normal(size=los.shape) * spread
                los /= np.linalg.norm(los, axis=1)[:, None]
                sigma = np.full(los.shape[0], 20e-6)
                ref = np.flatnonzero(may_gate(x, P, dt, _SENSOR, los, sigma, gates))
                got = may_gate_rows(x, P, dt, _SENSOR, los, sigma, gates)
                assert got.tolist() == ref.tolist()
    finally:
        kernels.set_enabled(True)


def test_rows_with_spare_capacity_hold_what_copies_would():
    """Appends into spare capacity and removals that re-pack give the stacks a copy per
    change would (rows, order, owners' row numbers), and an array taken before a change
    still reads what it read: the rows never move under a caller."""
    rng = np.random.default_rng(5)
    rows = StateRows()
    ref_x, ref_P, tracks = [], [], []
    held = []
    for step in range(300):
        if rng.random() < 0.7 or len(tracks) < 3:
            x, P = rng.normal(size=9), rng.normal(size=(9, 9))
            trk = Track(key=step, created_ns=step, last_update_ns=step)
            rows.append(x, P, trk, False, step)
            tracks.append(trk)
            ref_x.append(x)
            ref_P.append(P)
        else:
            gone = sorted(rng.choice(len(tracks), size=2, replace=False).tolist())
            rows.remove(gone)
            for i in reversed(gone):
                del tracks[i], ref_x[i], ref_P[i]
        if step % 25 == 0:
            held.append((rows.x, rows.x.copy()))
        assert np.array_equal(rows.x, np.array(ref_x)) and np.array_equal(rows.P, np.array(ref_P))
        assert [t.row for t in tracks] == list(range(len(tracks)))
        assert rows.t_ns.shape == rows.score.shape == (len(tracks),)
    assert all(np.array_equal(view, copy) for view, copy in held)
