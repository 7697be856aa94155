"""Turns of a truth trajectory, derived from its lateral acceleration.

The recorded truth carries position, velocity and flight phase per sample but not the
scenario's ``turns``; so a turn is where the truth's acceleration normal to the vertical
plane through its air-relative velocity w = v - omega x r exceeds
``TURN_LATERAL_ACCEL_MPS2``. Wings level, lift lies in that plane and drag along w, and
gravity is radial, so that component is ~0 (J2: < 0.05 m/s^2); a glider banked at
20-70 deg pulls 2-13 m/s^2 sideways (DESIGN §3.2). TEME (m, m/s), time s.
"""

from __future__ import annotations

import numpy as np

from ..dynamics import cross_omega

TURN_LATERAL_ACCEL_MPS2 = 2.0  # m/s^2; lateral acceleration above which truth turns


def lateral_acceleration(t_s: np.ndarray, r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Acceleration (m/s^2) of samples at times ``t_s`` (N,) with TEME positions ``r``
    and velocities ``v`` (N, 3), along the horizontal normal to the air-relative
    velocity (> 0 to the right seen from above); 0 for fewer than 3 samples."""
    if t_s.size < 3:
        return np.zeros(t_s.size)
    a = np.gradient(v, t_s, axis=0)
    w = v - cross_omega(r)
    n = np.cross(w, r)  # right of w, horizontal
    n /= np.maximum(np.linalg.norm(n, axis=1), 1e-9)[:, None]
    return np.einsum("ki,ki->k", a, n)


def turning(t_s: np.ndarray, r: np.ndarray, v: np.ndarray, phase_ok: np.ndarray) -> np.ndarray:
    """Per sample: in a turn (|lateral acceleration| above the threshold) where
    ``phase_ok`` (N,) bool allows it (the truth's GLIDE samples)."""
    return phase_ok & (np.abs(lateral_acceleration(t_s, r, v)) > TURN_LATERAL_ACCEL_MPS2)
