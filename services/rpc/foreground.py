"""A started server in the foreground of a command: print where it listens, serve until
SIGTERM/SIGINT (or until a failure it is told to watch), then stop with grace."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from tracklayer.services.rpc.server import MetricsEndpoint, wait_for_shutdown_signal
from tracklayer.services.rpc.tls import TlsConfig, transport_description


class RunningServer(Protocol):
    """What a running service object offers here (``FusionServer``, ``TrackStoreServer``)."""

    @property
    def address(self) -> str: ...

    metrics: MetricsEndpoint | None

    async def stop(self, grace: float) -> None: ...


def announce(label: str, server: RunningServer, tls: TlsConfig | None) -> None:
    """``<label>: listening on HOST:PORT (transport)``, then the metrics port if served."""
    print(f"{label}: listening on {server.address} ({transport_description(tls)})", flush=True)
    if server.metrics is not None:
        print(f"{label}: metrics on port {server.metrics.port}", flush=True)


async def serve_until_stopped(
    label: str,
    server: RunningServer,
    tls: TlsConfig | None,
    grace: float,
    *,
    failure: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Announce ``server``, wait for SIGTERM/SIGINT or for ``failure()`` to return
    (whichever comes first), then ``server.stop(grace)``, also when cancelled."""
    announce(label, server, tls)
    waits = {asyncio.ensure_future(wait_for_shutdown_signal())}
    if failure is not None:
        waits.add(asyncio.ensure_future(failure()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        await server.stop(grace)
