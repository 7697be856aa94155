"""One ``StreamFrames`` call: requests read ahead, checked, submitted, acks in order.

A reader task takes requests while fewer than ``MAX_INFLIGHT_REQUESTS`` wait for
their acks (the engine's group commit batches across them and across streams) and
checks each before any of its frames lands: with mutual TLS every sensor it names
must be one of the client certificate's (DESIGN §4), and a request may carry at
most ``MAX_FRAMES_PER_REQUEST`` frames and a sensor id of at most
``MAX_SENSOR_ID_CHARS``. :meth:`FrameStream.acks` yields each request's acks in
the order received. The call ends early by raising a
:class:`~tracklayer.services.errors.ServiceError` (``rpc.status`` gives its code):
a newer stream of the same sensor replaced it, the service shuts down (after
acknowledging every frame it took), a request broke a check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from tracklayer.fusion.core import STATUS_LABELS
from tracklayer.services.errors import (
    Aborted,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from tracklayer.services.fusion_service.caps import TooManySensors, client_identity
from tracklayer.services.fusion_service.engine import EngineClosed, FusionEngine
from tracklayer.services.limits import (
    MAX_FRAMES_PER_REQUEST,
    MAX_INFLIGHT_REQUESTS,
    MAX_SENSOR_ID_CHARS,
)
from tracklayer.services.rpc.server import kv
from tracklayer.services.rpc.tls import sensor_uri
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import sensor_pb2

log = logging.getLogger("tracklayer.services.fusion")

_END = object()

#: How long a stream whose requests ended waits for its call's cancellation before it
#: counts as closed by its client. grpc.aio ends the request iterator the same way for
#: a client's half-close and for a lost connection (the cancellation reaches the
#: handler one event-loop turn later), so without this wait a cut stream could close
#: its sensor in the core, and a cut of every stream at once flush every track.
CLOSE_GRACE_S = 0.25


class StreamReplaced(Aborted):
    """A newer stream of the same sensor replaced this one."""


class ServiceStopping(Unavailable):
    """The fusion service is shutting down; every frame taken was acknowledged."""


class SensorNotCertified(PermissionDenied):
    """A request named a sensor its client certificate does not (mTLS identity check)."""


class TooManyFrames(ResourceExhausted):
    """A request with more than ``MAX_FRAMES_PER_REQUEST`` frames."""


class SensorIdTooLong(InvalidArgument):
    """A request whose ``sensor_id`` is longer than ``MAX_SENSOR_ID_CHARS``."""


#: How a stream ended, for the ``stream_end`` log line (first matching class).
_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (StreamReplaced, "replaced"),
    (ServiceStopping, "shutdown"),
    (EngineClosed, "engine_closed"),
    (TooManyFrames, "too_big"),
    (SensorIdTooLong, "too_big"),
    (SensorNotCertified, "permission_denied"),
    (TooManySensors, "too_many_sensors"),
    (asyncio.CancelledError, "cancelled"),
    (GeneratorExit, "gone"),  # the call ended while an ack was on its way out
)

#: Outcomes of a call that ended without its client closing it: a cut, not a close.
_CUT_OUTCOMES = frozenset({"cancelled", "gone", "read_error"})


def check_identity(req: fs.StreamFramesRequest, allowed: frozenset[str] | None) -> None:
    """With mTLS (``allowed``: the certificate's sensors), every sensor the request names
    must be one of them. An empty sensor_id is no claim: it stays a REJECTED frame."""
    if allowed is None:
        return
    for sid in (req.sensor_id, *(m.sensor_id for m in req.frames)):
        if sid and sid not in allowed:
            have = ", ".join(sorted(allowed)) or "no sensor"
            raise SensorNotCertified(
                f"sensor_id: {sid[:MAX_SENSOR_ID_CHARS]!r} is not this stream's "
                f"certificate identity ({have}; expected SAN {sensor_uri(sid)[:300]})"
            )


def check_size(req: fs.StreamFramesRequest) -> None:
    """A request within the frames-per-request and sensor-id limits."""
    if len(req.frames) > MAX_FRAMES_PER_REQUEST:
        raise TooManyFrames(
            f"frames: {len(req.frames)} in one request, at most "
            f"{MAX_FRAMES_PER_REQUEST} (send them in several requests)"
        )
    if len(req.sensor_id) > MAX_SENSOR_ID_CHARS:
        raise SensorIdTooLong(f"sensor_id: longer than {MAX_SENSOR_ID_CHARS} characters")


class FrameStream:
    """One StreamFrames call on ``engine`` from ``peer``; ``allowed``: the sensors of
    the client certificate (mutual TLS), None when identities are not checked."""

    def __init__(
        self,
        engine: FusionEngine,
        peer: str,
        allowed: frozenset[str] | None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self._engine = engine
        self._cancelled = cancelled  # the call's context.cancelled: the connection died
        self._peer = peer
        self._allowed = allowed
        # EngineClosed: the service is stopping; TooManyStreams: the per-client cap.
        self._state = engine.new_stream(peer, client_identity(peer, allowed))
        self._out: asyncio.Queue[object] = asyncio.Queue()  # bounded by _inflight
        self._inflight = asyncio.Semaphore(MAX_INFLIGHT_REQUESTS)

    def _open(self, sensor_id: str) -> None:
        self._engine.open_stream(self._state, sensor_id)
        log.info(kv("stream_open", peer=self._peer, sensor_id=sensor_id))

    async def _read(self, requests: AsyncIterator[fs.StreamFramesRequest]) -> None:
        """Reader task: check, submit and hand each request's ack futures to :meth:`acks`."""
        st = self._state
        try:
            async for req in requests:
                check_identity(req, self._allowed)  # before the stream opens or a frame lands
                check_size(req)
                # --max-sensors: the whole request or none of it (before any frame lands)
                self._engine.caps.admit_sensors(
                    [req.sensor_id]
                    + [m.sensor_id for m in req.frames if len(m.sensor_id) <= MAX_SENSOR_ID_CHARS]
                )
                await self._inflight.acquire()
                if req.sensor_id and st.sensor_id is None:
                    self._open(req.sensor_id)
                futs = []
                for msg in req.frames:
                    if st.sensor_id is None and 0 < len(msg.sensor_id) <= MAX_SENSOR_ID_CHARS:
                        self._open(msg.sensor_id)
                    futs.append(await self._engine.submit_frame(msg))
                self._out.put_nowait(futs)
            self._out.put_nowait(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the writer
            self._out.put_nowait(exc)

    async def acks(
        self, requests: AsyncIterator[fs.StreamFramesRequest]
    ) -> AsyncIterator[list[sensor_pb2.FrameAck]]:
        """Each request's acks, in order; run under ``contextlib.aclosing``."""
        st = self._state
        reader = asyncio.create_task(self._read(requests), name=f"stream-reader {self._peer}")

        def stop_reading(error: Exception) -> None:
            reader.cancel()
            self._out.put_nowait(error)

        st.on_replaced = lambda: stop_reading(
            StreamReplaced(f"sensor_id: a newer stream of {st.sensor_id!r} replaced this one")
        )
        st.on_shutdown = lambda: stop_reading(ServiceStopping("fusion service shutting down"))
        st.on_unavailable = stop_reading
        outcome = "closed"
        try:
            while (item := await self._out.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                acks = []
                for fut in item:  # type: ignore[attr-defined]
                    ack = await fut
                    acks.append(ack)
                    st.frames[ack.status] += 1
                self._inflight.release()
                yield acks
            await asyncio.sleep(CLOSE_GRACE_S)  # a cut's cancellation lands here (see above)
        except BaseException as exc:
            outcome = self._ended_by(exc)
            raise
        finally:
            reader.cancel()
            cut = outcome in _CUT_OUTCOMES or (self._cancelled is not None and self._cancelled())
            self._engine.close_stream(st, cut=cut)
            counts = {label: st.frames[int(status)] for status, label in STATUS_LABELS.items()}
            log.info(
                kv(
                    "stream_end",
                    peer=self._peer,
                    sensor_id=st.sensor_id or "",
                    outcome=outcome,
                    **counts,
                )
            )

    def _ended_by(self, exc: BaseException) -> str:
        """The outcome ``exc`` means; logs and counts a refused request."""
        if isinstance(exc, TooManySensors):
            log.warning(kv("stream_refused", peer=self._peer, reason=str(exc)))
        elif isinstance(exc, TooManyFrames | SensorIdTooLong):
            log.warning(kv("stream_too_big", peer=self._peer, reason=str(exc)))
        elif isinstance(exc, SensorNotCertified):
            self._engine.permission_denied += 1
            log.warning(kv("stream_denied", peer=self._peer, reason=str(exc)))
        for cls, outcome in _OUTCOMES:
            if isinstance(exc, cls):
                return outcome
        return "read_error"  # anything else came from reading the requests
