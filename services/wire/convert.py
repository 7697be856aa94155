"""The one domain <-> protobuf conversion module (wire contract ``tracklayer.v1``).

Domain objects (:mod:`tracklayer.fusion.domain`) hold times as integer
nanoseconds since the Unix epoch (UTC), vectors as numpy arrays in metres and
m/s (ECI = TEME). On the wire, times are ``google.protobuf.Timestamp`` and
vectors ``tracklayer.v1.Vector3``. Every conversion here is exact: doubles are
copied bit for bit and timestamps to the nanosecond, also before 1970.

``*_from_proto`` functions convert; they do not judge physics (that is
``fusion.validation``). They raise ``ValueError("field: why")`` only where a
message cannot be represented as a domain object: a required sub-message
(time, vectors) not set, a covariance that is not 36 numbers, an enum value
this version does not know.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from tracklayer.fusion.domain import (
    NS_PER_S,
    DetectionTruth,
    FlightPhase,
    FrameStatus,
    GroundEllipse,
    SensorFrame,
    SensorPosition,
    TrackReport,
    TrackStatus,
    TruthFrame,
    TruthState,
)
from tracklayer.fusion.registration import SensorBias
from tracklayer.services.wire.detection_bytes import detection_columns
from tracklayer.v1 import common_pb2, registration_pb2, sensor_pb2, track_pb2, truth_pb2

__all__ = [
    "TIMESTAMP_MAX_NS",
    "TIMESTAMP_MIN_NS",
    "detection_truth_from_proto",
    "detection_truth_to_proto",
    "flight_phase_from_proto",
    "flight_phase_to_proto",
    "frame_from_proto",
    "frame_status_from_proto",
    "frame_status_to_proto",
    "frame_to_proto",
    "ns_to_timestamp",
    "report_from_proto",
    "report_to_proto",
    "sensor_position_from_proto",
    "sensor_position_to_proto",
    "timestamp_to_ns",
    "track_status_from_proto",
    "track_status_to_proto",
    "truth_from_proto",
    "truth_to_proto",
]

# The range google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to
# 9999-12-31T23:59:59.999999999Z (seconds of the proleptic Gregorian calendar).
_TS_MIN_SECONDS = -62_135_596_800
_TS_MAX_SECONDS = 253_402_300_799
TIMESTAMP_MIN_NS = _TS_MIN_SECONDS * NS_PER_S
TIMESTAMP_MAX_NS = _TS_MAX_SECONDS * NS_PER_S + NS_PER_S - 1

_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1

# --- enums: explicit maps, domain IntEnum <-> wire enum number ------------------------

_FLIGHT_PHASE_TO_PROTO: Mapping[FlightPhase, int] = {
    FlightPhase.UNSPECIFIED: common_pb2.FLIGHT_PHASE_UNSPECIFIED,
    FlightPhase.BOOST: common_pb2.FLIGHT_PHASE_BOOST,
    FlightPhase.MIDCOURSE: common_pb2.FLIGHT_PHASE_MIDCOURSE,
    FlightPhase.REENTRY: common_pb2.FLIGHT_PHASE_REENTRY,
    FlightPhase.GLIDE: common_pb2.FLIGHT_PHASE_GLIDE,
}
_TRACK_STATUS_TO_PROTO: Mapping[TrackStatus, int] = {
    TrackStatus.UNSPECIFIED: track_pb2.TRACK_STATUS_UNSPECIFIED,
    TrackStatus.TENTATIVE: track_pb2.TRACK_STATUS_TENTATIVE,
    TrackStatus.CONFIRMED: track_pb2.TRACK_STATUS_CONFIRMED,
    TrackStatus.COASTING: track_pb2.TRACK_STATUS_COASTING,
    TrackStatus.DELETED: track_pb2.TRACK_STATUS_DELETED,
}
_FRAME_STATUS_TO_PROTO: Mapping[FrameStatus, int] = {
    FrameStatus.UNSPECIFIED: sensor_pb2.FRAME_STATUS_UNSPECIFIED,
    FrameStatus.ACCEPTED: sensor_pb2.FRAME_STATUS_ACCEPTED,
    FrameStatus.DUPLICATE: sensor_pb2.FRAME_STATUS_DUPLICATE,
    FrameStatus.LATE: sensor_pb2.FRAME_STATUS_LATE,
    FrameStatus.REJECTED: sensor_pb2.FRAME_STATUS_REJECTED,
}
_FLIGHT_PHASE_FROM_PROTO = {v: k for k, v in _FLIGHT_PHASE_TO_PROTO.items()}
_TRACK_STATUS_FROM_PROTO = {v: k for k, v in _TRACK_STATUS_TO_PROTO.items()}
_FRAME_STATUS_FROM_PROTO = {v: k for k, v in _FRAME_STATUS_TO_PROTO.items()}


def _enum_to_proto(table: Mapping, value: object, field: str) -> int:
    try:
        return table[value]
    except (KeyError, TypeError):
        allowed = ", ".join(m.name for m in table)
        raise ValueError(f"{field}: {value!r} is not one of {allowed}") from None


def _enum_from_proto(table: Mapping, value: int, field: str, enum_name: str):
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"{field}: unknown {enum_name} value {value}") from None


def flight_phase_to_proto(phase: FlightPhase, field: str = "phase") -> int:
    """Domain :class:`FlightPhase` -> ``tracklayer.v1.FlightPhase`` number."""
    return _enum_to_proto(_FLIGHT_PHASE_TO_PROTO, phase, field)


def flight_phase_from_proto(value: int, field: str = "phase") -> FlightPhase:
    """``tracklayer.v1.FlightPhase`` number -> domain :class:`FlightPhase`."""
    return _enum_from_proto(_FLIGHT_PHASE_FROM_PROTO, value, field, "FlightPhase")


def track_status_to_proto(status: TrackStatus, field: str = "status") -> int:
    """Domain :class:`TrackStatus` -> ``tracklayer.v1.TrackStatus`` number."""
    return _enum_to_proto(_TRACK_STATUS_TO_PROTO, status, field)


def track_status_from_proto(value: int, field: str = "status") -> TrackStatus:
    """``tracklayer.v1.TrackStatus`` number -> domain :class:`TrackStatus`."""
    return _enum_from_proto(_TRACK_STATUS_FROM_PROTO, value, field, "TrackStatus")


def frame_status_to_proto(status: FrameStatus, field: str = "status") -> int:
    """Domain :class:`FrameStatus` -> ``tracklayer.v1.FrameStatus`` number (for FrameAck)."""
    return _enum_to_proto(_FRAME_STATUS_TO_PROTO, status, field)


def frame_status_from_proto(value: int, field: str = "status") -> FrameStatus:
    """``tracklayer.v1.FrameStatus`` number -> domain :class:`FrameStatus`."""
    return _enum_from_proto(_FRAME_STATUS_FROM_PROTO, value, field, "FrameStatus")


# --- scalars ----------------------------------------------------------------------------


def _int(value: object, field: str) -> int:
    """An exact integer (Python or numpy); floats and bools are refused, not rounded."""
    if isinstance(value, bool):
        raise TypeError(f"{field}: expected an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{field}: expected an integer, got {type(value).__name__}") from None


def _uint(value: object, field: str, maximum: int) -> int:
    v = _int(value, field)
    if not 0 <= v <= maximum:
        raise ValueError(f"{field}: {v} is outside [0, {maximum}]")
    return v


def ns_to_timestamp(ns: int, field: str = "time") -> Timestamp:
    """Integer nanoseconds since the Unix epoch (UTC) -> ``Timestamp``, exactly.

    Times before 1970 get negative ``seconds`` and ``nanos`` in [0, 1e9), as the
    Timestamp spec requires (-1 ns -> seconds=-1, nanos=999999999).
    Raises ``ValueError`` naming ``field`` outside years 0001..9999.
    """
    return Timestamp(**_timestamp_fields(ns, field))


def _timestamp_fields(ns: int, field: str) -> dict[str, int]:
    """:func:`ns_to_timestamp`'s fields as a dict (a message field initialised from it)."""
    v = _int(ns, field)
    if not TIMESTAMP_MIN_NS <= v <= TIMESTAMP_MAX_NS:
        raise ValueError(
            f"{field}: {v} ns since the Unix epoch is outside the Timestamp range "
            "(years 0001..9999)"
        )
    seconds, nanos = divmod(v, NS_PER_S)  # floor division: nanos always in [0, 1e9)
    return {"seconds": seconds, "nanos": nanos}


