"""The live map's feed on the track store's event loop: what each stored batch costs the
store, and when the pages get what changed.

Waking the store's event loop is what costs (a timer wake-up of an idle store, measured
at 150-200 us of CPU on these 2-vCPU machines, more than a second of a salvo's map work),
so the map never wakes it on its own while reports flow: the listener, called inside
each publish, keeps the batch and, once :data:`FLUSH_S` has passed since the last flush,
flushes right there (each changed track's latest report applied to the picture,
serialized once for every page, and the status, as one event write per page). A timer
is only armed for what no publish would carry: the last reports of a burst
(:data:`FLUSH_S` + :data:`TAIL_S` after the last flush) and, while pages are connected and
nothing is published, a status every :data:`QUIET_STATUS_S` (the page shows the picture
has gone quiet). With no page connected nothing is encoded and no timer runs: the
picture is brought up to date every :data:`IDLE_FLUSH_S` from the publishes themselves,
and when a page connects.

Single-threaded: used from the store's event loop only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from tracklayer.services.live_map.picture import LiveMapPicture
from tracklayer.services.live_map.view import reports_b64
from tracklayer.v1 import track_pb2

log = logging.getLogger("tracklayer.services.live_map")

#: Seconds between two ``reports`` events at least (changes in between are sent together,
#: each track's latest report only): a track is reported about once a second of data
#: time, so a page misses no position at real-time rates.
FLUSH_S = 1.0
#: A flush that no publish brought (the end of a burst) comes this much after it was due:
#: a report is on the page at most FLUSH_S + TAIL_S after it was stored.
TAIL_S = 0.4
#: With pages connected and no report stored, a status event this often (s).
QUIET_STATUS_S = 5.0
#: With no page connected, the picture is brought up to date this often (s, by publishes).
IDLE_FLUSH_S = 5.0
#: Batches kept between two flushes before they are reduced to each track's latest.
MAX_PENDING_BATCHES = 10_000
#: Events queued per page before it counts as too slow and is disconnected.
PAGE_QUEUE = 64


def event(name: str, text: str) -> bytes:
    """One server-sent event whose data is the JSON ``text`` (one line)."""
    return f"event: {name}\ndata: {text}\n\n".encode()


class Page:
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
class Pending:
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


class LiveMapFeed:
    """The picture, the batches not yet applied, the connected pages and the flush
    schedule. ``clock``: seconds (monotonic; the loop's by default)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, clock: Callable[[], float] | None = None
    ) -> None:
        self.picture = LiveMapPicture()
        self.pending = Pending()
        self.pages: set[Page] = set()
        self._loop = loop
        self._clock = clock or loop.time
        self._next = 0.0  # the next flush is due (clock)
        self._next_idle = 0.0  # with no page: the next update of the picture
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0  # clock

    def on_batch(self, batch: list[track_pb2.TrackReport]) -> None:
        """The store's listener, inside each publish: count and keep the batch; flush if
        one is due (see the module docstring)."""
        self.picture.arrived(batch)
        pending = self.pending.batches
        pending.append(batch)
        if len(pending) > MAX_PENDING_BATCHES:  # no flush for that long: keep memory flat
            pending[:] = [self.pending.latest()]
        now = self._clock()
        if not self.pages:
            if now >= self._next_idle:
                self.flush()
        elif now >= self._next:
            self.flush()
        elif self._timer is None or self._timer_due > self._next + TAIL_S:
            self._arm(self._next + TAIL_S)

    def flush(self) -> None:
        """Apply what is pending; write the changes and the status to every page."""
        now = self._clock()
        self._next, self._next_idle = now + FLUSH_S, now + IDLE_FLUSH_S
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            data = self.flush_data()
        except Exception:  # a bug here must not stop the map for good, nor grow pending
            self.pending.batches.clear()
            log.exception("live map flush failed")
            data = b""
        for page in list(self.pages):
            page.offer(data)
        if self.pages:
            self._arm(now + QUIET_STATUS_S)

    def flush_data(self) -> bytes:
        """The pending reports applied to the picture; what to write to each page (the
        ``reports`` event of the changes, their protobuf bytes encoded once for every
        page: ``view.reports_b64``; then the ``status`` event), or nothing when no page
        is connected (a page that connects gets the snapshot)."""
        changes = self.picture.apply(self.pending.latest()) if self.pending.batches else []
        if not self.pages:
            return b""
        data = event("reports", f'"{reports_b64(changes)}"') if changes else b""
        return data + event("status", self.picture.status_text())

    def catch_up(self) -> None:
        """Apply what is pending, sending the changes to the pages connected (before a
        snapshot is taken)."""
        if self.pending.batches:
            self.flush()

    def open_page(self) -> Page:
        """A page connecting: it gets the snapshot (caller), then the flushes."""
        self.catch_up()
        page = Page()
        self.pages.add(page)
        if self._timer is None:
            self._arm(self._clock() + QUIET_STATUS_S)
        return page

    def close(self) -> None:
        """Server stopping: no more timers; every page's stream ends."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for page in list(self.pages):
            page.close()

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = when
        self._timer = self._loop.call_later(max(0.0, when - self._clock()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.flush()
