"""Detection threads: each sensor's detections chained from look to look in its own image.

Closely spaced objects (a raid's missiles flying one path seconds apart, a threat
cloud) are resolved by every sensor's image long before a 3-D track is accurate enough
to tell them apart: 20 urad of noise against objects a few hundred metres apart at
thousands of km. A *thread* links one sensor's detections of consecutive looks where a
constant-rate prediction of the line of sight connects them without ambiguity; the
tracker then prefers, for each track, the detection that continues the thread the track
took last from that sensor, and avoids the threads other tracks hold (multi-frame
evidence from every sensor's own view, at the cost of two k-d tree queries per frame).

A continuation is accepted only when it is the mutual nearest of prediction and
detection, inside the gate, and the runner-up on either side is clearly worse (its
squared distance exceeds the best's by ``AMBIGUITY_SIGMAS2`` predicted variances);
otherwise the detection starts a new thread. A thread is only a label: it never moves
a track, it only weighs the choice among detections already inside the track's gate.

Angles are unit vectors in ECI; distances between them are chords (rad, for the small
angles concerned). Times are seconds of data time.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

MAX_GAP_S = 2.5  # s; a thread not continued for this long ends
GATE_SIGMAS = 5.0  # a continuation lies within this many predicted sigmas
AMBIGUITY_SIGMAS2 = 9.0  # runner-up must be this many predicted variances farther (d^2)
_MATURE_FACTOR = 2.5  # predicted sigma / detection sigma of a thread with a rate
_FRESH_FACTOR = 4.0  # the same for a rate seeded from a track (module docstring)
_RATE_GAIN = 0.5  # share of the innovation taken into the rate (alpha-beta, beta)
_NEIGHBOUR_RATE_RAD = 5e-3  # rad; a new thread borrows the rate of a threaded one this close
_DENSE_PAIRS = 4096  # thread x detection pairs up to which a dense product beats k-d trees
_SEED_RATE_SIGMA = 30e-6  # rad/s; a track seeds a thread's rate only if it knows it this well
_NO_RATE = -1  # thread age marker: one detection only, no rate yet


class SensorThreads:
    """The live threads of one sensor: last LOS ``u`` (T, 3), rate ``w`` (T, 3) (1/s),
    last time ``t_s`` (T,), ids (T,) and links (T,) (continuations so far)."""

    __slots__ = ("u", "w", "t_s", "ids", "links")

    def __init__(self) -> None:
        self.u = np.zeros((0, 3))
        self.w = np.zeros((0, 3))
        self.t_s = np.zeros(0)
        self.ids = np.zeros(0, np.int64)
        self.links = np.zeros(0, np.int64)

    def observe(
        self, t_s: float, los: np.ndarray, sigma: np.ndarray, next_id: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Link detections ``los`` (M, 3) with ``sigma`` (M,) (rad) of a look at ``t_s``.

        Returns the thread id of every detection (M,), the ids of the threads that ended,
        and the next free id."""
        m = los.shape[0]
        keep = t_s - self.t_s <= MAX_GAP_S
        ended = self.ids[~keep]
        if not keep.all():
            self._select(keep)
        ids = self.ids
        th = np.full(m, -1)
        if m and np.any(self.links >= 0):
            th = self._continue(t_s, los, float(sigma.max()))
        cont = th >= 0
        out_ids = np.empty(m, np.int64)
        out_ids[~cont] = np.arange(next_id, next_id + m - int(cont.sum()))
        next_id += m - int(cont.sum())
        new_w = np.zeros((m, 3))
        new_links = np.full(m, _NO_RATE, np.int64)
        if cont.any():
            tc = th[cont]
            out_ids[cont] = ids[tc]
            dt = (t_s - self.t_s[tc])[:, None]
            u, w = self.u[tc], self.w[tc]
            # alpha-beta on the rate (alpha = 1: the thread sits on its last detection)
            new_w[cont] = w + _RATE_GAIN * (los[cont] - u - w * dt) / dt
            new_links[cont] = self.links[tc] + 1
            idle = np.ones(ids.size, bool)
            idle[tc] = False
            if not idle.all():
                self._select(idle)
        fresh = np.flatnonzero(~cont)
        if fresh.size and self.ids.size:
            ended = np.concatenate([ended, self._drop_superseded(t_s, los[fresh], sigma)])
        mature = np.flatnonzero(new_links >= 1)
        if fresh.size and mature.size:
            # a new thread borrows the rate of the nearest thread that has one
            (d1, j1, _), _ = _two_nearest(los[fresh], los[mature])
            near = d1 <= _NEIGHBOUR_RATE_RAD**2
            new_w[fresh[near]] = new_w[mature[j1[near]]]
            new_links[fresh[near]] = 0  # a borrowed rate: usable, less trusted
        # threads not continued now live on until MAX_GAP_S (a missed detection)
        self.u = np.concatenate([los, self.u])
        self.w = np.concatenate([new_w, self.w])
        self.ids = np.concatenate([out_ids, self.ids])
        self.links = np.concatenate([new_links, self.links])
        self.t_s = np.concatenate([np.full(m, t_s), self.t_s])
        return out_ids, ended, next_id

    def _drop_superseded(self, t_s: float, fresh: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Drop the waiting threads (not continued now) whose prediction has a new
        thread's detection ``fresh`` (F, 3) inside its gate: the new thread is that object
        seen again where the old one could not be sure, and the old one would only make
        both ambiguous from now on. Returns the dropped ids."""
        rated = self.links >= 0
        if not rated.any():
            return self.ids[:0]
        pred = self.u + self.w * (t_s - self.t_s)[:, None]
        pred /= np.linalg.norm(pred, axis=1, keepdims=True)
        s2 = (np.where(self.links >= 1, _MATURE_FACTOR, _FRESH_FACTOR) * float(sigma.max())) ** 2
        (d1, _, _), _ = _two_nearest(pred, fresh)
        drop = rated & (d1 <= GATE_SIGMAS**2 * s2)
        dropped = self.ids[drop]
        if drop.any():
            self._select(~drop)
        return dropped

    def _select(self, keep: np.ndarray) -> None:
        self.u, self.w, self.t_s = self.u[keep], self.w[keep], self.t_s[keep]
        self.ids, self.links = self.ids[keep], self.links[keep]

    def seed_rates(self, ids: np.ndarray, rates: np.ndarray) -> None:
        """Give threads ``ids`` that have no rate of their own the LOS rates ``rates``
        (K, 3) (1/s) of the tracks that took them (a track's velocity knows how the line
        of sight turns before the thread has two links)."""
        if ids.size == 0 or self.ids.size == 0:
            return
        order = np.argsort(self.ids)
        pos = np.searchsorted(self.ids, ids, sorter=order)
        at = order[np.minimum(pos, self.ids.size - 1)]
        found = (self.ids[at] == ids) & (self.links[at] < 0) & np.all(np.isfinite(rates), axis=1)
        self.w[at[found]] = rates[found]
        self.links[at[found]] = 0

    def _continue(self, t_s: float, los: np.ndarray, sigma: float) -> np.ndarray:
        """Thread index continued by each detection, -1 for none (module docstring).
        Only threads with a rate take part: one without sits a whole look's motion
        behind its object and can neither be continued nor rival one that can."""
        rated = np.flatnonzero(self.links >= 0)
        pred = self.u[rated] + self.w[rated] * (t_s - self.t_s[rated])[:, None]
        pred /= np.linalg.norm(pred, axis=1, keepdims=True)
        s2 = (np.where(self.links[rated] >= 1, _MATURE_FACTOR, _FRESH_FACTOR) * sigma) ** 2
        (d1, j1, d2), (_, i1, e2) = _two_nearest(pred, los)
        margin = AMBIGUITY_SIGMAS2 * s2
        ok = (d1 <= GATE_SIGMAS**2 * s2) & (d2 - d1 > margin)
        ok &= i1[j1] == np.arange(pred.shape[0])  # mutual nearest
        ok &= e2[j1] - d1 > margin  # no other thread nearly as close
        th = np.full(los.shape[0], -1)
        th[j1[ok]] = rated[ok]
        return th


def _two_nearest(a: np.ndarray, b: np.ndarray) -> tuple[tuple, tuple]:
    """Squared chords to the nearest and second-nearest of unit vectors ``a`` (T, 3)
    among ``b`` (M, 3) and back: ``((d1, j1, d2) per a, (e1, i1, e2) per b)``, inf
    where there is no second. A dense (T, M) product for small sets, k-d trees above."""
    if a.shape[0] * b.shape[0] <= _DENSE_PAIRS:
        d = np.maximum(2.0 - 2.0 * (a @ b.T), 0.0)
        return _row_two(d), _row_two(d.T)
    ka, kb = min(2, b.shape[0]), min(2, a.shape[0])
    da, ja = cKDTree(b).query(a, k=ka)
    db, jb = cKDTree(a).query(b, k=kb)
    da, ja = da.reshape(a.shape[0], -1) ** 2, ja.reshape(a.shape[0], -1)
    db, jb = db.reshape(b.shape[0], -1) ** 2, jb.reshape(b.shape[0], -1)
    inf_a, inf_b = np.full(a.shape[0], np.inf), np.full(b.shape[0], np.inf)
    return (
        (da[:, 0], ja[:, 0], da[:, 1] if ka > 1 else inf_a),
        (db[:, 0], jb[:, 0], db[:, 1] if kb > 1 else inf_b),
    )


def _row_two(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smallest value, its column and the second smallest of each row of ``d``."""
    j = np.argmin(d, axis=1)
    rows = np.arange(d.shape[0])
    d1 = d[rows, j]
    if d.shape[1] < 2:
        return d1, j, np.full(d.shape[0], np.inf)
    d2 = np.partition(d, 1, axis=1)[:, 1]
    return d1, j, d2


class ThreadBook:
    """Threads of every sensor and which track holds each (by track key)."""

    def __init__(self) -> None:
        self._sensors: dict[str, SensorThreads] = {}
        self._owner: dict[str, dict[int, int]] = {}  # sensor -> thread id -> track key
        self._next_id = 0
        self._sensor_at: dict[str, tuple[float, np.ndarray]] = {}  # last (t_s, position)
        self._sensor_vel: dict[str, np.ndarray] = {}  # m/s, ECI, from the last two looks

    def label(
        self,
        sensor_id: str,
        t_s: float,
        position: np.ndarray,
        los: np.ndarray,
        sigma: np.ndarray,
    ) -> np.ndarray:
        """Thread id (M,) of each detection of one look of ``sensor_id`` at ``position``
        (3,) (ECI, m)."""
        last = self._sensor_at.get(sensor_id)
        if last is not None and t_s > last[0]:
            self._sensor_vel[sensor_id] = (position - last[1]) / (t_s - last[0])
        self._sensor_at[sensor_id] = (t_s, np.array(position, dtype=float))
        threads = self._sensors.get(sensor_id)
        if threads is None:
            threads = self._sensors[sensor_id] = SensorThreads()
            self._owner[sensor_id] = {}
        ids, ended, self._next_id = threads.observe(t_s, los, sigma, self._next_id)
        owner = self._owner[sensor_id]
        for i in ended.tolist():
            owner.pop(i, None)
        return ids

    def adjustments(
        self, sensor_id: str, track_keys: np.ndarray, det_threads: np.ndarray, bonus: float
    ) -> np.ndarray:
        """Cost change (K,) of K (track, detection) pairs: ``-bonus`` where the detection
        continues the thread the track holds, ``+bonus`` where another track holds it."""
        owner = self._owner.get(sensor_id, {})
        if not owner:
            return np.zeros(track_keys.size)
        held = np.array([owner.get(int(t), -1) for t in det_threads.tolist()])
        return np.where(held < 0, 0.0, np.where(held == track_keys, -bonus, bonus))

    def claim(
        self,
        sensor_id: str,
        track_keys: np.ndarray,
        det_threads: np.ndarray,
        velocity: np.ndarray,
        u: np.ndarray,
        rho: np.ndarray,
        velocity_sigma: np.ndarray,
    ) -> None:
        """The tracks ``track_keys`` (K,) took detections of threads ``det_threads``
        (K,); their velocities ``velocity`` (K, 3) (ECI, m/s), predicted lines of sight
        ``u`` (K, 3) and ranges ``rho`` (K,) (m) seed the rates of threads that have none."""
        owner = self._owner[sensor_id]
        for k, t in zip(track_keys.tolist(), det_threads.tolist(), strict=True):
            owner[t] = k
        v_sensor = self._sensor_vel.get(sensor_id)
        if v_sensor is None:
            return
        rel = velocity - v_sensor
        rates = (rel - np.einsum("ki,ki->k", rel, u)[:, None] * u) / rho[:, None]
        sure = velocity_sigma / rho <= _SEED_RATE_SIGMA
        self._sensors[sensor_id].seed_rates(det_threads[sure], rates[sure])

    def forget(self, track_keys: set[int]) -> None:
        """Tracks deleted: their threads are held by nobody."""
        if not track_keys:
            return
        for owner in self._owner.values():
            for t in [t for t, k in owner.items() if k in track_keys]:
                del owner[t]
