"""What the fusion engine's worker applies to the core: one queued input at a time.

:class:`EngineInput` is one queued input (a frame, a stream open or close, a
declaration, an idle-timeout tick, the final flush), in the shape the journal keeps
it. :func:`apply_input` applies one to a :class:`FusionCore`, live and on journal
replay alike, and says what to append to the journal when it changed state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from tracklayer.fusion.core import FusionCore
from tracklayer.fusion.domain import FrameStatus, SensorFrame, TrackReport
from tracklayer.services.fusion_service.journal import Event, EventKind
from tracklayer.services.limits import MAX_DETECTIONS_PER_FRAME, MAX_SENSOR_ID_CHARS
from tracklayer.services.rpc.server import kv
from tracklayer.services.wire.convert import frame_from_proto
from tracklayer.v1 import sensor_pb2

log = logging.getLogger("tracklayer.services.fusion")


@dataclass(eq=False)
class EngineInput:
    """One input queued for the worker; ``future`` (if any) resolves once it is durable."""

    kind: EventKind
    sensor_id: str = ""
    now: float | None = None
    frame: sensor_pb2.SensorFrame | None = None
    ids: tuple[str, ...] = ()
    future: asyncio.Future[Any] | None = None
    arrival_ns: int = 0
    #: ``frame`` converted already (the ordering's, handed to the tracker's core)
    domain: SensorFrame | None = None


class Applied(NamedTuple):
    """What applying one input did: the frame status (ACCEPTED for other kinds), its
    reason, the reports it released, the journal payload (None: nothing changed,
    nothing to journal), the kind to journal it as (None: the input's own kind) and the
    accepted frame (domain; None for anything else)."""

    status: FrameStatus
    reason: str
    reports: list[TrackReport]
    journal_payload: bytes | None
    journal_kind: EventKind | None = None
    frame: SensorFrame | None = None


def frame_size_error(msg: sensor_pb2.SensorFrame) -> str | None:
    """``"field: why"`` when a wire frame exceeds the service's size limits, else None."""
    if len(msg.sensor_id) > MAX_SENSOR_ID_CHARS:
        return f"sensor_id: longer than {MAX_SENSOR_ID_CHARS} characters"
    n = len(msg.detections)
    if n > MAX_DETECTIONS_PER_FRAME:
        return f"detections: {n} in one frame, more than {MAX_DETECTIONS_PER_FRAME}"
    return None


def _submit_frame(core: FusionCore, item: EngineInput, replay: bool) -> Applied:
    """A FRAME: size limits (live only: the journal holds frames accepted under them),
    conversion, then the core; journaled when ACCEPTED."""
    too_big = None if replay else frame_size_error(item.frame)
    if too_big:
        return _refused(core, too_big)
    raw = None if replay else item.frame.SerializeToString()  # journaled if ACCEPTED
    try:
        frame = item.domain if item.domain is not None else frame_from_proto(item.frame, raw)
    except (ValueError, OverflowError) as exc:
        return _refused(core, str(exc))
    return _submit_domain(core, frame, item.now, raw)


def _refused(core: FusionCore, why: str) -> Applied:
    status, reason, reports = core.reject(why)
    return Applied(status, reason, reports, None)


def _submit_domain(
    core: FusionCore, frame: SensorFrame, now: float | None, raw: bytes | None
) -> Applied:
    """A converted frame to the core; ``raw``: the wire frame's bytes, journaled when
    ACCEPTED (None on replay)."""
    status, reason, reports = core.submit(frame, now)
    if core.last_noted:  # not accepted, but its time is the sensor's latest received
        return Applied(status, reason, reports, str(frame.time_ns).encode(), EventKind.SEEN)
    if status is not FrameStatus.ACCEPTED:
        return Applied(status, reason, reports, None)
    return Applied(status, reason, reports, b"" if raw is None else raw, frame=frame)


def apply_input(
    core: FusionCore, open_streams: Counter, item: EngineInput, *, replay: bool
) -> Applied:
    """Apply one input to ``core``; ``open_streams`` counts the journaled stream opens
    minus closes per sensor. On ``replay`` nothing is logged or serialised."""
    kind, sid, now = item.kind, item.sensor_id, item.now
    reports: list[TrackReport] = []
    payload: bytes | None = b""  # journaled, no payload (OPEN, CLOSE, FLUSH)
    if kind == EventKind.FRAME:
        return _submit_frame(core, item, replay)
    if kind == EventKind.DECLARE:
        ids = [s for s in item.ids if s]
        core.declare(ids, now)
        payload = "\n".join(ids).encode() if ids else None
    elif kind == EventKind.OPEN:
        core.open_stream(sid, now)
        open_streams[sid] += 1
    elif kind == EventKind.CLOSE:
        reports = core.close_stream(sid)
        open_streams[sid] -= 1
        if open_streams[sid] <= 0:
            del open_streams[sid]
    elif kind == EventKind.IDLE:
        timeout = float(item.ids[0])
        expired, reports = core.expire_idle(now, timeout)
        payload = repr(timeout).encode() if expired else None
        if expired and not replay:
            log.info(kv("idle_timeout", sensors=",".join(expired), timeout_s=timeout))
    elif kind == EventKind.FLUSH:
        reports = core.flush()
    elif kind == EventKind.SEEN:  # replay only: live frames journal SEEN themselves
        core.note_received(sid, int(item.ids[0]))
    return Applied(FrameStatus.ACCEPTED, "", reports, payload)


def fail_waiting(items: Iterable[EngineInput | None], error: BaseException) -> None:
    """Inputs that will never be applied: their waiters get ``error``."""
    for item in items:
        if item is not None and item.future is not None and not item.future.done():
            item.future.set_exception(error)


def apply_event(core: FusionCore, open_streams: Counter, event: Event) -> Applied:
    """Apply one journaled event to ``core`` as :func:`apply_input` replays it; a
    frame's payload bytes go straight to the one conversion (``frame_from_proto``),
    no :class:`EngineInput` in between (the replay, the tracking core's read-back)."""
    if event.kind != EventKind.FRAME:
        return apply_input(core, open_streams, input_from_event(event), replay=True)
    try:
        frame = frame_from_proto(sensor_pb2.SensorFrame.FromString(event.payload), event.payload)
    except (ValueError, OverflowError) as exc:
        return _refused(core, str(exc))
    return _submit_domain(core, frame, event.now, None)


def input_from_event(event: Event) -> EngineInput:
    """The input a journaled event recorded (for replay)."""
    item = EngineInput(event.kind, event.sensor_id, event.now)
    if event.kind == EventKind.FRAME:
        item.frame = sensor_pb2.SensorFrame.FromString(event.payload)
    elif event.kind == EventKind.DECLARE:
        item.ids = tuple(event.payload.decode().split("\n")) if event.payload else ()
    elif event.kind in (EventKind.IDLE, EventKind.SEEN):
        item.ids = (event.payload.decode(),)
    return item
