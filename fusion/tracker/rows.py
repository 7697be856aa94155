"""Stacked filter states of every live track and burnout shadow, one row each.

``x`` (N, 9) and ``P`` (N, 9, 9) hold the states (ECI: position m, velocity m/s,
acceleration m/s^2; layout in :mod:`..dynamics`), each at its own data time ``t_ns``
(N,): a row is predicted only when something reads it (:meth:`StateRows.sync`, batched
over the rows asked for), so a frame costs what its detections touch, not every row.
``score`` (N,) is each main row's existence score (:mod:`.existence`). The memories every
update writes are columns too, meaningful for main rows (a frame's updates write them in
a few array operations, not per track object: :meth:`StateRows.remember`): ``fade`` (N, 2)
the fading-memory NIS sums (manoeuvre test, boost thrust-change test: :mod:`.modes`),
``nis`` (N, ``NIS_WINDOW``) the latest NIS values (newest last, ``nis_n`` (N,) of them
valid) and ``hits`` (N, ``HIT_BINS_KEPT``) the latest 1-s bins (data time s) with an
update (newest last, ``hits_n`` (N,) valid), both for the confirmation test
(:mod:`.lifecycle`). A track copy outside the rows (a hand-over's, an alias's) carries
them as a :class:`.track.RowMemory`, written into its row when it is appended. ``owners[i]``
says whose row ``i`` is; every change of the stack
(append, remove) re-numbers ``Track.row`` / ``Track.shadow_row``. The per-row
process-noise parameters depend on the owners' modes and are cached here until the stack
or a mode changes (:attr:`noise_cache`, filled by :mod:`.modes`); so are the main rows and
whatever else depends only on the owners and their modes (:attr:`layout_cache`, emptied by
:meth:`changed`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .. import kernels
from ..domain import NS_PER_S
from ..dynamics import N_STATE
from ..filters import predict
from .track import HIT_BINS_KEPT, NIS_WINDOW, RowMemory, RowOwner, Track

#: Entries of :attr:`StateRows.layout_cache` that depend on the owners' modes (dropped
#: at a mode change; every other entry depends only on the stack's rows and owners).
MODE_KEYS = ("gates",)
_FEW = 4  # updates in a frame up to which remember writes row by row (cheaper than arrays)
#: The per-row arrays, grown and kept together with the stack.
COLUMNS = ("x", "P", "t_ns", "score", "fade", "nis", "nis_n", "hits", "hits_n")


class NoiseSource(Protocol):
    """Gives the per-row process-noise parameters (see modes.MotionModes.noise)."""

    def noise(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


class StateRows:
    """The stacked states ``x`` (N, 9), covariances ``P`` (N, 9, 9) and row owners."""

    def __init__(self) -> None:
        self.x = np.zeros((0, N_STATE))
        self.P = np.zeros((0, N_STATE, N_STATE))
        self.t_ns = np.zeros(0, dtype=np.int64)  # data time of each row's state
        self.score = np.zeros(0)  # existence log-likelihood ratio of a main row (.existence)
        self.fade = np.zeros((0, 2))  # fading NIS sums: manoeuvre, boost thrust change
        self.nis = np.zeros((0, NIS_WINDOW))  # latest NIS values, newest last
        self.nis_n = np.zeros(0, dtype=np.int64)  # how many of them are valid
        self.hits = np.zeros((0, HIT_BINS_KEPT), dtype=np.int64)  # latest 1-s bins updated
        self.hits_n = np.zeros(0, dtype=np.int64)  # how many of them are valid
        self.owners: list[RowOwner] = []
        # what gives each row's (Singer rate 1/s, accel PSD, jerk PSD) for prediction
        # (modes.MotionModes, set by the tracker: an object, not a bound method, so the
        # rows stay plain data), and the largest single step (s)
        self.noise_source: NoiseSource | None = None
        self.max_step_s = 2.0
        self.noise_cache: tuple | None = None  # see modes.MotionModes.noise
        self.layout_cache: dict[str, Any] = {}  # per owners and modes, see main_rows

    def __len__(self) -> int:
        return len(self.owners)

    def changed(self) -> None:
        """The stack changed (rows added or removed): forget what was cached of it."""
        self.noise_cache = None
        self.layout_cache.clear()

    def mode_changed(self, trk: Track) -> None:
        """``trk``'s mode changed: forget what depends on the modes (the process noise,
        and whatever was cached under :data:`MODE_KEYS`); the rows' layout (main rows,
        keys) stays, and the owners' mode column is corrected in place."""
        self.noise_cache = None
        cache = self.layout_cache
        for key in MODE_KEYS:
            cache.pop(key, None)
        columns = cache.get("owners")
        if columns is None:
            return
        owners, n = self.owners, len(self.owners)
        for row in (trk.row, trk.shadow_row):
            if 0 <= row < n and owners[row].track is trk:
                columns[1][row] = int(trk.mode)

    def owner_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row (N,): is it a shadow (bool), its track's mode (int, :class:`Mode`
        values) and key (int64); read once from the owners, cached until the stack
        changes (a mode change corrects its entries: :meth:`mode_changed`; do not
        modify)."""
        columns = self.layout_cache.get("owners")
        if columns is None:
            owners, n = self.owners, len(self.owners)
            shadow = np.fromiter((o.is_shadow for o in owners), bool, n)
            mode = np.fromiter((o.track.mode for o in owners), np.int64, n)
            key = np.fromiter((o.track.key for o in owners), np.int64, n)
            columns = self.layout_cache["owners"] = (shadow, mode, key)
        return columns

    def shadow_of(self) -> np.ndarray:
        """Per row (N,): the row of its track's burnout shadow, -1 if none (meaningful for
        main rows; cached until the stack changes: shadows come and go as rows; do not
        modify)."""
        out = self.layout_cache.get("shadow_of")
        if out is None:
            out = np.full(len(self.owners), -1, dtype=np.int64)
            owners = self.owners
            for i in np.flatnonzero(self.owner_columns()[0]).tolist():
                out[owners[i].track.row] = i
            self.layout_cache["shadow_of"] = out
        return out

    def main_rows(self) -> np.ndarray:
        """Indices of the rows that are tracks (not shadows), in row order (cached; do
        not modify)."""
        main = self.layout_cache.get("main_rows")
        if main is None:
            main = np.flatnonzero(~self.owner_columns()[0])
            self.layout_cache["main_rows"] = main
        return main

    def track_of(self, row: int) -> Track:
        """The track row ``row`` belongs to (for a shadow row: the shadowed track)."""
        return self.owners[row].track

    def append(self, x: np.ndarray, P: np.ndarray, trk: Track, shadow: bool, t_ns: int) -> None:
        """Add a row for ``trk`` (its main row, or its shadow's) with its state at data
        time ``t_ns``."""
        n = len(self.owners)
        for name in COLUMNS:
            setattr(self, name, _grown(getattr(self, name), n))
        self.x[n] = x
        self.P[n] = P
        self.t_ns[n] = t_ns
        self.score[n] = 0.0
        memory = None if shadow else trk.memory
        if memory is None:
            self.fade[n] = self.nis[n] = 0.0
            self.hits[n] = self.nis_n[n] = self.hits_n[n] = 0
        else:  # a copy's memories (a hand-over, an alias): now kept here
            self.fade[n], self.nis[n], self.nis_n[n], self.hits[n], self.hits_n[n] = memory
            trk.memory = None
        self.owners.append(RowOwner(trk, shadow))
        columns = self.layout_cache.get("owners")
        self.changed()
        if columns is not None:  # one row more: no pass over every owner
            new = (shadow, int(trk.mode), trk.key)
            self.layout_cache["owners"] = tuple(
                np.append(c, v) for c, v in zip(columns, new, strict=True)
            )
        if shadow:
            trk.shadow_row = len(self.owners) - 1
        else:
            trk.row = len(self.owners) - 1

    def remove(self, rows: list[int]) -> None:
        """Drop ``rows`` (indices) and re-number the remaining owners' rows."""
        if not rows:
            return
        keep = np.ones(len(self.owners), bool)
        keep[rows] = False
        for name in COLUMNS:
            setattr(self, name, _kept(getattr(self, name), keep))
        first = min(rows)  # the rows before the first removed one keep their numbers
        kept = zip(self.owners[first:], keep[first:].tolist(), strict=True)
        self.owners[first:] = [o for o, k in kept if k]
        columns = self.layout_cache.get("owners")
        self.changed()
        if columns is not None:
            self.layout_cache["owners"] = tuple(c[keep] for c in columns)
        owners = self.owners
        for i in range(first, len(owners)):
            owner, shadow = owners[i]
            if shadow:
                owner.shadow_row = i
            else:
                owner.row = i

    def memory(self, row: int) -> RowMemory:
        """A copy of main row ``row``'s memories (for a track copy outside the rows)."""
        return RowMemory(
            self.fade[row].copy(), self.nis[row].copy(), int(self.nis_n[row]),
            self.hits[row].copy(), int(self.hits_n[row]),
        )  # fmt: skip

    def remember(self, idx: np.ndarray, nis: np.ndarray, second: int) -> None:
        """The updates of the main rows ``idx`` (K,) (distinct) at data time second
        ``second`` with NIS ``nis`` (K,): each NIS kept (the oldest of a full window
        dropped), and the second kept as a bin with an update unless it is the newest."""
        if idx.size <= _FEW:  # a sparse frame: row by row (the same values)
            for r, v in zip(idx.tolist(), nis.tolist(), strict=True):
                self._remember_one(r, v, second)
            return
        window = self.nis[idx]
        window[:, :-1] = window[:, 1:]
        window[:, -1] = nis
        self.nis[idx] = window
        self.nis_n[idx] = np.minimum(self.nis_n[idx] + 1, NIS_WINDOW)
        hits_n = self.hits_n[idx]
        new = idx[(hits_n == 0) | (self.hits[idx, -1] != second)]
        if new.size:
            bins = self.hits[new]
            bins[:, :-1] = bins[:, 1:]
            bins[:, -1] = second
            self.hits[new] = bins
            self.hits_n[new] = np.minimum(self.hits_n[new] + 1, HIT_BINS_KEPT)

    def _remember_one(self, r: int, nis: float, second: int) -> None:
        """:meth:`remember` of one row ``r``."""
        window = self.nis[r]
        window[:-1] = window[1:]
        window[-1] = nis
        n = int(self.nis_n[r])
        if n < NIS_WINDOW:
            self.nis_n[r] = n + 1
        n = int(self.hits_n[r])
        bins = self.hits[r]
        if n == 0 or int(bins[-1]) != second:
            bins[:-1] = bins[1:]
            bins[-1] = second
            if n < HIT_BINS_KEPT:
                self.hits_n[r] = n + 1

    def hits_since(self, row: int, after: int) -> int:
        """Bins (1-s, data time) with an update of main row ``row`` later than ``after``."""
        n = int(self.hits_n[row])
        return int(np.count_nonzero(self.hits[row, HIT_BINS_KEPT - n :] > after)) if n else 0

    def recent_nis(self, row: int) -> list[float]:
        """The NIS values main row ``row`` keeps, oldest first."""
        n = int(self.nis_n[row])
        return self.nis[row, NIS_WINDOW - n :].tolist() if n else []

    def apply(self, row: int, fn: Callable[..., tuple[np.ndarray, np.ndarray]], *args: Any) -> None:
        """Replace row ``row`` by ``fn(x[row:row+1], P[row:row+1], *args)`` (a batched
        filter function of :mod:`..filters` on a stack of one)."""
        self.x[row : row + 1], self.P[row : row + 1] = fn(
            self.x[row : row + 1], self.P[row : row + 1], *args
        )

    def sync(self, rows: np.ndarray | list[int] | None, t_ns: int) -> None:
        """Predict the rows ``rows`` (indices; None: every row) whose state is older than
        data time ``t_ns`` to ``t_ns``, in one batched call (per-row steps)."""
        idx = np.arange(len(self.owners)) if rows is None else np.asarray(rows, dtype=int)
        if idx.size == 0:
            return
        stale = idx[self.t_ns[idx] < t_ns]
        if stale.size == 0:
            return
        noise = self.noise_source.noise()
        # in place, compiled: the same rows and floats, without the gathers and scatters
        moved = kernels.predict_at(self.x, self.P, self.t_ns, stale, t_ns, noise, self.max_step_s)
        if moved is not None:
            return
        if stale.size > 1:  # sorted, each once (np.unique's result; a mask is cheaper)
            once = np.zeros(len(self.owners), bool)
            once[stale] = True
            stale = np.flatnonzero(once)
        inv_tau, accel_psd, jerk_psd = noise
        dt = (t_ns - self.t_ns[stale]) / NS_PER_S
        self.x[stale], self.P[stale] = predict(
            self.x[stale], self.P[stale], dt, inv_tau[stale], accel_psd[stale],
            jerk_psd[stale], max_step=self.max_step_s,
        )  # fmt: skip
        self.t_ns[stale] = t_ns


_SPARE_MIN = 16  # rows of spare capacity at least, when a stack's buffer is (re)made
#: The buffers made here, by id (an array that merely shares a base is not grown into).
_BUFFERS: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()


def _buffer(rows: int, like: np.ndarray) -> np.ndarray:
    """A new, registered buffer of ``rows`` rows shaped and typed as ``like``'s."""
    buf = np.empty((rows,) + like.shape[1:], dtype=like.dtype)
    _BUFFERS[id(buf)] = buf
    return buf


def _grown(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` (n, ...) with one row more (its last row unset): a view of its buffer when
    that has a spare row after ``a``, else a copy into a new buffer with spare rows (at
    least as many again), so appending a track does not copy the whole stack. Rows never
    move inside a buffer (only :func:`_kept` re-packs, into a new one), so a caller
    holding an older view still reads the rows it had."""
    base = a.base
    if (
        base is not None
        and _BUFFERS.get(id(base)) is base
        and a.shape[0] == n
        and base.shape[0] > n
        and base.shape[1:] == a.shape[1:]
        and base.ctypes.data == a.ctypes.data
        and a.flags.c_contiguous
    ):
        return base[: n + 1]
    buf = _buffer(n + max(n, _SPARE_MIN), a)
    buf[:n] = a
    return buf[: n + 1]


def _kept(a: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The rows of ``a`` where ``keep`` (bool (n,)), packed in order into a new buffer
    with spare rows (``a[keep]``'s values)."""
    m = int(np.count_nonzero(keep))
    buf = _buffer(m + max(m, _SPARE_MIN), a)
    a.compress(keep, axis=0, out=buf[:m])
    return buf[:m]
