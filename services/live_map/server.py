"""The live map's web server (``tracklayer consumer --http HOST:PORT``), on the track
store's event loop (aiohttp, imported only when ``--http`` is given).

- ``GET /``: the page; ``GET /static/...``: its scripts, style, Natural Earth land
  outlines and licence files (all in the package: no CDN, no tiles, no internet).
- ``GET /events``: server-sent events. On connecting, one ``snapshot`` (every live track's
  latest report, the trails, the status); then ``reports`` (the tracks that changed, at
  most every :data:`FLUSH_S` seconds) and ``status`` every second, as one write. Reports
  travel as their own protobuf bytes in base64 (``view.reports_b64``), decoded by the
  page (``static/wire.js``).
- ``GET /api/snapshot``: the picture as readable JSON (scripts, checks).

The feed is an in-process listener on the store's fan-out of stored reports (the
broadcaster behind ``SubscribeTracks``), called inside each publish: it only counts the
batch and keeps it. Once per flush each changed track's latest report is serialized once
for all pages and its trail gets a point; while no page is connected nothing is encoded
and the picture is brought up to date every :data:`IDLE_FLUSH_S` only. No extra gRPC hop,
no queue, no polling. A page that reads too slowly is disconnected (its browser
reconnects and starts from a new snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from tracklayer.services.errors import UserError
from tracklayer.services.live_map.address import is_loopback, parse_http_address
from tracklayer.services.live_map.picture import LiveMapPicture
from tracklayer.services.live_map.view import reports_b64
from tracklayer.services.rpc.server import kv
from tracklayer.v1 import track_pb2

log = logging.getLogger("tracklayer.services.live_map")

#: Seconds between two ``reports`` events (changes in between are sent together, each
#: track's latest report only): a track is reported once a second of data time, so a
#: page misses no position at real-time rates, and the store converts and writes half
#: as often as at 0.5 s (the map's CPU, issue 16).
FLUSH_S = 1.0
#: Seconds between two ``status`` events (sent in the same write as the reports).
STATUS_S = 1.0
#: Seconds between two updates of the picture while no page is connected (its trails
#: then have a point every 5 s).
IDLE_FLUSH_S = 5.0
#: Batches kept between two flushes before they are reduced to each track's latest.
MAX_PENDING_BATCHES = 10_000
#: Events queued per page before it counts as too slow and is disconnected.
PAGE_QUEUE = 64
STATIC_DIR = Path(str(resources.files("tracklayer.services.live_map") / "static"))


class LiveFeed(Protocol):
    """What the live map needs from the track store (``TrackStoreServicer``)."""

    def open_feed(
        self, on_batch: Callable[[list[track_pb2.TrackReport]], None]
    ) -> tuple[list[track_pb2.TrackReport], Callable[[], None]]:
        """The latest report of each live track, and ``on_batch`` called with every batch
        stored from then on (atomically); returns (current, stop)."""
        ...


def _event(name: str, text: str) -> bytes:
    """One server-sent event whose data is the JSON ``text`` (one line)."""
    return f"event: {name}\ndata: {text}\n\n".encode()


class _Page:
    """One connected page: a bounded queue of encoded events."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=PAGE_QUEUE)
        self.too_slow = False
        self.stopped = False

    def offer(self, data: bytes) -> None:
        if self.too_slow:
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.too_slow = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    def close(self) -> None:
        """Server stopping: end the page's stream now."""
        self.stopped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


@dataclass
class LiveMapServer:
    """A running live map: ``url`` to open; :meth:`stop` closes pages and the feed."""

    runner: web.AppRunner
    host: str
    port: int
    tasks: list[asyncio.Task]
    pages: set[_Page]
    stop_feed: Callable[[], None]

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        self.stop_feed()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for page in list(self.pages):
            page.close()
        await self.runner.cleanup()
        log.info(kv("live_map_stopped", url=self.url))


@dataclass
class _Pending:
    """The batches stored since the last flush, in store order."""

    batches: list[list[track_pb2.TrackReport]] = field(default_factory=list)

    def latest(self) -> list[track_pb2.TrackReport]:
        """The latest report of each track in the batches (then forgets them)."""
        kept: dict[str, track_pb2.TrackReport] = {}
        for batch in self.batches:
            for msg in batch:
                old = kept.get(msg.track_id)
                if old is None or old.revision < msg.revision:
                    kept[msg.track_id] = msg
        self.batches.clear()
        return list(kept.values())


