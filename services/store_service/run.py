"""The track store run in the foreground (``tracklayer consumer``): open the SQLite file,
serve until SIGTERM/SIGINT, stop with grace."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from tracklayer.services.rpc.foreground import serve_until_stopped
from tracklayer.services.rpc.tls import TlsConfig, server_credentials
from tracklayer.services.store_service.servicer import start_track_store_server

LABEL = "tracklayer consumer"


async def serve_track_store(
    db_path: str | Path,
    listen: str,
    *,
    tls: TlsConfig | None = None,
    metrics_port: int | None = None,
    grace: float = 2.0,
    http: str | None = None,
) -> int:
    """Serve TrackStoreService over ``db_path`` on ``listen`` until SIGTERM/SIGINT; 0.
    ``http``: also serve the live map on ``HOST:PORT`` (printed as ``live map on URL``)."""
    server = await start_track_store_server(
        db_path,
        listen,
        metrics_port=metrics_port,
        credentials=server_credentials(tls),
        http=http,
    )
    if server.live_map is not None:
        print(f"{LABEL}: live map on {server.live_map.url}", flush=True)
    # What start-up made (modules, the gRPC and web servers: ~45,000 objects, ~60,000 with
    # the live map's aiohttp) lives as long as the process: out of the cyclic collector's
    # sight, its full passes walk only what the store made since.
    gc.collect()
    gc.freeze()
    await serve_until_stopped(LABEL, server, tls, grace)
    sys.stdout.flush()
    return 0
