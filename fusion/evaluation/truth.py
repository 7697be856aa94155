"""Truth objects: one simulated object's trajectory with its phase windows and end points.

Positions are TEME (m), velocities TEME (m/s), sample times seconds since the
evaluation grid's ``t0_ns``; latitude/longitude are geodetic WGS-84 (deg), altitude is
height above the WGS-84 ellipsoid (m). Phase windows follow DESIGN §7: boost before
burnout (the first sample not in BOOST); midcourse from burnout + 60 s until the object
descends through 100 km; reentry after that descent, or from the highest point when it
stays below 100 km and the object descends afterwards (as the simulator); never for a
truth that ends still climbing. Glide (issue 11) is the truth phase GLIDE itself, and
its turns come from the truth's lateral acceleration (:mod:`.turns`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..constants import ATMOSPHERE_TOP_M
from ..domain import NS_PER_S, FlightPhase
from ..geodesy import ecef_to_geodetic, enu_matrix, teme_to_ecef, teme_to_geodetic
from .measures import hermite_interpolate
from .settings import MIDCOURSE_AFTER_BURNOUT_S
from .turns import turning

_SURFACE_TOLERANCE_M = 1000.0  # truth end/start counts as impact/launch below this height


@dataclass(frozen=True, slots=True)
class TruthObject:
    """One object's truth, sorted by time with duplicate times dropped.

    ``t_s`` (N,) s since t0; ``position_m``/``velocity_mps`` (N, 3) TEME; ``phase`` (N,)
    :class:`FlightPhase` values; ``latitude_deg``/``longitude_deg``/``altitude_m`` (N,)
    geodetic; ``speed_max_mps`` the largest speed; ``burnout_s``/``reentry_s`` (s since
    t0; ``reentry_s`` is inf when the truth has no reentry); ``launch_latlon_deg`` and
    ``impact_latlon_deg`` where the flight left / meets the surface (None when the truth
    starts / ends above it); ``turn`` (N,) bool: the sample is in a turn of the glide.
    An object only named by detection truth has no samples.
    """

    object_id: str
    t_s: np.ndarray
    position_m: np.ndarray
    velocity_mps: np.ndarray
    phase: np.ndarray
    latitude_deg: np.ndarray
    longitude_deg: np.ndarray
    altitude_m: np.ndarray
    speed_max_mps: float
    burnout_s: float
    reentry_s: float
    launch_latlon_deg: tuple[float, float] | None
    impact_latlon_deg: tuple[float, float] | None
    turn: np.ndarray

    @property
    def n_samples(self) -> int:
        """Number of truth samples (0: the object has no truth)."""
        return int(self.t_s.size)

    def interpolate(self, q_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position (m) and velocity (m/s) at times ``q_s`` (s since t0); NaN outside."""
        return hermite_interpolate(self.t_s, self.position_m, self.velocity_mps, q_s)

    def phase_at(self, q_s: np.ndarray) -> np.ndarray:
        """The truth phase of the latest sample at or before each time (first before)."""
        return self.phase[np.maximum(np.searchsorted(self.t_s, q_s, side="right") - 1, 0)]

    def phase_windows(self, q_s: np.ndarray) -> dict[str, np.ndarray]:
        """Boolean masks of times ``q_s`` (s since t0) in each phase window and in "all"."""
        bo, re = self.burnout_s, self.reentry_s
        at = np.maximum(np.searchsorted(self.t_s, q_s, side="right") - 1, 0)
        glide = self.phase[at] == FlightPhase.GLIDE if self.t_s.size else q_s < -np.inf
        return {
            "boost": q_s < bo,
            "midcourse": (q_s >= bo + MIDCOURSE_AFTER_BURNOUT_S) & (q_s < re),
            "glide": glide,
            "turn": glide & self.turn[at] if self.t_s.size else glide,
            "reentry": q_s >= re,
            "all": np.ones(q_s.size, bool),
        }

    @classmethod
    def without_samples(cls, object_id: str) -> TruthObject:
        """An object named by detection truth that has no truth samples."""
        empty = np.zeros(0)
        none3 = np.zeros((0, 3))
        return cls(
            object_id=object_id,
            t_s=empty,
            position_m=none3,
            velocity_mps=none3,
            phase=np.zeros(0, np.int64),
            latitude_deg=empty,
            longitude_deg=empty,
            altitude_m=empty,
            speed_max_mps=math.nan,
            burnout_s=math.nan,
            reentry_s=math.inf,
            launch_latlon_deg=None,
            impact_latlon_deg=None,
            turn=np.zeros(0, bool),
        )

    @classmethod
    def from_samples(
        cls, object_id: str, ints: np.ndarray, floats: np.ndarray, t0_ns: int
    ) -> TruthObject:
        """From samples as fed: ``ints`` (N, 2) time ns and phase, ``floats`` (N, 6)
        TEME position m and velocity m/s, in any order."""
        o = np.argsort(ints[:, 0], kind="stable")
        ints, floats = ints[o], floats[o]
        keep = np.concatenate([[True], np.diff(ints[:, 0]) > 0])
        ints, floats = ints[keep], floats[keep]
        t_abs = ints[:, 0] / NS_PER_S
        t = (ints[:, 0] - t0_ns) / NS_PER_S
        lat, lon, alt = teme_to_geodetic(floats[:, :3], t_abs)
        phase = ints[:, 1]
        nb = np.flatnonzero(phase != FlightPhase.BOOST)
        alt = np.asarray(alt)
        return cls(
            object_id=object_id,
            t_s=t,
            position_m=floats[:, :3],
            velocity_mps=floats[:, 3:],
            phase=phase,
            latitude_deg=np.asarray(lat),
            longitude_deg=np.asarray(lon),
            altitude_m=alt,
            speed_max_mps=float(np.linalg.norm(floats[:, 3:], axis=1).max()),
            burnout_s=float(t[nb[0]]) if nb.size else float(t[-1]),
            reentry_s=reentry_start(t, alt),
            launch_latlon_deg=surface_point(floats[0, :3], floats[0, 3:], t_abs[0], backwards=True),
            impact_latlon_deg=surface_point(floats[-1, :3], floats[-1, 3:], t_abs[-1]),
            turn=turning(t, floats[:, :3], floats[:, 3:], phase == FlightPhase.GLIDE),
        )


