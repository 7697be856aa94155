"""The fusion engine's worker task: input in batches, then the tracker in stretches.

:class:`EngineWorker` is the part of :class:`~.engine.FusionEngine` that runs on its
worker task (the engine's module docstring gives the order of work): a batch of
queued input is ordered, journaled, committed and acknowledged (``_process``);
between two batches the work the ordering released is tracked for at most
``MAX_BATCH_S`` (``_track``), its reports shown, outboxed with their marks (at most
every ``OUTBOX_EVERY_S``) and handed on. It uses the engine's state (core, journal,
outbox, database thread, live picture, hub, listeners, checkpointer, admission, queue)
and is not used alone.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tracklayer.fusion.core import Emitted
from tracklayer.fusion.domain import FrameStatus, TrackReport
from tracklayer.services.errors import Unavailable
from tracklayer.services.fusion_service.disk_full import is_disk_full, ride_out, unwritable_message
from tracklayer.services.fusion_service.inputs import EngineInput, apply_input, fail_waiting
from tracklayer.services.fusion_service.journal import EventKind
from tracklayer.services.fusion_service.live_picture import report_message
from tracklayer.services.rpc.server import kv
from tracklayer.v1 import sensor_pb2

log = logging.getLogger("tracklayer.services.fusion")

#: Most queued inputs applied per group commit (bounds how long the tracker holds the loop).
MAX_BATCH_ITEMS = 256

#: Tracker time (s) in one stretch between two batches of input (issue 13: at raid scale
#: a frame's tracking takes ~4 ms, and one watermark release can be 100 frames): input
#: that arrives meanwhile waits for the stretch to end (at least one item).
MAX_BATCH_S = 0.010

#: The reports of successive stretches go to the outbox together, at most this often
#: (s), and at once when nothing waits for the tracker: one write (and fsync) per
#: 25 ms instead of one per stretch.
OUTBOX_EVERY_S = 0.025

#: Work items (frames, flushes) released by the ordering and waiting for the tracker
#: beyond which no more input is ordered: room for a raid's largest watermark releases
#: (~100 frames), ~4 s of its frames under 120 satellites; it also bounds how long a
#: SIGTERM takes to track what was acknowledged (~2 s at raid scale).
MAX_UNTRACKED = 512


class EngineClosed(Unavailable):
    """The engine is shutting down and takes no more input."""


class EngineWorker:
    """The worker task's methods of :class:`~.engine.FusionEngine` (module docstring)."""

    async def _work(self) -> None:
        try:
            while True:
                if self.gc_freezer is not None:
                    self.gc_freezer.tick()
                if self._queue and self.core.untracked < MAX_UNTRACKED:
                    if await self._take_batch():
                        return
                    await asyncio.sleep(0)  # the acks go out before the tracker runs
                if self.core.untracked:
                    await self._track()
                    await asyncio.sleep(0)  # acks, RPCs and the outbox between stretches
                elif not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.failed = exc
                self._failed_event.set()
                log.critical(kv("engine_failed", error=repr(exc)), exc_info=exc)
            fail_waiting(self._queue, EngineClosed(f"fusion engine failed: {exc!r}"))
            raise
        finally:
            self._tracked.set()  # nobody waits for a tracker that stopped

    async def _take_batch(self) -> bool:
        """Order, journal and acknowledge one batch of the queue; True at the stop
        sentinel (then everything is tracked and written out first)."""
        q = self._queue
        batch = [q.popleft() for _ in range(min(len(q), MAX_BATCH_ITEMS))]
        stop = None in batch
        if stop:  # the stop sentinel: nothing after it is applied
            rest = batch[batch.index(None) + 1 :] + list(q)
            q.clear()
            batch = batch[: batch.index(None)]
            fail_waiting(rest, EngineClosed("fusion service stopped"))
        await self._process(batch)
        if stop:
            while self.core.untracked:
                await self._track(budget_s=float("inf"))
            await self._settle_outbox([])
        return stop

    async def _process(self, batch: list[EngineInput]) -> None:
        """Order and journal ``batch``, commit, then acknowledge (no tracking: the core
        defers it to :meth:`_track`)."""
        results = []
        try:
            for item in batch:
                status, reason, _ = self._apply_and_journal(item)
                results.append((item, status, reason))
            if not await self._settle_outbox(batch):
                return
            if self.journal.pending:
                await self._db.run(self.journal.commit)
        except Exception as exc:
            if not is_disk_full(exc):
                fail_waiting(batch, EngineClosed(f"fusion engine failed: {exc!r}"))
                raise
            await ride_out(self, batch, unwritable_message("journal", self.journal.path, exc))
            return
        except BaseException as exc:
            fail_waiting(batch, EngineClosed(f"fusion engine failed: {exc!r}"))
            raise
        for item, status, reason in results:
            self._answer(item, status, reason)
        await self._checkpoint_if_due()

    async def _track(self, budget_s: float = MAX_BATCH_S) -> None:
        """Track deferred work for up to ``budget_s`` (at least one item), then show the
        reports (live picture, subscribers, listeners) and outbox them with their marks
        (:meth:`_outbox_unsent`). Everything up to the showing is synchronous, so a
        report is visible once its stretch ends."""
        core = self.core
        emitted: list[Emitted] = []
        t0 = time.perf_counter()
        while core.untracked:
            emitted.extend(core.track_next()[1])
            if time.perf_counter() - t0 > budget_s:
                break
        if emitted:
            now_ns = time.time_ns()
            where = self.sensor_positions.messages
            reports = [e.report for e in emitted]
            protos = [report_message(r, now_ns, where(r.sensor_ids)) for r in reports]
            self.live.remember(reports, protos)
            self.hub.publish(protos)
            for on_reports in self.report_listeners:
                on_reports(protos)
            if not self._unsent:
                self._unsent_since = time.perf_counter()
            self._unsent.extend(p.SerializeToString() for p in protos)
        if self._unsent and (
            not core.untracked or time.perf_counter() - self._unsent_since >= OUTBOX_EVERY_S
        ):
            if not await self._outbox_unsent():
                return
        self._tracked.set()
        await self._checkpoint_if_due()

    async def _outbox_unsent(self) -> bool:
        """Queue the write of the reports not yet outboxed, with the marks of what they
        cover (every item tracked so far), and hand them on once written; False: the
        previous write failed for want of space (ridden out)."""
        if not await self._settle_outbox([]):
            return False
        # Every event up to the committed seq is tracked once nothing waits.
        if not self.core.untracked:
            self._journal_mark = self.journal.committed_seq
        unsent, self._unsent = self._unsent, []
        # Awaited by the next write or commit (_settle_outbox): the worker goes on.
        self._outbox_write = self._db.submit(
            self.outbox.add, unsent, self._journal_mark, self.core.items_tracked
        )
        if self.forwarder is not None:
            self._outbox_write.add_done_callback(self._notify_forwarder)
        return True

    async def _checkpoint_if_due(self) -> None:
        """A checkpoint, when one is due and nothing waits for the tracker."""
        if self.core.untracked or not self.checkpointer.due():
            return
        try:
            await self.checkpointer.write(self.core, self._opens, inline=self._closing)
        except Exception as exc:  # a checkpoint only shortens replay: try later
            if not is_disk_full(exc):
                raise
            log.warning(kv("checkpoint_not_written", error=str(exc)))

    async def caught_up(self) -> None:
        """Wait until everything acknowledged so far is tracked (read your writes)."""
        core = self.core
        target = core.items_released
        while core is self.core and core.items_tracked < target:
            if self._closing or self.failed is not None or self._worker is None:
                return
            if self._worker.done():
                return
            self._tracked.clear()
            await self._tracked.wait()

    def _notify_forwarder(self, fut: asyncio.Future[None]) -> None:
        if self.forwarder is not None and not fut.cancelled() and fut.exception() is None:
            self.forwarder.notify()

    async def _settle_outbox(self, batch: list[EngineInput]) -> bool:
        """Wait for the previous batch's outbox write. False: it failed for want of space
        and was ridden out (``batch``, applied but not committed, is refused with the
        rest; the reload's replay outboxes the lost reports again)."""
        fut, self._outbox_write = self._outbox_write, None
        if fut is None:
            return True
        try:
            await fut
        except Exception as exc:
            if not is_disk_full(exc):
                fail_waiting(batch, EngineClosed(f"fusion engine failed: {exc!r}"))
                raise
            await ride_out(self, batch, unwritable_message("outbox", self.outbox.path, exc))
            return False
        return True

    def _answer(self, item: EngineInput, status: FrameStatus, reason: str) -> None:
        """Resolve a durable input's future: a frame's ack (and its slot), a declaration's
        expected sensors; frame listeners see each frame."""
        if item.kind == EventKind.FRAME:
            self._admission.release()
            msg = item.frame
            ack = sensor_pb2.FrameAck(
                sensor_id=msg.sensor_id, sequence=msg.sequence, status=int(status), reason=reason
            )
            if item.future is not None and not item.future.done():
                item.future.set_result(ack)
            for on_frame in self.frame_listeners:
                on_frame(msg, int(status), item.arrival_ns)
        elif item.kind == EventKind.DECLARE and item.future is not None:
            if not item.future.done():
                item.future.set_result(list(self.core.orderer.expected_sensors))

    def _apply_and_journal(self, item: EngineInput) -> tuple[FrameStatus, str, list[TrackReport]]:
        """Apply one live input to the core; append it to the journal if it changed state."""
        applied = apply_input(self.core, self._opens, item, replay=False)
        if applied.frame is not None:
            self.sensor_positions.seen(applied.frame)
        if applied.journal_payload is not None:
            kind = applied.journal_kind or item.kind
            self.journal.append(kind, item.sensor_id, item.now, applied.journal_payload)
        return applied.status, applied.reason, applied.reports
