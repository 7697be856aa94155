"""The bias error a track's sensors share, counted once per track (:mod:`.registration`,
DESIGN §6, *Common rotation counted once per track, stop 25*).

The consider term of :mod:`.registration_consider` widens each look by its own sensor's
bias variance as many times as the track averages that sensor's looks, and so treats
the sensors' errors as independent: a track seen by m sensors then reports the bias part
of its error as ``(1 / m^2) sum_k P_kk``. Where the sensors' errors are correlated (a
rotation common to them, seen only weakly through the satellites' baselines, leaves
positive cross covariances ``P_kj``), the error of the track's average is
``(1 / m^2) sum_kj P_kj``: the common part does not average out. Widening a look of
sensor ``k`` also by its covariance with the track's other sensors,
``sum_{j != k} (P_kj + P_jk) / 2`` across its line of sight, the same number of times,
makes the track report that sum, so the common part is counted once per track. Only a
positive total is added (a negative one, sensors tied with opposite errors, would
narrow the look below its own bias variance: kept conservative).
"""

from __future__ import annotations

import numpy as np


class SharedTerms:
    """Sums of one sensor's cross covariances with sets of other sensors at one state of
    the estimator (``P`` (3 S, 3 S) rad^2 times the bias ``scale``; ``used`` (S,) the
    sensors' accepted windows: one without any is left as received, so not counted),
    cached per (sensor, set) until the state changes."""

    def __init__(self, P: np.ndarray, scale: float, used: np.ndarray) -> None:
        self._P = P
        self._scale = scale
        self._used = used.copy()
        self._cache: dict[tuple[int, int], np.ndarray | None] = {}

    def cross(self, k: int, mask: int, of_bit: list[int | None]) -> np.ndarray | None:
        """``scale * sum_j (P_kj + P_jk) / 2`` (3, 3) rad^2 over the sensors ``j`` of the
        tracker bit ``mask`` other than ``k`` that have evidence (``of_bit``: the
        registration index of each tracker bit); None if there are none."""
        hit = self._cache.get((k, mask), 0)
        if not isinstance(hit, int):
            return hit
        others = [j for j in sensors_of(mask, of_bit) if j != k and self._used[j] > 0]
        out = None
        if others:
            rows = self._P[3 * k : 3 * k + 3]
            cols = (3 * np.array(others)[:, None] + np.arange(3)).ravel()
            blk = rows[:, cols].reshape(3, len(others), 3).sum(axis=1)
            out = 0.5 * self._scale * (blk + blk.T)
        self._cache[(k, mask)] = out
        return out

    def widened(
        self,
        sigma: np.ndarray,
        los: np.ndarray,
        looks: list[int],
        masks: list[int],
        of_bit: list[int | None],
        counts: tuple[int, float, float],
    ) -> np.ndarray:
        """Sigmas ``sigma`` (n,) rad of looks of sensor ``k`` along ``los`` (n, 3) for
        tracks averaging ``looks`` looks per sensor over the sensors of tracker bit masks
        ``masks``, widened by the cross term :meth:`cross` across each line of sight,
        ``clip(looks, k0, k1)`` times (``counts`` = (k, k0, k1)); only ballistic tracks
        (looks above ``k0``) of two or more sensors, positive totals only."""
        k, k0, k1 = counts
        extra = np.zeros(sigma.size)
        for i, (n, mask) in enumerate(zip(looks, masks, strict=True)):
            if n <= k0 or mask & (mask - 1) == 0:
                continue  # not ballistic, or one sensor so far
            X = self.cross(k, mask, of_bit)
            if X is None:
                continue
            u = los[i]
            v = 0.5 * (float(np.trace(X)) - float(u @ X @ u))
            if v > 0.0:
                extra[i] = min(max(float(n), k0), k1) * v
        return np.sqrt(sigma**2 + extra)


def sensors_of(mask: int, of_bit: list[int | None]) -> list[int]:
    """The registration's indices of the sensors in a tracker bit ``mask`` (bit ``i`` is
    the tracker's sensor ``i``; ``of_bit[i]`` its registration index, None if none)."""
    out = []
    while mask:
        low = mask & -mask
        i = low.bit_length() - 1
        if i < len(of_bit) and of_bit[i] is not None:
            out.append(int(of_bit[i]))
        mask ^= low
    return out


def bit_indices(bits: dict[str, int], index: dict[str, int]) -> list[int | None]:
    """For each tracker bit (``bits``: sensor id -> ``1 << i``) the registration index of
    its sensor (``index``: sensor id -> index), None where it has none."""
    out: list[int | None] = [None] * len(bits)
    for sid, bit in bits.items():
        out[bit.bit_length() - 1] = index.get(sid)
    return out
