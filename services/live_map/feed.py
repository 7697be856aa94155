"""The live map's feed on the track store's event loop: what each stored batch costs the
store, and when the pages get what changed.

Waking the store's event loop is what costs (a timer wake-up of an idle store, measured
at 150-200 us of CPU on these 2-vCPU machines, more than a second of a salvo's map work),
so the map never wakes it on its own while reports flow: the listener, called inside
each publish with the reports and their bytes as stored, keeps the batch and, once
:data:`FLUSH_S` has passed since the last flush, flushes right there (each changed
track's latest report, the bytes the store already has framed once for every page, and
the status, as one binary WebSocket message written to each page). What a flush costs
the store is mostly the write itself (the kernel's loopback send waking the reader:
~60-250 us here, whatever the size), so there are as few flushes as the latency
allows. A timer is only armed for what no publish would carry: the last reports of a
burst, so that no stored report waits more than :data:`MAX_WAIT_S` for the pages, and,
while pages are connected and nothing is published, a status every
:data:`QUIET_STATUS_S` (the page shows the picture has gone quiet). With no page
connected the listener only counts the batch (the status bar's rate): nothing is kept,
encoded or timed. A page connecting starts from the store's own live picture and
history (``picture``).

Single-threaded: used from the store's event loop only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from tracklayer.services.live_map.picture import Rates
from tracklayer.services.live_map.view import UPDATE, frame_raws, message
from tracklayer.v1 import track_pb2

log = logging.getLogger("tracklayer.services.live_map")

#: Seconds between two flushes that publishes bring, at least (changes in between are sent
#: together, each track's latest report only). A salvo's reports come in a rhythm of one
#: second of data time, about three batches a second, so the first publish after this
#: nearly always comes before the :data:`MAX_WAIT_S` timer: about 0.7 flushes a second,
#: each a publish's, against one a second with 1 s (benchmarks/RESULTS.md).
FLUSH_S = 1.2
#: A stored report reaches the pages at most this (s) after it was stored: a timer sends
#: what no publish brought by then (the end of a burst). The page draws it within 0.1 s;
#: issue 16 asks for 2 s from published to shown.
MAX_WAIT_S = 1.5
#: With pages connected and no report stored, a status message this often (s).
QUIET_STATUS_S = 5.0
#: Batches kept between two flushes before they are reduced to each track's latest.
MAX_PENDING_BATCHES = 10_000
#: Messages queued per page before it counts as too slow and is disconnected.
PAGE_QUEUE = 64


class Page:
    """One connected page. Until its snapshot is out, its messages wait in a bounded
    queue; then the server gives it a ``sink`` and the flushes write to it straight (no
    queue, no task of the server's to wake: a flush costs the store one write per page).

    ``sink(data)`` writes one message and returns False when the page cannot take it
    (gone, or more than the server's bound waiting unsent: too slow); the page then ends
    (``ended`` is set, ``outcome`` says why)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=PAGE_QUEUE)
        self.too_slow = False
        self.stopped = False
        self.sink: Callable[[bytes], bool] | None = None
        self.ended = asyncio.Event()
        self.gone = asyncio.Event()  # its handler is done with it (``close_page``)
        self.outcome = ""

    def offer(self, data: bytes) -> None:
        if self.ended.is_set():
            return
        if self.sink is not None:
            if not self.sink(data):
                self.end("too_slow_or_gone")
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.too_slow = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            self.end("too_slow")

    def end(self, outcome: str) -> None:
        """The page's stream ends (its handler returns)."""
        if not self.ended.is_set():
            self.outcome = outcome
            self.ended.set()

    def close(self) -> None:
        """Server stopping: end the page's stream now."""
        self.stopped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        self.end("server_stopped")


class LiveFeed(Protocol):
    """What the live map needs from the track store (``TrackStoreServicer``)."""

    def open_feed(
        self, on_batch: Callable[[list[track_pb2.TrackReport], list[bytes]], None]
    ) -> Callable[[], None]:
        """``on_batch(reports, raws)`` with every batch stored from now on; returns stop."""
        ...

    def live_reports(self) -> list[track_pb2.TrackReport]:
        """The latest report of each live track, by id."""
        ...

    def live_count(self) -> int:
        """Number of live tracks."""
        ...

    async def recent_reports(
        self, track_ids: list[str], n: int
    ) -> dict[str, list[track_pb2.TrackReport]]:
        """The last ``n`` stored revisions of each track, oldest first."""
        ...


Batch = tuple[list[track_pb2.TrackReport], list[bytes]]


def latest(batches: list[Batch]) -> Batch:
    """Each track's latest report in ``batches`` and its bytes (first-seen order)."""
    kept: dict[str, tuple[int, track_pb2.TrackReport, bytes]] = {}
    for msgs, raws in batches:
        for msg, raw in zip(msgs, raws, strict=True):
            tid, rev = msg.track_id, msg.revision
            old = kept.get(tid)
            if old is None or old[0] < rev:
                kept[tid] = (rev, msg, raw)
    return [m for _, m, _ in kept.values()], [r for _, _, r in kept.values()]


class LiveMapFeed:
    """The connected pages, the batches stored since the last flush and the flush
    schedule, for the track store ``store``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, store: LiveFeed) -> None:
        self.store = store
        self.rates = Rates()
        self.pending: list[Batch] = []
        self.pages: set[Page] = set()
        self._loop = loop
        self._next = 0.0  # a publish brings a flush from then on (loop time)
        self._oldest = 0.0  # when the oldest batch waiting for a flush was stored
        self._timer: asyncio.TimerHandle | None = None
        self._stop_feed = store.open_feed(self.on_batch)

    def on_batch(self, msgs: list[track_pb2.TrackReport], raws: list[bytes]) -> None:
        """The store's listener, inside each publish: count the batch; with pages, keep
        it and flush if one is due (see the module docstring)."""
        self.rates.arrived(msgs)
        if not self.pages:
            return
        pending = self.pending
        now = self._loop.time()
        if not pending:
            self._oldest = now
        pending.append((msgs, raws))
        if len(pending) > MAX_PENDING_BATCHES:  # no flush for that long: keep memory flat
            pending[:] = [latest(pending)]
        if now >= self._next:
            self.flush()
        elif self._timer is None or self._timer.when() > self._oldest + MAX_WAIT_S:
            self._arm(self._oldest + MAX_WAIT_S)

    def flush(self) -> None:
        """Write what changed since the last flush and the status to every page."""
        now = self._loop.time()
        self._next = now + FLUSH_S
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.pages:
            self.pending.clear()
            return
        try:
            data = self.flush_data()
        except Exception:  # a bug here must not stop the map for good, nor grow pending
            log.exception("live map flush failed")
            data = b""
        finally:
            self.pending.clear()
        for page in list(self.pages):
            page.offer(data)
        self._arm(now + QUIET_STATUS_S)

    def flush_data(self) -> bytes:
        """The ``UPDATE`` message (``view.message``): the status, then each changed track's
        latest report (the stored bytes, framed once for every page: ``view.frame_raws``;
        none when only the status is due)."""
        return message(UPDATE, self.status_text(), frame_raws(latest(self.pending)[1]))

    def status_text(self) -> str:
        return self.rates.status_text(self.store.live_count())

    def open_page(self) -> Page:
        """A page connecting: what is pending goes to the pages already there; from now
        on the batches are kept for this one too (the caller sends it a snapshot taken
        now, then what it queues)."""
        if self.pending:
            self.flush()
        page = Page()
        self.pages.add(page)
        if self._timer is None:
            self._arm(self._loop.time() + QUIET_STATUS_S)
        return page

    def close_page(self, page: Page) -> None:
        """A page gone: with none left, nothing is kept and no timer runs."""
        self.pages.discard(page)
        page.gone.set()
        if not self.pages:
            self.pending.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def close(self) -> None:
        """Server stopping: the store stops calling; no more timers; every page's stream
        ends."""
        self._stop_feed()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for page in list(self.pages):
            page.close()

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.flush()
