"""The fusion service's engine: FusionCore + journal + outbox, driven by one worker task.

Everything that changes the core goes through :meth:`FusionEngine._apply`,
live and on journal replay alike, in one order:

1. Streams and RPCs enqueue items (frames, stream open/close, declarations,
   idle-timeout ticks); frames wait for a slot first (``max_pending_frames``:
   back-pressure on the senders). While more than ``max_buffered_frames``
   accepted frames wait for the watermark, frames of sensors that do not hold
   it wait too (a sensor flooding ahead cannot grow the buffer without bound,
   and never blocks the sensor the watermark waits for; DESIGN §6 rule 6).
2. The worker takes everything queued, applies it to the core in order and
   appends each state-changing event to the journal, then commits the journal
   in one transaction (group commit, on the database thread).
3. Only then are the frames acknowledged, the reports written to the outbox
   (with the journal seq, in one transaction), handed to the forwarder and
   fanned out to subscribers.

A crash between 2 and 3 loses nothing: the frames were not acknowledged,
and the replay re-emits the reports of every event after the outbox's
journal mark. Restart = replay the journal through a fresh core with the same
settings (same track ids and revisions). Streams open when the process died
stay open in the replayed core until their sensor reconnects (a new stream
replaces the old, DESIGN §6 rule 5) or, with an idle timeout, until that
long has passed without a reconnection.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tracklayer import __version__
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.core import FusionCore, TrackerFactory
from tracklayer.fusion.domain import FrameStatus, TrackReport, TrackStatus
from tracklayer.services.fusion_service.forwarder import Forwarder
from tracklayer.services.fusion_service.journal import EventKind, Journal
from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.services.limits import MAX_DETECTIONS_PER_FRAME, MAX_SENSOR_ID_CHARS
from tracklayer.services.rpc.broadcast import Broadcaster, Subscription
from tracklayer.services.rpc.server import kv
from tracklayer.services.wire.convert import frame_from_proto, ns_to_timestamp, report_to_proto
from tracklayer.v1 import sensor_pb2, track_pb2

log = logging.getLogger("tracklayer.services.fusion")
R = TypeVar("R")

#: Gauges among the counters (the rest are monotonic counters).
GAUGES = frozenset(
    {
        "tracks_live",
        "outbox_depth",
        "journal_frames",
        "frames_buffered",
        "streams_open",
        "subscribers",
        "frames_pending",
        "outbox_rejected",
    }
)


def frame_size_error(msg: sensor_pb2.SensorFrame) -> str | None:
    """``"field: why"`` when a wire frame exceeds the service's size limits, else None."""
    if len(msg.sensor_id) > MAX_SENSOR_ID_CHARS:
        return f"sensor_id: longer than {MAX_SENSOR_ID_CHARS} characters"
    n = len(msg.detections)
    if n > MAX_DETECTIONS_PER_FRAME:
        return f"detections: {n} in one frame, more than {MAX_DETECTIONS_PER_FRAME}"
    return None


#: Most queued inputs applied per group commit (bounds how long the tracker holds the loop).
MAX_BATCH_ITEMS = 256

FrameListener = Callable[[sensor_pb2.SensorFrame, int, int], None]
ReportListener = Callable[[list[track_pb2.TrackReport]], None]


@dataclass(frozen=True)
class FusionSettings:
    """What a fusion service runs with (the first three are pinned in the journal)."""

    fusion_id: str = "fusion"
    config: FusionConfig = field(default_factory=FusionConfig)
    sensors: tuple[str, ...] = ()  # allow-list and initially expected; () = any sensor
    journal_path: Path = Path("fusion.journal.sqlite")
    outbox_path: Path = Path("fusion.outbox.sqlite")
    store_target: str | None = None  # HOST:PORT of the track store; None = keep in outbox
    idle_timeout_s: float = 10.0  # 0 = off
    max_pending_frames: int = 8192
    max_buffered_frames: int = 20_000  # accepted, waiting for the watermark (flood guard)
    tracker_factory: TrackerFactory | None = None  # tests; default fusion.tracker.Tracker
    synchronous: str = "FULL"  # SQLite durability of journal and outbox
    store_max_backoff_s: float = 5.0  # longest wait between two store reconnection tries
    checkpoint_every: int = 20_000  # journal events between checkpoints (0 = never)
    store_credentials: Any = None  # grpc.ChannelCredentials for mTLS to the store; None = plaintext


