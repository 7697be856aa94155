"""The live map's encodings of track reports (``tracklayer.v1`` -> what travels).

- :func:`message`, what the page gets, one binary WebSocket message (``server``): a kind
  byte (:data:`SNAPSHOT` or :data:`UPDATE`), the length of a JSON text (uint32,
  little-endian), that text (UTF-8: the status, and in a snapshot the trails), then the
  reports as their own protobuf bytes (the bytes the store serialized to store them, or
  serialized here for a snapshot) framed as one ``ListTracksResponse`` (``tracks`` =
  field 1, :func:`frame_raws`), built once for every page. No conversion per report in
  the store (building JSON in Python cost ~20 us a report, base64 and the text stream a
  browser must parse more): the store's CPU is what the map must spare (issue 16);
  ``static/wire.js`` decodes it into the objects below.
- :func:`report_text`, readable JSON for ``/api/snapshot`` (scripts, checks), built
  straight as text. What the page's objects and this JSON hold per report (degrees,
  metres, m/s, seconds since the Unix epoch, UTC): ``id``, ``rev``, ``status`` and
  ``phase`` (enum names without prefix), ``t`` (state time), ``lat``/``lon`` (geodetic,
  WGS-84), ``alt`` (m), ``speed`` (m/s, the TEME velocity's norm), ``sensors``
  (contributing sensor ids), ``updates``, ``emitted`` (wall clock, or null) and, when
  set, ``impact`` / ``launch`` as ground ellipses (``lat``, ``lon``, ``t``, 1-sigma
  ``a``/``b`` in m, ``ori`` in degrees clockwise from north). Numbers that are not finite
  are ``null``.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from typing import Any

from tracklayer.v1 import common_pb2, track_pb2

_PHASE = {
    v.number: v.name.removeprefix("FLIGHT_PHASE_") for v in common_pb2.FlightPhase.DESCRIPTOR.values
}
_STATUS = {
    v.number: v.name.removeprefix("TRACK_STATUS_") for v in track_pb2.TrackStatus.DESCRIPTOR.values
}
_PHASE_JSON = {k: json.dumps(v) for k, v in _PHASE.items()}
_STATUS_JSON = {k: json.dumps(v) for k, v in _STATUS.items()}
_UNSPECIFIED = '"UNSPECIFIED"'
#: Encoded ids, sensor lists and ellipses kept (they repeat from report to report).
_CACHE_SIZE = 4096
_quoted: dict[str, str] = {}
_lists: dict[tuple[str, ...], str] = {}
_ellipses: dict[bytes, str] = {}
_isfinite = math.isfinite


def phase_name(value: int) -> str:
    """Flight phase enum value -> ``BOOST``, ``MIDCOURSE``, ... (``UNSPECIFIED`` if unknown)."""
    return _PHASE.get(value, "UNSPECIFIED")


def status_name(value: int) -> str:
    """Track status enum value -> ``TENTATIVE``, ``CONFIRMED``, ... (``UNSPECIFIED`` if unknown)."""
    return _STATUS.get(value, "UNSPECIFIED")


def seconds(ts: Any) -> float:
    """A ``google.protobuf.Timestamp`` as float seconds since the Unix epoch."""
    return ts.seconds + ts.nanos * 1e-9


def _num(x: float, spec: str) -> str:
    return format(x, spec) if _isfinite(x) else "null"


def _str(s: str) -> str:
    out = _quoted.get(s)
    if out is None:
        if len(_quoted) >= _CACHE_SIZE:
            _quoted.clear()
        out = _quoted[s] = json.dumps(s)
    return out


def _str_list(items: Iterable[str]) -> str:
    key = tuple(items)
    out = _lists.get(key)
    if out is None:
        if len(_lists) >= _CACHE_SIZE:
            _lists.clear()
        out = _lists[key] = "[" + ",".join(_str(s) for s in key) + "]"
    return out


def ellipse_text(e: track_pb2.ImpactPrediction | track_pb2.LaunchEstimate) -> str:
    """A ground ellipse (impact or launch) as JSON: centre, time, 1-sigma axes,
    orientation. Kept by content: a launch estimate (and an impact between refreshes)
    repeats from report to report."""
    key = e.SerializeToString()
    out = _ellipses.get(key)
    if out is None:
        if len(_ellipses) >= _CACHE_SIZE:
            _ellipses.clear()
        out = _ellipses[key] = (
            f'{{"lat":{_num(e.latitude_deg, ".5f")},"lon":{_num(e.longitude_deg, ".5f")},'
            f'"t":{seconds(e.time)!r},"a":{_num(e.semi_major_m, ".1f")},'
            f'"b":{_num(e.semi_minor_m, ".1f")},"ori":{_num(e.orientation_deg, ".2f")}}}'
        )
    return out


def report_text(msg: track_pb2.TrackReport) -> str:
    """One stored report as the map's JSON object text (fields in the module docstring)."""
    v = msg.velocity_eci
    vx, vy, vz = v.x, v.y, v.z
    lat, lon, alt = msg.latitude_deg, msg.longitude_deg, msg.altitude_m
    if _isfinite(lat + lon + alt + vx + vy + vz):  # the usual case: no check per number
        place = f'"lat":{lat:.5f},"lon":{lon:.5f},"alt":{alt:.1f},'
        speed = f"{math.sqrt(vx * vx + vy * vy + vz * vz):.1f}"
    else:
        place = f'"lat":{_num(lat, ".5f")},"lon":{_num(lon, ".5f")},"alt":{_num(alt, ".1f")},'
        speed = _num(math.sqrt(vx * vx + vy * vy + vz * vz), ".1f")
    t, e = msg.time, msg.emitted_at
    emitted = repr(e.seconds + e.nanos * 1e-9) if msg.HasField("emitted_at") else "null"
    text = (
        f'{{"id":{_str(msg.track_id)},"rev":{msg.revision},'
        f'"status":{_STATUS_JSON.get(msg.status, _UNSPECIFIED)},'
        f'"phase":{_PHASE_JSON.get(msg.phase, _UNSPECIFIED)},"t":{t.seconds + t.nanos * 1e-9!r},'
        f'{place}"speed":{speed},"sensors":{_str_list(msg.sensor_ids)},'
        f'"updates":{msg.update_count},"emitted":{emitted}'
    )
    if msg.HasField("impact"):
        text += ',"impact":' + ellipse_text(msg.impact)
    if msg.HasField("launch"):
        text += ',"launch":' + ellipse_text(msg.launch)
    return text + "}"


