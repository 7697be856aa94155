"""A ``v1.SensorFrame``'s detections read straight from its wire bytes (a recording's
message, the journal's payload), when they have the layout ``SensorFrame`` writes with
every field set: a few numpy calls instead of a Python loop over the parsed detections.
Part of the conversion layer (:mod:`tracklayer.services.wire.convert` is its only
caller); anything else returns None and the caller reads the parsed message (the same
floats)."""

from __future__ import annotations

import numpy as np

#: One detection as ``SensorFrame`` writes it with every field set (not zero): field 6
#: (LEN 47) { field 1 (LEN 27) { x, y, z: fixed64 fields 1-3 }, fixed64 fields 2, 3 }.
_DET_TAGS = b"\x32\x2f\x0a\x1b\x09" + 8 * b"\0" + b"\x11" + 8 * b"\0" + b"\x19" + 8 * b"\0"
_DET_TAGS += b"\x11" + 8 * b"\0" + b"\x19" + 8 * b"\0"
_DET_BYTES = len(_DET_TAGS)  # 49
_DET_FLOATS = (5, 14, 23, 32, 41)  # offsets of x, y, z, angular_sigma, intensity
#: (offset in a detection, its byte) of every byte that is not part of a float.
_DET_TAG_AT = tuple(
    (i, _DET_TAGS[i : i + 1])
    for i in range(_DET_BYTES)
    if all(i - f not in range(8) for f in _DET_FLOATS)
)
#: The floats start 5 bytes into a detection and follow each other 9 bytes apart (a
#: one-byte tag between two): as an (n, 5) array, strides (49, 9) from offset 5.
_FLOAT_AT, _FLOAT_STEP = _DET_FLOATS[0], _DET_FLOATS[1] - _DET_FLOATS[0]
assert _DET_FLOATS == tuple(_FLOAT_AT + _FLOAT_STEP * j for j in range(5))
_DETECTIONS_TAG = 0x32  # field 6, LEN
_VECTOR_FIELD = b"\x1b"  # a Vector3 with x, y, z set: LEN 27

Columns = tuple[np.ndarray, np.ndarray, np.ndarray]


def _usual_head(raw: bytes) -> int:
    """Where field 6 starts when fields 1-5 are laid out as ``SensorFrame`` writes them
    (each once, in order: id of < 128 bytes, sequence, time of < 128 bytes, both vectors
    with x, y, z set); -1 otherwise (then :func:`_walk_head` decides)."""
    if len(raw) < 2 or raw[0] != 0x0A or raw[1] >= 0x80:  # field 1, LEN
        return -1
    p = 2 + raw[1]
    if raw[p : p + 1] == b"\x10":  # field 2, VARINT (absent when 0)
        p += 1
        while p < len(raw) and raw[p] >= 0x80:
            p += 1
        p += 1
    if raw[p : p + 1] != b"\x1a" or p + 1 >= len(raw) or raw[p + 1] >= 0x80:  # field 3
        return -1
    p += 2 + raw[p + 1]
    if raw[p : p + 2] != b"\x22" + _VECTOR_FIELD or raw[p + 29 : p + 31] != b"\x2a" + _VECTOR_FIELD:
        return -1
    return p + 58


def _walk_head(raw: bytes) -> int:
    """Where field 6 starts after fields 1-5 in any order and form (single-byte tags,
    VARINT or LEN); -1 when the bytes are not such fields."""
    p, end = 0, len(raw)
    while p < end and raw[p] != _DETECTIONS_TAG:
        tag = raw[p]
        if not 8 <= tag < 48 or tag & 7 not in (0, 2):  # fields 1-5: VARINT or LEN
            return -1
        p += 1
        value = 0
        for shift in range(0, 70, 7):  # a varint: the value, or the length of a LEN field
            if p >= end:
                return -1
            byte = raw[p]
            p += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
        else:
            return -1
        if tag & 7 == 2:
            p += value
    return p


def detection_columns(raw: bytes, n: int) -> Columns | None:
    """(los (n, 3), angular_sigma (n,), intensity (n,)): a ``v1.SensorFrame``'s
    detections read from its wire bytes at once (new float64 arrays, C order), or None
    unless the bytes after fields 1-5 are exactly ``n`` detections in the layout above
    (else the caller reads the parsed message: same floats, one detection at a time)."""
    end = len(raw)
    p = _usual_head(raw)
    if p != end - n * _DET_BYTES:  # not the usual head, or more than detections after it
        p = _walk_head(raw)
        if p < 0 or end - p != n * _DET_BYTES:
            return None
    if n == 0:
        return np.empty((0, 3)), np.empty(0), np.empty(0)
    for at, byte in _DET_TAG_AT:  # every detection's tags and lengths (byte strings)
        if raw[p + at :: _DET_BYTES] != byte * n:
            return None
    floats = np.ndarray(  # a read-only view of the bytes (unaligned doubles)
        (n, 5), "<f8", raw, p + _FLOAT_AT, (_DET_BYTES, _FLOAT_STEP)
    )
    f8 = np.float64  # (native order: a copy either way)
    return floats[:, :3].astype(f8), floats[:, 3].astype(f8), floats[:, 4].astype(f8)