@dataclass(eq=False)
class StreamState:
    """One StreamFrames call; ``sensor_id`` set when it names its sensor."""

    peer: str
    sensor_id: str | None = None
    on_replaced: Callable[[], None] | None = None
    on_shutdown: Callable[[], None] | None = None
    frames: Counter = field(default_factory=Counter)  # status label -> count
    closed: bool = False


@dataclass(eq=False)
class _Item:
    kind: EventKind
    sensor_id: str = ""
    now: float | None = None
    frame: sensor_pb2.SensorFrame | None = None
    ids: tuple[str, ...] = ()
    future: asyncio.Future[Any] | None = None
    arrival_ns: int = 0


_LABEL = {
    FrameStatus.ACCEPTED: "accepted",
    FrameStatus.DUPLICATE: "duplicate",
    FrameStatus.LATE: "late",
    FrameStatus.REJECTED: "rejected",
}


class EngineClosed(Exception):
    """The engine is shutting down and takes no more input."""


class FusionEngine:
    """See the module docstring. Create, ``await start()``, use, ``await stop()``."""

    def __init__(self, settings: FusionSettings) -> None:
        self.settings = settings
        self._exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusion-db")
        self.journal = Journal(settings.journal_path, synchronous=settings.synchronous)
        self.outbox = Outbox(settings.outbox_path, synchronous=settings.synchronous)
        self.journal.check_settings(
            {
                "fusion_id": settings.fusion_id,
                "config": settings.config.to_mapping(),
                "sensors": sorted(settings.sensors),
            }
        )
        self.core = FusionCore(
            settings.fusion_id,
            settings.config,
            live=True,
            tracker_factory=settings.tracker_factory,
            allowed_sensors=settings.sensors or None,
        )
        self.hub: Broadcaster[track_pb2.TrackReport] = Broadcaster()
        self._live: dict[str, track_pb2.TrackReport] = {}
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.max_pending_frames)
        self._pending_frames = 0
        self._owners: dict[str, StreamState] = {}
        self._streams: set[StreamState] = set()
        self._stale: dict[str, int] = {}  # sensor -> streams left open by a previous process
        self._stale_since = time.time()
        self._opens: Counter = Counter()  # journaled stream opens minus closes, per sensor
        self._checkpoint_seq = 0
        self._baseline: dict[str, int] = {}
        self.permission_denied = 0  # streams and declarations refused by the mTLS identity check
        self.buffer_holds = 0  # frames held back while the watermark buffer was full
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None
        self._failed_event = asyncio.Event()
        self.forwarder: Forwarder | None = None
        self.replayed_events = 0
        # Observers (e.g. a live recorder): called after each group commit, in order.
        self.frame_listeners: list[FrameListener] = []  # (frame, FrameStatus, arrival ns)
        self.report_listeners: list[ReportListener] = []  # reports as emitted
        self.counter_sources: list[Callable[[], dict[str, int]]] = []  # more GetStatus counters

    async def _db(self, fn: Callable[..., R], *args: object) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._exec, fn, *args)

    # ---------------------------------------------------------------- life cycle
    async def start(self) -> None:
        """Replay the journal, declare ``--sensors`` on a new journal, start the tasks."""
        t0 = time.perf_counter()
        fresh = self.journal.last_seq == 0
        await self._replay()
        self._baseline = dict(self.core.counters)
        self._stale = {s: n for s, n in self._opens.items() if n > 0}
        self._stale_since = time.time()
        log.info(
            kv(
                "journal_replayed",
                journal=str(self.settings.journal_path),
                events=self.replayed_events,
                frames=self.journal.frames,
                stale_streams=sum(self._stale.values()),
                seconds=round(time.perf_counter() - t0, 3),
                outbox_depth=self.outbox.depth,
            )
        )
        if self.settings.store_target:
            self.forwarder = Forwarder(
                self.outbox,
                self.settings.store_target,
                self._db,
                max_backoff_s=self.settings.store_max_backoff_s,
                credentials=self.settings.store_credentials,
            )
            self.forwarder.start()
        self._worker = asyncio.create_task(self._work(), name="fusion-worker")
        self._ticker = asyncio.create_task(self._tick(), name="fusion-idle")
        if fresh and self.settings.sensors:
            await self.declare(self.settings.sensors)

    async def _replay(self) -> None:
        """Apply every journaled event to the fresh core; re-outbox reports past the mark."""
        mark = self.outbox.journal_mark
        redo: list[bytes] = []
        last = self._restore_checkpoint()
        for ev in self.journal.events(after_seq=last):
            item = _Item(ev.kind, ev.sensor_id, ev.now)
            if ev.kind == EventKind.FRAME:
                item.frame = sensor_pb2.SensorFrame.FromString(ev.payload)
            elif ev.kind == EventKind.DECLARE:
                item.ids = tuple(ev.payload.decode().split("\n")) if ev.payload else ()
            elif ev.kind == EventKind.IDLE:
                item.ids = (ev.payload.decode(),)
            status, reason, reports, _ = self._apply(item, replay=True)
            if ev.kind == EventKind.FRAME and status is not FrameStatus.ACCEPTED:
                log.error(kv("replay_mismatch", seq=ev.seq, status=status.name, reason=reason))
            if ev.seq > mark and reports:
                now_ns = time.time_ns()  # emitted (again) now: never reached the outbox
                redo.extend(self._to_proto(r, now_ns).SerializeToString() for r in reports)
            self._remember(reports, prune=False)
            last = ev.seq
            self.replayed_events += 1
        self._prune_live()
        if last > mark:
            self.outbox.add(redo, last)

    def _restore_checkpoint(self) -> int:
        """Load the newest usable checkpoint; returns its seq (0: replay from the start)."""
        cp = self.journal.latest_checkpoint()
        if cp is None:
            return 0
        seq, version, blob = cp
        if version != __version__:
            log.warning(kv("checkpoint_skipped", seq=seq, written_by=version, running=__version__))
            return 0
        try:
            core, opens = pickle.loads(blob)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint: full replay
            log.warning(kv("checkpoint_unreadable", seq=seq, error=repr(exc)))
            return 0
        self.core, self._opens = core, opens
        self._checkpoint_seq = seq
        self._live = dict.fromkeys((r.track_id for r in core.live_reports()), None)
        log.info(kv("checkpoint_loaded", seq=seq))
        return seq

    async def _maybe_checkpoint(self) -> None:
        """Every ``checkpoint_every`` events, save the core (state after committed_seq)."""
        every = self.settings.checkpoint_every
        seq = self.journal.committed_seq
        if every <= 0 or seq - self._checkpoint_seq < every or self.journal.pending:
            return
        blob = pickle.dumps((self.core, self._opens), protocol=pickle.HIGHEST_PROTOCOL)
        await self._db(self.journal.write_checkpoint, seq, __version__, blob)
        self._checkpoint_seq = seq
        log.info(kv("checkpoint_written", seq=seq, bytes=len(blob)))

    async def abandon(self) -> None:
        """Stop as SIGKILL would after the last commit (tests of crash recovery): no
        flush, nothing drained; queued input is dropped unacknowledged."""
        self._closing = True
        for task in (self._ticker, self._worker):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._ticker, self._worker) if t is not None), return_exceptions=True
        )
        if self.forwarder is not None and self.forwarder._task is not None:
            self.forwarder._task.cancel()
            await asyncio.gather(self.forwarder._task, return_exceptions=True)
        self.hub.close()
        if self._exec is not None:
            self._exec.shutdown(wait=True)
            self._exec = None
        self.journal.close()
        self.outbox.close()

    def begin_shutdown(self) -> None:
        """Take no new input; ask open streams to finish their acks and end; end subscriptions."""
        if self._closing:
            return
        self._closing = True
        for st in list(self._streams):
            if st.on_shutdown is not None:
                st.on_shutdown()
        self.hub.close()
        if self._ticker is not None:
            self._ticker.cancel()

    async def stop(self, drain_timeout_s: float = 2.0) -> None:
        """Apply everything queued, flush the core (journaled), commit, drain the outbox.

        Call after the gRPC server stopped (so every stream's close is queued)."""
        if self._exec is None:
            return
        self.begin_shutdown()
        if self._worker is not None and not self._worker.done():
            self._enqueue(_Item(EventKind.FLUSH, now=time.time()))
            self._enqueue(None)
            await asyncio.gather(self._worker, return_exceptions=True)
        if self.forwarder is not None:
            await self.forwarder.stop(drain_timeout_s)
        self._exec.shutdown(wait=True)
        self._exec = None
        log.info(
            kv(
                "engine_stopped",
                journal_frames=self.journal.frames,
                outbox_depth=self.outbox.depth,
            )
        )
        self.journal.close()
        self.outbox.close()

    # ---------------------------------------------------------------- inputs
    def _enqueue(self, item: _Item | None) -> None:
        self._queue.append(item)  # type: ignore[arg-type]
        self._wake.set()

    def _check_open(self) -> None:
        if self._closing:
            raise EngineClosed("fusion service is shutting down")
        if self.failed is not None:
            raise EngineClosed(f"fusion engine failed: {self.failed!r}")

    async def wait_failed(self) -> BaseException | None:
        """Resolves if the worker dies (a bug or a disk error): the service must stop."""
        await self._failed_event.wait()
        return self.failed

    def new_stream(self, peer: str) -> StreamState:
        self._check_open()
        st = StreamState(peer)
        self._streams.add(st)
        return st

    def open_stream(self, st: StreamState, sensor_id: str) -> None:
        """``st`` carries ``sensor_id``: it joins the expected set; an older stream is replaced."""
        if st.sensor_id is not None or not sensor_id:
            return
        self._check_open()
        st.sensor_id = sensor_id
        old = self._owners.get(sensor_id)
        self._owners[sensor_id] = st
        now = time.time()
        self._enqueue(_Item(EventKind.OPEN, sensor_id, now))
        for _ in range(self._stale.pop(sensor_id, 0)):
            self._enqueue(_Item(EventKind.CLOSE, sensor_id))
        if old is not None and not old.closed and old.on_replaced is not None:
            old.on_replaced()

    def close_stream(self, st: StreamState) -> None:
        """The call ended (any way): its sensor's stream closes (never raises)."""
        if st.closed:
            return
        st.closed = True
        self._streams.discard(st)
        if st.sensor_id is None:
            return
        if self._owners.get(st.sensor_id) is st:
            del self._owners[st.sensor_id]
        if self._worker is not None and not self._worker.done():
            self._enqueue(_Item(EventKind.CLOSE, st.sensor_id))

    async def submit_frame(
        self, msg: sensor_pb2.SensorFrame
    ) -> asyncio.Future[sensor_pb2.FrameAck]:
        """Queue one frame (waits for a slot: back-pressure); the future resolves to its ack."""
        self._check_open()
        if self.core.orderer.buffered >= self.settings.max_buffered_frames:
            await self._wait_for_buffer_room(msg.sensor_id)
        await self._slots.acquire()
        self._pending_frames += 1
        fut: asyncio.Future[sensor_pb2.FrameAck] = asyncio.get_running_loop().create_future()
        item = _Item(EventKind.FRAME, msg.sensor_id, time.time(), frame=msg, future=fut)
        item.arrival_ns = time.time_ns()
        self._enqueue(item)
        return fut

    async def _wait_for_buffer_room(self, sensor_id: str) -> None:
        """Hold a frame while the watermark buffer is full, unless its sensor holds the
        watermark (its frames are what lets the buffer drain). Polls every 20 ms: this
        only runs while a sender is far ahead of the others."""
        orderer = self.core.orderer
        held = False
        while (
            orderer.buffered >= self.settings.max_buffered_frames
            and sensor_id not in orderer.holding_sensors()
        ):
            if not held:
                held = True
                self.buffer_holds += 1
            self._check_open()
            await asyncio.sleep(0.02)

    async def declare(self, sensor_ids: Iterable[str]) -> list[str]:
        """Declare sensors (journaled); returns every sensor now expected."""
        self._check_open()
        fut: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Item(EventKind.DECLARE, now=time.time(), ids=tuple(sensor_ids), future=fut))
        return await fut

    # ---------------------------------------------------------------- worker
    async def _work(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                # Bounded batches keep the event loop responsive while the tracker runs.
                q = self._queue
                batch = [q.popleft() for _ in range(min(len(q), MAX_BATCH_ITEMS))]
                stop = None in batch
                if stop:  # the stop sentinel: nothing after it is applied
                    rest = batch[batch.index(None) + 1 :] + list(q)
                    q.clear()
                    batch = batch[: batch.index(None)]
                    for it in rest:
                        if it is not None and it.future is not None and not it.future.done():
                            it.future.set_exception(EngineClosed("fusion service stopped"))
                await self._process(batch)
                if stop:
                    return
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.failed = exc
                self._failed_event.set()
                log.critical(kv("engine_failed", error=repr(exc)), exc_info=exc)
            for it in self._queue:
                if it is not None and it.future is not None and not it.future.done():
                    it.future.set_exception(EngineClosed(f"fusion engine failed: {exc!r}"))
            raise

    async def _process(self, batch: list[_Item]) -> None:
        results = []
        reports: list[TrackReport] = []
        try:
            for item in batch:
                status, reason, emitted, journaled = self._apply(item, replay=False)
                results.append((item, status, reason))
                reports.extend(emitted)
            if self.journal.pending:
                await self._db(self.journal.commit)
        except BaseException as exc:
            for item in batch:
                if item.future is not None and not item.future.done():
                    item.future.set_exception(EngineClosed(f"fusion engine failed: {exc!r}"))
            raise
        # Durable in the journal: show, acknowledge, then outbox and forward. Everything
        # up to the outbox write is synchronous, so an ack implies the frame's reports
        # are visible to ListLiveTracks and subscribers.
        protos: list[track_pb2.TrackReport] = []
        if reports:
            now_ns = time.time_ns()
            protos = [self._to_proto(r, now_ns) for r in reports]
            self._remember(reports, protos)
            self.hub.publish(protos)
        for item, status, reason in results:
            if item.kind == EventKind.FRAME:
                self._pending_frames -= 1
                self._slots.release()
                msg = item.frame
                ack = sensor_pb2.FrameAck(
                    sensor_id=msg.sensor_id,
                    sequence=msg.sequence,
                    status=int(status),
                    reason=reason,
                )
                if item.future is not None and not item.future.done():
                    item.future.set_result(ack)
                for on_frame in self.frame_listeners:
                    on_frame(msg, int(status), item.arrival_ns)
            elif item.kind == EventKind.DECLARE and item.future is not None:
                if not item.future.done():
                    item.future.set_result(list(self.core.orderer.expected_sensors))
        if protos:
            for on_reports in self.report_listeners:
                on_reports(protos)
            await self._db(
                self.outbox.add, [p.SerializeToString() for p in protos], self.journal.committed_seq
            )
            if self.forwarder is not None:
                self.forwarder.notify()
        await self._maybe_checkpoint()

    def _apply(
        self, item: _Item, *, replay: bool
    ) -> tuple[FrameStatus, str, list[TrackReport], bool]:
        """Apply one input to the core; journal it (live) when it changed state."""
        core = self.core
        kind, sid, now = item.kind, item.sensor_id, item.now
        status, reason, reports = FrameStatus.ACCEPTED, "", []
        journal = False
        payload = b""
        if kind == EventKind.FRAME:
            # Size limits apply live only: the journal holds frames accepted under them.
            too_big = None if replay else frame_size_error(item.frame)
            if too_big:
                status, reason, reports = core.reject(too_big)
            else:
                try:
                    frame = frame_from_proto(item.frame)
                except (ValueError, OverflowError) as exc:
                    status, reason, reports = core.reject(str(exc))
                else:
                    status, reason, reports = core.submit(frame, now)
            journal = status is FrameStatus.ACCEPTED
            if journal and not replay:
                payload = item.frame.SerializeToString()
        elif kind == EventKind.DECLARE:
            ids = [s for s in item.ids if s]
            core.declare(ids, now)
            journal, payload = bool(ids), "\n".join(ids).encode()
        elif kind == EventKind.OPEN:
            core.open_stream(sid, now)
            journal = True
            self._opens[sid] += 1
        elif kind == EventKind.CLOSE:
            reports = core.close_stream(sid)
            journal = True
            self._opens[sid] -= 1
            if self._opens[sid] <= 0:
                del self._opens[sid]
        elif kind == EventKind.IDLE:
            timeout = float(item.ids[0])
            expired, reports = core.expire_idle(now, timeout)
            journal, payload = bool(expired), repr(timeout).encode()
            if expired and not replay:
                log.info(kv("idle_timeout", sensors=",".join(expired), timeout_s=timeout))
        elif kind == EventKind.FLUSH:
            reports = core.flush()
            journal = True
        if journal and not replay:
            self.journal.append(kind, sid, now, payload)
        return status, reason, reports, journal

    async def _tick(self) -> None:
        """Idle timeout (and expiry of streams a previous process left open)."""
        timeout = self.settings.idle_timeout_s
        if timeout <= 0:
            return
        period = max(0.05, min(1.0, timeout / 4))
        while True:
            await asyncio.sleep(period)
            now = time.time()
            if self._stale and now - self._stale_since > timeout:
                for sid, n in sorted(self._stale.items()):
                    log.info(kv("stale_stream_closed", sensor_id=sid, streams=n))
                    for _ in range(n):
                        self._enqueue(_Item(EventKind.CLOSE, sid))
                self._stale.clear()
            self._enqueue(_Item(EventKind.IDLE, now=now, ids=(repr(float(timeout)),)))

    # ---------------------------------------------------------------- outputs
    def _to_proto(
        self, report: TrackReport, emitted_ns: int | None = None
    ) -> track_pb2.TrackReport:
        msg = report_to_proto(report)
        if emitted_ns is not None and report.emitted_at_ns is None:
            msg.emitted_at.CopyFrom(ns_to_timestamp(emitted_ns, "emitted_at"))
        return msg

    def _remember(
        self,
        reports: list[TrackReport],
        protos: list[track_pb2.TrackReport] | None = None,
        prune: bool = True,
    ) -> None:
        """Keep the latest published report of each live track (ListLiveTracks)."""
        if not reports:
            return
        for i, r in enumerate(reports):
            if r.status == TrackStatus.DELETED:
                self._live.pop(r.track_id, None)
            else:
                self._live[r.track_id] = protos[i] if protos is not None else None  # type: ignore[assignment]
        if prune:
            self._prune_live()

    def _prune_live(self) -> None:
        """Forget tracks the tracker no longer holds (e.g. dropped tentative ones)."""
        live_ids = {r.track_id for r in self.core.live_reports()}
        for tid in [t for t in self._live if t not in live_ids]:
            del self._live[tid]

    def live_tracks(self) -> list[track_pb2.TrackReport]:
        """Latest published report of each live track, ordered by track id."""
        out = []
        for tid in sorted(self._live):
            msg = self._live[tid]
            if msg is None:  # known from the replay only: convert lazily
                msg = self._live[tid] = self._latest_from_core(tid)
            if msg is not None:
                out.append(msg)
        return out

    def _latest_from_core(self, track_id: str) -> track_pb2.TrackReport | None:
        for r in self.core.live_reports():
            if r.track_id == track_id:
                return self._to_proto(r)
        return None

    def subscribe(self, include_current: bool) -> tuple[Subscription, list[track_pb2.TrackReport]]:
        """A subscription and (optionally) the current picture, taken atomically."""
        self._check_open()
        sub = self.hub.subscribe()
        return sub, (self.live_tracks() if include_current else [])

    def counters(self) -> dict[str, int]:
        """GetStatus / Prometheus counters (DESIGN §8 names); totals count this process."""
        core = self.core.counters
        out: dict[str, int] = {}
        for key, value in core.items():
            name = key.split("{", 1)[0]
            if name in GAUGES or not name.endswith("_total"):
                out[key] = int(value)
            else:
                out[key] = int(value) - int(self._baseline.get(key, 0))
        out["outbox_depth"] = self.outbox.depth
        out["outbox_delivered_total"] = self.outbox.delivered
        out["outbox_rejected"] = self.outbox.rejected
        out["journal_frames"] = self.journal.frames
        out["streams_open"] = len(self._streams)
        out["subscribers"] = self.hub.subscriber_count
        out["frames_pending"] = self._pending_frames
        if self.forwarder is not None:
            out["store_reconnects_total"] = self.forwarder.reconnects
        out["permission_denied_total"] = self.permission_denied
        out["buffer_holds_total"] = self.buffer_holds
        for source in self.counter_sources:
            out.update(source())
        return out


def default_paths(fusion_id: str) -> tuple[Path, Path]:
    """DESIGN §8 defaults: ``./<id>.journal.sqlite`` and ``./<id>.outbox.sqlite``."""
    return Path(f"{fusion_id}.journal.sqlite"), Path(f"{fusion_id}.outbox.sqlite")