def sensor_position_json(p: track_pb2.SensorPosition) -> dict[str, float | None]:
    """Where a report placed a sensor: ``lat``, ``lon`` (deg), ``alt`` (m), ``t`` (s)."""

    def finite(x: float, digits: int) -> float | None:
        return round(x, digits) if _isfinite(x) else None

    return {
        "lat": finite(p.latitude_deg, 4),
        "lon": finite(p.longitude_deg, 4),
        "alt": finite(p.altitude_m, 0),
        "t": seconds(p.time),
    }


def json_array(texts: Iterable[str]) -> str:
    """JSON texts joined into one JSON array."""
    return "[" + ",".join(texts) + "]"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_TRACKS_TAG = b"\x0a"  # ListTracksResponse.tracks: field 1, length-delimited


def frame_reports(reports: Iterable[track_pb2.TrackReport]) -> bytes:
    """``reports`` as one serialized ``tracklayer.v1.ListTracksResponse`` (their order
    kept): what ``wire.js`` decodes."""
    return frame_raws(msg.SerializeToString() for msg in reports)


def frame_raws(raws: Iterable[bytes]) -> bytes:
    """Serialized reports framed as one ``ListTracksResponse`` (as :func:`frame_reports`,
    from bytes the store already has)."""
    parts = []
    for raw in raws:
        n = len(raw)
        if n < 0x80:
            parts.append(_TRACKS_TAG + bytes((n,)) + raw)
        elif n < 0x4000:  # a report with its sensors: 2 bytes (no loop, once per report)
            parts.append(bytes((0x0A, (n & 0x7F) | 0x80, n >> 7)) + raw)
        else:
            parts.append(_TRACKS_TAG + _varint(n) + raw)
    return b"".join(parts)


#: Kinds of message (their first byte): a page's start, then the changes.
SNAPSHOT, UPDATE = b"S", b"U"
_LEN = struct.Struct("<I")


def message(kind: bytes, text: str, reports: bytes) -> bytes:
    """One message to the pages: ``kind`` (:data:`SNAPSHOT` or :data:`UPDATE`), the JSON
    ``text``'s length (uint32 LE) and UTF-8 bytes, then ``reports`` (:func:`frame_raws`)."""
    data = text.encode()
    return b"".join((kind, _LEN.pack(len(data)), data, reports))


def parse_message(data: bytes) -> tuple[bytes, str, bytes]:
    """A :func:`message` -> (kind, JSON text, framed reports); ValueError if it is not one
    (checks, readers such as the benchmark)."""
    if len(data) < 5 or data[:1] not in (SNAPSHOT, UPDATE):
        raise ValueError(f"live map message: bad kind or length ({len(data)} bytes)")
    (n,) = _LEN.unpack_from(data, 1)
    if 5 + n > len(data):
        raise ValueError(f"live map message: text of {n} bytes past the end ({len(data)})")
    return data[:1], data[5 : 5 + n].decode(), data[5 + n :]
