"""The live map's web server (``tracklayer consumer --http HOST:PORT``), on the track
store's event loop (aiohttp, imported only when ``--http`` is given).

- ``GET /``: the page; ``GET /static/...``: its scripts, style, Natural Earth land
  outlines and licence files (all in the package: no CDN, no tiles, no internet).
- ``GET /events``: server-sent events. On connecting, one ``snapshot`` (every live track's
  latest report, the trails, the status); then ``reports`` (the tracks that changed, at
  most every ``feed.FLUSH_S`` seconds, none later than ``feed.MAX_WAIT_S`` after it was
  stored) with a ``status``, as one write. Reports travel as their own protobuf bytes in
  base64 (``view.reports_b64``), decoded by the page (``static/wire.js``).
- ``GET /api/snapshot``: the picture as readable JSON (scripts, checks).

The feed (``feed.LiveMapFeed``) is an in-process listener on the store's fan-out of
stored reports (the broadcaster behind ``SubscribeTracks``), called inside each publish:
no extra gRPC hop, no queue, no polling, and no timer of its own while reports flow (see
``feed``). A page that reads too slowly is disconnected (its browser reconnects and
starts from a new snapshot).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from tracklayer.services.errors import UserError
from tracklayer.services.live_map import picture
from tracklayer.services.live_map.address import is_loopback, parse_http_address
from tracklayer.services.live_map.feed import LiveFeed, LiveMapFeed, event
from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.live_map")

STATIC_DIR = Path(str(resources.files("tracklayer.services.live_map") / "static"))


@dataclass
class LiveMapServer:
    """A running live map: ``url`` to open; :meth:`stop` closes pages and the feed."""

    runner: web.AppRunner
    host: str
    port: int
    feed: LiveMapFeed

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        self.feed.close()
        await self.runner.cleanup()
        log.info(kv("live_map_stopped", url=self.url))


async def _trails(store: LiveFeed, live: list) -> dict:
    """The live tracks' trails from the store's history (database thread)."""
    n = picture.trail_length(len(live))
    recent = await store.recent_reports([r.track_id for r in live], n)
    return picture.trails(live, recent)


#: Bytes a page may leave unsent on the store's side before it counts as too slow.
PAGE_BUFFER = 4 << 20


def _sink(request: web.Request, resp: web.StreamResponse) -> Callable[[bytes], bool]:
    """Write an event straight to the page's connection (in the response's chunked
    framing, as aiohttp's writer would, without its coroutine per write); False when the
    connection is gone or more than :data:`PAGE_BUFFER` waits unsent."""
    transport = request.transport
    chunked = resp.headers.get("Transfer-Encoding", "").lower() == "chunked"

    def write(data: bytes) -> bool:
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > PAGE_BUFFER:
            return False
        transport.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
        return True

    return write


def _events_handler(feed: LiveMapFeed) -> Callable[[web.Request], Any]:
    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # reverse proxies: do not buffer the stream
            }
        )
        await resp.prepare(request)
        page = feed.open_page()  # from now on it is sent what is stored ...
        live, status = feed.store.live_reports(), feed.status_text()  # ... after this
        log.info(kv("live_map_page_open", peer=request.remote, pages=len(feed.pages)))
        outcome = "closed"
        try:
            tails = await _trails(feed.store, live)
            snapshot = picture.snapshot_text(live, tails, status)
            await resp.write(b"retry: 1000\n\n" + event("snapshot", snapshot))
            while not page.ended.is_set():  # what came while the snapshot was made
                data = page.queue.get_nowait() if not page.queue.empty() else None
                if data is None:
                    page.sink = _sink(request, resp)  # from now on the flushes write
                    break
                await resp.write(data)
            await page.ended.wait()
            outcome = page.outcome
        except (ConnectionResetError, asyncio.CancelledError):
            outcome = "disconnected"
        finally:
            feed.close_page(page)
            log.info(kv("live_map_page_end", peer=request.remote, outcome=outcome))
        return resp

    return events


def build_app(feed: LiveMapFeed) -> web.Application:
    """The aiohttp application: page, static files, events and the snapshot."""

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def snapshot(_request: web.Request) -> web.Response:
        live, status = feed.store.live_reports(), feed.status_text()
        tails = await _trails(feed.store, live)
        return web.json_response(picture.snapshot(live, tails, status))

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/events", _events_handler(feed))
    app.router.add_get("/api/snapshot", snapshot)
    app.router.add_static("/static/", STATIC_DIR, show_index=False)
    return app


async def start_live_map(store: LiveFeed, address: str, *, flag: str = "--http") -> LiveMapServer:
    """Serve the live map of ``store`` on ``address`` (``HOST:PORT``, port 0 = a free one)
    on the running event loop. UserError naming ``flag`` if it cannot listen."""
    host, port = parse_http_address(address, flag)
    feed = LiveMapFeed(asyncio.get_running_loop(), store)
    runner = web.AppRunner(
        build_app(feed),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=0.5,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        feed.close()
        await runner.cleanup()
        raise UserError(f"{flag}: cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = LiveMapServer(runner=runner, host=host, port=bound, feed=feed)
    if not is_loopback(host):
        log.warning(
            kv(
                "live_map_not_loopback",
                listen=f"{host}:{bound}",
                note="plain HTTP without authentication; put it behind a TLS reverse proxy",
            )
        )
    log.info(kv("live_map_started", url=server.url))
    return server
