"""The live map's pages as the benchmark opens them (``bench_live_map.py``): the files a
browser loads once, then the store's WebSocket (``/live``) read until told to stop, with
the latency of every report it brings; a store of the code before the WebSocket
(``--before``) is read on ``/events`` (server-sent events of base64)."""

from __future__ import annotations

import re
import threading
import time
import urllib.request


def read_page(
    url: str,
    stop: threading.Event,
    counts: list[int],
    opened: threading.Event,
    latency: list[float] | None = None,
) -> None:
    """Read the map's WebSocket (``/live``) like a browser until ``stop`` (its own event
    loop, in this thread); counts the bytes of the messages received, sets ``opened``
    once the snapshot has arrived and, with ``latency``, appends for every report an
    update brings the seconds from its publishing (``emitted_at``, stamped by
    ``_Store.publish``) to its arrival here. A store of the code before the WebSocket
    (``--before``, 404 on ``/live``) is read on ``/events`` (server-sent events, reports
    in base64)."""
    import asyncio
    import base64

    import aiohttp

    from tracklayer.services.live_map.view import SNAPSHOT, parse_message
    from tracklayer.v1 import track_store_service_pb2 as ts

    def arrived(reports: bytes, now: float) -> None:
        if latency is not None and reports:
            for r in ts.ListTracksResponse.FromString(reports).tracks:
                e = r.emitted_at
                latency.append(now - (e.seconds + e.nanos * 1e-9))

    async def websocket() -> bool:  # False: no WebSocket here
        origin = url.rstrip("/")  # the page's own origin, as a browser sends it
        async with aiohttp.ClientSession() as http:
            try:
                ws = await http.ws_connect(url + "live", origin=origin, max_msg_size=0)
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status != 404:
                    raise
                return False
            async with ws:
                while not stop.is_set():
                    try:
                        msg = await ws.receive(timeout=0.5)
                    except TimeoutError:
                        continue
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        return True
                    now = time.time()
                    counts[0] += len(msg.data)
                    kind, _text, reports = parse_message(msg.data)
                    if kind == SNAPSHOT:
                        opened.set()
                    else:
                        arrived(reports, now)
        return True

    if asyncio.run(websocket()):
        return
    with urllib.request.urlopen(url + "events", timeout=30) as resp:
        seen = b""
        while not stop.is_set():
            chunk = resp.read1(65536)
            if not chunk:
                return
            now = time.time()
            counts[0] += len(chunk)
            seen += chunk
            *events, seen = seen.split(b"\n\n")
            for ev in events:
                if ev.startswith(b"event: snapshot"):
                    opened.set()
                elif ev.startswith(b"event: reports"):
                    b64 = ev.split(b"data: ", 1)[1].strip().strip(b'"')
                    arrived(base64.b64decode(b64), now)


def load_page(url: str) -> int:
    """What a browser fetches once when it opens the map (page, style, scripts, land
    outlines); the bytes received."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        html = resp.read()
    paths = re.findall(rb'(?:href|src)="(/static/[^"]+)"', html) + [b"/static/land-110m.json"]
    total = len(html)
    for path in paths:
        with urllib.request.urlopen(url.rstrip("/") + path.decode(), timeout=30) as resp:
            total += len(resp.read())
    return total
