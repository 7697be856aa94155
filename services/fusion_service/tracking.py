"""The fusion engine's tracking task: the tracker thread's stretches, shown and outboxed.

:class:`EngineTracking` is the part of :class:`~.engine.FusionEngine` that runs on its
tracking task, beside the ordering task (:mod:`.worker`). It tracks the work the
ordering released and committed (``_trackable``: never the work of an event not yet
durable, whose reports a crash would make wrong) on the tracker thread
(:mod:`.tracker_thread`), at most ``MAX_BATCH_S`` at a time; then, on the loop, shows
the stretch's reports (live picture, subscribers, listeners) and outboxes them with
the marks of what they cover (the journal seq whose events are all tracked, the core's
count of tracked items) on the outbox's own database thread, as soon as the previous
outbox write is done (reports that came meanwhile share the next write), and hands
them to the forwarder once written. A failed outbox write is left for the ordering
task to see (``worker._check_outbox``: it rides out a full disk); no more is written
until then.
"""

from __future__ import annotations

import asyncio
import time

from tracklayer.fusion.core import Emitted
from tracklayer.services.fusion_service.live_picture import report_message

#: Wall seconds of tracking in one stretch on the tracker thread: how often a
#: backlog's reports are shown and outboxed (acks do not wait for a stretch).
MAX_BATCH_S = 0.010


class EngineTracking:
    """The tracking task's methods of :class:`~.engine.FusionEngine` (module docstring)."""

    async def _tracking(self) -> None:
        """Track committed work in stretches; outbox the reports; never returns."""
        while True:
            core = self.core
            if self.unwritable is None and core.items_tracked < self._trackable:
                emitted = await self._tracker.stretch(core, self._trackable, MAX_BATCH_S)
                if core is self.core and self.unwritable is None:
                    self._show(emitted)
            elif self._unsent and self.unwritable is None and self._outbox_busy():
                await asyncio.wait([self._outbox_write])  # then the reports that waited
            else:
                self._track_wake.clear()  # set by a commit, a reload, an outbox write done
                await self._track_wake.wait()
                continue
            self._outbox_unsent()
            self._tracked.set()
            self._look_again()  # the ordering task: room below MAX_UNTRACKED, a checkpoint
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

    def _outbox_busy(self) -> bool:
        """The last outbox write is on its way (not done yet)."""
        fut = self._outbox_write
        return fut is not None and not fut.done()

    def _outbox_unsent(self, *, now: bool = False) -> None:
        """Queue the write of the reports not yet outboxed with the marks of what they
        cover (every item tracked so far), unless the previous write is still on its
        way (``now``: queued after it all the same) or failed (the ordering task rides
        that out)."""
        fut = self._outbox_write
        if not self._unsent or (self._outbox_busy() and not now):
            return
        if fut is not None and fut.done() and (fut.cancelled() or fut.exception() is not None):
            return
        core = self.core
        # Every event up to the committed seq is tracked once nothing waits.
        if not core.untracked:
            self._journal_mark = self.journal.committed_seq
        unsent, self._unsent = self._unsent, []
        marks = (self._journal_mark, core.items_tracked)
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
        self._track_wake.set()
        self._look_again()

    def _release_committed(self) -> None:
        """The ordering's work so far is committed: the tracker may take it."""
        self._trackable = self.core.items_released
        self._track_wake.set()

    def _settled_for_checkpoint(self) -> bool:
        """Everything released is tracked, no stretch runs, and every report is on its
        way to the outbox (queued here if need be; the checkpoint is written after that
        write: ``Checkpointer.write(after=...)``)."""
        if self.core.untracked or self._tracker.running:
            return False
        self._outbox_unsent(now=True)
        fut = self._outbox_write
        failed = fut is not None and fut.done() and (fut.cancelled() or fut.exception())
        return not self._unsent and not failed

    async def _drain_tracking(self) -> None:
        """At the stop: wait until everything is tracked and outboxed (or the tracking
        task failed), then for the last outbox write, then a due checkpoint."""
        while True:
            if self.failed is not None or self.unwritable is not None:
                return
            fut = self._outbox_write
            if fut is not None and fut.done() and not fut.cancelled() and fut.exception():
                await self._outbox_failed([], fut.exception())
                return
            if not (self.core.untracked or self._tracker.running or self._unsent):
                if fut is None or fut.done():
                    break
                await asyncio.wait([fut])
                continue
            self._tracked.clear()
            await self._tracked.wait()
        await self._checkpoint_if_due()

    async def tracker_idle(self) -> None:
        """Wait until no stretch of tracking runs (before the core is replaced)."""
        await self._tracker.idle()
