"""The fusion engine's tracking task: the tracker thread's stretches, shown and outboxed.

:class:`EngineTracking` is the part of :class:`~.engine.FusionEngine` that runs on its
tracking task, beside the ordering task (:mod:`.worker`). It has the tracking core
(:mod:`.follower`) apply and track the committed events (``_trackable``: never an event
not yet durable, whose reports a crash would make wrong) on the tracker thread
(:mod:`.tracker_thread`), at most ``MAX_BATCH_S`` at a time; then, on the loop, shows
the stretch's reports (live picture, subscribers, listeners) and outboxes them with
the marks of what they cover (the journal seq whose events are all tracked, the core's
count of tracked items) on the outbox's own database thread, as soon as the previous
outbox write is done (reports that came meanwhile share the next write), and hands
them to the forwarder once written. Between two stretches it takes the checkpoints
(of the tracking core at its place in the journal, a backlog or not). A failed outbox
write is left for the ordering task to see (``worker._check_outbox``: it rides out a
full disk); no more is written until then. With a tracking process the stretches are
the child's (:mod:`.tracking_remote`); showing and outboxing them is the same.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tracklayer.fusion.core import Emitted
from tracklayer.services.fusion_service.follower import MAX_BATCH_S
from tracklayer.services.fusion_service.inputs import EngineInput
from tracklayer.services.fusion_service.live_picture import report_message
from tracklayer.services.fusion_service.tracking_remote import RemoteTracking
from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.fusion")


class EngineTracking(RemoteTracking):
    """The tracking task's methods of :class:`~.engine.FusionEngine` (module docstring)."""

    async def _tracking(self) -> None:
        """Track committed events in stretches; outbox the reports; checkpoint between
        stretches when one is due; never returns."""
        if self._remote is not None:
            await self._tracking_remote()  # a tracking process: tracking_remote
        while True:
            f = self.follower
            self._look_checkpoint = False  # a checkpoint settled, an outbox write ended
            await self._checkpoint_if_due()
            if self.unwritable is None and f.behind(self._trackable):
                emitted = await self._tracker.stretch(f, self._trackable, MAX_BATCH_S)
                if f is self.follower and self.unwritable is None:
                    self._show(emitted)
            elif self._unsent and self.unwritable is None and self._outbox_busy():
                await asyncio.wait([self._outbox_write])  # then the reports that waited
            elif self._unsent and self.unwritable is None and self._outbox_ok():
                pass  # held back behind a write that has ended since (its wake was spent)
            else:
                self._track_wake.clear()  # set by a commit, a reload, _look_again
                if not self._look_checkpoint:
                    await self._track_wake.wait()
                continue
            self._outbox_unsent()
            self._tracked.set()
            if f.reader is None:
                self._wake.set()  # the ordering task may hold back on a full feed: ``_room``
            await asyncio.sleep(0)

    def _show(self, emitted: list[Emitted]) -> None:
        """Show a stretch's reports (live picture, subscribers, listeners) and keep
        them for the outbox (synchronous: a report is visible once its stretch ends)."""
        if not emitted:
            return
        now_ns = time.time_ns()
        where = self.sensor_positions.messages
        reports = [e.report for e in emitted]
        protos = [report_message(r, now_ns, where(r.sensor_ids)) for r in reports]
        self.live.remember(reports, protos)
        self.hub.publish(protos)
        for on_reports in self.report_listeners:
            on_reports(protos)
        self._unsent.extend(p.SerializeToString() for p in protos)

    def _last_outbox_failed(self) -> bool:
        """The last outbox write ended without success (cancelled or raised): nothing
        more is written until the ordering task rode it out (``worker._check_outbox``)."""
        fut = self._outbox_write
        return fut is not None and fut.done() and (fut.cancelled() or fut.exception() is not None)

    def _outbox_ok(self) -> bool:
        """No outbox write failed (none yet, the last one succeeded or is on its way)."""
        return not self._last_outbox_failed()

    def _outbox_busy(self) -> bool:
        """The last outbox write is on its way (not done yet)."""
        fut = self._outbox_write
        return fut is not None and not fut.done()

    def _outbox_unsent(self, *, now: bool = False) -> None:
        """Queue the write of the reports not yet outboxed with the marks of what they
        cover (every item tracked so far), unless the previous write is still on its
        way (``now``: queued after it all the same) or failed (the ordering task rides
        that out)."""
        if not self._unsent or (self._outbox_busy() and not now) or self._last_outbox_failed():
            return
        f = self.follower
        self._journal_mark = f.mark  # every event up to it is tracked
        unsent, self._unsent = self._unsent, []
        marks = (self._journal_mark, f.items_tracked)
        fut = self._outbox_db.submit(self._outbox_add, unsent, *marks)
        fut.add_done_callback(self._outbox_written)
        self._outbox_write = fut

    def _outbox_add(self, reports: list[bytes], journal_mark: int, items_mark: int) -> None:
        """``Outbox.add`` on the outbox thread; after one failed, every later one fails
        too without writing (its marks would cover the lost reports) until a reload."""
        if self._outbox_broken is not None:
            raise self._outbox_broken
        try:
            self.outbox.add(reports, journal_mark, items_mark)
        except BaseException as exc:
            self._outbox_broken = exc
            raise

    def _outbox_written(self, fut: asyncio.Future[None]) -> None:
        """An outbox write ended: the forwarder has more; the tasks look again."""
        ok = not fut.cancelled() and fut.exception() is None
        if ok and self.forwarder is not None:
            self.forwarder.notify()
        self._look_again()

    def _look_again(self) -> None:
        """The tracking task looks whether a checkpoint is due at its next turn."""
        self._look_checkpoint = True
        self._track_wake.set()

    def _release_committed(self, events: list[tuple[int, EngineInput]]) -> None:
        """``events`` (seq, the tracking core's input) are committed: the follower may
        take them (from its feed, or read back from the journal)."""
        self._trackable = self.journal.committed_seq
        self.follower.offer(events)
        if self._remote is not None:
            self._remote.note(self._trackable)
        self._track_wake.set()

    def _settled_for_checkpoint(self) -> bool:
        """No stretch runs, the tracking core's released work is all tracked, and every
        report is on its way to the outbox (queued here if need be; the checkpoint is
        written after that write: ``Checkpointer.write(after=...)``)."""
        if self._tracker.running or self.follower.core.untracked:
            return False
        self._outbox_unsent(now=True)
        return not self._unsent and not self._last_outbox_failed()

    async def _drain_tracking(self) -> None:
        """At the stop: wait until every committed event is tracked and outboxed (or the
        tracking task failed), then for the last outbox write, then a due checkpoint.

        A backlog is tracked whole before the stop (every report out); a supervisor's
        SIGKILL meanwhile loses nothing (the journal holds it, the next start tracks it)."""
        if self.follower.behind(self._trackable):
            f, committed, frames = self.follower, self._trackable, self.journal.frames
            # under the tracker's lock: the tracker thread pops the queue the figures count
            backlog = self._tracker.locked(lambda: f.figures(committed, frames, None))
            log.info(kv("stop_tracking_backlog", frames=backlog["frames_untracked"],
                        events=backlog["tracker_behind_events"]))  # fmt: skip
        while True:
            if self.failed is not None or self.unwritable is not None:
                return
            fut = self._outbox_write
            if self._last_outbox_failed() and not fut.cancelled():
                await self._outbox_failed([], fut.exception())
                return
            busy = self.follower.behind(self._trackable) or self._tracker.running
            if not (busy or self._unsent):
                if fut is None or fut.done():
                    break
                await asyncio.wait([fut])
                continue
            self._tracked.clear()
            await self._tracked.wait()
        if self._remote is not None:
            await self._final_checkpoint_remote()
        else:
            await self._checkpoint_if_due()

    async def tracker_idle(self) -> None:
        """Wait until no stretch of tracking runs (before the core is replaced)."""
        await self._tracker.idle()
