"""The live map's web server (``tracklayer consumer --http HOST:PORT``), on the track
store's event loop (aiohttp, imported only when ``--http`` is given).

- ``GET /``: the page; ``GET /static/...``: its scripts, style, Natural Earth land
  outlines and licence files (all in the package: no CDN, no tiles, no internet).
- ``GET /live``: a WebSocket of binary messages (``view.message``), server to page only.
  On connecting, one ``SNAPSHOT`` (every live track's latest report, the trails, the
  status); then ``UPDATE`` messages (the status and the tracks that changed, at most
  every ``feed.FLUSH_S`` seconds, none later than ``feed.MAX_WAIT_S`` after it was
  stored), one write each. Reports travel as their own protobuf bytes, decoded by the
  page (``static/wire.js``). A browser's WebSocket is not held to the same-origin rule
  as its other requests, so a request whose ``Origin`` is not this server (the ``Host``
  it was asked for) is refused (403): another site open in the operator's browser
  cannot read the picture; clients that are not browsers send no ``Origin``.
- ``GET /api/snapshot``: the picture as readable JSON (scripts, checks).

The feed (``feed.LiveMapFeed``) is an in-process listener on the store's fan-out of
stored reports (the broadcaster behind ``SubscribeTracks``), called inside each publish:
no extra gRPC hop, no queue, no polling, and no timer of its own while reports flow (see
``feed``). A page that reads too slowly is disconnected (its browser reconnects and
starts from a new snapshot).

After the snapshot, the flushes write each page's messages straight to its connection
as WebSocket frames (:func:`ws_frame`, RFC 6455 section 5.2: one unmasked binary frame;
no compression is negotiated), not through aiohttp's writer: no coroutine or task per
flush on the store's loop. aiohttp's own frames (pong, close) are written whole from the
same thread, so frames never interleave.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from tracklayer.services.errors import UserError
from tracklayer.services.live_map import picture
from tracklayer.services.live_map.address import is_loopback, parse_http_address
from tracklayer.services.live_map.feed import LiveFeed, LiveMapFeed, Page
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
        pages = list(self.feed.pages)
        self.feed.close()  # each page is told the server is going away ...
        if pages:  # ... before the connections are closed under it
            waits = [asyncio.ensure_future(p.gone.wait()) for p in pages]
            _, pending = await asyncio.wait(waits, timeout=CLOSE_WAIT_S)
            for w in pending:
                w.cancel()
        await self.runner.cleanup()
        log.info(kv("live_map_stopped", url=self.url))


async def _trails(store: LiveFeed, live: list) -> dict:
    """The live tracks' trails from the store's history (database thread)."""
    n = picture.trail_length(len(live))
    recent = await store.recent_reports([r.track_id for r in live], n)
    return picture.trails(live, recent)


#: Bytes a page may leave unsent on the store's side before it counts as too slow.
PAGE_BUFFER = 4 << 20
#: Seconds a stopping server gives its pages to close (the browser answers in a few ms).
CLOSE_WAIT_S = 1.0
#: Largest message a page may send (it sends none; a close frame is a few bytes).
MAX_PAGE_MESSAGE = 4096
_U16, _U64 = struct.Struct(">H"), struct.Struct(">Q")


def ws_frame(data: bytes) -> bytes:
    """``data`` as one final, unmasked binary WebSocket frame (server to client,
    RFC 6455 section 5.2: FIN + opcode 2, then a 7-bit, 16-bit or 64-bit length)."""
    n = len(data)
    if n < 126:
        return bytes((0x82, n)) + data
    if n < 1 << 16:
        return b"\x82\x7e" + _U16.pack(n) + data
    return b"\x82\x7f" + _U64.pack(n) + data


def same_origin(request: web.Request) -> bool:
    """True when the request has no ``Origin`` (not a browser) or its ``Origin`` names the
    host and port the request was sent to (``Host``; behind a reverse proxy, the proxy
    must pass the browser's ``Host`` on)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    scheme, sep, authority = origin.partition("://")
    return bool(sep) and scheme in ("http", "https") and authority.lower() == request.host.lower()


def _sink(request: web.Request, ws: web.WebSocketResponse) -> Callable[[bytes], bool]:
    """Write a message straight to the page's connection as one WebSocket frame; False
    when the connection is gone or closing, or more than :data:`PAGE_BUFFER` waits
    unsent."""
    transport = request.transport

    def write(data: bytes) -> bool:
        if transport is None or transport.is_closing() or ws.closed:
            return False
        if transport.get_write_buffer_size() > PAGE_BUFFER:
            return False
        transport.write(ws_frame(data))
        return True

    return write


async def _until_closed(ws: web.WebSocketResponse) -> None:
    """Read the page's side until it closes (it sends nothing else; aiohttp answers pings
    and the closing handshake)."""
    async for _msg in ws:
        pass


async def _serve_page(
    request: web.Request, ws: web.WebSocketResponse, page: Page, feed: LiveMapFeed
) -> str:
    """Snapshot, what queued meanwhile, then the flushes write; returns how it ended."""
    live, status = feed.store.live_reports(), feed.status_text()  # taken when the page opened
    tails = await _trails(feed.store, live)
    await ws.send_bytes(picture.snapshot_message(live, tails, status))
    while not page.ended.is_set():  # what came while the snapshot was made
        data = page.queue.get_nowait() if not page.queue.empty() else None
        if data is None:
            page.sink = _sink(request, ws)  # from now on the flushes write
            break
        await ws.send_bytes(data)
    reader = asyncio.ensure_future(_until_closed(ws))
    ended = asyncio.ensure_future(page.ended.wait())
    try:
        await asyncio.wait((reader, ended), return_when=asyncio.FIRST_COMPLETED)
    finally:
        reader.cancel()
        ended.cancel()
    if not page.ended.is_set():
        return "closed"
    if page.outcome == "server_stopped":
        await ws.close(code=1001, message=b"server stopping")  # going away
    elif request.transport is not None:
        request.transport.abort()  # too slow or gone: nothing more is worth sending
    return page.outcome


def _live_handler(feed: LiveMapFeed) -> Callable[[web.Request], Any]:
    async def live(request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            log.warning(
                kv("live_map_refused", peer=request.remote, origin=request.headers.get("Origin"))
            )
            raise web.HTTPForbidden(text="live map: Origin is not this server\n")
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_PAGE_MESSAGE, timeout=2.0)
        await ws.prepare(request)
        page = feed.open_page()  # from now on it is sent what is stored ... (snapshot: now)
        log.info(kv("live_map_page_open", peer=request.remote, pages=len(feed.pages)))
        outcome = "closed"
        try:
            outcome = await _serve_page(request, ws, page, feed)
        except (ConnectionResetError, asyncio.CancelledError):
            outcome = "disconnected"
        finally:
            feed.close_page(page)
            log.info(kv("live_map_page_end", peer=request.remote, outcome=outcome))
        return ws

    return live


def build_app(feed: LiveMapFeed) -> web.Application:
    """The aiohttp application: page, static files, the WebSocket and the snapshot."""

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def snapshot(_request: web.Request) -> web.Response:
        live, status = feed.store.live_reports(), feed.status_text()
        tails = await _trails(feed.store, live)
        return web.json_response(picture.snapshot(live, tails, status))

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/live", _live_handler(feed))
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
