"""True pointing bias of each simulated sensor: a constant rotation plus an optional drift.

Each sensor's measured lines of sight are rotated by a small rotation whose rotation
vector ``theta(t)`` (rad, ECI/TEME axes: the simulator rotates the ECI line of sight) is
``theta0 + w(t)``: ``theta0`` ~ N(0, ``bias_sigma_urad``^2) per axis, drawn exactly as
before drift existed (so constant-bias runs stay byte-identical), and ``w`` a random walk
with standard deviation ``bias_drift_urad_per_hour`` per axis after one hour, sampled on a
``DRIFT_STEP_S`` grid from the epoch and interpolated linearly in between. Randomness is
keyed by (seed, sensor), independent of every other draw of the simulator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .ir_sensor import TAG_BIAS, keyed_rng, rotation_matrix

TAG_DRIFT = 7  # keyed_rng tag of the drift increments (tags 1-6: ir_sensor)
DRIFT_STEP_S = 60.0  # s, grid of the random walk (linear in between)
URAD = 1e-6


class PointingBias:
    """Per-sensor bias rotations for one run.

    ``hashes`` are the sensors' stable hashes in constellation order, ``sigma_rad`` the
    per-axis sigma of the constant part, ``drift_rad_per_hour`` the random walk's sigma
    after one hour, ``duration_s`` the run length (s from the epoch).
    """

    def __init__(
        self,
        seed: int,
        hashes: list[int],
        sigma_rad: float,
        drift_rad_per_hour: float,
        duration_s: float,
    ) -> None:
        self.drifting = drift_rad_per_hour > 0.0
        self.active = sigma_rad > 0.0 or self.drifting
        n = len(hashes)
        self.theta0 = np.zeros((n, 3))
        if sigma_rad > 0.0:
            for k, h in enumerate(hashes):
                self.theta0[k] = keyed_rng(seed, TAG_BIAS, h).normal(0, sigma_rad, 3)
        steps = int(math.ceil(duration_s / DRIFT_STEP_S)) + 1 if self.drifting else 1
        self.grid_s = np.arange(steps) * DRIFT_STEP_S
        self.walk = np.zeros((n, steps, 3))  # rad, w at the grid times
        if self.drifting:
            step_sigma = drift_rad_per_hour * math.sqrt(DRIFT_STEP_S / 3600.0)
            for k, h in enumerate(hashes):
                inc = keyed_rng(seed, TAG_DRIFT, h).normal(0.0, step_sigma, (steps - 1, 3))
                self.walk[k, 1:] = np.cumsum(inc, axis=0)
        self._fixed = [rotation_matrix(t) if sigma_rad > 0.0 else None for t in self.theta0]

    def angles(self, k: int, t_s: float) -> np.ndarray:
        """Rotation vector (3,) rad of sensor ``k`` at ``t_s`` s after the epoch."""
        if not self.drifting:
            return self.theta0[k].copy()
        w = [np.interp(t_s, self.grid_s, self.walk[k, :, i]) for i in range(3)]
        return self.theta0[k] + np.array(w)

    def rotation(self, k: int, t_s: float) -> np.ndarray | None:
        """The rotation (3, 3) applied to sensor ``k``'s ECI lines of sight at ``t_s`` s
        after the epoch, or None when there is no bias."""
        if not self.drifting:
            return self._fixed[k]
        return rotation_matrix(self.angles(k, t_s))

    def truth_table(self, sensor_ids: list[str]) -> dict[str, Any]:
        """The true biases as plain data: ``{"frame": "eci", "t_s": [...], "urad":
        {sensor_id: [[x, y, z] per grid time]}}`` (urad, rotation vector in ECI)."""
        total = self.theta0[:, None, :] + self.walk
        return {
            "frame": "eci",
            "t_s": [float(t) for t in self.grid_s],
            "urad": {
                sid: np.round(total[k] / URAD, 4).tolist() for k, sid in enumerate(sensor_ids)
            },
        }
