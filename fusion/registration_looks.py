"""The looks the sensor registration gathers, kept in columns (:mod:`.registration`,
DESIGN §6, *Cost*).

Each open window (one track's, or one hot-spot site's) owns a *slot*: rows of the same
numpy columns (data time, sensor index, sensor position, measured line of sight, sigma),
at most ``MAX_WINDOW_LOOKS`` per window, so a window's looks are solved as slices,
never stacked from per-look lists. A frame's looks that only extend an open window (the
same evidence, not contested, neither spanning its window nor filling it) are appended
together, numpy over the frame (:meth:`OpenWindows.extendable`, :meth:`OpenWindows.extend`);
the few others (a window opened, closed or contested, a hot spot's site looked up) take
the sequential path in the registration, in the frame's order, as before. The two paths
touch different windows, so the windows, their rows' order and the order in which they
are solved are those of one look at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np

MAX_WINDOW_LOOKS = 400  # detections a window holds at most (bounded history; then solved)
_NO_SLOT = -1
_COLUMNS = ("count", "kind", "start", "last", "state", "t", "sensor", "pos", "los", "sigma")


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
    look, and its looks."""

    start_s: float
    kind: Evidence
    last_s: float
    state: np.ndarray
    key: int
    looks: Looks


class OpenWindows:
    """The open windows, by key in the order they were opened, each in a slot of the
    look columns (grown as needed: at most ``registration_max_windows`` are open)."""

    def __init__(self) -> None:
        self.slot_of: dict[int, int] = {}  # key -> slot, in opening order
        self._free: list[int] = []
        # per slot
        self.count = np.zeros(0, np.int64)
        self.kind = np.zeros(0, np.int64)
        self.start = np.zeros(0)  # s
        self.last = np.zeros(0)  # s
        self.state = np.zeros((0, 9))  # ECI, after the last look
        # per slot and row
        self.t = np.zeros((0, MAX_WINDOW_LOOKS))  # s
        self.sensor = np.zeros((0, MAX_WINDOW_LOOKS), np.int64)
        self.pos = np.zeros((0, MAX_WINDOW_LOOKS, 3))  # m, ECI
        self.los = np.zeros((0, MAX_WINDOW_LOOKS, 3))
        self.sigma = np.zeros((0, MAX_WINDOW_LOOKS))  # rad

    def __len__(self) -> int:
        return len(self.slot_of)

    def open(self, key: int, kind: Evidence, t_s: float) -> int:
        """A new window of ``kind`` for ``key`` starting at data time ``t_s``; its slot."""
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self.slot_of[key] = slot
        self.count[slot], self.kind[slot], self.start[slot] = 0, int(kind), t_s
        return slot

    def _grow(self) -> None:
        """Twice the slots (at least 8 more)."""
        n = self.count.size
        more = max(n, 8)
        for name in _COLUMNS:
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.zeros((more, *a.shape[1:]), a.dtype)]))
        self._free.extend(range(n + more - 1, n - 1, -1))

    def append(
        self,
        slot: int,
        t_s: float,
        sensor: int,
        pos: np.ndarray,
        los: np.ndarray,
        sigma: float,
        x: np.ndarray,
    ) -> int:
        """One look (data time ``t_s`` s, sensor index, sensor position (3,) m, measured
        LOS (3,), sigma rad; the track's state (9,) after it) added to ``slot``; the
        window's looks now."""
        r = int(self.count[slot])
        self.t[slot, r], self.sensor[slot, r], self.sigma[slot, r] = t_s, sensor, sigma
        self.pos[slot, r], self.los[slot, r] = pos, los
        self.last[slot], self.state[slot] = t_s, x
        self.count[slot] = r + 1
        return r + 1

    def extendable(
        self,
        keys: list[int],
        kinds: np.ndarray,
        clear: np.ndarray,
        t_s: float,
        span: np.ndarray,
        contested: dict[int, float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """(K,) bool: the looks of one frame (window ``keys``, evidence ``kinds`` (K,),
        unambiguous ``clear`` (K,)) at data time ``t_s`` that only extend their open
        window: moving or thrusting like it, not contested, the window neither spanning
        ``span[kind]`` s nor full after them; keys distinct (else none). And the slots
        (K,) of the keys' open windows (-1: none)."""
        get = self.slot_of.get
        if not self.slot_of or len(set(keys)) < len(keys):
            return np.zeros(len(keys), bool), np.full(len(keys), _NO_SLOT)
        slots = np.array([get(q, _NO_SLOT) for q in keys], np.int64)
        s = np.maximum(slots, 0)
        out = (slots >= 0) & clear & ((kinds == Evidence.MOVING) | (kinds == Evidence.THRUSTING))
        out &= (self.kind[s] == kinds) & (self.count[s] + 1 < MAX_WINDOW_LOOKS)
        out &= t_s - self.start[s] < span[kinds]
        if contested:
            out &= np.array([q not in contested for q in keys], bool)
        return out, slots

    def extend(
        self,
        s: np.ndarray,
        t_s: float,
        sensor: int,
        pos: np.ndarray,
        los: np.ndarray,
        sigma: np.ndarray,
        x: np.ndarray,
    ) -> None:
        """Looks of one frame (data time ``t_s`` s, sensor index, sensor position (3,) m)
        added to the distinct open slots ``s`` (K,): measured LOS (K, 3), sigmas (K,)
        rad, the tracks' states (K, 9) after them."""
        r = self.count[s]
        self.t[s, r], self.sensor[s, r], self.pos[s, r] = t_s, sensor, pos
        self.los[s, r], self.sigma[s, r] = los, sigma
        self.last[s], self.state[s] = t_s, x
        self.count[s] = r + 1

    def take(self, key: int) -> Window:
        """Window ``key`` closed: its looks (copies), its slot freed."""
        slot = self.slot_of.pop(key)
        self._free.append(slot)
        n = int(self.count[slot])
        looks = Looks(
            self.t[slot, :n].copy(),
            self.sensor[slot, :n].copy(),
            self.pos[slot, :n].copy(),
            self.los[slot, :n].copy(),
            self.sigma[slot, :n].copy(),
        )
        kind, last = Evidence(int(self.kind[slot])), float(self.last[slot])
        return Window(float(self.start[slot]), kind, last, self.state[slot].copy(), key, looks)

    def drop(self, key: int) -> bool:
        """Window ``key`` discarded unsolved; False if it was not open."""
        slot = self.slot_of.pop(key, None)
        if slot is None:
            return False
        self._free.append(slot)
        return True

    def quiet(self, horizon_s: float) -> list[int]:
        """Keys of the windows whose last look is before ``horizon_s``, in opening order."""
        last = self.last
        return [q for q, s in self.slot_of.items() if last[s] < horizon_s]
