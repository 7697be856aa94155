"""``tracklayer.v1.TrackStoreService``: the track store (the card's cloud-side consumer,
``tracklayer consumer``) served over gRPC from a :class:`TrackStore`.

Thin servicer: every SQLite call runs on one :class:`DatabaseThread` (so a commit's
fsync never blocks the event loop) and stored reports fan out to
``SubscribeTracks`` subscribers in the order they were stored. The latest
revision of each live (not deleted) track is also kept in memory, so that a
subscription's starting picture and its live feed are taken atomically.

With mutual TLS (``check_identity``), ``PublishTracks`` is open to fusion
identities only (client certificate SAN ``urn:tracklayer:fusion:<id>``, else
``PERMISSION_DENIED``), and fusion ``<id>`` may publish only its own tracks
``<id>-<n>`` (others are acknowledged REJECTED); reading needs any
certificate from the CA.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from tracklayer.services.errors import InvalidArgument, NotFound, PermissionDenied, UserError
from tracklayer.services.rpc.broadcast import Broadcaster
from tracklayer.services.rpc.server import (
    MetricsEndpoint,
    ServedByHandle,
    ServerHandle,
    kv,
    sample_key,
    serve_metrics,
    start_grpc_server,
    stream_subscription,
)
from tracklayer.services.rpc.tls import FUSION_KIND, peer_identities
from tracklayer.services.sqlite_db import DatabaseThread
from tracklayer.services.store_service.track_store import (
    DELETED,
    DUPLICATE,
    REJECTED,
    STORED,
    TrackStore,
    TrackStoreError,
)
from tracklayer.v1 import track_pb2, track_store_service_pb2, track_store_service_pb2_grpc

if TYPE_CHECKING:
    from tracklayer.services.live_map.server import LiveMapServer

log = logging.getLogger("tracklayer.services.store")

SERVICE_NAME = track_store_service_pb2.DESCRIPTOR.services_by_name["TrackStoreService"].full_name
_STATUS_LABEL = {STORED: "stored", DUPLICATE: "duplicate", REJECTED: "rejected"}
TRACK_STORE_GAUGES = (
    "reports_stored",
    "tracks_stored",
    "tracks_live",
    "subscribers",
    "publish_streams",
)


class TrackStoreServicer(track_store_service_pb2_grpc.TrackStoreServiceServicer):
    """Serves a :class:`TrackStore`; publish, list, history and live subscriptions."""

    def __init__(self, store: TrackStore, *, check_identity: bool = False) -> None:
        self._store = store
        self._check_identity = check_identity
        self._denied = 0
        self._db = DatabaseThread("store-db")
        self._hub: Broadcaster[track_pb2.TrackReport] = Broadcaster()
        self._feeds: list[Callable[[list[track_pb2.TrackReport], list[bytes]], None]] = []
        self._live: dict[str, track_pb2.TrackReport] = {r.track_id: r for r in store.latest()}
        self._publish = dict.fromkeys(_STATUS_LABEL.values(), 0)
        self._streams = 0

    def counters(self) -> dict[str, int]:
        """Counters as Prometheus sample names (the store's equivalent of GetStatus)."""
        out = {sample_key("publish_total", status=k): v for k, v in self._publish.items()}
        out.update(
            reports_stored=self._store.n_reports,
            tracks_stored=self._store.n_tracks,
            tracks_live=len(self._live),
            subscribers=self._hub.subscriber_count,
            publish_streams=self._streams,
        )
        out["permission_denied_total"] = self._denied
        return out

    def _show_stored(self, reports: list[track_pb2.TrackReport], results: list) -> None:
        """Update the live picture and fan out (synchronously: atomic w.r.t. subscribers
        and feeds). Subscribers get every stored report; feeds only those that are now
        their track's latest (as the live picture: a revision arriving after a newer one,
        a DELETED one included, changes neither)."""
        stored, latest, raws = [], [], []
        for rep, res in zip(reports, results, strict=True):
            if res.status != STORED:
                continue
            stored.append(rep)
            if res.latest:
                latest.append(rep)
                raws.append(res.raw)
                if rep.status == DELETED:
                    self._live.pop(rep.track_id, None)
                else:
                    self._live[rep.track_id] = rep
        self._hub.publish(stored)
        if latest:
            for feed in list(self._feeds):
                try:
                    feed(latest, raws)
                except Exception:  # a reader's bug must not stop the publisher
                    log.exception("live feed failed")

    async def PublishTracks(
        self,
        request_iterator: AsyncIterator[track_store_service_pb2.PublishTracksRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[track_store_service_pb2.PublishTracksResponse]:
        peer = context.peer()
        fusion_ids: frozenset[str] | None = None
        if self._check_identity:
            fusion_ids = peer_identities(context, FUSION_KIND)
            if not fusion_ids:
                self._denied += 1
                log.warning(kv("publish_denied", peer=peer, reason="no fusion identity"))
                raise PermissionDenied(
                    "PublishTracks: only a fusion service may publish; the client certificate "
                    "names no urn:tracklayer:fusion:<id>"
                )
        self._streams += 1
        tally = dict.fromkeys(_STATUS_LABEL.values(), 0)
        log.info(kv("publish_stream_open", peer=peer))
        outcome = "closed"
        try:
            async for req in request_iterator:
                reports = list(req.reports)
                foreign = _foreign_tracks(reports, fusion_ids)
                mine = [r for i, r in enumerate(reports) if i not in foreign]
                results = await self._db.run(self._store.publish, mine)
                self._show_stored(mine, results)
                acks = []
                for res in _merge(reports, results, foreign):
                    label = _STATUS_LABEL[res.status]
                    tally[label] += 1
                    self._publish[label] += 1
                    acks.append(
                        track_pb2.PublishAck(
                            track_id=res.track_id,
                            revision=res.revision,
                            status=res.status,
                            reason=res.reason,
                        )
                    )
                yield track_store_service_pb2.PublishTracksResponse(acks=acks)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._streams -= 1
            log.info(kv("publish_stream_end", peer=peer, outcome=outcome, **tally))

    async def ListTracks(
        self, request: track_store_service_pb2.ListTracksRequest, context: grpc.aio.ServicerContext
    ) -> track_store_service_pb2.ListTracksResponse:
        tracks = await self._db.run(self._store.latest, bool(request.include_deleted))
        return track_store_service_pb2.ListTracksResponse(tracks=tracks)

    async def GetTrackHistory(
        self,
        request: track_store_service_pb2.GetTrackHistoryRequest,
        context: grpc.aio.ServicerContext,
    ) -> track_store_service_pb2.GetTrackHistoryResponse:
        if not request.track_id:
            raise InvalidArgument("track_id: empty")
        reports = await self._db.run(self._store.history, request.track_id)
        if not reports:
            raise NotFound(f"track_id: no track {request.track_id[:200]!r} is stored")
        return track_store_service_pb2.GetTrackHistoryResponse(reports=reports)

    async def SubscribeTracks(
        self,
        request: track_store_service_pb2.SubscribeTracksRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[track_store_service_pb2.SubscribeTracksResponse]:
        # Snapshot and subscription in one synchronous step: nothing lost, nothing twice.
        sub = self._hub.subscribe()
        current = [self._live[k] for k in sorted(self._live)] if request.include_current else []
        stream = stream_subscription(
            sub,
            current,
            track_store_service_pb2.SubscribeTracksResponse,
            context,
            include_current=request.include_current,
            logger=log,
        )
        async with aclosing(stream):
            async for response in stream:
                yield response

    def open_feed(
        self, on_batch: Callable[[list[track_pb2.TrackReport], list[bytes]], None]
    ) -> Callable[[], None]:
        """In-process live feed (the live map): ``on_batch(reports, raws)`` called with
        the reports of every batch stored from now on that are now their track's latest
        revision (as :meth:`live_reports`: a late older revision never reaches a feed), and
        each one's bytes as stored, on this loop,
        inside the publish (it must not block; an exception is logged, never reaches the
        publisher); returns the function that stops the calls."""
        self._feeds.append(on_batch)
        return lambda: self._feeds.remove(on_batch) if on_batch in self._feeds else None

    def live_reports(self) -> list[track_pb2.TrackReport]:
        """The latest report of each live (not deleted) track, by track id."""
        return [self._live[k] for k in sorted(self._live)]

    def live_count(self) -> int:
        """Number of live tracks."""
        return len(self._live)

    async def recent_reports(
        self, track_ids: list[str], n: int
    ) -> dict[str, list[track_pb2.TrackReport]]:
        """The last ``n`` stored revisions of each track, oldest first (database thread)."""
        return await self._db.run(self._store.recent, track_ids, n)

    def end_subscriptions(self) -> None:
        """End every live subscription cleanly (server shutdown)."""
        self._hub.close()

    def close(self) -> None:
        """Release the worker thread and the database (after the server stopped)."""
        self._db.close()
        self._store.close()


@dataclass(frozen=True)
class _Refused:
    """A report refused before the store saw it (shaped like the store's result)."""

    track_id: str
    revision: int
    reason: str
    status: int = REJECTED


def _foreign_tracks(
    reports: list[track_pb2.TrackReport], fusion_ids: frozenset[str] | None
) -> dict[int, _Refused]:
    """Reports (by index) whose track id is not ``<fusion id>-<n>`` of the publisher
    (exactly: fusion ``a`` does not own ``a-b-1``, a track of fusion ``a-b``)."""
    if fusion_ids is None:
        return {}

    def own(track_id: str) -> bool:
        head, sep, n = track_id.rpartition("-")
        return bool(sep) and head in fusion_ids and n.isascii() and n.isdigit()

    return {
        i: _Refused(
            r.track_id,
            r.revision,
            f"track_id: {r.track_id[:200]!r} is not a track of fusion "
            f"{', '.join(sorted(fusion_ids))} (the client certificate's identity)",
        )
        for i, r in enumerate(reports)
        if not own(r.track_id)
    }


def _merge(reports: list, results: list, refused: dict[int, _Refused]) -> list:
    """Store results and refusals back in request order (one per report)."""
    if not refused:
        return results
    stored = iter(results)
    return [refused[i] if i in refused else next(stored) for i in range(len(reports))]


@dataclass
class TrackStoreServer(ServedByHandle):
    """A running track store: gRPC server, servicer and optional metrics endpoint."""

    handle: ServerHandle
    servicer: TrackStoreServicer
    metrics: MetricsEndpoint | None = None
    live_map: LiveMapServer | None = None
    _stopped: bool = field(default=False, repr=False)

    async def stop(self, grace: float = 2.0) -> None:
        """Graceful stop: NOT_SERVING, end subscriptions, finish calls, close the file."""
        if self._stopped:
            return
        self._stopped = True
        await self.handle.health.enter_graceful_shutdown()
        if self.live_map is not None:
            await self.live_map.stop()
        self.servicer.end_subscriptions()
        await self.handle.server.stop(grace)
        if self.metrics is not None:
            self.metrics.close()
        self.servicer.close()
        log.info(kv("server_stopped", server="store"))


async def start_track_store_server(
    db_path: str | Path,
    listen: str = "127.0.0.1:0",
    *,
    metrics_port: int | None = None,
    credentials: grpc.ServerCredentials | None = None,
    http: str | None = None,
) -> TrackStoreServer:
    """Open ``db_path`` and serve TrackStoreService on ``listen`` (port 0 = ephemeral).

    ``credentials``: mutual-TLS server credentials; with them publishing is
    checked against the client certificate's fusion identity. ``http``: also serve
    the live map (``HOST:PORT``, ``live_map``) on this event loop.
    """
    try:
        store = TrackStore(db_path)
    except TrackStoreError as exc:
        raise UserError(f"--db: {exc}") from None
    servicer = TrackStoreServicer(store, check_identity=credentials is not None)
    async with AsyncExitStack() as undo:  # on a failure, undo what was started (in reverse)
        undo.callback(servicer.close)
        handle = await start_grpc_server(
            listen,
            name="store",
            register=lambda s: track_store_service_pb2_grpc.add_TrackStoreServiceServicer_to_server(
                servicer, s
            ),
            service_names=[SERVICE_NAME],
            credentials=credentials,
        )
        undo.push_async_callback(handle.server.stop, 0)
        metrics = serve_metrics(metrics_port, servicer.counters, gauges=TRACK_STORE_GAUGES)
        if metrics is not None:
            undo.callback(metrics.close)
        live_map = None
        if http is not None:  # aiohttp is loaded only by a store that serves the map
            from tracklayer.services.live_map.server import start_live_map

            live_map = await start_live_map(servicer, http)
        undo.pop_all()
    log.info(kv("store_open", db=str(db_path), **store.counts()))
    return TrackStoreServer(handle=handle, servicer=servicer, metrics=metrics, live_map=live_map)
