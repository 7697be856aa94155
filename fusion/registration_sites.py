"""Hot-spot sites of the sensor registration (:mod:`.registration`, DESIGN §6).

A hot spot is an Earth-fixed infrared source. The tracker follows it with short-lived
tentative tracks (about 25 s each, one after another), so the registration gathers a hot
spot's looks by *site*: its Earth-fixed position (that of the first track that saw it),
matched within ``SITE_MATCH_M``; the successive tracks of one hot spot so fill one window.
"""

from __future__ import annotations

import numpy as np

from .constants import OMEGA_EARTH

SITE_MATCH_M = 5_000.0  # m; hot-spot looks within this of a known site are that site's
MAX_SITES = 512  # hot-spot sites remembered (the least recently seen is forgotten)


class Sites:
    """Known hot-spot sites in an Earth-fixed frame (ECI rotated back by the Earth's turn
    since the first site's data time; m), each with its window key (negative)."""

    def __init__(self) -> None:
        self.position = np.zeros((0, 3))  # (M, 3) m, Earth-fixed
        self.keys = np.zeros(0, int)  # (M,) window keys, -1, -2, ...
        self._seen = np.zeros(0)  # (M,) s: data time of each site's last track look
        self._next = 0
        self._t0_s: float | None = None  # data time at which the Earth-fixed frame meets ECI

    def key(self, x: np.ndarray, t_s: float) -> int:
        """Window key of the hot spot at ECI state ``x`` (9,) at data time ``t_s`` (s): the
        known site within ``SITE_MATCH_M``, else a new one (replacing the least recently
        seen beyond ``MAX_SITES``)."""
        if self._t0_s is None:
            self._t0_s = t_s
        e = _turn(np.asarray(x[:3], float)[None], -OMEGA_EARTH * (t_s - self._t0_s))[0]
        if self.position.shape[0]:
            diff = self.position - e
            d2 = np.einsum("mi,mi->m", diff, diff)
            j = int(np.argmin(d2))
            if d2[j] <= SITE_MATCH_M**2:
                self._seen[j] = t_s
                return int(self.keys[j])
        key = -1 - self._next
        self._next += 1
        if self.position.shape[0] >= MAX_SITES:
            j = int(np.argmin(self._seen))
            self.position[j], self.keys[j], self._seen[j] = e, key, t_s
        else:
            self.position = np.vstack([self.position, e])
            self.keys = np.append(self.keys, key)
            self._seen = np.append(self._seen, t_s)
        return key


def _turn(p: np.ndarray, angle: float) -> np.ndarray:
    """Positions (n, 3) rotated by ``angle`` (rad) about the z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2]], axis=1)
