"""What the sensor registration (:mod:`.registration`) reports: each sensor's estimate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_UPPER = np.triu_indices(3)  # a 3 x 3 covariance's upper triangle: xx xy xz yy yz zz
_EYE3 = np.eye(3)


@dataclass(frozen=True, slots=True)
class SensorBias:
    """One sensor's bias estimate at data time ``time_ns``: rotation vector and 1-sigma per
    ECI axis (rad); ``windows``: accepted windows that involved the sensor (0: prior only);
    ``covariance_rad2``: its 3 x 3 covariance (rad^2, ECI), upper triangle xx xy xz yy yz
    zz (empty: not given, the axes taken as uncorrelated)."""

    sensor_id: str
    time_ns: int
    angles_rad: tuple[float, float, float]
    sigma_rad: tuple[float, float, float]
    windows: int
    covariance_rad2: tuple[float, ...] = ()


def sensor_biases(
    index: dict[str, int],
    P: np.ndarray,
    theta: np.ndarray,
    used: np.ndarray,
    drift: float,
    t_ns: int,
) -> list[SensorBias]:
    """Every sensor's (``index``: id -> k) estimate at data time ``t_ns`` from the stacked
    biases ``theta`` (3 S,) rad, their covariance ``P`` (3 S, 3 S) rad^2 plus an isotropic
    ``drift`` rad^2 and the accepted windows per sensor ``used`` (S,), by sensor id (a
    sensor whose rows are not all there yet, added by another thread, is left out)."""
    sig = np.sqrt(np.maximum(np.diag(P) + drift, 0.0)).reshape(-1, 3)
    th = theta.reshape(-1, 3)
    n = min(th.shape[0], sig.shape[0], used.size)
    at = np.arange(n)  # every sensor's own 3 x 3 block of P at once, the same floats
    blocks = P[: 3 * n, : 3 * n].reshape(n, 3, n, 3)[at, :, at, :] + drift * _EYE3
    upper = blocks[:, _UPPER[0], _UPPER[1]].tolist()
    angles, sigmas, windows = th[:n].tolist(), sig[:n].tolist(), used[:n].tolist()
    out = []
    for sid in sorted(index):
        k = index[sid]
        if k < n:
            out.append(
                SensorBias(
                    sid, t_ns, tuple(angles[k]), tuple(sigmas[k]), windows[k], tuple(upper[k])
                )
            )
    return out
