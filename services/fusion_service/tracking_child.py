"""The tracking core in a process of its own: the child's side (issue 13 item 6, stop 22).

One interpreter has one GIL: while the tracker thread ran Python code, each wake of the
event loop that acknowledges frames waited for it (``benchmarks/bench_gil_handoff.py``:
+10-14 ms p99 per wake), and the tracker shared one core with the loop, the journal and
the outbox. The tracking core only follows the *committed* journal, so it runs here, in
a child spawned by the engine (:mod:`.tracking_process`: no fork of a process with gRPC
threads), with its own read-only connection to the journal:

1. At its start it loads the newest usable checkpoint (read-only), replays the journal
   up to the seq the engine names (the same :func:`~.recovery.replay_events` as a
   restart in one process) and sends ``READY``: the reports to outbox again (past the
   outbox's marks), its orderer (the engine's ordering core starts as a copy), its
   open-stream counts, the live picture, its counters.
2. Then it follows: the engine writes the newest committed seq into shared memory and
   sends a ``note`` (at most one unread: :class:`~.tracking_process.TrackingProcess`);
   the child reads the events back from the journal (:class:`~.follower.Follower`,
   64 at a time), applies them with ``apply_input`` and tracks them in stretches of
   ``MAX_BATCH_S``, each answered by one ``STRETCH`` message: the reports as wire
   bytes (converted here, with the sensor positions of the frames applied), their
   track ids, the ids the live picture drops, the marks (the journal seq up to which
   every event's work is tracked, the count of tracked items) and the figures
   (``GetStatus`` counters and sensor biases at most every ``FIGURES_EVERY_S``, and
   whenever it has caught up or goes idle).
3. Asked for a checkpoint, it encodes its state at its place in the journal between two
   stretches, once every item it released is tracked (all their reports already sent),
   and sends it (``CHECKPOINT``, then the bytes); the engine writes it only after the
   outbox write holding those reports succeeded.

It ends at ``stop``, or when the engine's end of the pipe closes (the engine died); a
failure is sent (``FAILED``) before it exits. SIGINT (a terminal's Ctrl-C, sent to the
whole process group) is ignored: the engine stops it after draining.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tracklayer.fusion import kernel_registration, kernels
from tracklayer.fusion.core import Emitted, FusionCore
from tracklayer.fusion.domain import TrackStatus
from tracklayer.services.fusion_service.checkpoint import CheckpointError, allowed_modules
from tracklayer.services.fusion_service.checkpointer import IN_CHILD_ABOVE_S
from tracklayer.services.fusion_service.follower import MAX_BATCH_S, Follower
from tracklayer.services.fusion_service.forked_encode import (
    CHILD_TIMEOUT_S,
    ChildEncode,
    ChildEncodeFailed,
    collect_child,
)
from tracklayer.services.fusion_service.journal import JournalError, JournalReader
from tracklayer.services.fusion_service.live_picture import report_message
from tracklayer.services.fusion_service.recovery import (
    checkpoint_state,
    load_checkpoint,
    replay_events,
)
from tracklayer.services.fusion_service.sensor_positions import SensorPositions
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.gc_policy import GcFreezer, trim_heap

#: Message kinds (child -> engine).
READY, STRETCH, CHECKPOINT, FAILED = "ready", "stretch", "checkpoint", "failed"
#: Message kinds (engine -> child).
NOTE, ASK_CHECKPOINT, STOP = "note", "ask_checkpoint", "stop"

#: Wall seconds between two sends of the counters and sensor biases while busy.
FIGURES_EVERY_S = 0.25

#: Wall seconds the child lets committed events gather after a stretch that caught up,
#: before the next one (it tracks on without a pause while behind). At 1x a raid commits
#: ~60 times a second, one or two frames each: one stretch per commit was one message,
#: one outbox write and one forwarder round each for the engine (DESIGN §8.7). The
#: frames wait up to this much more for tracking, beside the watermark's seconds.
GATHER_S = 0.025

#: Events read from the journal at a time during the start's replay.
REPLAY_CHUNK = 2000


@dataclass(frozen=True)
class ChildSpec:
    """What the child starts from: the settings (credentials left out), the files, the
    journal seq to replay up to, the outbox's marks, the FRAME events up to that seq."""

    settings: FusionSettings
    journal_path: Path
    checkpoint_path: Path | None
    limit: int
    journal_mark: int
    items_mark: int | None
    frames: int
    trimmed_through: int
    #: An encode that took this long (s) moves the next checkpoints to a forked child.
    fork_above_s: float = IN_CHILD_ABOVE_S


