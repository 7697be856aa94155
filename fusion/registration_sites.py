"""Hot-spot sites of the sensor registration (:mod:`.registration`, DESIGN §6).

A hot spot is an Earth-fixed infrared source. The tracker follows it with short-lived
tentative tracks (about 25 s each, one after another) and only while two satellites see it
at once (initiation needs two lines of sight), so about a fifth of a hot spot's detections
on ``biased`` are held by no track. The registration gathers a hot spot's looks by *site*:
its Earth-fixed position, matched within ``SITE_MATCH_M`` and refined by a running mean of
the tracks' positions. :func:`free_looks` adds the detections no track took that are
unambiguously a site's (the only detection near the site's predicted line of sight), so a
satellite that sees the site alone, or between two of its tracks, still adds evidence to
the site's open window (the site's position is eliminated in the window, so its error in
the gate does not enter the estimate).
"""

from __future__ import annotations

import numpy as np

from .constants import OMEGA_EARTH

SITE_MATCH_M = 5_000.0  # m; hot-spot looks within this of a known site are that site's
MAX_SITES = 512  # hot-spot sites remembered (the least recently seen is forgotten)
MEAN_OVER = 20  # a site's position: running mean of at most this many tracks' positions
LOOK_GATE_RAD = 300e-6  # a free detection this close to a site's predicted line of sight
# (noise 20 urad, bias < 50 urad, the site's position error / range ~ 50 urad) ...
LOOK_CLEAR_RAD = 1e-3  # ... is the site's look if it is the only detection within this


class Sites:
    """Known hot-spot sites in an Earth-fixed frame (ECI rotated back by the Earth's turn
    since the first site's data time; m), each with its window key (negative)."""

    def __init__(self) -> None:
        self.position = np.zeros((0, 3))  # (M, 3) m, Earth-fixed
        self.keys = np.zeros(0, int)  # (M,) window keys, -1, -2, ...
        self._seen = np.zeros(0)  # (M,) s: data time of each site's last track look
        self._count = np.zeros(0, int)  # (M,) track looks averaged into its position
        self._row: dict[int, int] = {}  # window key -> row
        self._next = 0
        self._t0_s: float | None = None  # data time at which the Earth-fixed frame meets ECI

    def key(self, x: np.ndarray, t_s: float) -> int:
        """Window key of the hot spot at ECI state ``x`` (9,) at data time ``t_s`` (s): the
        known site within ``SITE_MATCH_M`` (its position moved towards ``x``), else a new
        one (replacing the least recently seen beyond ``MAX_SITES``)."""
        if self._t0_s is None:
            self._t0_s = t_s
        e = _turn(np.asarray(x[:3], float)[None], -OMEGA_EARTH * (t_s - self._t0_s))[0]
        if self.position.shape[0]:
            diff = self.position - e
            d2 = np.einsum("mi,mi->m", diff, diff)
            j = int(np.argmin(d2))
            if d2[j] <= SITE_MATCH_M**2:
                self._seen[j] = t_s
                self._count[j] = min(self._count[j] + 1, MEAN_OVER)
                self.position[j] += (e - self.position[j]) / self._count[j]
                return int(self.keys[j])
        key = -1 - self._next
        self._next += 1
        if self.position.shape[0] >= MAX_SITES:
            j = int(np.argmin(self._seen))
            del self._row[int(self.keys[j])]
            self.position[j], self.keys[j], self._seen[j], self._count[j] = e, key, t_s, 1
        else:
            self.position = np.vstack([self.position, e])
            self.keys = np.append(self.keys, key)
            self._seen = np.append(self._seen, t_s)
            self._count = np.append(self._count, 1)
            j = self.keys.size - 1
        self._row[key] = j
        return key

    def eci(self, keys: list[int], t_s: float) -> np.ndarray:
        """ECI positions (n, 3) m at data time ``t_s`` (s) of the sites with window ``keys``
        (a key forgotten since is not looked for: callers pass keys of open windows,
        which may outlive their site; those rows are NaN)."""
        row = self._row
        e = np.full((len(keys), 3), np.nan)
        for i, key in enumerate(keys):
            j = row.get(key)
            if j is not None:
                e[i] = self.position[j]
        return _turn(e, OMEGA_EARTH * (t_s - (self._t0_s or 0.0)))


def _turn(p: np.ndarray, angle: float) -> np.ndarray:
    """Positions (n, 3) rotated by ``angle`` (rad) about the z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2]], axis=1)


def free_looks(
    sensor: np.ndarray, los: np.ndarray, taken: np.ndarray, sites: np.ndarray
) -> list[tuple[int, int]]:
    """Pairs (site row, detection) of a frame's detections no track took that are a site's
    look: the detection (unit LOS ``los`` (n, 3) from ``sensor`` (3,) m, ECI; ``taken``:
    indices of the detections tracks took) lies within ``LOOK_GATE_RAD`` of the site's
    predicted line of sight (``sites`` (m, 3) m, ECI), and no other detection of the
    frame (taken or not) and no other site lies within ``LOOK_CLEAR_RAD`` of it."""
    if los.shape[0] == 0 or sites.shape[0] == 0:
        return []
    known = np.flatnonzero(np.all(np.isfinite(sites), axis=1))
    if known.size == 0:
        return []
    u = sites[known] - sensor
    u /= np.linalg.norm(u, axis=1)[:, None]
    cos = np.clip(u @ los.T, -1.0, 1.0)  # (m, n)
    near = cos >= np.cos(LOOK_CLEAR_RAD)
    inside = cos >= np.cos(LOOK_GATE_RAD)
    free = np.ones(los.shape[0], bool)
    free[np.asarray(taken, int)] = False
    alone = (near.sum(axis=1) == 1)[:, None] & (near.sum(axis=0) == 1)[None, :]
    hits = np.argwhere(inside & alone & free[None, :])
    return [(int(known[j]), int(d)) for j, d in hits]
