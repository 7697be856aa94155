"""A ``v1.SensorFrame``'s detections read straight from its wire bytes (the journal's
payload), when they have the layout ``SensorFrame`` writes with every field set: one numpy
view instead of a Python loop over the parsed detections. Part of the conversion layer
(:mod:`tracklayer.services.wire.convert` is its only caller); anything else returns None
and the caller reads the parsed message (the same floats)."""

from __future__ import annotations

import numpy as np

#: One detection as ``SensorFrame`` writes it with every field set (not zero): field 6
#: (LEN 47) { field 1 (LEN 27) { x, y, z: fixed64 fields 1-3 }, fixed64 fields 2, 3 }.
_DET_TAGS = b"\x32\x2f\x0a\x1b\x09" + 8 * b"\0" + b"\x11" + 8 * b"\0" + b"\x19" + 8 * b"\0"
_DET_TAGS += b"\x11" + 8 * b"\0" + b"\x19" + 8 * b"\0"
_DET_BYTES = len(_DET_TAGS)  # 49
_DET_FLOATS = (5, 14, 23, 32, 41)  # offsets of x, y, z, angular_sigma, intensity
_DET_TAG_AT = np.array(  # the bytes that are not floats: tags and lengths
    [i for i in range(_DET_BYTES) if all(i - f not in range(8) for f in _DET_FLOATS)]
)
_DET_TAG_VALUES = np.frombuffer(_DET_TAGS, np.uint8)[_DET_TAG_AT]
_DETECTIONS_TAG = 0x32  # field 6, LEN


def detection_columns(raw: bytes, n: int) -> np.ndarray | None:
    """The (n, 5) columns (x, y, z, angular_sigma, intensity) of a ``v1.SensorFrame``'s
    detections read from its wire bytes at once, or None unless the bytes after fields
    1-5 are exactly ``n`` detections in the layout above (else the caller reads the
    parsed message: same floats, one detection at a time)."""
    p, end = 0, len(raw)
    while p < end and raw[p] != _DETECTIONS_TAG:  # fields 1-5: single-byte tags
        tag = raw[p]
        if not 8 <= tag < 48 or tag & 7 not in (0, 2):  # fields 1-5: VARINT or LEN
            return None
        p += 1
        value = 0
        for shift in range(0, 70, 7):  # a varint: the value, or the length of a LEN field
            if p >= end:
                return None
            byte = raw[p]
            p += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
        else:
            return None
        if tag & 7 == 2:
            p += value
    if end - p != n * _DET_BYTES:
        return None
    if n == 0:
        return np.empty((0, 5))
    rows = np.frombuffer(raw, np.uint8, n * _DET_BYTES, p).reshape(n, _DET_BYTES)
    if not (rows[:, _DET_TAG_AT] == _DET_TAG_VALUES).all():
        return None
    cols = np.empty((n, 5))
    for j, at in enumerate(_DET_FLOATS):
        cols[:, j] = rows[:, at : at + 8].copy().view("<f8")[:, 0]
    return cols
