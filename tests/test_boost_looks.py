"""The boost looks kept for the burnout replay (speed10): the newest bright look as its
time with its state gathered once per frame, the dark looks after it. The replay must be
the one the per-update snapshots of before gave, bit for bit, and a checkpoint holding
those snapshots must still replay."""

from __future__ import annotations

from collections import deque

import numpy as np

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import NS_PER_S
from tracklayer.fusion.tracker.modes import MotionModes
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import (
    SNAPSHOTS_KEPT,
    Look,
    Mode,
    Snapshot,
    Track,
    replay_start,
)

SENSOR = np.array([2.0e7, -3.0e7, 1.0e7])  # m, ECI: a far satellite


def _setup():
    cfg = FusionConfig()
    rows = StateRows()
    modes = MotionModes(cfg, rows)
    rows.noise_source = modes
    return cfg, rows, modes


def _state(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([[4.0e6, 4.5e6, 2.5e6], [1.5e3, -0.8e3, 2.0e3], [20.0, 15.0, 30.0]])
    x = x + rng.normal(size=9) * np.repeat([500.0, 20.0, 2.0], 3)
    a = rng.normal(size=(9, 9)) * 0.1
    P = np.diag(np.repeat([300.0**2, 30.0**2, 5.0**2], 3)) + a @ a.T
    return x, P


def _look(x: np.ndarray, t_ns: int, bright: bool, rng: np.random.Generator) -> Look:
    d = x[:3] - SENSOR + rng.normal(size=3) * 200.0
    return Look(t_ns, SENSOR, d / np.linalg.norm(d), 20e-6, bright)


def test_burnout_replay_from_the_frame_gather_is_the_snapshots_replay():
    """A track boosting through bright looks, then dark ones until burnout: the replay from
    the state gathered by keep_bright and the looks kept equals, bit for bit, the replay of
    a twin holding a Snapshot (state copies) per update, as a checkpoint from before does."""
    rng = np.random.default_rng(5)
    cfg, rows, modes = _setup()
    new, old = (
        Track(key=0, created_ns=0, last_update_ns=0),
        Track(key=1, created_ns=0, last_update_ns=0),
    )
    x, P = _state(rng)
    rows.append(x, P, new, False, 0)
    rows.append(x, P, old, False, 0)
    snaps: deque = deque(maxlen=SNAPSHOTS_KEPT)
    t_ns, changes = 0, []
    for i in range(12):  # 9 bright looks, then dark ones until the plume is out
        t_ns = (i + 1) * NS_PER_S // 4
        bright = i < 9
        xs, Ps = _state(rng)  # "the update": both rows take the same new state
        for trk in (new, old):
            rows.x[trk.row], rows.P[trk.row], rows.t_ns[trk.row] = xs, Ps, t_ns
        look = _look(xs, t_ns, bright, rng)
        changes = modes.observe_updates([new], [1.0], [bright], t_ns, lambda k, lk=look: lk)
        snaps.append(Snapshot(xs.copy(), Ps.copy(), look) if bright else Snapshot(None, None, look))
        if changes:
            break
    assert changes == [(new, Mode.BALLISTIC)] and i == 11  # burnout_dim_count dark looks
    old.plume.bright_seen, old.plume.dim_run = True, new.plume.dim_run
    old.plume.snapshots = snaps
    old.plume.bright = None  # as restored from an older checkpoint
    start_new, start_old = replay_start(new.plume), replay_start(old.plume)
    assert start_new[0] == start_old[0] == 9 * NS_PER_S // 4  # the last bright look's time
    assert np.array_equal(start_new[1], start_old[1]) and np.array_equal(start_new[2], start_old[2])
    assert [lk.time_ns for lk in start_new[3]] == [lk.time_ns for lk in start_old[3]]
    for trk in (new, old):
        modes.burnout_from_plume(trk, t_ns + NS_PER_S // 10)
        assert trk.mode == Mode.BALLISTIC
    assert np.array_equal(rows.x[new.row], rows.x[old.row])
    assert np.array_equal(rows.P[new.row], rows.P[old.row])
    assert not np.array_equal(rows.x[new.row], rows.x[old.row] * 0.0)  # replayed, not emptied


def test_the_bright_look_leaves_the_window_after_as_many_looks_as_before():
    """The window keeps SNAPSHOTS_KEPT looks: with the bright look and 31 dark ones after it
    the replay starts there; one dark look more and no bright look is kept (as the
    per-update snapshots' window of 32 behaved); a bright look then starts afresh."""
    rng = np.random.default_rng(6)
    _, rows, modes = _setup()
    trk = Track(key=0, created_ns=0, last_update_ns=0)
    x, P = _state(rng)
    rows.append(x, P, trk, False, 0)
    modes.config = FusionConfig(burnout_dim_count=10_000)  # never burn out here
    modes.observe_updates([trk], [1.0], [True], 1, lambda k: None)
    for t in range(2, SNAPSHOTS_KEPT + 1):  # 31 dark looks
        modes.observe_updates([trk], [1.0], [False], t, lambda k, t=t: _look(x, t, False, rng))
    start = replay_start(trk.plume)
    assert start is not None and start[0] == 1 and len(start[3]) == SNAPSHOTS_KEPT - 1
    t = SNAPSHOTS_KEPT + 1
    modes.observe_updates([trk], [1.0], [False], t, lambda k: _look(x, t, False, rng))
    assert replay_start(trk.plume) is None
    modes.observe_updates([trk], [1.0], [True], t + 1, lambda k: None)
    assert list(trk.plume.snapshots) == [t + 1]  # the earlier looks are never replayed
    assert np.array_equal(trk.plume.bright[0][trk.plume.bright[2]], rows.x[trk.row])
