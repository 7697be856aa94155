"""The memories every update writes, kept as columns of the rows (issue 13): the NIS fades
(with the boost thrust-change inflation), the NIS window and the 1-s hit bins read the same
as the per-track deques and Python floats they replaced, whether a frame writes them as
arrays (many updates) or row by row (a sparse frame's few), across removals of rows and
copies appended with a track's memories (a hand-over, an alias sibling)."""

from __future__ import annotations

from collections import deque

import numpy as np

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.tracker.modes import MotionModes
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import HIT_BINS_KEPT, NIS_WINDOW, Mode, Track


class _Model:
    """One track's memories as the tracker kept them before: deques and Python floats."""

    def __init__(self) -> None:
        self.fade, self.fade_boost, self.inflated = 0.0, 0.0, 0
        self.nis: deque[float] = deque(maxlen=NIS_WINDOW)
        self.bins: deque[int] = deque(maxlen=HIT_BINS_KEPT)

    def update(self, cfg: FusionConfig, mode: Mode, nis: float, second: int) -> None:
        self.fade = cfg.maneuver_memory * self.fade + nis
        self.fade_boost = cfg.boost_inflate_memory * self.fade_boost + nis
        if self.fade_boost > cfg.boost_inflate_nis and mode in (Mode.BOOST, Mode.GLIDE):
            self.fade_boost = 0.0
            self.inflated += 1
        self.nis.append(nis)
        if not self.bins or self.bins[-1] != second:
            self.bins.append(second)


def test_row_memories_match_the_per_track_histories() -> None:
    rng = np.random.default_rng(11)
    cfg = FusionConfig()
    rows = StateRows()
    modes = MotionModes(cfg, rows)
    tracks: list[Track] = []
    models: dict[int, _Model] = {}
    p0 = np.zeros((9, 9))

    def add(memory_of: Track | None = None) -> None:
        trk = Track(key=len(models), created_ns=0, last_update_ns=0)
        trk.mode = Mode(int(rng.integers(0, 4)))
        if memory_of is not None:  # a copy carries its parent's memories into its row
            trk.memory = rows.memory(memory_of.row)
            src = models[memory_of.key]
            model = _Model()
            model.fade, model.fade_boost, model.inflated = src.fade, src.fade_boost, 0
            model.nis, model.bins = deque(src.nis, NIS_WINDOW), deque(src.bins, HIT_BINS_KEPT)
        else:
            model = _Model()
        rows.append(np.zeros(9), p0, trk, False, 0)
        assert trk.memory is None  # taken into the row
        tracks.append(trk)
        models[trk.key] = model

    for _ in range(20):
        add()
    for step in range(600):
        k = int(rng.choice([1, 2, 4, 5, 12]))  # row by row up to 4, arrays above
        pick = rng.choice(len(tracks), size=min(k, len(tracks)), replace=False)
        trks = [tracks[i] for i in pick.tolist()]
        nis = rng.exponential(3.0, len(trks)) * np.where(rng.random(len(trks)) < 0.05, 20, 1)
        second = step // 3
        at = np.array([t.row for t in trks])
        before = rows.P[at, 0, 0].copy()
        rows.remember(at, nis, second)
        modes._fade(at, nis)
        for t, v, p in zip(trks, nis.tolist(), before.tolist(), strict=True):
            model = models[t.key]
            n_inflated = model.inflated
            model.update(cfg, t.mode, v, second)
            assert (rows.P[t.row, 0, 0] != p) == (model.inflated > n_inflated)
        if step % 50 == 25:  # a copy appended, then a track removed (rows re-packed)
            add(memory_of=tracks[int(rng.integers(len(tracks)))])
            gone = tracks.pop(int(rng.integers(len(tracks))))
            rows.remove([gone.row])
        for t in tracks:
            model, r = models[t.key], t.row
            assert rows.fade[r].tolist() == [model.fade, model.fade_boost]
            assert rows.recent_nis(r) == list(model.nis)
            for after in (second - 5, second - 20):
                assert rows.hits_since(r, after) == sum(1 for b in model.bins if b > after)