class _ReadOnlyCheckpoints:
    """The checkpoint file read on a read-only connection (the engine writes it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def checkpoints(self) -> list[tuple[int, str, bytes]]:
        if not self.path.exists():
            return []
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT seq, version, state FROM checkpoints ORDER BY seq DESC"
            ).fetchall()
        except sqlite3.OperationalError:  # no table yet
            return []
        finally:
            db.close()
        return [(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]


def new_core(s: FusionSettings) -> FusionCore:
    """A fresh tracking core of ``s`` (deferred tracking: the follower tracks it)."""
    core = FusionCore(
        s.fusion_id,
        s.config,
        live=True,
        tracker_factory=s.tracker_factory,
        allowed_sensors=s.sensors or None,
    )
    core.defer_tracking = True
    return core


def _warm(done: threading.Event) -> None:
    """Load (or compile) the tracker's and registration's kernels while the replay
    starts (:mod:`.warmup`)."""
    try:
        with contextlib.suppress(Exception):  # the tracker falls back by itself
            kernels.warm()
            kernel_registration.warm()
    finally:
        done.set()


def may_fork() -> bool:
    """This child may fork a checkpoint encoder: POSIX, and gRPC (imported here, never
    used) has its fork handlers off (``tracklayer`` sets that before gRPC loads, and
    the child inherits it: :mod:`~tracklayer.services.fork_policy`)."""
    flag = os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").strip().lower()
    return hasattr(os, "fork") and flag in ("0", "false", "no", "off")


def lower_priority(nice: int) -> None:
    """Add ``nice`` to the calling thread's nice value (capped at 19), once the start's
    replay is done (the engine, or its rebuild after a full disk, waits for that):
    Linux keeps one per thread; the threads started later (checkpoint collector) and the
    forked checkpoint encoders inherit it. The engine's acks then win the cores when the
    tracking and they compete (DESIGN §8.7); 0 or less changes nothing."""
    if nice > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(nice)


def child_main(conn: Connection, committed: Any, spec: ChildSpec) -> None:
    """The child process's entry point (``committed``: a shared ``RawValue('q')``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = ChildTracker(conn, committed, spec)
        child.start()  # the engine waits for this replay: at its priority
        lower_priority(spec.settings.tracking_nice)
        child.follow()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the engine is gone
    except BaseException as exc:
        with contextlib.suppress(Exception):
            journal = isinstance(exc, JournalError)
            conn.send((FAILED, str(exc) if journal else repr(exc), traceback.format_exc(), journal))
        raise


