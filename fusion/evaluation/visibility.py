"""Stereo visibility of each object at each evaluation time.

An object is in stereo visibility at t when within [t - 2 s, t] two detections of it
(per DetectionTruth) from different satellites have lines of sight (frame sensor
position -> truth position at the frame time, both TEME, m) that cross at >= 10 degrees
(line angle, in [0, 90]).
"""

from __future__ import annotations

import numpy as np

from ..domain import NS_PER_S
from .truth import TruthObject


def _stereo_spans(
    t: np.ndarray, sensor: np.ndarray, u: np.ndarray, window_s: float, max_cos: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """[lo, hi] (s) of the times at which a stereo pair of detections lies in the window.

    ``t`` (K,) sorted detection times, ``sensor`` (K,) sensor index, ``u`` (K, 3) unit
    lines of sight (NaN where the truth has no sample); None when there is no pair.
    """
    good = np.isfinite(u[:, 0])
    lo_list, hi_list = [], []
    for lag in range(1, t.size):
        dtm = t[lag:] - t[:-lag]
        within = dtm <= window_s
        if not np.any(within):
            break
        ok = within & (sensor[lag:] != sensor[:-lag]) & good[lag:] & good[:-lag]
        ok &= np.abs(np.sum(u[lag:] * u[:-lag], axis=1)) <= max_cos
        # both detections within [t - window, t]  <=>  t in [later, earlier + window]
        lo_list.append(t[lag:][ok])
        hi_list.append(t[:-lag][ok] + window_s)
    if not lo_list:
        return None
    return np.concatenate(lo_list), np.concatenate(hi_list)


def stereo_visibility(
    detections: np.ndarray,
    sensor_pos_m: np.ndarray,
    truth: list[TruthObject],
    eval_s: np.ndarray,
    t0_ns: int,
    window_s: float,
    max_cos: float,
) -> np.ndarray:
    """Boolean (n_eval, n_obj): object in stereo visibility at each evaluation time.

    ``detections`` (K, 3) int rows (time ns, object index, sensor index), ``sensor_pos_m``
    (K, 3) the detecting sensor's TEME position (m); ``window_s`` (s) and ``max_cos``
    (cosine of the least crossing angle) define a stereo pair.
    """
    n_eval, n_obj = eval_s.size, len(truth)
    diff = np.zeros((n_eval + 1, n_obj), dtype=np.int64)
    if detections.shape[0] == 0 or n_eval == 0:
        return np.zeros((n_eval, n_obj), bool)
    for o, tr in enumerate(truth):
        if tr.n_samples == 0:
            continue
        m = detections[:, 1] == o
        if not np.any(m):
            continue
        t = (detections[m, 0] - t0_ns) / NS_PER_S
        srt = np.argsort(t, kind="stable")
        t, sens, spos = t[srt], detections[m, 2][srt], sensor_pos_m[m][srt]
        tpos, _ = tr.interpolate(t)
        u = tpos - spos
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        spans = _stereo_spans(t, sens, u, window_s, max_cos)
        if spans is None:
            continue
        lo, hi = spans
        klo = np.searchsorted(eval_s, lo - 1e-9, side="left")
        khi = np.searchsorted(eval_s, hi + 1e-9, side="right")
        use = khi > klo
        np.add.at(diff[:, o], klo[use], 1)
        np.add.at(diff[:, o], khi[use], -1)
    return np.cumsum(diff, axis=0)[:n_eval] > 0
