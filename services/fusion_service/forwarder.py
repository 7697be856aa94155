"""Delivers the outbox to the track store over ``PublishTracks``, at least once, in order.

One long-lived stream; each request carries up to ``batch`` of the oldest
outbox entries not yet sent on it and its response carries one ack per report; up
to ``IN_FLIGHT`` requests are on their way at once (the next one is read from the
outbox and sent while the store works on the last: its transactions stay at most
``batch`` reports, and no round trip waits for the outbox's thread). The store
answers in order; a stream that breaks leaves its unanswered entries in the outbox,
sent again on the next stream (the store acks a report it has as DUPLICATE). Entries leave
the outbox only on STORED or DUPLICATE; REJECTED ones move aside (see
:mod:`.outbox`). While the store is unreachable the forwarder retries with
exponential back-off (``backoff_s`` doubling up to ``max_backoff_s``); the
outbox keeps everything meanwhile, on disk.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.services.rpc.server import GRPC_OPTIONS, kv
from tracklayer.v1 import track_pb2, track_store_service_pb2

log = logging.getLogger("tracklayer.services.forwarder")

_DELIVERED = (track_pb2.PUBLISH_STATUS_STORED, track_pb2.PUBLISH_STATUS_DUPLICATE)

#: Requests sent on the stream and not yet answered, at most.
IN_FLIGHT = 2

#: ``PublishTracks``' method path: its requests go out as the bytes of
#: :func:`publish_request`, its responses are parsed as usual.
_PUBLISH = "/{}/PublishTracks".format(
    track_store_service_pb2.DESCRIPTOR.services_by_name["TrackStoreService"].full_name
)


def publish_request(reports: list[bytes]) -> bytes:
    """The wire bytes of a ``PublishTracksRequest`` of ``reports`` (serialised
    ``TrackReport``s, as the outbox keeps them): each as field 1, length-delimited,
    which is what the message's serialiser writes; no report is parsed only to be
    serialised again (stop 23: that was ~7% of the engine's event loop at raid scale)."""
    out = bytearray()
    for raw in reports:
        out.append(0x0A)  # field 1, wire type 2
        n = len(raw)
        while n >= 0x80:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        out += raw
    return bytes(out)


class Forwarder:
    """Background delivery of ``outbox`` to the store at ``target`` (``HOST:PORT``).

    ``db(fn, *args)`` runs an outbox call on the owner's database thread.
    """

    def __init__(
        self,
        outbox: Outbox,
        target: str,
        db: Callable[..., Awaitable[Any]],
        *,
        batch: int = 512,
        backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        credentials: grpc.ChannelCredentials | None = None,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        """``in_flight`` > 1 needs ``outbox.peek(limit, after_id)`` (the SQLite outbox);
        1: ``peek(limit)``, the oldest unsettled (the scale-out report feed)."""
        self._outbox = outbox
        self._in_flight = in_flight
        self.target = target
        self._db = db
        self._batch = batch
        self._backoff = (backoff_s, max_backoff_s)
        self._credentials = credentials
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.reconnects = 0

    def start(self) -> None:
        """Start delivering in a task of the running loop."""
        self._task = asyncio.create_task(self._run(), name="outbox-forwarder")

    def notify(self) -> None:
        """New entries were added to the outbox."""
        self._wake.set()

    async def stop(self, drain_timeout_s: float = 2.0) -> None:
        """Deliver what is left for up to ``drain_timeout_s``, then stop (the rest stays queued)."""
        if self._task is None:
            return
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), drain_timeout_s)
        except TimeoutError:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        log.info(kv("forwarder_stopped", target=self.target, outbox_depth=self._outbox.depth))

    async def abandon(self) -> None:
        """Stop at once, delivering nothing more (crash stand-in for tests)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _channel(self) -> grpc.aio.Channel:
        if self._credentials is None:
            return grpc.aio.insecure_channel(self.target, options=list(GRPC_OPTIONS))
        return grpc.aio.secure_channel(self.target, self._credentials, options=list(GRPC_OPTIONS))

    async def _run(self) -> None:
        self._delay = self._backoff[0]
        async with self._channel() as channel:
            publish = channel.stream_stream(  # requests as bytes: publish_request
                _PUBLISH,
                request_serializer=None,
                response_deserializer=track_store_service_pb2.PublishTracksResponse.FromString,
            )
            while True:
                if self._stopping and self._outbox.depth == 0:
                    return
                try:
                    await self._deliver(publish)
                    return  # only returns when stopping with an empty outbox
                except (
                    grpc.aio.AioRpcError,
                    ConnectionError,
                    asyncio.InvalidStateError,
                    sqlite3.OperationalError,
                ) as exc:
                    # InvalidStateError: a write after the store ended the call;
                    # OperationalError: the outbox cannot be written (full disk): retry.
                    if self.connected:
                        self.reconnects += 1
                    self.connected = False
                    code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "EOF"
                    if isinstance(exc, sqlite3.OperationalError):
                        code = f"outbox: {exc}"
                    log.warning(
                        kv(
                            "store_unavailable",
                            target=self.target,
                            code=code,
                            retry_s=round(self._delay, 3),
                            outbox_depth=self._outbox.depth,
                        )
                    )
                    if self._stopping:
                        return
                    try:
                        await asyncio.wait_for(self._stop_event.wait(), self._delay)
                    except TimeoutError:
                        pass
                    self._delay = min(self._delay * 2, self._backoff[1])

    async def _deliver(self, publish: grpc.aio.StreamStreamMultiCallable) -> None:
        call = publish()
        sent: deque[list[tuple[int, bytes]]] = deque()  # requests not yet answered, in order
        last_id = 0  # the newest entry sent on this stream
        try:
            while True:
                self._wake.clear()
                if len(sent) < self._in_flight:
                    after = (last_id,) if self._in_flight > 1 else ()
                    rows = await self._db(self._outbox.peek, self._batch, *after)
                    if rows:
                        await call.write(publish_request([b for _, b in rows]))
                        sent.append(rows)
                        last_id = rows[-1][0]
                        continue
                if sent:
                    await self._answered(call, sent.popleft())
                    continue
                if self._stopping:
                    await call.done_writing()
                    return
                await self._wake.wait()
        finally:
            call.cancel()

    async def _answered(self, call: Any, rows: list[tuple[int, bytes]]) -> None:  # noqa: ANN401
        """Read the response to the request of ``rows``; settle them in the outbox."""
        resp = await call.read()
        if resp is grpc.aio.EOF:
            raise ConnectionError("store closed the PublishTracks stream")
        if not self.connected:
            self.connected = True
            self._delay = self._backoff[0]
            log.info(kv("store_connected", target=self.target))
        if len(resp.acks) != len(rows):
            raise ConnectionError(f"store sent {len(resp.acks)} acks for {len(rows)} reports")
        delivered, rejected = [], []
        for (row_id, _), ack in zip(rows, resp.acks, strict=True):
            if ack.status in _DELIVERED:
                delivered.append(row_id)
            else:
                rejected.append((row_id, ack.reason or "rejected without reason"))
                log.error(
                    kv(
                        "report_rejected_by_store",
                        track_id=ack.track_id,
                        revision=ack.revision,
                        reason=ack.reason,
                    )
                )
        await self._db(self._outbox.settle, delivered, rejected)
