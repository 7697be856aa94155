"""Journal events as JetStream messages (the front door writes them, shards read them).

One message per event of :mod:`~tracklayer.services.fusion_service.journal`; the
stream sequence is the journal seq. The body is

=======  ==================================================
1 B      format version (:data:`VERSION`)
1 B      event kind (``EventKind``)
8 B      ``now``: caller's wall clock, float64 (NaN: none)
4 B      length of ``sensor_id`` in UTF-8 bytes
...      ``sensor_id``, then the event's payload to the end
=======  ==================================================

Ids travel in the body, not in headers: a sensor id may hold any text.
"""

from __future__ import annotations

import math
import struct

from tracklayer.services.fusion_service.journal import Event, EventKind

VERSION = 1
_HEAD = struct.Struct(">BBdI")


class EventFormatError(ValueError):
    """A message that is not a journal event of this format; says why."""


def encode_event(kind: EventKind, sensor_id: str, now: float | None, payload: bytes) -> bytes:
    """The message body of one journal event."""
    sid = sensor_id.encode("utf-8", "surrogatepass")
    t = math.nan if now is None else float(now)
    return _HEAD.pack(VERSION, int(kind), t, len(sid)) + sid + payload


def decode_event(seq: int, data: bytes) -> Event:
    """The :class:`Event` at stream sequence ``seq``; :class:`EventFormatError` if bad."""
    if len(data) < _HEAD.size:
        raise EventFormatError(f"journal message {seq}: {len(data)} bytes, shorter than a header")
    version, kind, now, n = _HEAD.unpack_from(data)
    if version != VERSION:
        raise EventFormatError(f"journal message {seq}: format {version}, expected {VERSION}")
    try:
        ev_kind = EventKind(kind)
    except ValueError:
        raise EventFormatError(f"journal message {seq}: unknown event kind {kind}") from None
    end = _HEAD.size + n
    if end > len(data):
        raise EventFormatError(f"journal message {seq}: sensor_id runs past the end")
    sid = data[_HEAD.size : end].decode("utf-8", "surrogatepass")
    return Event(seq, ev_kind, sid, None if math.isnan(now) else now, bytes(data[end:]))
