"""``tracklayer.v1.FusionService`` over grpc.aio: a thin servicer on :class:`FusionEngine`.

``StreamFrames`` is a :class:`FrameStream`: acks go out one per frame, in the order
received; a bad frame is answered REJECTED and the stream goes on. A stream ends
early only when a newer stream of the same sensor replaces it (``ABORTED``) or the
service shuts down (``UNAVAILABLE``, after acknowledging every frame it took), or,
with mutual TLS, when the stream names a sensor its client certificate does not
(``PERMISSION_DENIED``, DESIGN §4; the request holding it is not applied, earlier
ones are acked). Refusals are raised as ``ServiceError``s; ``rpc.status`` maps them
to status codes. The module also starts the service (:func:`start_fusion_server`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2

from tracklayer.services.errors import InvalidArgument, PermissionDenied, UserError
from tracklayer.services.fusion_service.engine import FusionEngine
from tracklayer.services.fusion_service.frame_stream import FrameStream
from tracklayer.services.fusion_service.journal import JournalError
from tracklayer.services.fusion_service.metrics import GAUGES, HELP
from tracklayer.services.fusion_service.outbox import OutboxError
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.limits import MAX_SENSOR_ID_CHARS
from tracklayer.services.rpc.server import (
    MetricsEndpoint,
    ServedByHandle,
    ServerHandle,
    kv,
    serve_metrics,
    start_grpc_server,
    stream_subscription,
)
from tracklayer.services.rpc.tls import SENSOR_KIND, peer_identities, sensor_uri
from tracklayer.services.wire import convert
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

log = logging.getLogger("tracklayer.services.fusion")

SERVICE_NAME = fs.DESCRIPTOR.services_by_name["FusionService"].full_name


class FusionServicer(fs_grpc.FusionServiceServicer):
    """Translates FusionService calls into :class:`FusionEngine` calls.

    ``check_identity`` (mutual TLS): a stream may carry only the sensors its
    client certificate names (SAN ``urn:tracklayer:sensor:<id>``).
    """

    def __init__(self, engine: FusionEngine, *, check_identity: bool = False) -> None:
        self._engine = engine
        self._check_identity = check_identity

    def _certified_sensors(self, context: grpc.aio.ServicerContext) -> frozenset[str] | None:
        """The sensors the client certificate names (None: identities not checked)."""
        return peer_identities(context, SENSOR_KIND) if self._check_identity else None

    async def StreamFrames(
        self,
        request_iterator: AsyncIterator[fs.StreamFramesRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[fs.StreamFramesResponse]:
        stream = FrameStream(
            self._engine, context.peer(), self._certified_sensors(context), context.cancelled
        )
        async with aclosing(stream.acks(request_iterator)) as batches:
            async for acks in batches:
                yield fs.StreamFramesResponse(acks=acks)

    async def DeclareSensors(
        self, request: fs.DeclareSensorsRequest, context: grpc.aio.ServicerContext
    ) -> fs.DeclareSensorsResponse:
        ids = list(request.sensor_ids)
        # With mTLS a client declares only sensors its certificate names: a declared sensor
        # holds the ordering watermark back, so a forged declaration would stall tracking.
        own = self._certified_sensors(context)
        for i, sid in enumerate(ids):
            self._check_declared(i, sid, own)
        expected = await self._engine.declare(ids)
        log.info(kv("sensors_declared", peer=context.peer(), sensors=len(ids)))
        return fs.DeclareSensorsResponse(expected_sensor_ids=expected)

    def _check_declared(self, i: int, sid: str, own: frozenset[str] | None) -> None:
        """``sensor_ids[i]``: not empty, within the length limit, named by the client
        certificate (mTLS) and on the ``--sensors`` allow-list (if there is one)."""
        if not sid:
            raise InvalidArgument(f"sensor_ids[{i}]: empty")
        if len(sid) > MAX_SENSOR_ID_CHARS:
            raise InvalidArgument(f"sensor_ids[{i}]: longer than {MAX_SENSOR_ID_CHARS} characters")
        if own is not None and sid not in own:
            self._engine.permission_denied += 1
            raise PermissionDenied(
                f"sensor_ids[{i}]: {sid!r} is not named by the client certificate "
                f"(expected SAN {sensor_uri(sid)})"
            )
        allowed = self._engine.settings.sensors
        if allowed and sid not in allowed:
            raise InvalidArgument(f"sensor_ids[{i}]: {sid!r} is not on the --sensors allow-list")

    async def ListLiveTracks(
        self, request: fs.ListLiveTracksRequest, context: grpc.aio.ServicerContext
    ) -> fs.ListLiveTracksResponse:
        await self._engine.caught_up()  # read your writes: every acked frame is tracked
        return fs.ListLiveTracksResponse(tracks=self._engine.live_tracks())

    async def SubscribeLiveTracks(
        self, request: fs.SubscribeLiveTracksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[fs.SubscribeLiveTracksResponse]:
        sub, current = self._engine.subscribe(bool(request.include_current))
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
        biases = [convert.bias_to_proto(b) for b in self._engine.sensor_biases()]
        return fs.GetStatusResponse(counters=counters, sensor_biases=biases)


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


def _health_setter(handle: ServerHandle) -> Callable[[bool], None]:
    """Health follows the engine: NOT_SERVING while it cannot journal (full disk)."""

    def set_serving(serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for svc in ("", SERVICE_NAME):
            asyncio.ensure_future(handle.health.set(svc, status))

    return set_serving


async def start_fusion_server(
    settings: FusionSettings,
    listen: str = "127.0.0.1:0",
    *,
    metrics_port: int | None = None,
    credentials: grpc.ServerCredentials | None = None,
    before_serving: Callable[[FusionEngine], None] | None = None,
    engine: FusionEngine | None = None,
) -> FusionServer:
    """Replay the journal, then serve FusionService on ``listen`` (port 0 = ephemeral).

    ``credentials``: mutual-TLS server credentials (:meth:`TlsConfig.server_credentials`);
    with them every stream's sensors are checked against its client certificate.
    ``before_serving(engine)``: called once the journal is replayed and before the
    port opens (e.g. to attach a recorder to the engine's listeners). ``engine``: one
    built by the caller (the scale-out front door's, on a JetStream journal).
    """
    try:
        if engine is None:
            engine = FusionEngine(settings)
    except JournalError as exc:
        raise UserError(f"--journal: {exc}") from None
    except OutboxError as exc:
        raise UserError(f"--outbox: {exc}") from None
    await engine.start()
    async with AsyncExitStack() as undo:  # on a failure, undo what was started (in reverse)
        undo.push_async_callback(engine.stop, 0.0)
        if before_serving is not None:
            before_serving(engine)
        servicer = FusionServicer(engine, check_identity=credentials is not None)
        handle = await start_grpc_server(
            listen,
            name="fusion",
            register=lambda s: fs_grpc.add_FusionServiceServicer_to_server(servicer, s),
            service_names=[SERVICE_NAME],
            credentials=credentials,
        )
        undo.push_async_callback(handle.server.stop, 0)
        engine.health_listeners.append(_health_setter(handle))
        metrics = serve_metrics(metrics_port, engine.metrics, gauges=GAUGES, help_text=HELP)
        undo.pop_all()
    log.info(
        kv(
            "fusion_started",
            fusion_id=settings.fusion_id,
            journal=str(engine.journal.path),
            outbox=str(engine.outbox.path),
            store=settings.store_target or "",
            sensors=",".join(settings.sensors),
            idle_timeout_s=settings.idle_timeout_s,
        )
    )
    return FusionServer(handle=handle, engine=engine, metrics=metrics)