def timestamp_to_ns(ts: Timestamp, field: str = "time") -> int:
    """``Timestamp`` -> integer nanoseconds since the Unix epoch (UTC), exactly.

    Raises ``ValueError`` naming ``field`` when ``nanos`` is outside [0, 1e9) or
    ``seconds`` outside years 0001..9999 (a malformed Timestamp).
    """
    if not 0 <= ts.nanos < NS_PER_S:
        raise ValueError(f"{field}: nanos {ts.nanos} is outside [0, 999999999]")
    if not _TS_MIN_SECONDS <= ts.seconds <= _TS_MAX_SECONDS:
        raise ValueError(f"{field}: seconds {ts.seconds} is outside years 0001..9999")
    return ts.seconds * NS_PER_S + ts.nanos


def _required_time(msg, name: str, prefix: str = "") -> int:
    if not msg.HasField(name):
        raise ValueError(f"{prefix}{name}: not set")
    return timestamp_to_ns(getattr(msg, name), prefix + name)


def _vector(v: np.ndarray) -> common_pb2.Vector3:
    x, y, z = v.tolist()
    return common_pb2.Vector3(x=x, y=y, z=z)


def _required_vector(msg, name: str, prefix: str = "") -> np.ndarray:
    if not msg.HasField(name):
        raise ValueError(f"{prefix}{name}: not set")
    v = getattr(msg, name)
    return np.array((v.x, v.y, v.z), dtype=float)


