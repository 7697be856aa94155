"""A track report's ``tracklayer.v1.TrackReport`` bytes, encoded directly.

``report_to_proto(report).SerializeToString()`` builds a protobuf message from nested
dicts only to serialise it at once; a raid writes ~90,000 reports in 120 s, and that
message costs about as much as the rest of the report path. :func:`report_bytes` writes
the same bytes with ``struct``: the fields in field-number order (as the protobuf
runtime serialises them), proto3's rules for what is left out (a scalar whose bits are
zero, an empty string or repeated field; a set sub-message always, even empty), the
covariance packed, varints for integers (two's complement in ten bytes for a negative
int64). Values are checked by the same helpers as :func:`convert.report_to_proto`; any
value this encoder does not take as is (not a ``str`` id, a string that is not UTF-8)
goes through the message, which raises or encodes as before.
tests/test_report_bytes.py holds the two paths to the same bytes.
"""

from __future__ import annotations

import struct

import numpy as np

from tracklayer.fusion.domain import GroundEllipse, TrackReport
from tracklayer.services.wire import convert

__all__ = ["report_bytes"]

_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
_F8 = np.dtype("<f8")
_DOUBLE = struct.Struct("<d").pack
_VECTOR3 = struct.Struct("<BdBdBd").pack  # three double fields, all written
_TWO = struct.Struct("<BdBd").pack  # two double fields, both written
_SMALL = [bytes((i,)) for i in range(128)]  # one-byte varints
_ZERO = b"\0" * 8

# Tags (field number << 3 | wire type: 0 varint, 1 fixed64, 2 length-delimited).
_T_ID, _T_REVISION, _T_STATUS, _T_TIME = b"\x0a", b"\x10", b"\x18", b"\x22"
_T_POSITION, _T_VELOCITY, _T_COVARIANCE = b"\x2a", b"\x32", b"\x3a"
_T_PHASE, _T_IMPACT, _T_LAUNCH = b"\x58", b"\x62", b"\x6a"
_T_SENSOR, _T_UPDATES, _T_EMITTED = b"\x72", b"\x78", b"\x82\x01"
_K_LAT, _K_LON, _K_ALT = 0x41, 0x49, 0x51  # report fields 8-10 (double)
_K_X, _K_Y, _K_Z = 0x09, 0x11, 0x19  # Vector3 1-3; ellipse latitude, longitude
_K_MAJOR, _K_MINOR, _K_ORIENT = 0x21, 0x29, 0x31  # ellipse fields 4-6 (double)
_T_ELLIPSE_TIME = b"\x1a"
_T_SECONDS, _T_NANOS = b"\x08", b"\x10"  # google.protobuf.Timestamp
_TIMES_KEPT = 4096  # encoded timestamps remembered (reports of one instant share one)
_times: dict[int, bytes] = {}
_ELLIPSES_KEPT = 8192  # encoded ellipses remembered, with the objects
_ellipses: dict[int, tuple[GroundEllipse, bytes]] = {}


def _varint(v: int) -> bytes:
    """Base-128 varint of ``v`` (a negative int64 as its 64-bit two's complement)."""
    if 0 <= v < 128:
        return _SMALL[v]
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _doubles(*pairs: tuple[int, float]) -> bytes:
    """Scalar double fields (tag byte, value): each written unless its bits are all
    zero (proto3: -0.0 and NaN are written, 0.0 is not)."""
    out = b""
    for tag, v in pairs:
        b = _DOUBLE(v)
        if b != _ZERO:
            out += _SMALL[tag] + b
    return out


def _vector(tag: bytes, xyz: list[float]) -> bytes:
    """A set ``Vector3`` sub-message (m or m/s)."""
    x, y, z = xyz
    if x and y and z:  # the common case: all three written (NaN is truthy)
        return tag + b"\x1b" + _VECTOR3(_K_X, x, _K_Y, y, _K_Z, z)
    body = _doubles((_K_X, x), (_K_Y, y), (_K_Z, z))
    return tag + _SMALL[len(body)] + body


