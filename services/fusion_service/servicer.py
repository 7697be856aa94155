"""``tracklayer.v1.FusionService`` over grpc.aio: a thin servicer on :class:`FusionEngine`.

``StreamFrames`` reads requests in one task and writes acks in the handler,
so a stream keeps up to ``MAX_INFLIGHT_REQUESTS`` requests in flight (the
engine's group commit batches across them and across streams). Acks go out
one per frame, in the order received; a bad frame is answered REJECTED and
the stream goes on. A stream ends early only when a newer stream of the same
sensor replaces it (``ABORTED``) or the service shuts down (``UNAVAILABLE``,
after acknowledging every frame it took), or, with mutual TLS, when the
stream names a sensor its client certificate does not (``PERMISSION_DENIED``,
DESIGN §4; the request holding it is not applied, earlier ones are acked).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import grpc

from tracklayer.services.errors import UserError
from tracklayer.services.fusion_service.engine import (
    GAUGES,
    EngineClosed,
    FusionEngine,
    FusionSettings,
)
from tracklayer.services.fusion_service.journal import JournalError
from tracklayer.services.fusion_service.outbox import OutboxError
from tracklayer.services.limits import (
    MAX_FRAMES_PER_REQUEST,
    MAX_INFLIGHT_REQUESTS,
    MAX_SENSOR_ID_CHARS,
)
from tracklayer.services.rpc.server import (
    MetricsEndpoint,
    ServedByHandle,
    ServerHandle,
    kv,
    read_in_loop,
    start_grpc_server,
    stream_subscription,
)
from tracklayer.services.rpc.tls import SENSOR_KIND, peer_identities, sensor_uri
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

log = logging.getLogger("tracklayer.services.fusion")

SERVICE_NAME = fs.DESCRIPTOR.services_by_name["FusionService"].full_name
_END, _REPLACED, _SHUTDOWN = object(), object(), object()


class _Denied(Exception):
    """A stream named a sensor its client certificate does not (mTLS identity check)."""


class _TooBig(Exception):
    """A request beyond the size limits (frames per request, sensor id length)."""

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.code = code


HELP = {
    "frames_total": "Frames received, by ack status",
    "detections_total": "Detections in accepted frames",
    "tracks_live": "Live (not deleted) tracks",
    "reports_total": "Track reports emitted",
    "outbox_depth": "Reports waiting for the track store's ack",
    "journal_frames": "Frames in the journal",
    "late_frames_total": "Frames acknowledged LATE",
}


class FusionServicer(fs_grpc.FusionServiceServicer):
    """Translates FusionService calls into :class:`FusionEngine` calls.

    ``check_identity`` (mutual TLS): a stream may carry only the sensors its
    client certificate names (SAN ``urn:tracklayer:sensor:<id>``).
    """

    def __init__(self, engine: FusionEngine, *, check_identity: bool = False) -> None:
        self._engine = engine
        self._check_identity = check_identity

    async def StreamFrames(
        self,
        request_iterator: AsyncIterator[fs.StreamFramesRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[fs.StreamFramesResponse]:
        engine = self._engine
        peer = context.peer()
        try:
            st = engine.new_stream(peer)
        except EngineClosed as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        out: asyncio.Queue[object] = asyncio.Queue()  # bounded by `inflight` below
        inflight = asyncio.Semaphore(MAX_INFLIGHT_REQUESTS)
        allowed = peer_identities(context, SENSOR_KIND) if self._check_identity else None

        def check_identity(req: fs.StreamFramesRequest) -> None:
            """With mTLS, every sensor the request names must be one of the certificate's.
            An empty sensor_id is no claim: it stays a REJECTED frame (DESIGN §4)."""
            if allowed is None:
                return
            for sid in (req.sensor_id, *(m.sensor_id for m in req.frames)):
                if sid and sid not in allowed:
                    have = ", ".join(sorted(allowed)) or "no sensor"
                    raise _Denied(
                        f"sensor_id: {sid[:MAX_SENSOR_ID_CHARS]!r} is not this stream's "
                        f"certificate identity ({have}; expected SAN {sensor_uri(sid)[:300]})"
                    )

        def check_size(req: fs.StreamFramesRequest) -> None:
            if len(req.frames) > MAX_FRAMES_PER_REQUEST:
                raise _TooBig(
                    f"frames: {len(req.frames)} in one request, at most "
                    f"{MAX_FRAMES_PER_REQUEST} (send them in several requests)",
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                )
            if len(req.sensor_id) > MAX_SENSOR_ID_CHARS:
                raise _TooBig(
                    f"sensor_id: longer than {MAX_SENSOR_ID_CHARS} characters",
                    grpc.StatusCode.INVALID_ARGUMENT,
                )

        def opened(sensor_id: str) -> None:
            engine.open_stream(st, sensor_id)
            log.info(kv("stream_open", peer=peer, sensor_id=sensor_id))

        async def read() -> None:
            try:
                async for req in request_iterator:
                    check_identity(req)  # before the sensor's stream opens or a frame lands
                    check_size(req)
                    await inflight.acquire()
                    if req.sensor_id and st.sensor_id is None:
                        opened(req.sensor_id)
                    futs = []
                    for msg in req.frames:
                        if st.sensor_id is None and 0 < len(msg.sensor_id) <= MAX_SENSOR_ID_CHARS:
                            opened(msg.sensor_id)
                        futs.append(await engine.submit_frame(msg))
                    out.put_nowait(futs)
                out.put_nowait(_END)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the writer
                out.put_nowait(exc)

        reader = asyncio.create_task(read(), name=f"stream-reader {peer}")

        def stop_reading(sentinel: object) -> None:
            reader.cancel()
            out.put_nowait(sentinel)

        st.on_replaced = lambda: stop_reading(_REPLACED)
        st.on_shutdown = lambda: stop_reading(_SHUTDOWN)
        outcome = "closed"
        try:
            while True:
                item = await out.get()
                if item is _END:
                    break
                if item is _REPLACED:
                    outcome = "replaced"
                    await context.abort(
                        grpc.StatusCode.ABORTED,
                        f"sensor_id: a newer stream of {st.sensor_id!r} replaced this one",
                    )
                if item is _SHUTDOWN:
                    outcome = "shutdown"
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "fusion service shutting down")
                if isinstance(item, EngineClosed):
                    outcome = "engine_closed"
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(item))
                if isinstance(item, _TooBig):
                    outcome = "too_big"
                    log.warning(kv("stream_too_big", peer=peer, reason=str(item)))
                    await context.abort(item.code, str(item))
                if isinstance(item, _Denied):
                    outcome = "permission_denied"
                    engine.permission_denied += 1
                    log.warning(kv("stream_denied", peer=peer, reason=str(item)))
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(item))
                if isinstance(item, BaseException):
                    outcome = "read_error"
                    raise item
                acks = []
                for fut in item:  # type: ignore[attr-defined]
                    try:
                        ack = await fut
                    except EngineClosed as exc:
                        outcome = "engine_closed"
                        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
                    acks.append(ack)
                    st.frames[ack.status] += 1
                inflight.release()
                yield fs.StreamFramesResponse(acks=acks)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            reader.cancel()
            engine.close_stream(st)
            log.info(
                kv(
                    "stream_end",
                    peer=peer,
                    sensor_id=st.sensor_id or "",
                    outcome=outcome,
                    accepted=st.frames[1],
                    duplicate=st.frames[2],
                    late=st.frames[3],
                    rejected=st.frames[4],
                )
            )

    async def DeclareSensors(
        self, request: fs.DeclareSensorsRequest, context: grpc.aio.ServicerContext
    ) -> fs.DeclareSensorsResponse:
        ids = list(request.sensor_ids)
        allowed = set(self._engine.settings.sensors)
        # With mTLS a client declares only sensors its certificate names: a declared sensor
        # holds the ordering watermark back, so a forged declaration would stall tracking.
        own = peer_identities(context, SENSOR_KIND) if self._check_identity else None
        for i, sid in enumerate(ids):
            if not sid:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"sensor_ids[{i}]: empty")
            if len(sid) > MAX_SENSOR_ID_CHARS:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"sensor_ids[{i}]: longer than {MAX_SENSOR_ID_CHARS} characters",
                )
            if own is not None and sid not in own:
                self._engine.permission_denied += 1
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"sensor_ids[{i}]: {sid!r} is not named by the client certificate "
                    f"(expected SAN {sensor_uri(sid)})",
                )
            if allowed and sid not in allowed:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"sensor_ids[{i}]: {sid!r} is not on the --sensors allow-list",
                )
        try:
            expected = await self._engine.declare(ids)
        except EngineClosed as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        log.info(kv("sensors_declared", peer=context.peer(), sensors=len(ids)))
        return fs.DeclareSensorsResponse(expected_sensor_ids=expected)

    async def ListLiveTracks(
        self, request: fs.ListLiveTracksRequest, context: grpc.aio.ServicerContext
    ) -> fs.ListLiveTracksResponse:
        return fs.ListLiveTracksResponse(tracks=self._engine.live_tracks())

    async def SubscribeLiveTracks(
        self, request: fs.SubscribeLiveTracksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[fs.SubscribeLiveTracksResponse]:
        try:
            sub, current = self._engine.subscribe(bool(request.include_current))
        except EngineClosed as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        stream = stream_subscription(
            sub,
            current,
            fs.SubscribeLiveTracksResponse,
            context,
            include_current=request.include_current,
            logger=log,
        )
        async with aclosing(stream):
            async for response in stream:
                yield response

    async def GetStatus(
        self, request: fs.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> fs.GetStatusResponse:
        counters = {k: max(0, int(v)) for k, v in self._engine.counters().items()}
        return fs.GetStatusResponse(counters=counters)


@dataclass
class FusionServer(ServedByHandle):
    """A running fusion service: gRPC server, engine and optional metrics endpoint."""

    handle: ServerHandle
    engine: FusionEngine
    metrics: MetricsEndpoint | None = None
    _stopped: bool = field(default=False, repr=False)

    async def stop(self, grace: float = 2.0, drain_timeout_s: float = 2.0) -> None:
        """Graceful stop (DESIGN §8): NOT_SERVING; streams ack what they took and end;
        every acknowledged frame is applied and its reports recorded (journal flush
        event, outbox); the outbox drains to the store for up to ``drain_timeout_s``."""
        if self._stopped:
            return
        self._stopped = True
        await self.handle.health.enter_graceful_shutdown()
        self.engine.begin_shutdown()
        await self.handle.server.stop(grace)
        await self.engine.stop(drain_timeout_s)
        if self.metrics is not None:
            self.metrics.close()
        log.info(kv("server_stopped", server="fusion"))

    async def kill(self) -> None:
        """Crash stand-in for tests: drop connections and stop without the graceful flush
        (the journal keeps what was committed, exactly as after SIGKILL)."""
        if self._stopped:
            return
        self._stopped = True
        await self.engine.abandon()
        await self.handle.server.stop(0)
        if self.metrics is not None:
            self.metrics.close()


async def start_fusion_server(
    settings: FusionSettings,
    listen: str = "127.0.0.1:0",
    *,
    metrics_port: int | None = None,
    credentials: grpc.ServerCredentials | None = None,
    before_serving: Callable[[FusionEngine], None] | None = None,
) -> FusionServer:
    """Replay the journal, then serve FusionService on ``listen`` (port 0 = ephemeral).

    ``credentials``: mutual-TLS server credentials (:meth:`TlsConfig.server_credentials`);
    with them every stream's sensors are checked against its client certificate.
    ``before_serving(engine)``: called once the journal is replayed and before the
    port opens (e.g. to attach a recorder to the engine's listeners).
    """
    try:
        engine = FusionEngine(settings)
    except JournalError as exc:
        raise UserError(f"--journal: {exc}") from None
    except OutboxError as exc:
        raise UserError(f"--outbox: {exc}") from None
    await engine.start()
    if before_serving is not None:
        try:
            before_serving(engine)
        except BaseException:
            await engine.stop(0.0)
            raise
    servicer = FusionServicer(engine, check_identity=credentials is not None)
    try:
        handle = await start_grpc_server(
            listen,
            name="fusion",
            register=lambda s: fs_grpc.add_FusionServiceServicer_to_server(servicer, s),
            service_names=[SERVICE_NAME],
            credentials=credentials,
        )
    except BaseException:
        await engine.stop(0.0)
        raise
    metrics = None
    if metrics_port is not None:
        try:
            metrics = MetricsEndpoint(
                metrics_port,
                read_in_loop(asyncio.get_running_loop(), engine.counters),
                gauges=GAUGES,
                help_text=HELP,
            )
        except BaseException:
            await handle.server.stop(0)
            await engine.stop(0.0)
            raise
    log.info(
        kv(
            "fusion_started",
            fusion_id=settings.fusion_id,
            journal=str(settings.journal_path),
            outbox=str(settings.outbox_path),
            store=settings.store_target or "",
            sensors=",".join(settings.sensors),
            idle_timeout_s=settings.idle_timeout_s,
        )
    )
    return FusionServer(handle=handle, engine=engine, metrics=metrics)
