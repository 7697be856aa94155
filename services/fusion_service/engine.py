"""The fusion service's engine: two FusionCores + journal + outbox, ordering and tracking tasks.

Everything that changes the core goes through
:func:`~tracklayer.services.fusion_service.inputs.apply_input`, live and on journal
replay alike (``recovery``), in one order:

1. Streams and RPCs enqueue items (frames, stream open/close, declarations,
   idle-timeout ticks); frames are admitted first (:mod:`.admission`: a slot among
   ``max_pending_frames``, and room in the watermark buffer unless their sensor
   holds the watermark: back-pressure on the senders, DESIGN §6 rule 6).
2. The worker takes what is queued, validates and orders it on the ordering core
   (``orders``: a ``FusionCore`` whose tracker tracks nothing; it gives each frame its
   status), appends each state-changing event to the journal, commits the journal in
   one transaction (group commit, on the database thread) and acknowledges the
   frames: an ack waits for the journal, never for the tracker.
3. The tracking core (``core``, :mod:`.follower`) applies the committed events in
   journal order, as a restart replays them, and tracks what they release, on the
   tracker thread, at most ``MAX_BATCH_S`` at a time; the events come from a feed in
   memory (at most ``MAX_UNTRACKED``) while it keeps up, and are read back from the
   journal when it does not (the ordering never waits for the tracker). Each
   stretch's reports are shown (``ListLiveTracks``, subscribers) at once and written
   to the outbox as soon as the previous outbox write is done, with the marks of what
   they cover (the journal seq whose events are all tracked, and the tracking core's
   count of tracked work items), then handed to the forwarder. ``ListLiveTracks``
   first waits for the tracking of everything acknowledged before it (read your
   writes: a client that saw its frames' acks sees their tracks).
   With ``settings.tracking_process`` (``tracklayer fusion``) the tracking core is a
   spawned child's instead (:mod:`.tracking_remote`): it reads the committed events
   back from the journal itself and sends each stretch's reports, marks and figures.

A crash loses nothing: a frame not journaled was not acknowledged, and the replay
tracks every journaled event again and re-emits the reports of every work item past
the outbox's items mark. Checkpoints are of the tracking core at its place in the
journal, between two stretches, after the outbox write of the reports they cover.
Restart = replay the journal through a fresh core with the same settings (same track
ids and revisions); the ordering core starts as a copy of its orderer.
Which calls own which sensor, and the streams left open (after a restart or a cut):
:mod:`.streams`.

``ListLiveTracks`` reads the engine's :class:`LivePicture`; subscribers get the
reports from its :class:`Broadcaster` (``hub``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable

from tracklayer.fusion.domain import TrackReport
from tracklayer.fusion.registration import SensorBias
from tracklayer.services.fusion_service.admission import FrameAdmission
from tracklayer.services.fusion_service.caps import Caps
from tracklayer.services.fusion_service.checkpoint_file import open_checkpoint_file
from tracklayer.services.fusion_service.checkpointer import Checkpointer
from tracklayer.services.fusion_service.disk_full import (
    DiskFull,
)
from tracklayer.services.fusion_service.follower import Follower, merged_counters, ordering_core
from tracklayer.services.fusion_service.forwarder import Forwarder
from tracklayer.services.fusion_service.inputs import EngineInput
from tracklayer.services.fusion_service.journal import EventKind, Journal
from tracklayer.services.fusion_service.live_picture import LivePicture
from tracklayer.services.fusion_service.metrics import bias_samples, since_start
from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.services.fusion_service.recovery import replay_journal
from tracklayer.services.fusion_service.sensor_positions import SensorPositions
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.fusion_service.streams import StreamBook, StreamState, idle_ticks
from tracklayer.services.fusion_service.tracker_thread import TrackerThread
from tracklayer.services.fusion_service.tracking_child import new_core
from tracklayer.services.fusion_service.tracking_process import TrackingProcess
from tracklayer.services.fusion_service.worker import MAX_UNTRACKED, EngineClosed, EngineWorker
from tracklayer.services.gc_policy import GcFreezer
from tracklayer.services.rpc.broadcast import Broadcaster, Subscription
from tracklayer.services.rpc.server import kv
from tracklayer.services.sqlite_db import DatabaseThread
from tracklayer.v1 import sensor_pb2, track_pb2

log = logging.getLogger("tracklayer.services.fusion")

FrameListener = Callable[[sensor_pb2.SensorFrame, int, int], None]
ReportListener = Callable[[list[track_pb2.TrackReport]], None]


class FusionEngine(EngineWorker):
    """FusionCore, journal, outbox, forwarder and broadcast behind one worker task
    (see the module docstring). Create, ``await start()``, use, ``await stop()``."""

    def __init__(
        self,
        settings: FusionSettings,
        *,
        journal: Journal | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        """``journal`` and ``outbox`` replace the SQLite files of ``settings`` (the
        scale-out front door journals to a JetStream stream: ``scaleout.stream_journal``)."""
        self.settings = settings
        self._open_files(journal, outbox)
        self._start_modes()
        self.hub: Broadcaster[track_pb2.TrackReport] = Broadcaster()
        self.live = LivePicture(self._live_reports)
        # Where each sensor was at its latest accepted frame (reports carry it, for displays).
        self.sensor_positions = SensorPositions()
        self._queue: deque[EngineInput] = deque()
        self._wake = asyncio.Event()
        self._admission = FrameAdmission(settings.max_pending_frames, settings.max_buffered_frames)
        self._book = StreamBook(self.caps, self._enqueue)  # calls, owners, stale streams
        self._opens: Counter = Counter()  # journaled stream opens minus closes, per sensor
        self._baseline: dict[str, int] = {}
        self.permission_denied = 0  # streams and declarations refused by the mTLS identity check
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None
        self.unwritable: str | None = None  # why the journal/outbox cannot be written
        self.health_listeners: list[Callable[[bool], None]] = []
        self._failed_event = asyncio.Event()
        self.forwarder: Forwarder | None = None
        self._outbox_write: asyncio.Future[None] | None = None  # the last one, maybe in flight
        self._unsent: list[bytes] = []  # reports shown, not yet outboxed (tracking._show)
        self._tracked = asyncio.Event()  # set after each stretch of tracking (read your writes)
        self._track_wake = asyncio.Event()  # the tracking task has something to do
        self._trackable = 0  # the committed seq: the follower's limit
        self._committed_now: float | None = None  # the caller's clock of the last journaled
        self._look_checkpoint = False  # the ordering task looks for a due checkpoint
        self._outbox_broken: BaseException | None = None  # a failed outbox write (till reload)
        self._journal_mark = 0  # the outbox's journal mark as the worker last wrote it
        self.replayed_events = 0
        # Freezes long-lived objects out of the collector's scans (the command sets it).
        self.gc_freezer: GcFreezer | None = None
        # Observers (e.g. a live recorder): called after each group commit, in order.
        self.frame_listeners: list[FrameListener] = []  # (frame, FrameStatus, arrival ns)
        self.report_listeners: list[ReportListener] = []  # reports as emitted
        self.counter_sources: list[Callable[[], dict[str, int]]] = []  # more GetStatus counters
        self.live_source: Callable[[], list[track_pb2.TrackReport]] | None = None

    def _open_files(self, journal: Journal | None, outbox: Outbox | None) -> None:
        """The journal (its settings pinned), the outbox, the checkpoint file, their
        database threads and the checkpointer (``__init__``)."""
        settings = self.settings
        self._db = DatabaseThread("fusion-db")  # the journal's: a commit waits for nothing else
        self._outbox_db = DatabaseThread("fusion-outbox")  # outbox writes, forwarder, reclaim
        sync = settings.synchronous
        self.journal = journal or Journal(settings.journal_path, synchronous=sync)
        self.outbox = outbox or Outbox(settings.outbox_path, synchronous=sync)
        pinned = {"fusion_id": settings.fusion_id, "config": settings.config.to_mapping()}
        self.journal.check_settings(pinned | {"sensors": sorted(settings.sensors)})
        self._checkpoints = open_checkpoint_file(self.journal, settings.synchronous)
        self._ckpt_db: DatabaseThread | None = None
        store_run = None
        if self._checkpoints is not None:  # their own thread: a commit never waits for one
            self._ckpt_db = DatabaseThread("fusion-checkpoint")
            store_run = self._ckpt_db.submit
        self.checkpointer = Checkpointer(
            settings,
            self.journal,
            self.outbox,
            self._db.run,
            store=self._checkpoints,
            store_run=store_run,
            outbox_run=self._outbox_db.run,
        )

    def _start_modes(self) -> None:
        """The two cores, the follower and where the tracking runs: the tracker thread,
        or (``settings.tracking_process``, a SQLite journal) a process of its own."""
        self._tracker = TrackerThread()  # FusionCore.track_next, off the event loop
        self.core = new_core(self.settings)  # the tracking core (the follower's)
        self.orders = ordering_core(self.core)  # the ordering core: the acks' statuses
        self.follower = Follower(self.core, Counter(), 0, 0, None, MAX_UNTRACKED)
        self._reader = getattr(self.journal, "reader", None)  # the backlog's way back
        # the tracking core in a process of its own (tracking_remote): a SQLite journal only
        self._in_process = self.settings.tracking_process and isinstance(self.journal, Journal)
        self._remote: TrackingProcess | None = None
        self._ckpt_asked = False  # a checkpoint asked of the tracking process, not yet here
        self._restarts: list[float] = []  # when the tracking process died (monotonic s)
        self._child_counters: dict[str, int] = {}  # its GetStatus counters and biases
        self._child_biases: list[SensorBias] = []
        self.caps = Caps(self.settings.max_sensors, self.settings.max_streams_per_client)
        self.checkpointer.spaced = self._in_process  # encoded where it holds the tracking

    # ---------------------------------------------------------------- life cycle
    async def start(self) -> None:
        """Replay the journal, declare ``--sensors`` on a new journal, start the tasks."""
        fresh = self.journal.last_seq == 0
        self.reload_state(fresh_core=False)
        if self.settings.store_target:
            self.forwarder = Forwarder(
                self.outbox,
                self.settings.store_target,
                self._outbox_db.run,
                max_backoff_s=self.settings.store_max_backoff_s,
                credentials=self.settings.store_credentials,
            )
            self.forwarder.start()
        self.checkpointer.start()
        self._worker = asyncio.create_task(self._work(), name="fusion-worker")
        self._ticker = asyncio.create_task(
            idle_ticks(self._book, self._enqueue, self.settings.idle_timeout_s), name="fusion-idle"
        )
        if fresh and self.settings.sensors:
            await self.declare(self.settings.sensors)

    def reload_state(self, *, fresh_core: bool = True) -> None:
        """(Re)build the state from the newest usable checkpoint and the journal: at
        start, and after a full disk (``fresh_core``: drop the in-memory state first).
        Streams left open become stale (closed when their sensor reconnects)."""
        t0 = time.perf_counter()
        self._unsent = []  # the replay outboxes every report past the outbox's marks
        self._outbox_broken = None
        self._trackable = self.journal.committed_seq  # the replay tracks them all
        if self._in_process:
            self._reload_remote()  # a new tracking process replays (tracking_remote)
        else:
            self._reload_here(fresh_core)
        self.checkpointer.after_replay(self.replayed_events)
        self._journal_mark = self.outbox.journal_mark
        self._track_wake.set()
        self._tracked.set()  # readers waiting on the old core look again
        self._baseline = merged_counters(self._tracking_counters(), self.orders.counters)
        self.caps.know(self.orders.orderer.known_sensors())
        self._book.reset(self._opens, forget_owners=fresh_core)
        log.info(
            kv(
                "journal_replayed",
                journal=str(self.journal.path),
                events=self.replayed_events,
                frames=self.journal.frames,
                stale_streams=self._book.stale_streams,
                seconds=round(time.perf_counter() - t0, 3),
                outbox_depth=self.outbox.depth,
            )
        )

    def _reload_here(self, fresh_core: bool) -> None:
        """The in-thread tracking core rebuilt from the checkpoint and the journal."""
        if fresh_core:
            self.core = new_core(self.settings)
            self.live = LivePicture(self._live_reports)
            if self.gc_freezer is not None:  # the old state may hold frozen cycles
                self.gc_freezer.thaw()
        checkpoint_seq, opens = self._restore_checkpoint(Counter())  # may replace the core
        self.replayed_events = replay_journal(
            self.journal, self.outbox, self.core, opens, self.live, checkpoint_seq
        )
        self.follower.close()
        reader = self._reader() if self._reader is not None else None
        seq, frames = self._trackable, self.journal.frames
        self.follower = Follower(self.core, opens, seq, frames, reader, MAX_UNTRACKED)
        self.orders, self._opens = ordering_core(self.core), Counter(opens)

    def _tracking_counters(self) -> dict[str, int]:
        """The tracking core's counters (the tracking process's as last sent)."""
        return self._child_counters if self._in_process else self.core.counters

    def _close_files(self) -> None:
        """Close the database threads (after the calls already queued), then the files."""
        if self._remote is not None:
            self._remote.stop()
        self._tracker.close()
        self.follower.close()
        if self._ckpt_db is not None:
            self._ckpt_db.close()
        self._outbox_db.close()
        self._db.close()
        self.journal.close()
        self.outbox.close()
        if self._checkpoints is not None:
            self._checkpoints.close()

    # ---- full disk (disk_full.ride_out drives these) ----------------------------
    def set_serving(self, serving: bool) -> None:
        """Tell the health listeners (the server's health service)."""
        for listener in self.health_listeners:
            listener(serving)

    def streams(self) -> list[StreamState]:
        return self._book.calls()

    def take_queued(self) -> list[EngineInput]:
        items = [i for i in self._queue if i is not None]
        stop = len(items) != len(self._queue)
        self._queue.clear()
        if stop:
            self._queue.append(None)  # type: ignore[arg-type]
        return items

    def fail_inputs(self, items: Iterable[EngineInput], error: BaseException) -> None:
        """Inputs that were not (durably) applied (``admission.FrameAdmission.fail``)."""
        self._admission.fail(items, error)

    async def db_run(self, fn: Callable[..., object], *args: object) -> object:
        """``fn(*args)`` on the journal's database thread."""
        return await self._db.run(fn, *args)

    async def outbox_run(self, fn: Callable[..., object], *args: object) -> object:
        """``fn(*args)`` on the outbox's database thread."""
        return await self._outbox_db.run(fn, *args)

    def _live_reports(self) -> list[TrackReport]:
        """The core's latest reports, read between two items of the tracker thread."""
        return self._tracker.locked(lambda: self.core.live_reports())

    def _restore_checkpoint(self, opens: Counter) -> tuple[int, Counter]:
        """Load the newest usable checkpoint into the tracking core; returns its seq (0:
        replay from the start) and open-stream counts (``opens`` if none)."""
        restored = self.checkpointer.restore(self.core)
        if restored is None:
            return 0, opens
        self.core, opens = restored
        self.core.defer_tracking = True
        self.live.reset_from_core()
        return self.checkpointer.seq, opens

    async def abandon(self) -> None:
        """Stop as SIGKILL would after the last commit (tests of crash recovery): no
        flush, nothing drained; queued input is dropped unacknowledged."""
        self._closing = True
        self.checkpointer.kill()
        if self._remote is not None:
            self._remote.kill()
        for task in (self._ticker, self._worker):  # before any await: a stream ending
            if task is not None:  # meanwhile must not get its CLOSE journaled
                task.cancel()
        await self.checkpointer.trimmer.stop()
        await asyncio.gather(
            *(t for t in (self._ticker, self._worker) if t is not None), return_exceptions=True
        )
        if self.forwarder is not None:
            await self.forwarder.abandon()
        self.hub.close()
        self._close_files()

    def begin_shutdown(self) -> None:
        """Take no new input; ask open streams to finish their acks and end; end subscriptions."""
        if self._closing:
            return
        self._closing = True
        for st in self._book.calls():
            if st.on_shutdown is not None:
                st.on_shutdown()
        self.hub.close()
        if self._ticker is not None:
            self._ticker.cancel()

    async def stop(self, drain_timeout_s: float = 2.0) -> None:
        """Apply everything queued, flush the core (journaled), commit, drain the outbox.

        Call after the gRPC server stopped (so every stream's close is queued)."""
        if self._db.closed:
            return
        self.begin_shutdown()
        if self._worker is not None and not self._worker.done():
            self._enqueue(EngineInput(EventKind.FLUSH, now=time.time()))
            self._enqueue(None)
            (ended,) = await asyncio.gather(self._worker, return_exceptions=True)
            if isinstance(ended, BaseException) and not isinstance(ended, asyncio.CancelledError):
                log.error(kv("engine_stop_failed", error=repr(ended)), exc_info=ended)
        await self.checkpointer.settle()
        self.checkpointer.log_summary()
        await self.checkpointer.trimmer.stop()
        if self.forwarder is not None:
            await self.forwarder.stop(drain_timeout_s)
        log.info(
            kv(
                "engine_stopped",
                journal_frames=self.journal.frames,
                outbox_depth=self.outbox.depth,
            )
        )
        self._close_files()

    # ---------------------------------------------------------------- inputs
    def _enqueue(self, item: EngineInput | None) -> None:
        self._queue.append(item)  # type: ignore[arg-type]
        self._wake.set()

    def _check_open(self) -> None:
        if self._closing:
            raise EngineClosed("fusion service is shutting down")
        if self.failed is not None:
            raise EngineClosed(f"fusion engine failed: {self.failed!r}")
        if self.unwritable is not None:
            raise DiskFull(self.unwritable)

    async def wait_failed(self) -> BaseException | None:
        """Resolves if the worker dies (a bug or a disk error): the service must stop."""
        await self._failed_event.wait()
        return self.failed

    def new_stream(self, peer: str, client: str = "") -> StreamState:
        """A new StreamFrames call; raises TooManyStreams past the per-client cap."""
        self._check_open()
        return self._book.new(peer, client)

    def open_stream(self, st: StreamState, sensor_id: str) -> None:
        """``st`` carries ``sensor_id``: it joins the expected set; an older stream is replaced."""
        if st.sensor_id is not None or not sensor_id:
            return
        self._check_open()
        self._book.open(st, sensor_id)

    def close_stream(self, st: StreamState, *, cut: bool = False) -> None:
        """The call ended: its sensor's stream closes (never raises). ``cut``: it ended
        without the client closing it (connection lost, call cancelled): the stream
        stays open in the core, as after a crash, until the sensor reconnects or the
        idle timeout passes, so a flaky link does not end the input (DESIGN §6 rule 4)."""
        worker_alive = self._worker is not None and not self._worker.done()
        self._book.close(st, cut=cut, closing=self._closing, worker_alive=worker_alive)

    async def submit_frame(
        self, msg: sensor_pb2.SensorFrame
    ) -> asyncio.Future[sensor_pb2.FrameAck]:
        """Queue one frame (waits for a slot: back-pressure); the future resolves to its ack."""
        self._check_open()
        await self._admission.admit(self.orders.orderer, msg.sensor_id, self._check_open)
        fut: asyncio.Future[sensor_pb2.FrameAck] = asyncio.get_running_loop().create_future()
        item = EngineInput(EventKind.FRAME, msg.sensor_id, time.time(), frame=msg, future=fut)
        item.arrival_ns = time.time_ns()
        self._enqueue(item)
        return fut

    async def declare(self, sensor_ids: Iterable[str]) -> list[str]:
        """Declare sensors (journaled); returns every sensor now expected."""
        self._check_open()
        self.caps.admit_sensors(sensor_ids)
        fut: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._enqueue(
            EngineInput(EventKind.DECLARE, now=time.time(), ids=tuple(sensor_ids), future=fut)
        )
        return await fut

    # ---------------------------------------------------------------- outputs
    def live_tracks(self) -> list[track_pb2.TrackReport]:
        """Latest published report of each live track, ordered by track id (from
        ``live_source`` when set: the scale-out front door's picture of its shards)."""
        if self.live_source is not None:
            return self.live_source()
        return self.live.tracks()

    def subscribe(self, include_current: bool) -> tuple[Subscription, list[track_pb2.TrackReport]]:
        """A subscription and (optionally) the current picture, taken atomically."""
        self._check_open()
        sub = self.hub.subscribe()
        return sub, (self.live_tracks() if include_current else [])

    def sensor_biases(self) -> list[SensorBias]:
        """Every sensor's current pointing-bias estimate (GetStatus)."""
        if self._in_process:
            return self._child_biases
        return self._tracker.locked(lambda: self.core.sensor_biases())

    def metrics(self) -> dict[str, float]:
        """The Prometheus samples: the counters and the bias estimates."""
        out: dict[str, float] = dict(self.counters())
        out.update(bias_samples(self.sensor_biases()))
        return out

    @property
    def buffer_holds(self) -> int:  # frames held back while the watermark buffer was full
        return self._admission.buffer_holds

    def _core_counters(self) -> dict[str, int]:
        """The two cores' counters and the tracker's backlog (under the tracker's lock)."""
        out = merged_counters(self._tracking_counters(), self.orders.counters)
        out.update(self.follower.figures(self._trackable, self.journal.frames, self._committed_now))
        return out

    def counters(self) -> dict[str, int]:
        """GetStatus / Prometheus counters (DESIGN §8 names); totals count this process."""
        out = since_start(self._tracker.locked(self._core_counters), self._baseline)
        out["outbox_depth"] = self.outbox.depth
        out["outbox_delivered_total"] = self.outbox.delivered
        out["outbox_rejected"] = self.outbox.rejected
        out["journal_frames"] = self.journal.frames
        out["streams_open"] = len(self._book)
        out["subscribers"] = self.hub.subscriber_count
        out["frames_pending"] = self._admission.pending
        out["db_busy_ms_total"] = int(self._db.busy_s * 1000)  # the journal thread's load
        out["outbox_db_busy_ms_total"] = int(self._outbox_db.busy_s * 1000)
        out["tracker_busy_ms_total"] = int(self._tracker_busy_s() * 1000)
        if self.forwarder is not None:
            out["store_reconnects_total"] = self.forwarder.reconnects
        out["permission_denied_total"] = self.permission_denied
        out["buffer_holds_total"] = self.buffer_holds
        out.update(self.checkpointer.counters())
        if self._checkpoints is not None:
            out["checkpoints_bytes"] = self._checkpoints.size_bytes
        if self.gc_freezer is not None:
            out["gc_frozen_objects"] = self.gc_freezer.frozen()
        out.update(self.caps.counters())
        for source in self.counter_sources:
            out.update(source())
        return out
