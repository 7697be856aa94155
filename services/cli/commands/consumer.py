"""``tracklayer consumer``: the cloud-side track store (TrackStoreService over SQLite)."""

from __future__ import annotations

import argparse
import asyncio

from tracklayer.services.cli.options import add_metrics_port_argument
from tracklayer.services.rpc.server import configure_logging
from tracklayer.services.rpc.tls import TlsConfig, add_tls_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "consumer",
        help="run the track store (cloud-side consumer of track reports)",
        description=(
            "Serve tracklayer.v1.TrackStoreService: store every track report revision once "
            "in one SQLite file (WAL), list tracks, give histories, stream live reports. "
            "Also serves grpc.health.v1.Health and server reflection. Stops cleanly on "
            "SIGTERM/SIGINT."
        ),
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:50052",
        metavar="HOST:PORT",
        help="address to serve on; port 0 picks a free port (default: %(default)s)",
    )
    p.add_argument(
        "--db",
        default="tracks.sqlite",
        metavar="FILE.sqlite",
        help="SQLite file holding the reports, created if absent (default: %(default)s)",
    )
    add_metrics_port_argument(p)
    p.add_argument(
        "--http",
        default=None,
        metavar="HOST:PORT",
        help=(
            "also serve the live map (a web page of the tracks, updated live) on this "
            "address; a bare PORT or :PORT binds loopback only; port 0 picks a free port; "
            "plain HTTP, no authentication: expose it through a TLS reverse proxy "
            "(default: off)"
        ),
    )
    p.add_argument(
        "--grace",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds open calls get to finish on shutdown (default: %(default)s)",
    )
    add_tls_arguments(p, role="server")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tracklayer.services.store_service.run import serve_track_store

    if args.http is not None:
        from tracklayer.services.live_map.address import parse_http_address

        parse_http_address(args.http)  # a bad address fails before anything starts
    configure_logging()
    return asyncio.run(
        serve_track_store(
            args.db,
            args.listen,
            tls=TlsConfig.from_args(args),
            metrics_port=args.metrics_port,
            grace=args.grace,
            http=args.http,
        )
    )