def _listener(picture: LiveMapPicture, pending: _Pending) -> Callable[[list], None]:
    """Called by the store inside each publish: count the batch and keep it for the next
    flush (which takes each track's latest report and converts it, once). No queue, no
    task switch, no work per report on the publishing path."""

    def on_batch(batch: list[track_pb2.TrackReport]) -> None:
        picture.arrived(batch)
        pending.batches.append(batch)
        if len(pending.batches) > MAX_PENDING_BATCHES:  # no flush for that long: keep memory flat
            pending.batches[:] = [pending.latest()]

    return on_batch


def _send_pending(picture: LiveMapPicture, pending: _Pending, pages: set[_Page]) -> bytes:
    """Apply the pending reports to ``picture``; the ``reports`` event of the changes
    (their protobuf bytes, encoded once for every page: ``view.reports_b64``), or
    nothing when no page is connected (a page that connects gets the snapshot)."""
    if not pending.batches:
        return b""
    changes = picture.apply(pending.latest())
    return _event("reports", f'"{reports_b64(changes)}"') if changes and pages else b""


def _offer(pages: set[_Page], data: bytes) -> None:
    if data:
        for page in list(pages):
            page.offer(data)


def _flush_once(
    picture: LiveMapPicture, pending: _Pending, pages: set[_Page], *, status: bool
) -> bytes:
    """One flush: the pending reports applied to ``picture``; what to write to each page
    (the ``reports`` event of the changes and, with ``status``, the ``status`` event, as
    one write), or nothing when no page is connected."""
    data = _send_pending(picture, pending, pages)
    if pages and status:
        data += _event("status", picture.status_text())
    return data


async def _flush(picture: LiveMapPicture, pending: _Pending, pages: set[_Page]) -> None:
    """Every FLUSH_S send pending changes, every STATUS_S the status too, as one write
    per page; while no page is connected, only keep the picture current, every
    IDLE_FLUSH_S (a page connecting takes the pending reports first)."""
    loop = asyncio.get_running_loop()
    next_status = next_idle = loop.time()
    while True:
        await asyncio.sleep(FLUSH_S)
        if not pages and loop.time() < next_idle:
            continue
        next_idle = loop.time() + IDLE_FLUSH_S
        status = bool(pages) and loop.time() >= next_status
        if status:
            next_status = loop.time() + STATUS_S
        try:
            data = _flush_once(picture, pending, pages, status=status)
        except Exception:  # a bug here must not stop the map for good, nor grow pending
            pending.batches.clear()
            log.exception("live map flush failed")
            continue
        _offer(pages, data)


def _events_handler(
    picture: LiveMapPicture, pending: _Pending, pages: set[_Page]
) -> Callable[[web.Request], Any]:
    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # reverse proxies: do not buffer the stream
            }
        )
        await resp.prepare(request)
        _offer(pages, _send_pending(picture, pending, pages))  # the snapshot is then current
        page = _Page()
        pages.add(page)
        log.info(kv("live_map_page_open", peer=request.remote, pages=len(pages)))
        outcome = "closed"
        try:
            await resp.write(b"retry: 1000\n\n" + _event("snapshot", picture.snapshot_text()))
            while True:
                data = await page.queue.get()
                if data is None:
                    outcome = "server_stopped" if page.stopped else "too_slow"
                    break
                await resp.write(data)
        except (ConnectionResetError, asyncio.CancelledError):
            outcome = "disconnected"
        finally:
            pages.discard(page)
            log.info(kv("live_map_page_end", peer=request.remote, outcome=outcome))
        return resp

    return events


def build_app(picture: LiveMapPicture, pending: _Pending, pages: set[_Page]) -> web.Application:
    """The aiohttp application: page, static files, events and the snapshot."""

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def snapshot(_request: web.Request) -> web.Response:
        _offer(pages, _send_pending(picture, pending, pages))
        return web.json_response(picture.snapshot())

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/events", _events_handler(picture, pending, pages))
    app.router.add_get("/api/snapshot", snapshot)
    app.router.add_static("/static/", STATIC_DIR, show_index=False)
    return app


async def start_live_map(feed: LiveFeed, address: str, *, flag: str = "--http") -> LiveMapServer:
    """Serve the live map of ``feed`` on ``address`` (``HOST:PORT``, port 0 = a free one)
    on the running event loop. UserError naming ``flag`` if it cannot listen."""
    host, port = parse_http_address(address, flag)
    picture = LiveMapPicture()
    pages: set[_Page] = set()
    pending = _Pending()
    runner = web.AppRunner(
        build_app(picture, pending, pages),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=0.5,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"{flag}: cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    current, stop_feed = feed.open_feed(_listener(picture, pending))
    picture.apply(current)
    tasks = [asyncio.create_task(_flush(picture, pending, pages), name="live-map-flush")]
    server = LiveMapServer(
        runner=runner, host=host, port=bound, tasks=tasks, pages=pages, stop_feed=stop_feed
    )
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
