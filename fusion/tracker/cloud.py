"""Velocity prior of a track found again inside a threat cloud (issue 13).

A new track starts at rest on the rotating Earth with a wide velocity prior
(``init_velocity_sigma_mps``). In midcourse, inside a cloud of objects flying one path
a kilometre apart, that prior makes the track take the object arriving where it stood
and keep a velocity wrong by a multiple of the spacing per frame (an alias). Objects of
one cloud fly alike, so a track born above the air next to confirmed ballistic tracks
that agree on their velocity starts from their velocity instead.
"""

from __future__ import annotations

import numpy as np

from ..constants import ATMOSPHERE_TOP_M
from ..domain import NS_PER_S, TrackStatus
from ..dynamics import POS, VEL, ellipsoid_height
from .rows import StateRows
from .track import Mode, Track

CLOUD_MIN_NEIGHBOURS = 2  # fewer is not a cloud
CLOUD_MAX_SPREAD_MPS = 500.0  # m/s; neighbours further from their median disagree: no prior
CLOUD_SIGMA_MPS = 300.0  # m/s per axis, plus the spread: the prior's width
_HELD = (TrackStatus.CONFIRMED, TrackStatus.COASTING)


def cloud_velocity(
    tracks: list[Track], rows: StateRows, position: np.ndarray, t_ns: int, radius_m: float
) -> tuple[np.ndarray, float] | None:
    """``(velocity m/s ECI, sigma m/s per axis)`` for a new track at ``position`` (m ECI)
    and ``t_ns``, from the confirmed or coasting BALLISTIC tracks within ``radius_m``
    (positions carried to ``t_ns`` along their velocity); None below the air, with fewer
    than ``CLOUD_MIN_NEIGHBOURS`` or when they disagree."""
    if radius_m <= 0.0 or ellipsoid_height(position) <= ATMOSPHERE_TOP_M:
        return None
    held = [t.row for t in tracks if t.mode == Mode.BALLISTIC and t.status in _HELD]
    if len(held) < CLOUD_MIN_NEIGHBOURS:
        return None
    r = np.array(held)
    dt = (t_ns - rows.t_ns[r]) / NS_PER_S
    at_t = rows.x[r, POS] + rows.x[r, VEL] * dt[:, None]
    near = r[np.linalg.norm(at_t - position, axis=1) < radius_m]
    if near.size < CLOUD_MIN_NEIGHBOURS:
        return None
    v = rows.x[near, VEL]
    median = np.median(v, axis=0)
    spread = float(np.max(np.linalg.norm(v - median, axis=1)))
    if spread > CLOUD_MAX_SPREAD_MPS:
        return None
    return median, CLOUD_SIGMA_MPS + spread


def cloud_prior(
    x: np.ndarray, P: np.ndarray, tracks: list[Track], rows: StateRows, t_ns: int, radius_m: float
) -> None:
    """Replace the velocity prior of a new track's state ``x`` (9,) and covariance ``P``
    (9, 9) by :func:`cloud_velocity`'s where there is one (in place)."""
    prior = cloud_velocity(tracks, rows, x[POS], t_ns, radius_m)
    if prior is not None:
        x[VEL] = prior[0]
        P[VEL, VEL] = prior[1] ** 2 * np.eye(3)
