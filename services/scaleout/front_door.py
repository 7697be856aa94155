"""The scale-out front door (``tracklayer fusion --nats URL --shards S``).

The same ``FusionService`` and ``FusionEngine`` as the embedded service (streams, acks,
DUPLICATE / LATE / REJECTED, mTLS identities, caps and limits), with three parts
swapped: the journal is the JetStream stream (:class:`StreamJournal`: a frame is
acknowledged only after the broker acknowledged it), the core orders but does not
track (:class:`OrderingOnly`: the statuses depend only on the ordering), and the
outbox is the REPORTS stream the shards publish to (:class:`ReportFeed`), delivered
to ``--store`` by the usual forwarder. ``ListLiveTracks`` and ``SubscribeLiveTracks``
read the shards' reports from that stream (:class:`LiveFeed`).
"""

from __future__ import annotations

import dataclasses
import logging

import grpc

from tracklayer.fusion.cells import MAX_SHARDS
from tracklayer.services.errors import UserError
from tracklayer.services.fusion_service.engine import FusionEngine
from tracklayer.services.fusion_service.follower import OrderingOnly
from tracklayer.services.fusion_service.forwarder import Forwarder
from tracklayer.services.fusion_service.journal import JournalError
from tracklayer.services.fusion_service.servicer import FusionServer, start_fusion_server
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.rpc.foreground import serve_until_stopped
from tracklayer.services.rpc.server import kv
from tracklayer.services.rpc.tls import TlsConfig, server_credentials
from tracklayer.services.scaleout.link import NatsLink
from tracklayer.services.scaleout.live_feed import LiveFeed
from tracklayer.services.scaleout.names import LEASE_TTL_S, Names
from tracklayer.services.scaleout.report_feed import ReportFeed
from tracklayer.services.scaleout.shard_status import ShardStatusView
from tracklayer.services.scaleout.stream_journal import StreamJournal

log = logging.getLogger("tracklayer.services.fusion")
LABEL = "tracklayer fusion"
#: Shard counts this version runs (sharding by sky cells: docs/scaleout.md).
SUPPORTED_SHARDS = tuple(range(1, MAX_SHARDS + 1))
#: K of the hand-overs between shards (fusion.tracker.region), pinned with S > 1.
HANDOVER_DELAY_FRAMES = 128


def pinned_settings(
    settings: FusionSettings, shards: int, layout: tuple[float, ...] = ()
) -> dict[str, object]:
    """What the front door pins in the settings bucket and the workers build shards from
    (``layout``: the cut longitudes of ``fusion --layout``, deg; () the interleaved map)."""
    pinned: dict[str, object] = {
        "fusion_id": settings.fusion_id,
        "config": settings.config.to_mapping(),
        "sensors": sorted(settings.sensors),
        "shards": shards,
    }
    if shards > 1:  # K: frames from a hand-over's decision to its effect (region.py)
        pinned["handover_delay"] = HANDOVER_DELAY_FRAMES
    if layout:  # absent for the interleaved map: documents pinned before it still match
        pinned["layout"] = list(layout)
    return pinned


def build_front_door(
    settings: FusionSettings,
    nats_url: str,
    shards: int,
    nats_tls: TlsConfig | None = None,
    layout: tuple[float, ...] = (),
    lease_ttl_s: float = LEASE_TTL_S,
) -> tuple[FusionEngine, NatsLink]:
    """The engine on the broker's journal and report stream (not started) and its link
    (mutual TLS to the broker with ``nats_tls``); sets the shard leases' TTL (s)."""
    if shards not in SUPPORTED_SHARDS:
        raise UserError(
            f"--shards: must be 1..{MAX_SHARDS} (the sky-cell map has {MAX_SHARDS} longitude "
            f"sectors: docs/scaleout.md), got {shards}"
        )
    client = f"tracklayer-fusion-{settings.fusion_id}"
    link = NatsLink(nats_url, client, Names(settings.fusion_id), nats_tls, lease_ttl_s)
    try:
        journal = StreamJournal(link)
        journal.shards = shards
        journal.check_settings(pinned_settings(settings, shards, layout))
        feed = ReportFeed(link)
        local = dataclasses.replace(settings, store_target=None, tracker_factory=OrderingOnly)
        engine = FusionEngine(local, journal=journal, outbox=feed)  # type: ignore[arg-type]
    except JournalError as exc:
        link.close()
        raise UserError(f"--nats: {exc}") from None
    except BaseException:
        link.close()
        raise
    if settings.store_target:
        engine.forwarder = Forwarder(
            feed,  # type: ignore[arg-type]
            settings.store_target,
            feed.run,
            max_backoff_s=settings.store_max_backoff_s,
            credentials=settings.store_credentials,
            in_flight=1,  # the feed peeks the oldest unsettled reports only
        )
    engine.counter_sources.append(feed.counters)
    view = ShardStatusView(link, shards, lambda: journal.committed_seq)
    engine.counter_sources.append(view.counters)
    return engine, link


async def start_front_door_server(
    settings: FusionSettings,
    listen: str,
    nats_url: str,
    shards: int = 1,
    *,
    credentials: grpc.ServerCredentials | None = None,
    metrics_port: int | None = None,
    nats_tls: TlsConfig | None = None,
    layout: tuple[float, ...] = (),
    lease_ttl_s: float = LEASE_TTL_S,
) -> tuple[FusionServer, NatsLink]:
    """Start the front door's engine, forwarder and gRPC server; close the returned link
    after ``server.stop()``."""
    engine, link = build_front_door(settings, nats_url, shards, nats_tls, layout, lease_ttl_s)
    feed = LiveFeed(link, engine.hub.publish)
    engine.live_source = feed.tracks
    try:
        feed.start()
        if engine.forwarder is not None:
            engine.forwarder.start()
        server = await start_fusion_server(
            engine.settings,
            listen,
            metrics_port=metrics_port,
            credentials=credentials,
            engine=engine,
        )
    except BaseException:
        feed.stop()
        if engine.forwarder is not None:
            await engine.forwarder.abandon()
        link.close()
        raise
    log.info(
        kv("front_door_started", nats=nats_url, journal=engine.journal.path, shards=shards,
           layout=",".join(map(repr, layout)) or "interleaved", lease_ttl_s=lease_ttl_s)
    )  # fmt: skip
    return server, link


async def serve_front_door(
    settings: FusionSettings,
    listen: str,
    nats_url: str,
    shards: int,
    *,
    layout: tuple[float, ...] = (),
    tls: TlsConfig | None = None,
    metrics_port: int | None = None,
    grace: float = 2.0,
    lease_ttl_s: float = LEASE_TTL_S,
) -> int:
    """Serve FusionService on ``listen``, journaling to the broker at ``nats_url``, until
    SIGTERM/SIGINT (0) or an engine failure (1). ``tls`` serves the sensors and, with a
    ``tls://`` broker URL, is the client certificate towards the broker too."""
    server, link = await start_front_door_server(
        settings, listen, nats_url, shards,
        credentials=server_credentials(tls), metrics_port=metrics_port,
        nats_tls=tls if nats_url.startswith("tls://") else None, layout=layout,
        lease_ttl_s=lease_ttl_s,
    )  # fmt: skip
    engine = server.engine
    try:
        cuts = f", wedges from {', '.join(f'{c:g}' for c in layout)} deg E" if layout else ""
        print(f"{LABEL}: journal {engine.journal.path}, {shards} shard(s){cuts}", flush=True)
        await serve_until_stopped(LABEL, server, tls, grace, failure=engine.wait_failed)
        return 1 if engine.failed is not None else 0
    finally:
        link.close()