# --- sensor frames ----------------------------------------------------------------------


def frame_to_proto(frame: SensorFrame) -> sensor_pb2.SensorFrame:
    """Domain :class:`SensorFrame` (all detections of one look) -> ``v1.SensorFrame``."""
    msg = sensor_pb2.SensorFrame(
        sensor_id=frame.sensor_id,
        sequence=_uint(frame.sequence, "sequence", _UINT64_MAX),
        time=ns_to_timestamp(frame.time_ns, "time"),
        sensor_position_eci=_vector(frame.position),
        sensor_velocity_eci=_vector(frame.velocity),
    )
    add = msg.detections.add
    Vector3 = common_pb2.Vector3
    for (x, y, z), sigma, intensity in zip(
        frame.los.tolist(), frame.sigma.tolist(), frame.intensity.tolist(), strict=True
    ):
        add(line_of_sight_eci=Vector3(x=x, y=y, z=z), angular_sigma=sigma, intensity=intensity)
    return msg


def frame_from_proto(msg: sensor_pb2.SensorFrame, raw: bytes | None = None) -> SensorFrame:
    """``v1.SensorFrame`` -> domain :class:`SensorFrame` (converts; does not validate physics).

    ``raw``: the bytes ``msg`` was parsed from or serialises to, when the caller has them
    (the journal's payload): the detections are then read from them at once when they
    have the usual layout (every field set), the same floats as from ``msg``."""
    cols = None if raw is None else detection_columns(raw, len(msg.detections))
    if cols is None:
        rows = []  # one tuple per detection, one array of them: a frame per message counts
        row = rows.append
        for d in msg.detections:
            if not d.HasField("line_of_sight_eci"):
                raise ValueError(f"detections[{len(rows)}].line_of_sight_eci: not set")
            u = d.line_of_sight_eci
            row((u.x, u.y, u.z, d.angular_sigma, d.intensity))
        table = np.array(rows, dtype=float).reshape(len(rows), 5)
        cols = table[:, :3].copy(), table[:, 3].copy(), table[:, 4].copy()
    # every array is a new float64 one of the shape SensorFrame wants: no re-check
    return SensorFrame.from_columns(
        msg.sensor_id,
        msg.sequence,
        _required_time(msg, "time"),
        _required_vector(msg, "sensor_position_eci"),
        _required_vector(msg, "sensor_velocity_eci"),
        *cols,
    )


# --- track reports ----------------------------------------------------------------------