def reentry_start(t: np.ndarray, alt: np.ndarray) -> float:
    """Time (s) reentry begins: the first descent through 100 km (DESIGN §3).

    An object whose highest point stays below 100 km re-enters at that point, as in the
    simulator, provided it is descending afterwards (the highest sample is not the last);
    a truth ending while still climbing, or still above 100 km, never re-enters (inf).
    """
    if alt.size == 0:
        return math.inf
    top = int(np.argmax(alt))
    if alt[top] < ATMOSPHERE_TOP_M:
        return float(t[top]) if top < alt.size - 1 else math.inf
    down = _descent_time(t, alt, ATMOSPHERE_TOP_M)
    return math.inf if down is None else down


def _descent_time(t: np.ndarray, alt: np.ndarray, level: float) -> float | None:
    """Time (s) the trajectory descends through ``level`` (m) after its highest point."""
    if alt.size < 2 or alt.max() < level:
        return None
    top = int(np.argmax(alt))
    below = np.flatnonzero(alt[top:] < level)
    if below.size == 0:
        return None
    j = top + int(below[0])
    a0, a1 = alt[j - 1], alt[j]
    return float(t[j - 1] + (t[j] - t[j - 1]) * (a0 - level) / (a0 - a1))


def surface_point(
    r_teme: np.ndarray, v_teme: np.ndarray, t_s: float, backwards: bool = False
) -> tuple[float, float] | None:
    """Latitude/longitude (deg) where a state near the WGS-84 surface meets it.

    ``r_teme`` m, ``v_teme`` m/s at Unix time ``t_s``. Extrapolates linearly along the
    Earth-fixed velocity (against it when ``backwards``, for a launch point). None when
    the state is higher than 1 km (the flight did not end/start within the truth).
    """
    r_e, v_e = teme_to_ecef(r_teme, t_s, v_teme)
    lat, lon, alt = ecef_to_geodetic(r_e)
    alt = float(alt)
    if alt > _SURFACE_TOLERANCE_M:
        return None
    if backwards:
        v_e = -v_e
    v_up = float(enu_matrix(float(lat), float(lon))[2] @ v_e)
    if alt > 0.0 and v_up < -1e-3:
        lat, lon, _ = ecef_to_geodetic(r_e + v_e * (alt / -v_up))
    return float(lat), float(lon)
