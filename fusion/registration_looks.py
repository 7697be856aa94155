"""The looks the sensor registration gathers, kept in columns (:mod:`.registration`,
DESIGN §6, *Cost*).

Each open window (one track's, or one hot-spot site's) owns a *slot*: rows of the same
numpy columns (data time, sensor index, sensor position, measured line of sight, sigma),
at most ``MAX_WINDOW_LOOKS`` per window, so a closed window's looks are copied out as
slices, never stacked from per-look lists. The registration decides a frame's looks one
at a time, in the frame's order (which window each joins, which windows open, close or
are contested), as before; the looks themselves are written to their rows together, once
per frame (before a window closes mid-frame, so it holds the look that closed it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from .kernel_registration import write_looks

MAX_WINDOW_LOOKS = 400  # detections a window holds at most (bounded history; then solved)


class Evidence(IntEnum):
    """What a track's detections can tell about the biases."""

    NONE = 0
    MOVING = 1  # confirmed ballistic: position and velocity errors eliminated
    EARTH_FIXED = 2  # a hot spot at rest on the Earth: position error eliminated
    THRUSTING = 3  # confirmed in boost: position, velocity and thrust errors eliminated


class Looks(NamedTuple):
    """A window's n looks: data times (n,) s, sensor indices (n,), sensor positions (n, 3)
    m ECI, measured unit lines of sight (n, 3) uncorrected, sigmas (n,) rad."""

    times: np.ndarray
    sensors: np.ndarray
    positions: np.ndarray
    los: np.ndarray
    sigmas: np.ndarray


@dataclass(slots=True)
class Window:
    """A window taken out to be solved: its first and last look's data time (s), kind,
    key (a track's, or a site's: negative), the track's state (9,) ECI after its last
    look, and its looks' columns (as :class:`Looks`)."""

    start_s: float
    kind: Evidence
    last_s: float
    state: np.ndarray
    key: int
    times: np.ndarray
    sensors: np.ndarray
    positions: np.ndarray
    los: np.ndarray
    sigmas: np.ndarray

    @property
    def looks(self) -> Looks:
        """The window's looks."""
        return Looks(self.times, self.sensors, self.positions, self.los, self.sigmas)


@dataclass(slots=True)
class Opened:
    """An open window: its ``slot`` in the columns, kind, first and last look's data time
    (s), looks so far (``n``) and the track's state (9,) ECI after the last look."""

    slot: int
    kind: Evidence
    start_s: float
    last_s: float = 0.0
    n: int = 0
    state: np.ndarray | None = None


class OpenWindows:
    """The open windows (``open``: by key in the order they were opened), each in a slot
    of the look columns (grown as needed: at most ``registration_max_windows`` are open).
    A frame's looks are noted one at a time (:meth:`note`: which window, which row) and
    written together (:meth:`write`)."""

    def __init__(self) -> None:
        self.open: dict[int, Opened] = {}
        self._free: list[int] = []
        self.t = np.zeros((0, MAX_WINDOW_LOOKS))  # s
        self.sensor = np.zeros((0, MAX_WINDOW_LOOKS), np.int64)
        self.pos = np.zeros((0, MAX_WINDOW_LOOKS, 3))  # m, ECI
        self.los = np.zeros((0, MAX_WINDOW_LOOKS, 3))
        self.sigma = np.zeros((0, MAX_WINDOW_LOOKS))  # rad
        self._noted: tuple[list[int], list[int]] = ([], [])  # slot x rows + row, look
        self._frame: tuple[float, int, np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.open)

    def start(self, key: int, kind: Evidence, t_s: float) -> Opened:
        """A new window of ``kind`` for ``key`` starting at data time ``t_s``."""
        if not self._free:
            self._grow()
        w = self.open[key] = Opened(self._free.pop(), kind, t_s)
        return w

    def _grow(self) -> None:
        """Twice the slots (at least 8 more)."""
        n = self.t.shape[0]
        more = max(n, 8)
        for name in ("t", "sensor", "pos", "los", "sigma"):
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.zeros((more, *a.shape[1:]), a.dtype)]))
        self._free.extend(range(n + more - 1, n - 1, -1))

    def note(self, w: Opened, i: int, t_s: float, x: np.ndarray) -> int:
        """Look ``i`` of the frame at data time ``t_s`` joins window ``w`` (the track's
        state ``x`` (9,) after it); the window's looks now."""
        at, looks = self._noted
        at.append(w.slot * MAX_WINDOW_LOOKS + w.n)
        looks.append(i)
        w.n += 1
        w.last_s, w.state = t_s, x
        return w.n

    def begin(
        self, t_s: float, sensor: int, pos: np.ndarray, los: np.ndarray, sigma: np.ndarray
    ) -> None:
        """A frame's looks come: data time ``t_s`` (s), sensor index ``sensor`` at ``pos``
        (3,) m ECI, its looks' measured LOS (K, 3) and sigmas (K,) rad."""
        self._frame = (t_s, sensor, pos, los, sigma)

    def write(self) -> None:
        """Write the frame's looks noted so far into their windows' rows."""
        at, looks = self._noted
        if not at or self._frame is None:
            return
        flat = (self.t.reshape(-1), self.sensor.reshape(-1), self.pos.reshape(-1, 3))
        flat += (self.los.reshape(-1, 3), self.sigma.reshape(-1))
        write_looks(at, looks, self._frame, flat)  # rows of the flat columns, looks
        self._noted = ([], [])

    def take(self, key: int) -> Window:
        """Window ``key`` closed: its looks (copies), its slot freed."""
        self.write()
        w = self.open.pop(key)
        self._free.append(w.slot)
        return self._closed(key, w)

    def restart(self, key: int, kind: Evidence, t_s: float) -> tuple[Window, Opened]:
        """Window ``key`` closed and a new one of ``kind`` started at data time ``t_s``
        for the same key, in its place in the opening order (a track's new model)."""
        self.write()
        w = self.open[key]
        self._free.append(w.slot)
        done = self._closed(key, w)
        new = self.open[key] = Opened(self._free.pop(), kind, t_s)
        return done, new

    def _closed(self, key: int, w: Opened) -> Window:
        """Window ``w`` of ``key`` as closed: its looks copied out of its slot."""
        j, n = w.slot, w.n
        return Window(
            w.start_s,
            w.kind,
            w.last_s,
            np.array(w.state, float),
            key,
            self.t[j, :n].copy(),
            self.sensor[j, :n].copy(),
            self.pos[j, :n].copy(),
            self.los[j, :n].copy(),
            self.sigma[j, :n].copy(),
        )

    def drop(self, key: int) -> bool:
        """Window ``key`` discarded unsolved; False if it was not open."""
        self.write()  # (its slot may be reused in this frame)
        w = self.open.pop(key, None)
        if w is None:
            return False
        self._free.append(w.slot)
        return True

    def quiet(self, horizon_s: float) -> list[int]:
        """Keys of the windows whose last look is before ``horizon_s``, in opening order."""
        return [q for q, w in self.open.items() if w.last_s < horizon_s]