def _ellipse_fields(e: GroundEllipse, field: str) -> dict:
    return {
        "latitude_deg": float(e.latitude_deg),
        "longitude_deg": float(e.longitude_deg),
        "time": _timestamp_fields(e.time_ns, f"{field}.time"),
        "semi_major_m": float(e.semi_major_m),
        "semi_minor_m": float(e.semi_minor_m),
        "orientation_deg": float(e.orientation_deg),
    }


def _ellipse_from_proto(msg, field: str) -> GroundEllipse:
    return GroundEllipse(
        latitude_deg=msg.latitude_deg,
        longitude_deg=msg.longitude_deg,
        time_ns=_required_time(msg, "time", f"{field}."),
        semi_major_m=msg.semi_major_m,
        semi_minor_m=msg.semi_minor_m,
        orientation_deg=msg.orientation_deg,
    )


def report_to_proto(report: TrackReport) -> track_pb2.TrackReport:
    """Domain :class:`TrackReport` -> ``v1.TrackReport``.

    The 6x6 covariance goes out as 36 doubles, row-major over (x, y, z, vx, vy, vz);
    ``impact``/``launch``/``emitted_at_ns`` of None leave the field unset. Sub-messages
    are given as dicts to one constructor (half the time of building and copying each:
    a raid writes ~90,000 reports in 120 s; the same message).
    """
    x, y, z = report.position.tolist()
    vx, vy, vz = report.velocity.tolist()
    fields = {
        "track_id": report.track_id,
        "revision": _uint(report.revision, "revision", _UINT64_MAX),
        "status": track_status_to_proto(report.status),
        "time": _timestamp_fields(report.time_ns, "time"),
        "position_eci": {"x": x, "y": y, "z": z},
        "velocity_eci": {"x": vx, "y": vy, "z": vz},
        "covariance": np.ravel(report.covariance, order="C").tolist(),
        "latitude_deg": float(report.latitude_deg),
        "longitude_deg": float(report.longitude_deg),
        "altitude_m": float(report.altitude_m),
        "phase": flight_phase_to_proto(report.phase),
        "sensor_ids": report.sensor_ids,
        "update_count": _uint(report.update_count, "update_count", _UINT32_MAX),
    }
    if report.impact is not None:
        fields["impact"] = _ellipse_fields(report.impact, "impact")
    if report.launch is not None:
        fields["launch"] = _ellipse_fields(report.launch, "launch")
    if report.emitted_at_ns is not None:
        fields["emitted_at"] = _timestamp_fields(report.emitted_at_ns, "emitted_at")
    return track_pb2.TrackReport(**fields)


def sensor_position_to_proto(p: SensorPosition) -> track_pb2.SensorPosition:
    """Domain :class:`SensorPosition` -> ``v1.SensorPosition`` (a report's
    ``sensor_positions``: for displays, not part of the report's content)."""
    return track_pb2.SensorPosition(
        sensor_id=p.sensor_id,
        time=ns_to_timestamp(p.time_ns, "sensor_positions.time"),
        latitude_deg=float(p.latitude_deg),
        longitude_deg=float(p.longitude_deg),
        altitude_m=float(p.altitude_m),
    )


def sensor_position_from_proto(msg: track_pb2.SensorPosition) -> SensorPosition:
    """``v1.SensorPosition`` -> domain :class:`SensorPosition`."""
    return SensorPosition(
        sensor_id=msg.sensor_id,
        time_ns=_required_time(msg, "time", "sensor_positions."),
        latitude_deg=msg.latitude_deg,
        longitude_deg=msg.longitude_deg,
        altitude_m=msg.altitude_m,
    )


