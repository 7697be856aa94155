"""``tracklayer fusion``: the live fusion service (FusionService over grpc.aio)."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
from pathlib import Path

from tracklayer.services.cli.options import (
    add_config_argument,
    add_metrics_port_argument,
    check_name,
    config_from_args,
)
from tracklayer.services.errors import UserError
from tracklayer.services.rpc.server import configure_logging, parse_host_port
from tracklayer.services.rpc.tls import (
    FUSION_KIND,
    TlsConfig,
    add_tls_arguments,
    channel_credentials,
)

#: Default ``--checkpoint-every``: embedded (a restart replays the tracker) and with
#: ``--nats`` (the front door replays ordering only; each checkpoint of its ordering
#: state costs ~0.5 s of CPU on a raid, measured in bench_scaleout_shards).
CHECKPOINT_EVERY = 500
CHECKPOINT_EVERY_NATS = 3000

#: Default ``--tracking-nice``: the tracking process's CPU priority below the engine's
#: (N > 0: the acks' event loop wins the cores when they compete). 0: on a machine busy
#: with other work a niced tracker fell behind, and no gain is shown yet (DESIGN §8.7).
TRACKING_NICE = 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fusion",
        help="run the live fusion service (sensors stream frames in, reports go to the store)",
        description=(
            "Serve tracklayer.v1.FusionService: take sensor frames over StreamFrames, "
            "journal them (SQLite) before acknowledging, track them with the same core "
            "as `tracklayer track`, and deliver track reports to the track store through "
            "a durable outbox. A restart replays the journal (same track ids and "
            "revisions). Also serves grpc.health.v1.Health and server reflection; stops "
            "cleanly on SIGTERM/SIGINT."
        ),
    )
    _add_service_arguments(p)
    add_metrics_port_argument(p)
    add_config_argument(p)
    _add_state_and_cap_arguments(p)
    _add_output_arguments(p)
    add_tls_arguments(p, role="server")
    p.set_defaults(func=run)


def _add_service_arguments(p: argparse.ArgumentParser) -> None:
    """Where the service listens and delivers, its identity, files, sensors, idle timeout."""
    p.add_argument(
        "--listen",
        default="127.0.0.1:50051",
        metavar="HOST:PORT",
        help="address to serve on; port 0 picks a free port (default: %(default)s)",
    )
    p.add_argument(
        "--store",
        required=True,
        metavar="HOST:PORT",
        help="track store (tracklayer consumer) to deliver reports to",
    )
    p.add_argument(
        "--id",
        default="fusion",
        metavar="NAME",
        help="fusion identity: track ids are NAME-<n> (default: %(default)s)",
    )
    p.add_argument(
        "--journal", metavar="FILE", help="event journal (default: ./<id>.journal.sqlite)"
    )
    p.add_argument(
        "--outbox", metavar="FILE", help="durable report outbox (default: ./<id>.outbox.sqlite)"
    )
    p.add_argument(
        "--sensors",
        metavar="ID,...",
        help="allow-list of sensor ids, expected from the start (default: any sensor)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="wall seconds a silent sensor may hold the ordering watermark (0 = forever; "
        "default: %(default)s)",
    )


def _add_state_and_cap_arguments(p: argparse.ArgumentParser) -> None:
    """Checkpoints (bounded replay and journal), the caps on sensors and streams, the
    shutdown grace."""
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="journal events between two checkpoints of the fusion state, which bound "
        f"the replay after a restart and let the journal be trimmed (0 = never; "
        f"default: {CHECKPOINT_EVERY}, with --nats {CHECKPOINT_EVERY_NATS}: the front "
        "door replays ordering only, and its checkpoint holds every frame it orders)",
    )
    p.add_argument(
        "--checkpoint-interval",
        type=float,
        default=15.0,
        metavar="S",
        help="also checkpoint after this many wall seconds with new events (0 = never; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--max-sensors",
        type=int,
        default=10_000,
        metavar="N",
        help="distinct sensors the service keeps state for; one more is refused "
        "RESOURCE_EXHAUSTED (0 = no cap; default: %(default)s)",
    )
    p.add_argument(
        "--max-streams-per-client",
        type=int,
        default=1_000,
        metavar="N",
        help="open StreamFrames calls per client identity (certificate, else address); "
        "one more is refused RESOURCE_EXHAUSTED (0 = no cap; default: %(default)s)",
    )
    p.add_argument(
        "--tracking-nice",
        type=int,
        default=TRACKING_NICE,
        metavar="N",
        help="added to the tracking process's nice value (0..19; 0 = the service's own "
        "priority): when the cores are short, the acknowledgements run before the "
        "tracking, which catches up from the journal (default: %(default)s)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds streams get to finish on shutdown (default: %(default)s)",
    )


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    """``--record`` and the scale-out flags (``--nats``, ``--shards``)."""
    p.add_argument(
        "--record",
        metavar="FILE.mcap",
        help="record every received frame (any ack status, arrival order and time) and "
        "every emitted report to this MCAP file; complete after SIGTERM, readable up to "
        "its last 64 KiB chunk after a crash; an existing file is kept and FILE.1.mcap, "
        "FILE.2.mcap, ... used instead (default: off)",
    )
    p.add_argument(
        "--nats",
        metavar="URL",
        help="scale out (docs/scaleout.md): journal every accepted frame to the JetStream "
        "broker at URL (nats://HOST:PORT) and acknowledge after the broker did; "
        "`tracklayer worker` processes track; their reports reach --store through this "
        "service (default: off, everything in this process)",
    )
    p.add_argument(
        "--shards",
        type=int,
        default=1,
        metavar="S",
        help="with --nats: number of shards the workers run (default: %(default)s)",
    )
    p.add_argument(
        "--layout",
        metavar="LON,...",
        help="with --nats and --shards S > 1: S cut longitudes (deg, ascending in "
        "[-180, 180)); shard k then owns the longitudes from the k-th cut to the next, "
        "e.g. --layout=-87.45,105.6 (choose them by measured load: `tracklayer layout`). "
        "Pinned with S in the broker (default: the 30-degree sectors dealt in turn)",
    )
    p.add_argument(
        "--lease-ttl",
        type=float,
        metavar="S",
        help="with --nats: seconds a worker's shard lease lives without renewal (renewed "
        "every second), so a dead or stalled worker's shards move after this long; longer "
        "rides out starved workers on an overloaded machine, shorter moves shards sooner. "
        # scaleout.names LEASE_TTL_S and LEASE_TTL_RANGE_S (not imported before serving)
        "Set on the broker for every worker of the deployment (default: 4; 4..600)",
    )


def check_scaleout_args(args: argparse.Namespace) -> None:
    """Flags that do not go with --nats (or only with it) fail naming the flag."""
    if not args.nats:
        if args.shards != 1:
            raise UserError("--shards: only with --nats (the embedded service is one shard)")
        if args.layout:
            raise UserError("--layout: only with --nats and --shards S > 1")
        if args.lease_ttl is not None:
            raise UserError("--lease-ttl: only with --nats (the embedded service has no leases)")
        return
    from tracklayer.services.scaleout.names import LEASE_TTL_RANGE_S, LEASE_TTL_S

    if args.lease_ttl is None:
        args.lease_ttl = LEASE_TTL_S
    low, high = LEASE_TTL_RANGE_S
    if not low <= args.lease_ttl <= high:  # also refuses nan
        raise UserError(f"--lease-ttl: must be {low:g}..{high:g} seconds, got {args.lease_ttl}")
    for flag, value in (("--journal", args.journal), ("--outbox", args.outbox),
                        ("--record", args.record)):  # fmt: skip
        if value:
            raise UserError(f"{flag}: not used with --nats (the broker's stream is the journal)")
    if args.shards < 1:
        raise UserError(f"--shards: must be >= 1, got {args.shards}")
    if args.layout:
        from tracklayer.fusion.cells import parse_cuts

        if args.shards == 1:
            raise UserError("--layout: only with --shards S > 1 (one shard owns every cell)")
        try:
            args.layout = parse_cuts(args.layout, args.shards)
        except ValueError as exc:
            raise UserError(f"--{exc}") from None


def settings_from_args(args: argparse.Namespace):  # -> FusionSettings
    """Validate the flags into the engine's ``FusionSettings``."""
    from tracklayer.services.fusion_service.settings import FusionSettings, default_paths

    check_name(args.id, "--id", " (it names the tracks and the default journal and outbox files)")
    if not math.isfinite(args.idle_timeout) or args.idle_timeout < 0:
        raise UserError(f"--idle-timeout: must be >= 0 seconds, got {args.idle_timeout}")
    parse_host_port(args.store, "--store")
    if args.checkpoint_every is None:
        args.checkpoint_every = CHECKPOINT_EVERY_NATS if args.nats else CHECKPOINT_EVERY
    if args.checkpoint_every < 0:
        raise UserError(f"--checkpoint-every: must be >= 0, got {args.checkpoint_every}")
    for flag in ("max_sensors", "max_streams_per_client"):
        if getattr(args, flag) < 0:
            name = "--" + flag.replace("_", "-")
            raise UserError(f"{name}: must be >= 0, got {getattr(args, flag)}")
    if not 0 <= args.tracking_nice <= 19:
        raise UserError(f"--tracking-nice: must be 0..19, got {args.tracking_nice}")
    if not args.checkpoint_interval >= 0 or args.checkpoint_interval == float("inf"):
        raise UserError(
            f"--checkpoint-interval: must be finite and >= 0, got {args.checkpoint_interval}"
        )
    sensors: tuple[str, ...] = ()
    if args.sensors:
        sensors = tuple(sorted({s.strip() for s in args.sensors.split(",") if s.strip()}))
        if not sensors:
            raise UserError("--sensors: no sensor ids given")
    journal, outbox = default_paths(args.id)
    journal = os.fspath(args.journal) if args.journal else journal
    outbox = os.fspath(args.outbox) if args.outbox else outbox
    if os.path.abspath(journal) == os.path.abspath(outbox):
        raise UserError("--outbox: must differ from --journal")
    return FusionSettings(
        fusion_id=args.id,
        config=config_from_args(args),
        sensors=sensors,
        journal_path=Path(journal),
        outbox_path=Path(outbox),
        store_target=args.store,
        idle_timeout_s=float(args.idle_timeout),
        checkpoint_every=args.checkpoint_every,
        checkpoint_interval_s=float(args.checkpoint_interval),
        max_sensors=args.max_sensors,
        max_streams_per_client=args.max_streams_per_client,
        store_credentials=channel_credentials(tls_from_args(args)),
        tracking_process=not args.nats,  # the front door's core tracks nothing
        tracking_nice=args.tracking_nice,
    )


def tls_from_args(args: argparse.Namespace) -> TlsConfig | None:
    """``--tls-*`` as one config for both sides: it serves sensors with it and dials the
    store with it, so the certificate must name this service (urn:tracklayer:fusion:<id>)."""
    tls = TlsConfig.from_args(args)
    if tls is not None:
        tls.require_identities(FUSION_KIND, [args.id])
    return tls


def run(args: argparse.Namespace) -> int:
    from tracklayer.services.fusion_service.run import serve_fusion

    check_scaleout_args(args)
    configure_logging()
    if args.nats:
        from tracklayer.services.scaleout.front_door import serve_front_door

        return asyncio.run(
            serve_front_door(
                settings_from_args(args),
                args.listen,
                args.nats,
                args.shards,
                layout=tuple(args.layout or ()),
                tls=tls_from_args(args),
                metrics_port=args.metrics_port,
                grace=args.grace,
                lease_ttl_s=args.lease_ttl,
            )
        )
    return asyncio.run(
        serve_fusion(
            settings_from_args(args),
            args.listen,
            tls=tls_from_args(args),
            metrics_port=args.metrics_port,
            record=args.record,
            grace=args.grace,
        )
    )
