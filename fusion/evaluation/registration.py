"""Scoring the sensors' pointing-bias estimates against the simulator's true biases.

Truth is the simulator's table (``sensor_bias`` metadata, DESIGN §5: rotation vectors in
urad, ECI axes, on a time grid from the epoch, linear in between); estimates are the
tracker's :class:`~tracklayer.fusion.registration.SensorBias` snapshots over time.
A sensor is scored once it has evidence (``windows >= min_windows``). Figures:

- ``rms_error_urad``: RMS over the scored sensors and the three axes of (estimate - truth);
- ``rms_relative_error_urad``: the same after removing the error common to every scored
  sensor (their mean error): a rotation shared by all sensors moves every line of sight
  alike and is observable only through the satellites' baselines (DESIGN §6), so this
  is the figure over the well-observable axes;
- ``rms_observable_error_urad``: RMS of the errors along the *observable axes*: per
  sensor, the eigenvectors of its reported 3 x 3 covariance (the principal axes of its
  information, the other sensors marginalised) whose sigma is at most ``max_sigma_urad``
  (default half the tracker's default prior of 10 urad: the data have at least quartered
  the variance, i.e. brought at least three times the prior's information); rotation
  about a sensor's boresight and the rotation common to all sensors stay near the prior
  and are left out. Principal axes, not the ECI axes: a badly seen direction tilted to
  the ECI axes spreads its prior-sized error and sigma over all three, so an ECI axis
  passing the test can carry it (DESIGN §6, *Observability test*). Without a covariance (older
  recordings) the ECI axes with their sigmas;
- ``rms_observable_sigma_urad``: RMS of the reported sigmas along those axes: the error
  the estimator itself expects there (above a bound on the error, the bound asks for
  more information than the estimator has);
- ``rms_true_urad``: RMS of the true biases of the scored sensors (every axis);
- ``within_3sigma``: share of (sensor, axis) errors within 3 reported sigma.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..domain import NS_PER_S
from ..registration import SensorBias

URAD = 1e-6


@dataclass(frozen=True, slots=True)
class BiasTruth:
    """True bias rotation vectors: ``urad[sensor]`` (G, 3) at ``t_s`` (G,) from the epoch."""

    t_s: np.ndarray
    urad: dict[str, np.ndarray]

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> BiasTruth:
        """From the simulator's plain table; ``ValueError`` when it is malformed."""
        t = np.asarray(table["t_s"], float)
        out = {}
        for sid, rows in dict(table["urad"]).items():
            a = np.asarray(rows, float)
            if a.shape != (t.size, 3) or not np.all(np.isfinite(a)):
                raise ValueError(f"sensor_bias: {sid}: expected {t.size} rows of 3 numbers")
            out[str(sid)] = a
        if t.size == 0 or np.any(np.diff(t) <= 0):
            raise ValueError("sensor_bias: t_s must be increasing and not empty")
        return cls(t, out)

    def at(self, sensor_id: str, t_s: float) -> np.ndarray | None:
        """True rotation vector (3,) urad of a sensor ``t_s`` s after the epoch."""
        a = self.urad.get(sensor_id)
        if a is None:
            return None
        return np.array([np.interp(t_s, self.t_s, a[:, i]) for i in range(3)])


@dataclass(frozen=True, slots=True)
class SensorScore:
    """One sensor's estimate against truth at ``t_s`` (s from the epoch), urad."""

    sensor_id: str
    t_s: float
    windows: int
    true_urad: np.ndarray
    estimate_urad: np.ndarray
    sigma_urad: np.ndarray
    covariance_urad2: np.ndarray  # (3, 3) ECI

    @property
    def error_urad(self) -> np.ndarray:
        return self.estimate_urad - self.true_urad

    def principal(self) -> tuple[np.ndarray, np.ndarray]:
        """The error (3,) urad along the covariance's principal axes and their sigmas (3,)."""
        lam, vec = np.linalg.eigh(self.covariance_urad2)
        return vec.T @ self.error_urad, np.sqrt(np.maximum(lam, 0.0))