def report_from_proto(msg: track_pb2.TrackReport) -> TrackReport:
    """``v1.TrackReport`` -> domain :class:`TrackReport` (covariance reshaped row-major)."""
    if len(msg.covariance) != 36:
        raise ValueError(
            f"covariance: expected 36 values (6x6 row-major), got {len(msg.covariance)}"
        )
    return TrackReport(
        track_id=msg.track_id,
        revision=msg.revision,
        status=track_status_from_proto(msg.status),
        time_ns=_required_time(msg, "time"),
        position=_required_vector(msg, "position_eci"),
        velocity=_required_vector(msg, "velocity_eci"),
        covariance=np.array(msg.covariance, dtype=float).reshape(6, 6),
        latitude_deg=msg.latitude_deg,
        longitude_deg=msg.longitude_deg,
        altitude_m=msg.altitude_m,
        phase=flight_phase_from_proto(msg.phase),
        impact=_ellipse_from_proto(msg.impact, "impact") if msg.HasField("impact") else None,
        launch=_ellipse_from_proto(msg.launch, "launch") if msg.HasField("launch") else None,
        sensor_ids=tuple(msg.sensor_ids),
        update_count=msg.update_count,
        emitted_at_ns=(
            timestamp_to_ns(msg.emitted_at, "emitted_at") if msg.HasField("emitted_at") else None
        ),
    )


# --- simulation truth -------------------------------------------------------------------


def truth_to_proto(truth: TruthFrame) -> truth_pb2.TruthFrame:
    """Domain :class:`TruthFrame` (every object at one instant) -> ``v1.TruthFrame``."""
    msg = truth_pb2.TruthFrame(time=ns_to_timestamp(truth.time_ns, "time"))
    add = msg.objects.add
    for i, s in enumerate(truth.objects):
        add(
            object_id=s.object_id,
            position_eci=_vector(s.position),
            velocity_eci=_vector(s.velocity),
            phase=flight_phase_to_proto(s.phase, f"objects[{i}].phase"),
        )
    return msg


def truth_from_proto(msg: truth_pb2.TruthFrame) -> TruthFrame:
    """``v1.TruthFrame`` -> domain :class:`TruthFrame`."""
    objects = [
        TruthState(
            object_id=s.object_id,
            position=_required_vector(s, "position_eci", f"objects[{i}]."),
            velocity=_required_vector(s, "velocity_eci", f"objects[{i}]."),
            phase=flight_phase_from_proto(s.phase, f"objects[{i}].phase"),
        )
        for i, s in enumerate(msg.objects)
    ]
    return TruthFrame(time_ns=_required_time(msg, "time"), objects=objects)


def detection_truth_to_proto(dt: DetectionTruth) -> truth_pb2.DetectionTruth:
    """Domain :class:`DetectionTruth` -> ``v1.DetectionTruth`` ("" = clutter)."""
    return truth_pb2.DetectionTruth(
        sensor_id=dt.sensor_id,
        sequence=_uint(dt.sequence, "sequence", _UINT64_MAX),
        object_ids=dt.object_ids,
    )


def detection_truth_from_proto(msg: truth_pb2.DetectionTruth) -> DetectionTruth:
    """``v1.DetectionTruth`` -> domain :class:`DetectionTruth`."""
    return DetectionTruth(
        sensor_id=msg.sensor_id, sequence=msg.sequence, object_ids=tuple(msg.object_ids)
    )


def bias_to_proto(b: SensorBias) -> registration_pb2.SensorBias:
    """A sensor's pointing-bias estimate (rad in the domain, urad on the wire)."""
    return registration_pb2.SensorBias(
        sensor_id=b.sensor_id,
        time=ns_to_timestamp(b.time_ns),
        angles_urad=[a * 1e6 for a in b.angles_rad],
        sigma_urad=[s * 1e6 for s in b.sigma_rad],
        windows=b.windows,
        covariance_urad2=[c * 1e12 for c in b.covariance_rad2],
    )


def bias_from_proto(msg: registration_pb2.SensorBias) -> SensorBias:
    """The inverse of :func:`bias_to_proto`; three angles and sigmas are required, the
    covariance is six values or none (recordings before it)."""
    if len(msg.angles_urad) != 3 or len(msg.sigma_urad) != 3:
        raise ValueError("angles_urad, sigma_urad: expected 3 values each")
    if len(msg.covariance_urad2) not in (0, 6):
        raise ValueError("covariance_urad2: expected 6 values (upper triangle) or none")
    return SensorBias(
        msg.sensor_id,
        _required_time(msg, "time"),
        tuple(a * 1e-6 for a in msg.angles_urad),
        tuple(s * 1e-6 for s in msg.sigma_urad),
        int(msg.windows),
        tuple(c * 1e-12 for c in msg.covariance_urad2),
    )
