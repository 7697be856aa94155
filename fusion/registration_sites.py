"""Hot-spot sites of the sensor registration (:mod:`.registration`, DESIGN §6).

A hot spot is an Earth-fixed infrared source. The tracker follows it with short-lived
tentative tracks (about 25 s each, one after another), so the registration gathers a hot
spot's looks by *site*: its Earth-fixed position (that of the first track that saw it),
matched within ``SITE_MATCH_M``; the successive tracks of one hot spot so fill one window.

A site's position is one unknown for the whole run, so each site also keeps the normal
equations of its accepted windows (:class:`SiteNormals`): the registration eliminates the
position once over *all* of them instead of once per window, so looks across windows (the
satellites have moved) and single-satellite windows constrain the biases too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .constants import OMEGA_EARTH

SITE_MATCH_M = 5_000.0  # m; hot-spot looks within this of a known site are that site's
MAX_SITES = 512  # hot-spot sites remembered (the least recently seen is forgotten)
SITE_PRIOR_M = 5_000.0  # m per axis: prior sigma of a site's offset from its reference


@dataclass(slots=True)
class SiteNormals:
    """The whitened normal equations of one site's accepted windows, in the linear model
    ``y = A s + sum_k G_k theta_k + N(0, I)``: ``s`` (3,) m, the site's Earth-fixed offset
    from its reference position; ``theta_k`` (3,) rad, sensor ``k``'s bias (ECI);
    ``y``, the looks' gnomonic residuals at ``s = 0``, ``theta = 0`` over their sigma."""

    C: np.ndarray = field(default_factory=lambda: np.eye(3) / SITE_PRIOR_M**2)  # A'A + prior, 1/m^2
    b: np.ndarray = field(default_factory=lambda: np.zeros(3))  # A'y, 1/m
    B: dict[int, np.ndarray] = field(default_factory=dict)  # sensor -> A'G_k (3, 3), 1/(m rad)
    windows: int = 0  # accepted windows
    t_s: float = 0.0  # data time of the last accepted window, s

    def faded(self, t_s: float, memory_s: float) -> SiteNormals:
        """These equations with their data weighted by ``exp(-(t_s - self.t_s) /
        memory_s)`` (the biases drift: old looks tie today's biases less); the prior
        stays."""
        if self.windows == 0:
            return self
        f = float(np.exp(-max(t_s - self.t_s, 0.0) / memory_s))
        prior = np.eye(3) / SITE_PRIOR_M**2
        B = {k: f * v for k, v in self.B.items()}
        return SiteNormals(prior + f * (self.C - prior), f * self.b, B, self.windows, self.t_s)

    def block(self, sensors: np.ndarray) -> np.ndarray:
        """``A'G`` (3, 3 len(sensors)) on the given sensor indices (zero where unseen)."""
        zero = np.zeros((3, 3))
        return np.concatenate([self.B.get(int(k), zero) for k in sensors], axis=1)

    def offset(self, theta: np.ndarray) -> np.ndarray:
        """The site's offset estimate (3,) m given every sensor's bias ``theta`` (S, 3) rad."""
        if not self.B:
            return np.zeros(3)
        ks = np.array(sorted(self.B))
        rhs = self.b - self.block(ks) @ theta[ks].ravel()
        return np.linalg.solve(self.C, rhs)


class Sites:
    """Known hot-spot sites in an Earth-fixed frame (ECI rotated back by the Earth's turn
    since the first site's data time; m), each with its window key (negative)."""

    def __init__(self) -> None:
        self.position = np.zeros((0, 3))  # (M, 3) m, Earth-fixed
        self.keys = np.zeros(0, int)  # (M,) window keys, -1, -2, ...
        self.normals: dict[int, SiteNormals] = {}  # key -> its accepted windows' equations
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
            self.normals.pop(int(self.keys[j]), None)
            self.position[j], self.keys[j], self._seen[j] = e, key, t_s
        else:
            self.position = np.vstack([self.position, e])
            self.keys = np.append(self.keys, key)
            self._seen = np.append(self._seen, t_s)
        return key


    def frame(self, key: int, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Site ``key``'s reference position (3,) m, Earth-fixed, and the rotations
        (n, 3, 3) from Earth-fixed to ECI at data times ``t_s`` (n,) s; None if the site
        was forgotten."""
        j = np.flatnonzero(self.keys == key)
        if j.size == 0 or self._t0_s is None:
            return None
        a = OMEGA_EARTH * (np.asarray(t_s, float) - self._t0_s)
        c, s = np.cos(a), np.sin(a)
        rot = np.zeros((a.size, 3, 3))
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = c, -s, s, c
        rot[:, 2, 2] = 1.0
        return self.position[int(j[0])].copy(), rot


def _turn(p: np.ndarray, angle: float) -> np.ndarray:
    """Positions (n, 3) rotated by ``angle`` (rad) about the z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2]], axis=1)
