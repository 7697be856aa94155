"""The tracker's side of the fusion engine: a core that follows the journal.

The engine runs two cores (issue 13 item 6). The *ordering* core (the engine's
``orders``, a :class:`~tracklayer.fusion.core.FusionCore` with a tracker that tracks
nothing) validates and orders every input on the event loop and gives the acks their
statuses; what changed state is journaled, committed and acknowledged. The *tracking*
core (:class:`Follower`, the engine's ``core``) applies the same committed events in
journal order, exactly as a restart replays them (``inputs.apply_input``), and tracks
what they release, on the tracker thread. Same events, same order: the same statuses,
track ids and revisions as one core (DESIGN §6), and an ack never waits for the tracker.

The committed events reach the follower through :attr:`Follower.feed` (in memory, at
most ``max_events``; the ordering appends after each commit, the tracker thread pops)
while it keeps up; a batch that finds the feed full (or not ending just before it) is
left out, and the follower reads the events it misses back from the journal
(:class:`~.journal.JournalReader`, on a connection of its own) once it gets there: its
memory stays bounded while the backlog waits on disk (bounded by the journal's own
limits: a full disk is ridden out as before). Checkpoints are taken of this core, at its
position :attr:`Follower.seq`, between two of its stretches: a backlog no longer holds
them back.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.core import Emitted, FusionCore
from tracklayer.fusion.domain import FrameStatus, SensorFrame, TrackReport
from tracklayer.services.fusion_service.inputs import EngineInput, apply_event, apply_input
from tracklayer.services.fusion_service.journal import Event, EventKind, JournalReader
from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.fusion")

#: Wall seconds of tracking in one stretch (tracker thread or tracking process): how
#: often a backlog's reports are shown and outboxed (acks do not wait for a stretch).
MAX_BATCH_S = 0.010

#: Events read back from the journal at a time (one query).
READ_CHUNK = 64

#: Counters of the ordering core in ``GetStatus`` (the rest are the tracking core's).
ORDERING_COUNTERS = ("detections_total", "late_frames_total", "frames_buffered")


class OrderingOnly:
    """A tracker that tracks nothing: a core that only validates and orders (the
    engine's ordering core; the scale-out front door's, whose shards track)."""

    def __init__(self, fusion_id: str, config: FusionConfig) -> None:
        self.fusion_id = fusion_id

    def process(self, frame: SensorFrame) -> list[TrackReport]:
        return []

    def flush(self) -> list[TrackReport]:
        return []

    def live_reports(self) -> list[TrackReport]:
        return []


def ordering_core(core: FusionCore) -> FusionCore:
    """A core that orders as ``core`` does from here on (a copy of its orderer), with a
    tracker that tracks nothing; its counters start at zero."""
    out = FusionCore(core.fusion_id, core.config, live=core.live, tracker_factory=OrderingOnly)
    out.orderer = copy.deepcopy(core.orderer)
    return out


def merged_counters(tracking: dict[str, int], ordering: dict[str, int]) -> dict[str, int]:
    """GetStatus counters: the frames' statuses and the watermark buffer from the ordering
    core (every input, live), the rest (tracks, reports, registration) from the tracking core."""
    out = dict(tracking)
    for key, value in ordering.items():
        if key.startswith("frames_total") or key in ORDERING_COUNTERS:
            out[key] = value
    return out


class Follower:
    """The tracking core, its open-stream counts and its place in the journal (module
    docstring). The tracker thread runs :meth:`run`; the loop offers committed events
    (:meth:`offer`) and reads the figures; nothing else changes while a stretch runs."""

    def __init__(
        self,
        core: FusionCore,
        opens: Counter,
        seq: int,
        frames: int,
        reader: JournalReader | None,
        max_events: int,
    ) -> None:
        """``seq``: every journal event up to it is applied to ``core``; ``frames``: the
        FRAME events among them (trimmed ones too); ``reader``: where the events left out
        of the feed are read back (None: the caller never leaves one out)."""
        self.core, self.opens, self.seq, self.frames = core, opens, seq, frames
        self.reader, self.max_events = reader, max_events
        self.now: float | None = None  # the caller's clock of the last applied event
        self.feed: deque[tuple[int, EngineInput]] = deque()  # committed, contiguous seqs
        self.read_back = 0  # events read back from the journal (a backlog)
        self._read: deque[Event] = deque()  # read ahead from the journal
        #: Called with each frame applied (domain; the tracking process's sensor positions).
        self.on_frame: Callable[[SensorFrame], None] | None = None

    # ---- on the loop --------------------------------------------------------------
    def offer(self, events: list[tuple[int, EngineInput]]) -> None:
        """Committed events (seq, input), contiguous: into the feed if they follow its
        last one and fit; else left for the journal read-back."""
        if not events:
            return
        feed = self.feed
        try:
            tail = feed[-1][0]
        except IndexError:  # empty (the tracker thread may pop the last one meanwhile)
            tail = None
        if tail is not None and tail != events[0][0] - 1:
            return
        if self.reader is not None and len(feed) + len(events) > self.max_events:
            return
        feed.extend(events)

    @property
    def items_tracked(self) -> int:
        """The tracking core's count of tracked work items (the outbox's items mark)."""
        return self.core.items_tracked

    @property
    def mark(self) -> int:
        """The journal seq up to which every event's work is tracked."""
        return self.seq if not self.core.untracked else self.seq - 1

    def behind(self, committed: int) -> bool:
        """Committed events (or work of applied ones) wait for the tracker."""
        return self.seq < committed or self.core.untracked > 0

    def figures(self, committed: int, frames: int, committed_now: float | None) -> dict[str, int]:
        """The backlog (``GetStatus``): ``frames_untracked`` (journaled frames not tracked
        yet: ``frames`` journaled), ``tracker_behind_events`` (committed events not
        applied), ``tracker_behind_ms`` (the caller's clock of the last journaled event
        (``committed_now``) minus that of the last applied one), the feed's length and
        the events read back from the journal."""
        lag = 0.0
        if self.behind(committed) and self.now is not None and committed_now is not None:
            lag = max(committed_now - self.now, 0.0)
        return {
            "frames_untracked": frames - self.frames + self.core.untracked_frames,
            "tracker_behind_events": committed - self.seq,
            "tracker_behind_ms": int(lag * 1000),
            "tracker_feed_events": len(self.feed),
            "tracker_read_back_total": self.read_back,
        }

    def close(self) -> None:
        """Close the journal reader (no stretch runs)."""
        if self.reader is not None:
            self.reader.close()

    # ---- on the tracker thread ------------------------------------------------------
    def run(self, limit: int, budget_s: float, lock: threading.Lock) -> list[Emitted]:
        """Apply the committed events up to seq ``limit`` in order and track their work,
        for up to ``budget_s`` wall seconds (at least one step); the reports in order.
        ``lock`` is held for one event's ordering or one item's tracking at a time."""
        out: list[Emitted] = []
        core = self.core
        t0 = time.perf_counter()
        while True:
            if core.untracked:
                with lock:
                    out.extend(core.track_next()[1])
            elif self.seq < limit:
                seq, item = self._next(limit)
                with lock:
                    self._apply(seq, item)
            else:
                return out
            if time.perf_counter() - t0 > budget_s:
                return out

    def _apply(self, seq: int, item: EngineInput | Event) -> None:
        """One committed event: from the feed (an input), or read back (its payload
        bytes converted straight to the domain frame: ``inputs.apply_event``)."""
        if isinstance(item, Event):
            applied = apply_event(self.core, self.opens, item)
        else:
            applied = apply_input(self.core, self.opens, item, replay=True)
        status, reason = applied.status, applied.reason
        if item.kind == EventKind.FRAME:
            self.frames += 1
            if self.on_frame is not None and applied.frame is not None:
                self.on_frame(applied.frame)
            if status is not FrameStatus.ACCEPTED:  # the two cores diverged: a bug
                log.error(kv("tracking_mismatch", seq=seq, status=status.name, reason=reason))
        self.seq = seq
        if item.now is not None:
            self.now = item.now

    def _next(self, limit: int) -> tuple[int, EngineInput | Event]:
        """The event after :attr:`seq`: from the feed, else read back from the journal."""
        want = self.seq + 1
        feed = self.feed
        while feed and feed[0][0] < want:  # offered after the journal gave it (a race)
            feed.popleft()
        if feed and feed[0][0] == want:
            self._read.clear()
            return feed.popleft()
        while self._read and self._read[0].seq < want:
            self._read.popleft()
        if not self._read:
            last = min(limit, want + READ_CHUNK - 1)
            if feed:
                last = min(last, feed[0][0] - 1)
            if self.reader is None:
                raise RuntimeError(f"event {want} is not in the feed and there is no reader")
            events = self.reader.events(want, last)
            self._read.extend(events)
            self.read_back += len(events)
        event = self._read.popleft()
        return event.seq, event
