"""The one conversion of track reports to the live map's JSON (``tracklayer.v1`` -> dict).

What the browser gets per report (degrees, metres, m/s, seconds since the Unix epoch,
UTC): ``id``, ``rev``, ``status`` and ``phase`` (enum names without prefix), ``t``
(state time), ``lat``/``lon`` (geodetic, WGS-84), ``alt`` (m), ``speed`` (m/s, the
TEME velocity's norm), ``sensors`` (contributing sensor ids), ``updates``, ``emitted``
(wall clock, or null) and, when set, ``impact`` / ``launch`` as ground ellipses
(``lat``, ``lon``, ``t``, 1-sigma ``a``/``b`` in m, ``ori`` in degrees clockwise from
north).
"""

from __future__ import annotations

import math
from typing import Any

from tracklayer.v1 import common_pb2, track_pb2

_PHASE = {
    v.number: v.name.removeprefix("FLIGHT_PHASE_") for v in common_pb2.FlightPhase.DESCRIPTOR.values
}
_STATUS = {
    v.number: v.name.removeprefix("TRACK_STATUS_") for v in track_pb2.TrackStatus.DESCRIPTOR.values
}
#: Digits kept: 1e-5 deg is about 1 m on the ground; metres and m/s to 0.1.
_DEG, _M = 5, 1


def phase_name(value: int) -> str:
    """Flight phase enum value -> ``BOOST``, ``MIDCOURSE``, ... (``UNSPECIFIED`` if unknown)."""
    return _PHASE.get(value, "UNSPECIFIED")


def status_name(value: int) -> str:
    """Track status enum value -> ``TENTATIVE``, ``CONFIRMED``, ... (``UNSPECIFIED`` if unknown)."""
    return _STATUS.get(value, "UNSPECIFIED")


def _seconds(ts: Any) -> float:
    return ts.seconds + ts.nanos * 1e-9


def _finite(x: float, digits: int) -> float | None:
    return round(x, digits) if math.isfinite(x) else None


def ellipse_json(e: track_pb2.ImpactPrediction | track_pb2.LaunchEstimate) -> dict[str, Any]:
    """A ground ellipse (impact or launch) as JSON: centre, time, 1-sigma axes, orientation."""
    return {
        "lat": _finite(e.latitude_deg, _DEG),
        "lon": _finite(e.longitude_deg, _DEG),
        "t": _seconds(e.time),
        "a": _finite(e.semi_major_m, _M),
        "b": _finite(e.semi_minor_m, _M),
        "ori": _finite(e.orientation_deg, 2),
    }


def report_json(msg: track_pb2.TrackReport) -> dict[str, Any]:
    """One stored report as the map's JSON (fields in the module docstring)."""
    v = msg.velocity_eci
    out: dict[str, Any] = {
        "id": msg.track_id,
        "rev": msg.revision,
        "status": status_name(msg.status),
        "phase": phase_name(msg.phase),
        "t": _seconds(msg.time),
        "lat": _finite(msg.latitude_deg, _DEG),
        "lon": _finite(msg.longitude_deg, _DEG),
        "alt": _finite(msg.altitude_m, _M),
        "speed": _finite(math.sqrt(v.x * v.x + v.y * v.y + v.z * v.z), _M),
        "sensors": list(msg.sensor_ids),
        "updates": msg.update_count,
        "emitted": _seconds(msg.emitted_at) if msg.HasField("emitted_at") else None,
    }
    if msg.HasField("impact"):
        out["impact"] = ellipse_json(msg.impact)
    if msg.HasField("launch"):
        out["launch"] = ellipse_json(msg.launch)
    return out
