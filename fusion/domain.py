"""Domain types that cross layers: plain dataclasses over numpy arrays.

The simulator (``sensors``) produces them, the tracker consumes them and
``services`` converts them to and from protobuf (one module: ``services.convert``).

Conventions (DESIGN §2): times are integer nanoseconds since the Unix epoch,
UTC (``time_ns``); positions in metres and velocities in m/s in ECI = TEME;
angles in radians; geodetic latitude/longitude in degrees (WGS-84) only where
a field name says ``_deg``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

NS_PER_S = 1_000_000_000
#: Longest sensor id (characters): the fusion service refuses longer ones, so the
#: simulator refuses to name a satellite longer.
MAX_SENSOR_ID_CHARS = 256


class FlightPhase(IntEnum):
    """Flight phase; values equal the wire enum ``tracklayer.v1.FlightPhase``."""

    UNSPECIFIED = 0
    BOOST = 1
    MIDCOURSE = 2
    REENTRY = 3
    GLIDE = 4  # lifting flight inside the atmosphere (a boost-glide vehicle)


class TrackStatus(IntEnum):
    """Track life-cycle status; values equal ``tracklayer.v1.TrackStatus``."""

    UNSPECIFIED = 0
    TENTATIVE = 1
    CONFIRMED = 2
    COASTING = 3
    DELETED = 4


class FrameStatus(IntEnum):
    """Outcome of offering a frame to the fusion core; values equal the wire enum."""

    UNSPECIFIED = 0
    ACCEPTED = 1
    DUPLICATE = 2
    LATE = 3
    REJECTED = 4


def seconds_to_ns(t_s: float) -> int:
    """Seconds since the Unix epoch -> integer nanoseconds (rounded to nearest)."""
    return int(round(t_s * NS_PER_S))


def ns_to_seconds(t_ns: int) -> float:
    """Integer nanoseconds since the Unix epoch -> float seconds."""
    return t_ns / NS_PER_S


def _floats(v: object, width: int = 0) -> np.ndarray:
    """``np.asarray(v, dtype=float)`` reshaped to (-1,) (``width`` 0) or (-1, width):
    ``v`` itself when it already is such an array (the conversion would only make a
    view of it; a frame is built per message, so its calls count)."""
    if type(v) is np.ndarray and v.dtype == np.float64:
        if (v.ndim == 1 and width == 0) or (v.ndim == 2 and v.shape[1] == width > 0):
            return v
    return np.asarray(v, dtype=float).reshape((-1, width) if width else -1)


def _vec3(v: object, name: str) -> np.ndarray:
    a = _floats(v)
    if a.shape != (3,):
        raise ValueError(f"{name}: expected 3 components, got shape {a.shape}")
    return a


@dataclass(eq=False, slots=True)
class SensorFrame:
    """One look of one sensor: every detection of the look (possibly none).

    Detections are held column-wise so that work over them vectorises:
    ``los`` (N, 3) unit vectors sensor -> object in ECI, ``sigma`` (N,) radians
    1-sigma per tangent-plane axis, ``intensity`` (N,) relative brightness.
    """

    sensor_id: str
    sequence: int
    time_ns: int
    position: np.ndarray  # (3,) m, TEME
    velocity: np.ndarray  # (3,) m/s, TEME
    los: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sigma: np.ndarray = field(default_factory=lambda: np.zeros(0))
    intensity: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.position = _vec3(self.position, "sensor_position_eci")
        self.velocity = _vec3(self.velocity, "sensor_velocity_eci")
        self.los = _floats(self.los, 3)
        n = self.los.shape[0]
        self.sigma = _floats(self.sigma)
        self.intensity = _floats(self.intensity)
        if self.sigma.shape != (n,) or self.intensity.shape != (n,):
            raise ValueError(
                f"detections: los has {n} rows but sigma has {self.sigma.size} and "
                f"intensity {self.intensity.size}"
            )

    @classmethod
    def from_columns(
        cls,
        sensor_id: str,
        sequence: int,
        time_ns: int,
        position: np.ndarray,
        velocity: np.ndarray,
        los: np.ndarray,
        sigma: np.ndarray,
        intensity: np.ndarray,
    ) -> SensorFrame:
        """A frame from columns the caller has already proved to be what
        :meth:`__post_init__` makes of its arguments: ``position``/``velocity`` float64
        (3,), ``los`` float64 (N, 3), ``sigma``/``intensity`` float64 (N,), owned by the
        frame (the wire decoder's, which builds them so: a frame per message, and the
        checks cost ~5 us a frame). Physics is still judged by ``fusion.validation``."""
        frame = object.__new__(cls)
        frame.sensor_id = sensor_id
        frame.sequence = sequence
        frame.time_ns = time_ns
        frame.position = position
        frame.velocity = velocity
        frame.los = los
        frame.sigma = sigma
        frame.intensity = intensity
        return frame

    @property
    def n_detections(self) -> int:
        return int(self.los.shape[0])

    @property
    def time_s(self) -> float:
        """Measurement time, seconds since the Unix epoch (UTC)."""
        return self.time_ns / NS_PER_S

    @property
    def order_key(self) -> tuple[int, str, int]:
        """The fixed application order (DESIGN §6): (time ns, sensor id, sequence)."""
        return (self.time_ns, self.sensor_id, self.sequence)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SensorFrame):
            return NotImplemented
        return (
            self.sensor_id == other.sensor_id
            and self.sequence == other.sequence
            and self.time_ns == other.time_ns
            and np.array_equal(self.position, other.position)
            and np.array_equal(self.velocity, other.velocity)
            and np.array_equal(self.los, other.los)
            and np.array_equal(self.sigma, other.sigma)
            and np.array_equal(self.intensity, other.intensity)
        )


@dataclass(frozen=True, slots=True)
class GroundEllipse:
    """A point on the WGS-84 surface with its 1-sigma error ellipse and a time.

    Used for both the predicted impact point and the estimated launch point.
    ``orientation_deg``: major axis, degrees clockwise from north, in [0, 180).
    """

    latitude_deg: float
    longitude_deg: float
    time_ns: int
    semi_major_m: float
    semi_minor_m: float
    orientation_deg: float


@dataclass(frozen=True, slots=True)
class SensorPosition:
    """Where a sensor was at ``time_ns`` (geodetic, WGS-84): for displays, beside a
    report (wire: ``tracklayer.v1.SensorPosition``)."""

    sensor_id: str
    time_ns: int
    latitude_deg: float
    longitude_deg: float
    altitude_m: float


@dataclass(eq=False, slots=True)
class TrackReport:
    """One revision of one track (wire: ``tracklayer.v1.TrackReport``)."""

    track_id: str
    revision: int
    status: TrackStatus
    time_ns: int
    position: np.ndarray  # (3,) m, TEME
    velocity: np.ndarray  # (3,) m/s, TEME
    covariance: np.ndarray  # (6, 6) over (position, velocity)
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    phase: FlightPhase = FlightPhase.UNSPECIFIED
    impact: GroundEllipse | None = None
    launch: GroundEllipse | None = None
    sensor_ids: tuple[str, ...] = ()
    update_count: int = 0
    emitted_at_ns: int | None = None  # wall clock; the only non-deterministic field

    def __post_init__(self) -> None:
        self.position = _vec3(self.position, "position_eci")
        self.velocity = _vec3(self.velocity, "velocity_eci")
        self.covariance = np.asarray(self.covariance, dtype=float).reshape(6, 6)
        self.status = TrackStatus(self.status)
        self.phase = FlightPhase(self.phase)
        self.sensor_ids = tuple(self.sensor_ids)

    @property
    def time_s(self) -> float:
        return self.time_ns / NS_PER_S

    def same_content(self, other: TrackReport) -> bool:
        """Equal in every field but the wall-clock ``emitted_at_ns``."""
        return (
            self.track_id == other.track_id
            and self.revision == other.revision
            and self.status == other.status
            and self.time_ns == other.time_ns
            and np.array_equal(self.position, other.position)
            and np.array_equal(self.velocity, other.velocity)
            and np.array_equal(self.covariance, other.covariance)
            and self.latitude_deg == other.latitude_deg
            and self.longitude_deg == other.longitude_deg
            and self.altitude_m == other.altitude_m
            and self.phase == other.phase
            and self.impact == other.impact
            and self.launch == other.launch
            and self.sensor_ids == other.sensor_ids
            and self.update_count == other.update_count
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrackReport):
            return NotImplemented
        return self.same_content(other) and self.emitted_at_ns == other.emitted_at_ns


@dataclass(eq=False, slots=True)
class TruthState:
    """True state of one simulated object (wire: ``tracklayer.v1.TruthState``)."""

    object_id: str
    position: np.ndarray  # (3,) m, TEME
    velocity: np.ndarray  # (3,) m/s, TEME
    phase: FlightPhase

    def __post_init__(self) -> None:
        self.position = _vec3(self.position, "position_eci")
        self.velocity = _vec3(self.velocity, "velocity_eci")
        self.phase = FlightPhase(self.phase)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TruthState):
            return NotImplemented
        return (
            self.object_id == other.object_id
            and np.array_equal(self.position, other.position)
            and np.array_equal(self.velocity, other.velocity)
            and self.phase == other.phase
        )


@dataclass(slots=True)
class TruthFrame:
    """Every object in flight at one instant (wire: ``tracklayer.v1.TruthFrame``)."""

    time_ns: int
    objects: list[TruthState] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DetectionTruth:
    """Per detection of one frame, in the frame's order: the object id, "" for clutter."""

    sensor_id: str
    sequence: int
    object_ids: tuple[str, ...] = ()