class ChildTracker:
    """The tracking core, its follower and the pipe to the engine (module docstring)."""

    def __init__(self, conn: Connection, committed: Any, spec: ChildSpec) -> None:
        self.conn, self.committed, self.spec = conn, committed, spec
        self.positions = SensorPositions()
        self.shown: set[str] = set()  # track ids in the engine's live picture
        self.notes = 0  # notes read
        self.want_checkpoint = False
        self.figures_at = 0.0
        self.dirty = False  # a note read since the last message: tell the engine
        self.stale = True  # figures changed since they were last sent
        self.freezer = GcFreezer()  # a long-lived state: see gc_policy
        self.follower: Follower | None = None
        self.warm = threading.Event()  # the kernels are loaded (no fork before: warmup.py)
        self.encode_s = 0.0  # the last checkpoint's encode time
        self.busy_s = 0.0  # wall seconds of the replay and the stretches (tracker_busy_ms_total)
        self.encoding: threading.Thread | None = None  # collects a forked encoder's bytes
        self.caught_up_at = 0.0  # monotonic s when a stretch last ended caught up (0: behind)
        self._sending = threading.Lock()  # the main thread's and the collector's sends

    # ---- start --------------------------------------------------------------------
    def start(self) -> None:
        """Checkpoint + replay up to ``spec.limit``, then ``READY``."""
        spec = self.spec
        if spec.settings.tracker_factory is None:  # the real tracker: its kernels
            warm = threading.Thread(target=_warm, args=(self.warm,), name="fusion-kernel-warmup")
            warm.start()
        else:  # a test's double uses none
            self.warm.set()
        core = new_core(spec.settings)
        seq, opens, oldest = 0, Counter(), 0
        if spec.checkpoint_path is not None:
            store = _ReadOnlyCheckpoints(spec.checkpoint_path)
            kept = store.checkpoints()
            loaded = load_checkpoint(store, allowed_modules(core), kept, spec.limit)
            oldest = min((cp[0] for cp in kept), default=0)
            if loaded is not None:
                seq, core, opens = loaded
                core.defer_tracking = True
        if seq == 0 and spec.trimmed_through:
            raise JournalError(
                f"{spec.journal_path}: no usable checkpoint, and the events up to seq "
                f"{spec.trimmed_through} they covered were trimmed: the state cannot be "
                "rebuilt; restore the file from a backup or start a fresh journal"
            )
        checkpoint_seq = seq
        reader = JournalReader(spec.journal_path)
        t0 = time.perf_counter()
        replayed, last, redo = replay_events(
            self._events(reader, seq, spec.limit), core, opens, None,
            spec.journal_mark, spec.items_mark,
        )  # fmt: skip
        self.busy_s = time.perf_counter() - t0  # the replay is tracking too
        live = [(r.track_id, report_message(r).SerializeToString()) for r in core.live_reports()]
        self.shown = {tid for tid, _ in live}
        f = self.follower = Follower(core, opens, spec.limit, spec.frames, reader, 0)
        f.on_frame = self.positions.seen
        self.conn.send(
            (READY, {
                "checkpoint_seq": checkpoint_seq, "oldest": oldest, "replayed": replayed,
                "last": checkpoint_seq if last is None else last, "redo": redo,
                "items_tracked": core.items_tracked, "orderer": core.orderer,
                "opens": dict(opens), "live": live, "state": self._state(spec.limit),
                "counters": core.counters, "biases": core.sensor_biases(),
            })
        )  # fmt: skip
        self.figures_at = time.monotonic()

    @staticmethod
    def _events(reader: JournalReader, after: int, limit: int):  # noqa: ANN205 - Iterator[Event]
        first = after + 1
        while first <= limit:
            last = min(limit, first + REPLAY_CHUNK - 1)
            yield from reader.events(first, last)
            first = last + 1

    # ---- follow -------------------------------------------------------------------
    def follow(self) -> None:
        """Track the committed events as they come, until ``stop`` (or the pipe ends)."""
        f = self.follower
        assert f is not None
        while True:
            if self._read_commands(block=False):
                return
            limit = int(self.committed.value)
            encoding = self.encoding is not None and self.encoding.is_alive()
            if self.want_checkpoint and not f.core.untracked and not encoding:
                self._checkpoint()
            elif f.behind(limit):
                if self._gather():
                    continue  # the committed seq moved on meanwhile
                t0 = time.perf_counter()
                emitted = f.run(limit, MAX_BATCH_S, contextlib.nullcontext())
                self.busy_s += time.perf_counter() - t0
                self.caught_up_at = 0.0 if f.behind(limit) else time.monotonic()
                self._send(emitted, limit)
                self.freezer.tick()
            else:
                wait = None  # idle: wait for the engine (or for the figures to be due)
                if self.stale:
                    wait = self.figures_at + FIGURES_EVERY_S - time.monotonic()
                    if wait <= 0:
                        self._send([], limit, figures=True)
                        continue
                if self.dirty:  # a note read: the engine learns it (and may note again)
                    self._send([], limit)
                if self._read_commands(block=True, timeout=wait):
                    return

    def _gather(self) -> bool:
        """Sleep out ``GATHER_S`` after a stretch that caught up (True: slept), so the
        events committed meanwhile make one stretch and one message."""
        wait = self.caught_up_at + GATHER_S - time.monotonic()
        if self.caught_up_at <= 0.0 or wait <= 0.0:
            return False
        time.sleep(wait)
        self.caught_up_at = 0.0
        return True

    def _read_commands(self, *, block: bool, timeout: float | None = None) -> bool:
        """Read what the engine sent (with ``block``, wait up to ``timeout`` s for
        something; None: as long as it takes); True: stop."""
        conn = self.conn
        if block:
            conn.poll(timeout)
        while conn.poll(0):
            msg = conn.recv()
            if msg[0] == NOTE:
                self.notes += 1
                self.dirty = True
            elif msg[0] == ASK_CHECKPOINT:
                self.want_checkpoint = True
            elif msg[0] == STOP:
                return True
        return False

    def _state(self, limit: int) -> dict[str, Any]:
        """The follower's place and figures (every message carries them)."""
        f = self.follower
        assert f is not None
        core = f.core
        return {
            "seq": f.seq, "mark": f.mark, "items_tracked": core.items_tracked,
            "untracked": core.untracked, "untracked_frames": core.untracked_frames,
            "frames": f.frames, "now": f.now, "read_back": f.read_back,
            "limit": limit, "notes": self.notes, "busy_s": self.busy_s,
        }  # fmt: skip

    def _send(self, emitted: list[Emitted], limit: int, *, figures: bool = False) -> None:
        """One ``STRETCH`` message: the reports on the wire, the picture's changes, the
        place, the counters once it caught up with ``limit`` (cheap), and the counters
        and sensor biases every FIGURES_EVERY_S (``figures``: now)."""
        f = self.follower
        assert f is not None
        core = f.core
        reports = [e.report for e in emitted]
        now_ns = time.time_ns()
        where = self.positions.messages
        wire = [report_message(r, now_ns, where(r.sensor_ids)).SerializeToString() for r in reports]
        ids = [(r.track_id, r.status == TrackStatus.DELETED) for r in reports]
        dropped: list[str] = []
        if reports:  # what LivePicture.remember + prune do, for the engine's picture
            for tid, deleted in ids:
                (self.shown.discard if deleted else self.shown.add)(tid)
            live = {r.track_id for r in core.live_reports()}
            dropped = [t for t in self.shown if t not in live]
            self.shown.difference_update(dropped)
        counters = biases = None
        t = time.monotonic()
        due = figures or t - self.figures_at >= FIGURES_EVERY_S
        if due or not f.behind(limit):
            counters = core.counters
        if due:
            biases, self.figures_at = core.sensor_biases(), t
        with self._sending:
            self.conn.send((STRETCH, wire, ids, dropped, self._state(limit), counters, biases))
        self.dirty = False
        self.stale = not due  # the biases (and maybe counters) changed since last sent

    def _checkpoint(self) -> None:
        """Encode the state at the follower's place (every released item tracked, their
        reports sent) and send it: ``CHECKPOINT`` (seq, size, encode s), then the bytes.
        A big state (its last encode took ``IN_CHILD_ABOVE_S`` or more) is encoded in a
        forked child of this single-threaded process (:mod:`.forked_encode`) while the
        tracking goes on; a thread sends its bytes once it is done."""
        f = self.follower
        assert f is not None
        self.want_checkpoint = False
        seq = f.seq
        if self.encode_s >= self.spec.fork_above_s and self.warm.is_set() and may_fork():
            child = ChildEncode()
            child.start(lambda: checkpoint_state(f.core, f.opens))
            self.encoding = threading.Thread(
                target=self._collect, args=(child, seq), name="fusion-checkpoint-collect"
            )
            self.encoding.start()
            return
        t0 = time.perf_counter()
        try:
            blob = checkpoint_state(f.core, f.opens)
        except CheckpointError as exc:  # a checkpoint only shortens replay
            self._send_checkpoint(seq, None, repr(exc))
            return
        self.encode_s = time.perf_counter() - t0
        self._send_checkpoint(seq, blob, self.encode_s, forked=False)

    def _collect(self, child: ChildEncode, seq: int) -> None:
        """On a thread: the forked encoder's bytes, sent (killed after CHILD_TIMEOUT_S)."""
        assert child.pid is not None
        timer = threading.Timer(CHILD_TIMEOUT_S, child.kill)
        timer.start()
        try:
            blob, seconds = collect_child(child.pid, child.take_pipe())
        except ChildEncodeFailed as exc:
            self._send_checkpoint(seq, None, str(exc))
            return
        finally:
            timer.cancel()
        self.encode_s = seconds
        with contextlib.suppress(OSError):
            self._send_checkpoint(seq, blob, seconds, forked=True)
        del blob
        trim_heap()  # the blob's pages, read on this thread (gc_policy.trim_heap)

    def _send_checkpoint(
        self, seq: int, blob: bytes | bytearray | None, info: object, *, forked: bool = False
    ) -> None:
        """``CHECKPOINT`` (seq, size or -1 with the error, encode s, encoded in a fork),
        then the bytes."""
        with self._sending:
            if blob is None:
                self.conn.send((CHECKPOINT, seq, -1, info, forked))
            else:
                self.conn.send((CHECKPOINT, seq, len(blob), info, forked))
                self.conn.send_bytes(blob)
        self.dirty = True
