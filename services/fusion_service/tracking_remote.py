"""The fusion engine's tracking task when the tracking core runs in a child process.

:class:`RemoteTracking` is the part of :class:`~.engine.FusionEngine` used with
``FusionSettings.tracking_process`` (``tracklayer fusion`` on a SQLite journal): the
tracking core is the child's (:mod:`.tracking_child`, :mod:`.tracking_process`), the
engine keeps the ordering core, the journal, the outbox (its one writer), the live
picture, the subscribers and the forwarder. The tracking task takes the child's
messages in order: each stretch's reports (wire bytes) are shown (live picture,
subscribers, listeners) and outboxed with the stretch's marks exactly as the tracker
thread's are (:mod:`.tracking`); a checkpoint the child encoded at its place is written
only after the outbox write holding the reports of every item it covers
(``Checkpointer.store_encoded(after=...)``). A child that dies (crash, OOM kill) is
logged (``tracking_process_died``) and replaced by a new one started from the newest
checkpoint and the journal; the reports not yet outboxed are re-emitted by its replay
(they are past the outbox's marks). More than ``MAX_RESTARTS`` deaths within
``RESTART_WINDOW_S`` fail the engine (the service exits 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections import Counter
from typing import Any

from tracklayer.fusion.core import FusionCore
from tracklayer.services.fusion_service.checkpoint_file import checkpoint_path
from tracklayer.services.fusion_service.checkpointer import IN_CHILD_ABOVE_S
from tracklayer.services.fusion_service.follower import OrderingOnly
from tracklayer.services.fusion_service.live_picture import LivePicture
from tracklayer.services.fusion_service.tracking_child import CHECKPOINT, STRETCH, ChildSpec
from tracklayer.services.fusion_service.tracking_process import (
    RemoteFollower,
    TrackingProcess,
    TrackingProcessFailed,
    wait_ready,
)
from tracklayer.services.gc_policy import trim_heap
from tracklayer.services.rpc.server import kv
from tracklayer.v1 import track_pb2

log = logging.getLogger("tracklayer.services.fusion")

#: ``ChildSpec.fork_above_s`` of the children (a test sets 0: every checkpoint forked).
FORK_ABOVE_S = IN_CHILD_ABOVE_S

#: Child deaths tolerated within RESTART_WINDOW_S before the engine fails.
MAX_RESTARTS = 3
RESTART_WINDOW_S = 60.0


class RemoteTracking:
    """The tracking task's methods of :class:`~.engine.FusionEngine` for a tracking
    process (module docstring)."""

    _dead_children_busy_s = 0.0  # seconds tracking of the children replaced so far

    def _tracker_busy_s(self) -> float:
        """Wall seconds spent tracking: the tracker thread's, or the tracking processes'
        (every child of this engine, as each last reported)."""
        if isinstance(self.follower, RemoteFollower):
            return self._dead_children_busy_s + self.follower.busy_s
        return self._tracker.busy_s

    # ---- start and rebuild ----------------------------------------------------------
    def _spawn_tracking(self, limit: int) -> TrackingProcess:
        """A new child that replays up to journal seq ``limit`` (committed)."""
        s = dataclasses.replace(self.settings, store_credentials=None)
        cpf = checkpoint_path(self.journal.path) if self._checkpoints is not None else None
        spec = ChildSpec(
            s, self.journal.path, cpf, limit, self.outbox.journal_mark, self.outbox.items_mark,
            self.journal.committed_frames, self.journal.trimmed_through, FORK_ABOVE_S,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        wake = self._track_wake

        def on_message() -> None:  # from the pipe's reader thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(wake.set)

        return TrackingProcess(spec, on_message)

    def _reload_remote(self) -> None:
        """Rebuild with a new child (start, full disk): kill the old one, replay in the
        new one up to the committed seq, outbox what it re-emitted (blocking, as the
        in-thread replay is)."""
        if self._remote is not None:
            self._remote.kill()
        self._ckpt_asked = False
        proc = self._remote = self._spawn_tracking(self.journal.committed_seq)
        info = proc.wait_ready()
        self._redo(info)
        self._adopt(proc, info, orders=True)

    def _redo(self, info: dict[str, Any]) -> None:
        """Outbox the reports the child's replay re-emitted and move the marks (as
        :func:`~.recovery.replay_journal` does)."""
        box, last, items = self.outbox, info["last"], info["items_tracked"]
        if last > box.journal_mark or (box.items_mark is not None and items > box.items_mark):
            box.add(info["redo"], last, items)

    def _adopt(self, proc: TrackingProcess, info: dict[str, Any], *, orders: bool) -> None:
        """Take a ready child's state: its place, picture, figures, checkpoint seq and
        (``orders``) the ordering core as a copy of its orderer."""
        self.core = None
        self.checkpointer.seq, self.checkpointer.oldest = info["checkpoint_seq"], info["oldest"]
        self.replayed_events = info["replayed"]
        if isinstance(self.follower, RemoteFollower):  # a replaced child: keep its seconds
            self._dead_children_busy_s += self.follower.busy_s
        self.follower = RemoteFollower(info["state"])
        proc.seen(info["state"])
        live = LivePicture(list)
        live.remember_wire([(tid, False) for tid, _ in info["live"]], [b for _, b in info["live"]])
        self.live = live
        self._child_counters, self._child_biases = info["counters"], info["biases"]
        if orders:
            s = self.settings
            core = FusionCore(s.fusion_id, s.config, live=True, tracker_factory=OrderingOnly)
            core.orderer = info["orderer"]
            self.orders, self._opens = core, Counter(info["opens"])
        proc.note(self._trackable)

    # ---- the tracking task ----------------------------------------------------------
    async def _tracking_remote(self) -> None:
        """Show and outbox the child's stretches, ask for checkpoints, replace a dead
        child; never returns."""
        while True:
            self._look_checkpoint = False
            self._ask_checkpoint_if_due()
            proc = self._remote
            if proc.dead and not proc.stopping and self.unwritable is None:
                await self._restart_tracking(proc)
                continue
            msgs = proc.take() if self.unwritable is None else []
            if msgs:
                for msg in msgs:
                    self._on_child(proc, msg)
            elif self._unsent and self.unwritable is None and self._outbox_busy():
                await asyncio.wait([self._outbox_write])
            elif self._unsent and self.unwritable is None and self._outbox_ok():
                pass  # held back behind a write that has ended since
            else:
                self._track_wake.clear()  # set by a message, a commit, a reload, _look_again
                # (a child being stopped stays dead: nothing to do until the engine ends)
                quiet = self.unwritable is not None or proc.stopping
                quiet = quiet or not (proc.messages or proc.dead)
                if not self._look_checkpoint and quiet:
                    await self._track_wake.wait()
                continue
            self._outbox_unsent()
            self._tracked.set()
            await asyncio.sleep(0)

    def _on_child(self, proc: TrackingProcess, msg: tuple[Any, ...]) -> None:
        """One message of the child, in order: a stretch, or a checkpoint."""
        if msg[0] == STRETCH:
            _, wire, ids, dropped, state, counters, biases = msg
            self.follower.update(state)
            proc.seen(state)
            proc.poke()
            if counters is not None:
                self._child_counters = counters
            if biases is not None:
                self._child_biases = biases
            self._show_wire(wire, ids, dropped)
        elif msg[0] == CHECKPOINT:
            self._checkpoint_arrived(*msg[1:])

    def _show_wire(self, wire: list[bytes], ids: list[tuple[str, bool]], dropped: list[str]):
        """A stretch's reports (wire bytes): live picture, subscribers, listeners, and
        kept for the outbox (parsed only for subscribers and listeners)."""
        self.live.remember_wire(ids, wire, dropped)
        if not wire:
            return
        if self.hub.subscriber_count or self.report_listeners:
            protos = [track_pb2.TrackReport.FromString(b) for b in wire]
            self.hub.publish(protos)
            for on_reports in self.report_listeners:
                on_reports(protos)
        self._unsent.extend(wire)

    # ---- checkpoints ----------------------------------------------------------------
    def _ask_checkpoint_if_due(self) -> None:
        """Ask the child for a checkpoint when one is due (one at a time)."""
        if self.unwritable is not None or self._ckpt_asked or self._remote.dead:
            return
        if self.checkpointer.due(self.follower.seq):
            self._ckpt_asked = True
            self._remote.ask_checkpoint()

    def _checkpoint_arrived(
        self, seq: int, size: int, encode: float | str, forked: bool, blob: bytes = b""
    ) -> None:
        """The child's checkpoint at ``seq``: written after the outbox write holding the
        reports it covers (all received before it: the pipe keeps the order)."""
        self._ckpt_asked = False
        if size < 0:
            log.warning(kv("checkpoint_not_written", seq=seq, error=str(encode)))
            self.checkpointer.at = time.monotonic()  # try again after the interval
            return
        self._outbox_unsent(now=True)
        if self._unsent or self._last_outbox_failed():
            return  # its reports are not in the outbox: no checkpoint
        self.checkpointer.store_encoded(seq, blob, float(encode), after=self._outbox_write)
        self.checkpointer.in_child += forked  # GetStatus checkpoints_in_child_total
        self.checkpointer.on_settled(self._look_again)
        self.checkpointer.on_settled(_trim_off_loop)  # the blob's pages (reader thread's)

    async def _final_checkpoint_remote(self) -> None:
        """At the stop: a due checkpoint, asked and waited for (the tracking task writes it)."""
        self._ask_checkpoint_if_due()
        while self._ckpt_asked and not self._remote.dead and self.failed is None:
            self._tracked.clear()
            await self._tracked.wait()

    # ---- a dead child -----------------------------------------------------------------
    async def _restart_tracking(self, proc: TrackingProcess) -> None:
        """Log the death, wait for the outbox write on its way (the marks then say what
        is outboxed), start a new child from the checkpoint and journal and outbox what
        its replay re-emitted (every report not yet outboxed)."""
        t0 = time.perf_counter()
        proc.kill()
        log.error(
            kv("tracking_process_died", pid=proc.pid, exitcode=proc.process.exitcode,
               error=proc.failure or "", seq=self.follower.seq)
        )  # fmt: skip
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self._restarts) > MAX_RESTARTS:
            raise TrackingProcessFailed(
                f"the tracking process died {len(self._restarts)} times in "
                f"{RESTART_WINDOW_S:g} s (last: {proc.failure or proc.process.exitcode})"
            )
        if self._outbox_write is not None and not self._outbox_write.done():
            await asyncio.wait([self._outbox_write])
        self._unsent, self._ckpt_asked = [], False
        new = self._remote = self._spawn_tracking(self.journal.committed_seq)
        info = await wait_ready(new)
        await self._outbox_db.run(self._redo, info)
        self._adopt(new, info, orders=False)
        self._tracked.set()
        log.info(
            kv("tracking_process_restarted", pid=new.pid, events=info["replayed"],
               seconds=round(time.perf_counter() - t0, 3))
        )  # fmt: skip


def _trim_off_loop() -> None:
    """Give a written checkpoint's freed pages back to the system (``trim_heap``) on a
    thread of its own: it walks the heap, never on the event loop."""
    threading.Thread(target=trim_heap, name="fusion-trim", daemon=True).start()
