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

from . import kernels
from .dynamics import norm3

MAX_GAP_S = 2.5  # s; a thread not continued for this long ends
GATE_SIGMAS = 5.0  # a continuation lies within this many predicted sigmas
AMBIGUITY_SIGMAS2 = 9.0  # runner-up must be this many predicted variances farther (d^2)
_MATURE_FACTOR = 2.5  # predicted sigma / detection sigma of a thread with a rate
_FRESH_FACTOR = 4.0  # the same for a rate seeded from a track (module docstring)
_RATE_GAIN = 0.5  # share of the innovation taken into the rate (alpha-beta, beta)
_NEIGHBOUR_RATE_RAD = 5e-3  # rad; a new thread borrows the rate of a threaded one this close
_DENSE_PAIRS = 4096  # thread x detection pairs up to which a dense product beats k-d trees
_SEED_RATE_SIGMA = 30e-6  # rad/s; a track seeds a thread's rate only if it knows it this well


class SensorThreads:
    """The threads of one sensor that have a rate: last LOS ``u`` (T, 3), rate ``w``
    (T, 3) (1/s), last time ``t_s`` (T,), ids (T,) and links (T,) (continuations so
    far; 0 for a rate seeded or borrowed). The detections of the latest look that
    started new threads without a rate wait in ``pending`` (ids, LOS, time) until the
    next look: a track that takes one can still give it a rate."""

    __slots__ = ("u", "w", "t_s", "ids", "links", "pending")

    def __init__(self) -> None:
        self.u = np.zeros((0, 3))
        self.w = np.zeros((0, 3))
        self.t_s = np.zeros(0)
        self.ids = np.zeros(0, np.int64)
        self.links = np.zeros(0, np.int64)
        self.pending: tuple[np.ndarray, np.ndarray, float] = (self.ids, self.u, 0.0)

    def observe(
        self, t_s: float, los: np.ndarray, sigma: np.ndarray, next_id: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Link detections ``los`` (M, 3) with ``sigma`` (M,) (rad) of a look at ``t_s``.

        Returns the thread id of every detection (M,), the ids of the threads that ended,
        and the next free id."""
        m = los.shape[0]
        if not self.t_s.size:  # no thread has a rate (a sparse sky's usual look): every
            # detection starts one; the same arrays as below without the index gathers
            # (ids are only read, never written in place: pending and the caller share them)
            out_ids = np.arange(next_id, next_id + m)
            ended_ids = self.pending[0]
            self.pending = (out_ids, np.array(los, dtype=float), t_s)
            return out_ids, ended_ids, next_id + m
        ended = [self.pending[0]]  # rate-less threads of the last look end unseeded
        if self.t_s.size:
            keep = t_s - self.t_s <= MAX_GAP_S
            if not keep.all():
                ended.append(self.ids[~keep])
                self._select(keep)
        out_ids = np.arange(next_id, next_id + m)
        next_id += m
        new = np.arange(m)  # detections that start a thread
        if self.ids.size and m:
            th = self._continue(t_s, los, float(sigma.max()))
            cont = np.flatnonzero(th >= 0)
            if cont.size:
                tc = th[cont]
                out_ids[cont] = self.ids[tc]
                dt = (t_s - self.t_s[tc])[:, None]
                u, w = self.u[tc], self.w[tc]
                # alpha-beta on the rate (alpha = 1: the thread sits on its last detection)
                self.w[tc] = w + _RATE_GAIN * (los[cont] - u - w * dt) / dt
                self.u[tc] = los[cont]
                self.t_s[tc] = t_s
                self.links[tc] += 1
                new = np.flatnonzero(th < 0)
            if new.size:
                idle = self.t_s < t_s  # not continued by this look
                ended.append(self._drop_superseded(t_s, los[new], sigma, idle))
                new = self._borrow(t_s, los, out_ids, new)
        self.pending = (out_ids[new], los[new], t_s)
        return out_ids, np.concatenate(ended), next_id

    def _borrow(self, t_s: float, los: np.ndarray, ids: np.ndarray, new: np.ndarray) -> np.ndarray:
        """New threads near a thread continued now borrow its rate (a cloud turns
        together) and join the threads with a rate; returns the indices of ``new`` that
        stay without one."""
        mature = np.flatnonzero((self.links >= 1) & (self.t_s == t_s))
        if mature.size == 0:
            return new
        (d1, j1, _), _ = _two_nearest(los[new], self.u[mature])
        near = d1 <= _NEIGHBOUR_RATE_RAD**2
        if near.any():
            got = new[near]
            self._append(ids[got], los[got], self.w[mature[j1[near]]], t_s)
        return new[~near]

    def _append(self, ids: np.ndarray, los: np.ndarray, w: np.ndarray, t_s: float) -> None:
        """New threads with a rate (``links`` 0: usable, less trusted)."""
        self.u = np.concatenate([self.u, los])
        self.w = np.concatenate([self.w, w])
        self.ids = np.concatenate([self.ids, ids])
        self.links = np.concatenate([self.links, np.zeros(ids.size, np.int64)])
        self.t_s = np.concatenate([self.t_s, np.full(ids.size, t_s)])

    def _drop_superseded(
        self, t_s: float, fresh: np.ndarray, sigma: np.ndarray, idle: np.ndarray
    ) -> np.ndarray:
        """Drop the waiting threads (``idle``: not continued now) whose prediction has a
        new thread's detection ``fresh`` (F, 3) inside its gate: the new thread is that
        object seen again where the old one could not be sure, and the old one would
        only make both ambiguous from now on. Returns the dropped ids."""
        wait = np.flatnonzero(idle)
        if wait.size == 0:
            return self.ids[:0]
        pred = self.u[wait] + self.w[wait] * (t_s - self.t_s[wait])[:, None]
        pred /= norm3(pred)[:, None]
        factor = np.where(self.links[wait] >= 1, _MATURE_FACTOR, _FRESH_FACTOR)
        s2 = (factor * float(sigma.max())) ** 2
        (d1, _, _), _ = _two_nearest(pred, fresh)
        drop = wait[d1 <= GATE_SIGMAS**2 * s2]
        if drop.size == 0:
            return self.ids[:0]
        keep = np.ones(self.ids.size, bool)
        keep[drop] = False
        dropped = self.ids[drop]
        self._select(keep)
        return dropped

    def _select(self, keep: np.ndarray) -> None:
        self.u, self.w, self.t_s = self.u[keep], self.w[keep], self.t_s[keep]
        self.ids, self.links = self.ids[keep], self.links[keep]

    def seed_rates(self, ids: np.ndarray, rates: np.ndarray) -> None:
        """Give the new threads ``ids`` of the latest look that have no rate the LOS
        rates ``rates`` (K, 3) (1/s) of the tracks that took them (a track's velocity
        knows how the line of sight turns before the thread has two links)."""
        p_ids, p_los, p_t = self.pending
        if ids.size == 0 or p_ids.size == 0:
            return
        at = np.searchsorted(p_ids, ids)  # pending ids ascend
        at = np.minimum(at, p_ids.size - 1)
        found = (p_ids[at] == ids) & np.all(np.isfinite(rates), axis=1)
        if not found.any():
            return
        got = at[found]
        self._append(p_ids[got], p_los[got], rates[found], p_t)
        left = np.ones(p_ids.size, bool)
        left[got] = False
        self.pending = (p_ids[left], p_los[left], p_t)

    def _continue(self, t_s: float, los: np.ndarray, sigma: float) -> np.ndarray:
        """Thread index continued by each detection, -1 for none (module docstring)."""
        pred = self.u + self.w * (t_s - self.t_s)[:, None]
        pred /= norm3(pred)[:, None]
        s2 = (np.where(self.links >= 1, _MATURE_FACTOR, _FRESH_FACTOR) * sigma) ** 2
        (d1, j1, d2), (_, i1, e2) = _two_nearest(pred, los)
        margin = AMBIGUITY_SIGMAS2 * s2
        ok = (d1 <= GATE_SIGMAS**2 * s2) & (d2 - d1 > margin)
        ok &= i1[j1] == np.arange(pred.shape[0])  # mutual nearest
        ok &= e2[j1] - d1 > margin  # no other thread nearly as close
        th = np.full(los.shape[0], -1)
        th[j1[ok]] = np.flatnonzero(ok)
        return th


def _two_nearest(a: np.ndarray, b: np.ndarray) -> tuple[tuple, tuple]:
    """Squared chords to the nearest and second-nearest of unit vectors ``a`` (T, 3)
    among ``b`` (M, 3) and back: ``((d1, j1, d2) per a, (e1, i1, e2) per b)``, inf
    where there is no second. A dense (T, M) product for small sets, k-d trees above
    (their floats, compiled: :func:`.kernels.two_nearest`, where the kernels are on)."""
    if a.shape[0] * b.shape[0] <= _DENSE_PAIRS:
        d = np.maximum(2.0 - 2.0 * (a @ b.T), 0.0)
        return _row_two(d), _row_two(d.T)
    there = kernels.two_nearest(a, b)  # the k-d trees' floats, compiled (kernel_threads)
    back = kernels.two_nearest(b, a) if there is not None else None
    if there is not None and back is not None:
        return there, back
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
    j = d.argmin(axis=1)  # (np.argmin's answer without its wrapper)
    d1 = d[np.arange(d.shape[0]), j]  # (a gather, not min: d.T's min is a strided pass)
    if d.shape[1] < 2:
        return d1, j, np.full(d.shape[0], np.inf)
    if d.shape[1] == 2:  # the larger of two: the partition's second, NaN included
        return d1, j, d.max(axis=1)
    d2 = np.partition(d, 1, axis=1)[:, 1]
    return d1, j, d2


class ThreadBook:
    """Threads of every sensor and which track holds each (by track key).

    Who holds what is kept per sensor as two arrays, the held thread ids ascending and
    the holders' track keys, so a look's ended threads, its pairs' weights and its
    claims are each a sorted search, not a dict operation per thread (thread ids are
    unique across sensors: one counter, ``_next_id``). ``_held`` names, per track key,
    the sensors where it may hold a thread (a superset), so a deleted track's threads
    are found without a scan of every sensor."""

    def __init__(self) -> None:
        self._sensors: dict[str, SensorThreads] = {}
        # sensor -> (held thread ids ascending (H,), their holders' track keys (H,))
        self._owner: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._held: dict[int, set[str]] = {}  # track key -> sensors it may hold threads of
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
            self._sensor_vel[sensor_id] = _velocity(last, position, t_s)
        self._sensor_at[sensor_id] = (t_s, np.array(position, dtype=float))
        threads = self._sensors.get(sensor_id)
        if threads is None:
            threads = self._sensors[sensor_id] = SensorThreads()
            self._owner[sensor_id] = (_NO_IDS, _NO_IDS)
        ids, ended, self._next_id = threads.observe(t_s, los, sigma, self._next_id)
        held, keys = self._owner[sensor_id]
        if ended.size and held.size:  # ended threads are held by nobody
            at = np.minimum(np.searchsorted(held, ended), held.size - 1)
            hit = at[held[at] == ended]
            if hit.size:
                keep = np.ones(held.size, bool)
                keep[hit] = False
                self._owner[sensor_id] = (held[keep], keys[keep])
        return ids

    def holders(self, sensor_id: str) -> dict[int, int]:
        """Who holds the threads of ``sensor_id``: thread id -> track key."""
        held, keys = self._owner.get(sensor_id, (_NO_IDS, _NO_IDS))
        return dict(zip(held.tolist(), keys.tolist(), strict=True))

    def adjustments(
        self, sensor_id: str, track_keys: np.ndarray, det_threads: np.ndarray, bonus: float
    ) -> np.ndarray:
        """Cost change (K,) of K (track, detection) pairs: ``-bonus`` where the detection
        continues the thread the track holds, ``+bonus`` where another track holds it."""
        ids, keys = self._owner.get(sensor_id, (_NO_IDS, _NO_IDS))
        if not ids.size:
            return np.zeros(track_keys.size)
        at = np.minimum(np.searchsorted(ids, det_threads), ids.size - 1)
        held = np.where(ids[at] == det_threads, keys[at], -1)
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
        (K,, distinct: one detection each); their velocities ``velocity`` (K, 3) (ECI,
        m/s), predicted lines of sight ``u`` (K, 3) and ranges ``rho`` (K,) (m) seed the
        rates of threads that have none."""
        self._hold(sensor_id, track_keys, det_threads)
        v_sensor = self._sensor_vel.get(sensor_id)
        if v_sensor is None:
            return
        rel = velocity - v_sensor
        rates = (rel - np.einsum("ki,ki->k", rel, u)[:, None] * u) / rho[:, None]
        sure = velocity_sigma / rho <= _SEED_RATE_SIGMA
        self._sensors[sensor_id].seed_rates(det_threads[sure], rates[sure])

    def _hold(self, sensor_id: str, track_keys: np.ndarray, det_threads: np.ndarray) -> None:
        """The threads ``det_threads`` (K,, distinct) of ``sensor_id`` are now held by
        the tracks ``track_keys`` (K,)."""
        ids, keys = self._owner[sensor_id]
        if ids.size:
            at = np.minimum(np.searchsorted(ids, det_threads), ids.size - 1)
            found = ids[at] == det_threads
            moved = found & (keys[at] != track_keys)
        else:
            at, found = det_threads, np.zeros(det_threads.size, bool)
            moved = found
        new = ~found
        if not (moved.any() or new.any()):
            return
        keys = keys.copy()
        keys[at[moved]] = track_keys[moved]
        if new.any():
            ids = np.concatenate([ids, det_threads[new]])
            keys = np.concatenate([keys, track_keys[new]])
            order = np.argsort(ids, kind="stable")
            ids, keys = ids[order], keys[order]
        self._owner[sensor_id] = (ids, keys)
        held = self._held
        for k in track_keys[moved | new].tolist():  # (changes of holder: few per look)
            sensors = held.get(k)
            if sensors is None:
                held[k] = {sensor_id}
            else:
                sensors.add(sensor_id)

    def forget(self, track_keys: set[int]) -> None:
        """Tracks deleted: their threads are held by nobody."""
        if not track_keys:
            return
        sensors: set[str] = set()
        for key in track_keys:
            sensors |= self._held.pop(key, set())
        if not sensors:
            return
        dead = np.fromiter(track_keys, np.int64, len(track_keys))
        for sensor_id in sensors:
            ids, keys = self._owner[sensor_id]
            gone = np.isin(keys, dead)
            if gone.any():
                self._owner[sensor_id] = (ids[~gone], keys[~gone])


def _velocity(last: tuple[float, np.ndarray], position: np.ndarray, t_s: float) -> np.ndarray:
    """Velocity (3,) (m/s) from the position ``last`` (t_s, (3,) m) to ``position`` (3,)
    (m) at ``t_s``: per component one IEEE difference and quotient, as numpy's
    ``(position - p0) / (t_s - t0)``, in Python floats (two ufunc calls cost more)."""
    t0, p0 = last
    dt = float(t_s - t0)
    x, y, z = np.asarray(position, dtype=float).tolist()
    a, b, c = p0.tolist()
    return np.array(((x - a) / dt, (y - b) / dt, (z - c) / dt))


_NO_IDS = np.zeros(0, np.int64)
