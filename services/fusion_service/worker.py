"""The fusion engine's ordering task: input in batches, ordered, journaled, acknowledged.

:class:`EngineWorker` is the part of :class:`~.engine.FusionEngine` that runs on its
worker task (the engine's module docstring gives the order of work): a batch of
queued input is ordered by the ordering core (``orders``), journaled, committed and
acknowledged (``_process``); the committed events then go to the tracking core
(:mod:`.follower`), which the engine's tracking task (:mod:`.tracking`) runs on the
tracker thread meanwhile. It uses the engine's state (cores, journal, outbox, database
threads, checkpointer, admission, queue) and is not used alone.
"""

from __future__ import annotations

import asyncio
import logging

from tracklayer.fusion.domain import FrameStatus
from tracklayer.services.errors import Unavailable
from tracklayer.services.fusion_service.disk_full import is_disk_full, ride_out, unwritable_message
from tracklayer.services.fusion_service.inputs import (
    EngineInput,
    apply_input,
    fail_waiting,
    input_from_event,
)
from tracklayer.services.fusion_service.journal import Event, EventKind
from tracklayer.services.fusion_service.tracking import EngineTracking
from tracklayer.services.rpc.server import kv
from tracklayer.v1 import sensor_pb2

log = logging.getLogger("tracklayer.services.fusion")

#: Most queued inputs applied per group commit.
MAX_BATCH_ITEMS = 256

#: Committed events held in memory for the tracking core (:mod:`.follower`): room for a
#: raid's largest watermark releases; past it the tracker reads the backlog back from
#: the journal, and the ordering goes on (a journal that cannot be read back, the
#: scale-out stream's, holds the ordering back instead).
MAX_UNTRACKED = 512


class EngineClosed(Unavailable):
    """The engine is shutting down and takes no more input."""


class EngineWorker(EngineTracking):
    """The worker task's methods of :class:`~.engine.FusionEngine` (module docstring)."""

    async def _work(self) -> None:
        """The ordering and tracking tasks; ends at the stop sentinel or a failure."""
        tasks = [
            asyncio.create_task(self._ordering(), name="fusion-ordering"),
            asyncio.create_task(self._tracking(), name="fusion-tracking"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failure of either
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.failed = exc
                self._failed_event.set()
                log.critical(kv("engine_failed", error=repr(exc)), exc_info=exc)
            fail_waiting(self._queue, EngineClosed(f"fusion engine failed: {exc!r}"))
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tracked.set()  # nobody waits for a tracker that stopped

    async def _ordering(self) -> None:
        """Batches of input (held back only while the feed of a journal that cannot be
        read back is full); returns at the stop sentinel."""
        while True:
            if self.gc_freezer is not None:
                self.gc_freezer.tick()
            if self._queue and self._room():
                if await self._take_batch():
                    return
                await asyncio.sleep(0)  # the acks go out before the next batch
                continue
            self._wake.clear()  # set by new input, and by the tracking task
            await self._wake.wait()

    def _room(self) -> bool:
        """The ordering may go on: the tracker reads what its feed misses back from the
        journal, or (a journal it cannot read: the scale-out stream) the feed has room."""
        f = self.follower
        return f.reader is not None or len(f.feed) < MAX_UNTRACKED

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
            await self._drain_tracking()
        return stop

    async def _process(self, batch: list[EngineInput]) -> None:
        """Order and journal ``batch``, commit, then acknowledge (no tracking: the
        tracking task takes the work it released once it is committed)."""
        results = []
        events: list[tuple[int, EngineInput]] = []  # journaled: for the tracking core
        try:
            for item in batch:
                status, reason = self._apply_and_journal(item, events)
                results.append((item, status, reason))
            if not await self._check_outbox(batch):
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
        self._release_committed(events)
        for item, status, reason in results:
            self._answer(item, status, reason)

    async def _checkpoint_if_due(self) -> None:
        """A checkpoint of the tracking core at its place in the journal, when one is
        due, no stretch runs, the work it released is all tracked and its reports are
        on their way to the outbox: no report it covers can be lost (a restart from it
        re-emits only items past it). A backlog of committed events does not hold it
        back. Called by the tracking task between stretches (and at the stop)."""
        f = self.follower
        if self.unwritable is not None or not self.checkpointer.due(f.seq):
            return
        if not self._settled_for_checkpoint():
            return
        try:
            await self.checkpointer.write(
                f.core, f.opens, f.seq, inline=self._closing, after=self._outbox_write
            )
            self.checkpointer.on_settled(self._look_again)  # once it is written
        except Exception as exc:  # a checkpoint only shortens replay: try later
            if not is_disk_full(exc):
                raise
            log.warning(kv("checkpoint_not_written", error=str(exc)))

    def wake_readers(self) -> None:
        """Let the readers waiting in :meth:`caught_up` look again."""
        self._tracked.set()

    async def caught_up(self) -> None:
        """Wait until everything acknowledged so far is tracked (read your writes), also
        across a new follower (a replaced tracking process, a rebuild): the new one
        replays from a checkpoint and must reach the same place. Not while the files are
        unwritable (nothing is tracked until they are back)."""
        target = self._trackable
        while self.follower.mark < target:
            if self._closing or self.failed is not None or self._worker is None:
                return
            if self.unwritable is not None:
                return
            if self._worker.done():
                return
            self._tracked.clear()
            await self._tracked.wait()

    async def _check_outbox(self, batch: list[EngineInput]) -> bool:
        """Look at the last outbox write without waiting for it (a commit never waits
        behind one). False: it failed for want of space and was ridden out (``batch``,
        applied but not committed, is refused with the rest; the reload's replay
        outboxes the lost reports again)."""
        fut = self._outbox_write
        if fut is None or not fut.done() or fut.cancelled() or fut.exception() is None:
            return True
        return await self._outbox_failed(batch, fut.exception())

    async def _outbox_failed(self, batch: list[EngineInput], exc: BaseException) -> bool:
        self._outbox_write = None
        if not is_disk_full(exc):
            fail_waiting(batch, EngineClosed(f"fusion engine failed: {exc!r}"))
            raise exc
        await ride_out(self, batch, unwritable_message("outbox", self.outbox.path, exc))
        return False

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
                item.future.set_result(list(self.orders.orderer.expected_sensors))

    def _apply_and_journal(
        self, item: EngineInput, events: list[tuple[int, EngineInput]]
    ) -> tuple[FrameStatus, str]:
        """Apply one live input to the ordering core; if it changed state, append it to
        the journal and to ``events`` (its seq and the tracking core's input)."""
        applied = apply_input(self.orders, self._opens, item, replay=False)
        if applied.frame is not None:
            self.sensor_positions.seen(applied.frame)
        payload = applied.journal_payload
        if payload is not None:
            kind = applied.journal_kind or item.kind
            seq = self.journal.append(kind, item.sensor_id, item.now, payload)
            if not self._in_process:  # (a tracking process reads the journal itself)
                if kind == EventKind.FRAME:  # the frame as converted, not parsed again
                    mine = EngineInput(kind, item.sensor_id, item.now, domain=applied.frame)
                else:
                    mine = input_from_event(Event(seq, kind, item.sensor_id, item.now, payload))
                events.append((seq, mine))
            if item.now is not None:  # (stream opens and closes carry none)
                self._committed_now = item.now
        return applied.status, applied.reason