def _timestamp(tag: bytes, ns: int, field: str) -> bytes:
    """A set ``Timestamp`` sub-message of ``ns`` since the epoch, checked as
    :func:`convert.ns_to_timestamp` checks it."""
    body = _times.get(ns) if type(ns) is int else None
    if body is None:
        t = convert._timestamp_fields(ns, field)
        seconds, nanos = t["seconds"], t["nanos"]
        body = (_T_SECONDS + _varint(seconds) if seconds else b"") + (
            _T_NANOS + _varint(nanos) if nanos else b""
        )
        body = _SMALL[len(body)] + body  # (at most 17 bytes)
        if type(ns) is int:
            if len(_times) >= _TIMES_KEPT:
                _times.clear()
            _times[ns] = body
    return tag + body


def _ellipse(tag: bytes, e: GroundEllipse, field: str) -> bytes:
    """A set ``ImpactPrediction`` / ``LaunchEstimate`` sub-message. A track carries one
    ellipse object over many reports (frozen): its encoding is kept with it."""
    kept = _ellipses.get(id(e))
    if kept is not None and kept[0] is e:
        return tag + kept[1]
    lat, lon = float(e.latitude_deg), float(e.longitude_deg)
    major, minor, orient = float(e.semi_major_m), float(e.semi_minor_m), float(e.orientation_deg)
    head = _TWO(_K_X, lat, _K_Y, lon) if lat and lon else _doubles((_K_X, lat), (_K_Y, lon))
    if major and minor and orient:
        tail = _VECTOR3(_K_MAJOR, major, _K_MINOR, minor, _K_ORIENT, orient)
    else:
        tail = _doubles((_K_MAJOR, major), (_K_MINOR, minor), (_K_ORIENT, orient))
    body = head + _timestamp(_T_ELLIPSE_TIME, e.time_ns, f"{field}.time") + tail
    body = _SMALL[len(body)] + body  # (at most 65 bytes)
    if len(_ellipses) >= _ELLIPSES_KEPT:
        _ellipses.clear()
    _ellipses[id(e)] = (e, body)  # (the object kept: its id is not reused meanwhile)
    return tag + body


def report_bytes(report: TrackReport) -> bytes:
    """``convert.report_to_proto(report).SerializeToString()``: the same bytes and errors."""
    try:
        return _encode(report)
    except (TypeError, UnicodeError, AttributeError, struct.error):
        return convert.report_to_proto(report).SerializeToString()


def _encode(report: TrackReport) -> bytes:
    track_id = report.track_id
    if type(track_id) is not str:
        raise TypeError("track_id: not a str")
    revision = convert._uint(report.revision, "revision", _UINT64_MAX)
    status = convert.track_status_to_proto(report.status)
    tid = track_id.encode()
    out = _T_ID + _varint(len(tid)) + tid if tid else b""
    if revision:
        out += _T_REVISION + _varint(revision)
    if status:
        out += _T_STATUS + _varint(status)
    out += _timestamp(_T_TIME, report.time_ns, "time")
    out += _vector(_T_POSITION, report.position.tolist())
    out += _vector(_T_VELOCITY, report.velocity.tolist())
    cov = report.covariance
    if cov.dtype != _F8:
        cov = np.asarray(cov, dtype=_F8)
    if cov.size:
        out += _T_COVARIANCE + _varint(8 * cov.size) + cov.tobytes()  # row-major, packed
    lat, lon = float(report.latitude_deg), float(report.longitude_deg)
    alt = float(report.altitude_m)
    if lat and lon and alt:
        out += _VECTOR3(_K_LAT, lat, _K_LON, lon, _K_ALT, alt)
    else:
        out += _doubles((_K_LAT, lat), (_K_LON, lon), (_K_ALT, alt))
    phase = convert.flight_phase_to_proto(report.phase)
    if phase:
        out += _T_PHASE + _varint(phase)
    if report.impact is not None:
        out += _ellipse(_T_IMPACT, report.impact, "impact")
    if report.launch is not None:
        out += _ellipse(_T_LAUNCH, report.launch, "launch")
    for sensor_id in report.sensor_ids:
        if type(sensor_id) is not str:
            raise TypeError("sensor_ids: not a str")
        s = sensor_id.encode()
        out += _T_SENSOR + _varint(len(s)) + s
    updates = convert._uint(report.update_count, "update_count", _UINT32_MAX)
    if updates:
        out += _T_UPDATES + _varint(updates)
    if report.emitted_at_ns is not None:
        out += _timestamp(_T_EMITTED, report.emitted_at_ns, "emitted_at")
    return out