def _rms(a: np.ndarray) -> float:
    """RMS of ``a``; NaN when empty."""
    return float(np.sqrt(np.mean(a**2))) if a.size else np.nan


def _covariance_urad2(b: SensorBias) -> np.ndarray:
    """A snapshot's covariance (3, 3) urad^2; diagonal from its sigmas when not given."""
    if len(b.covariance_rad2) != 6:
        return np.diag((np.array(b.sigma_rad) / URAD) ** 2)
    c = np.zeros((3, 3))
    c[np.triu_indices(3)] = np.array(b.covariance_rad2) / URAD**2
    return c + np.triu(c, 1).T


@dataclass(frozen=True, slots=True)
class RegistrationScore:
    """The scored sensors' latest estimates at or before ``at_s`` and the figures of the
    module docstring (urad)."""

    at_s: float
    sensors: list[SensorScore]
    rms_true_urad: float
    rms_error_urad: float
    rms_relative_error_urad: float
    rms_observable_error_urad: float
    observable_share: float  # share of the scored principal axes that are observable
    rms_observable_sigma_urad: float
    common_error_urad: np.ndarray
    within_3sigma: float

    def to_dict(self) -> dict[str, Any]:
        """Plain figures for metrics.json."""
        return {
            "at_s": self.at_s,
            "sensors_scored": len(self.sensors),
            "rms_true_urad": self.rms_true_urad,
            "rms_error_urad": self.rms_error_urad,
            "rms_relative_error_urad": self.rms_relative_error_urad,
            "rms_observable_error_urad": self.rms_observable_error_urad,
            "observable_share": self.observable_share,
            "rms_observable_sigma_urad": self.rms_observable_sigma_urad,
            "common_error_urad": [float(v) for v in self.common_error_urad],
            "within_3sigma": self.within_3sigma,
        }


def score_registration(
    truth: BiasTruth,
    estimates: Iterable[SensorBias],
    epoch_ns: int,
    at_s: float | None = None,
    min_windows: int = 1,
    max_sigma_urad: float = 5.0,
) -> RegistrationScore | None:
    """Score each sensor's latest estimate at or before ``at_s`` s after the epoch (None:
    the last); None when no sensor has ``min_windows`` windows of evidence by then."""
    latest: dict[str, SensorBias] = {}
    for b in estimates:
        t = (b.time_ns - epoch_ns) / NS_PER_S
        if at_s is not None and t > at_s:
            continue
        if b.sensor_id not in latest or b.time_ns >= latest[b.sensor_id].time_ns:
            latest[b.sensor_id] = b
    scores = []
    for sid in sorted(latest):
        b = latest[sid]
        t = (b.time_ns - epoch_ns) / NS_PER_S
        true = truth.at(sid, t)
        if true is None or b.windows < min_windows:
            continue
        est = np.array(b.angles_rad) / URAD
        sig = np.array(b.sigma_rad) / URAD
        scores.append(SensorScore(sid, t, b.windows, true, est, sig, _covariance_urad2(b)))
    if not scores:
        return None
    err = np.array([s.error_urad for s in scores])
    true = np.array([s.true_urad for s in scores])
    sig = np.array([s.sigma_urad for s in scores])
    common = err.mean(axis=0)
    principal = [s.principal() for s in scores]
    along = np.array([e for e, _ in principal])
    sig_along = np.array([p for _, p in principal])
    observable = sig_along <= max_sigma_urad
    obs_err, obs_sig = along[observable], sig_along[observable]
    return RegistrationScore(
        at_s=max(s.t_s for s in scores) if at_s is None else float(at_s),
        sensors=scores,
        rms_true_urad=float(np.sqrt(np.mean(true**2))),
        rms_error_urad=float(np.sqrt(np.mean(err**2))),
        rms_relative_error_urad=float(np.sqrt(np.mean((err - common) ** 2))),
        rms_observable_error_urad=_rms(obs_err),
        observable_share=float(np.mean(observable)),
        rms_observable_sigma_urad=_rms(obs_sig),
        common_error_urad=common,
        within_3sigma=float(np.mean(np.abs(err) <= 3.0 * sig)),
    )
