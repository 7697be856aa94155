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
from tracklayer.services.fusion_service.commit_chain import Staged
from tracklayer.services.fusion_service.disk_full import (
    DiskFull,
    is_disk_full,
    ride_out,
    unwritable_message,
)
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
        """Batches of input, ordered and journaled as they come (with a journal that
        chains commits; else one batch per commit) with at most ``CommitChain.limit``
        commits on their way (held back while the feed of a journal that cannot be read
        back is full); each input answered once its commit ended; returns at the stop
        sentinel."""
        chain = self._chain
        while True:
            if self.gc_freezer is not None:
                self.gc_freezer.tick()
            if chain.oldest_done():
                await self._settle_oldest()
                await asyncio.sleep(0)  # the acks go out before the next batch
                continue
            if self._queue and self._room() and chain.may_order():
                if await self._take_batch():
                    return
                continue
            if self.journal.pending and not chain.full():  # appended while it was full
                self._queue_commit()
                continue
            self._wake.clear()  # set by new input, an ended commit, the tracking task
            await self._wake.wait()

    def _room(self) -> bool:
        """The ordering may go on: the tracker reads what its feed misses back from the
        journal, or (a journal it cannot read: the scale-out stream) the feed has room."""
        f = self.follower
        return f.reader is not None or len(f.feed) < MAX_UNTRACKED

    async def _take_batch(self) -> bool:
        """Order and journal one batch of the queue and queue its commit; True at the
        stop sentinel (then every commit ended and everything is tracked and written
        out first)."""
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
            await self._settle_all()
            await self._drain_tracking()
        return stop

    async def _process(self, batch: list[EngineInput]) -> None:
        """Order and journal ``batch`` and queue its commit on the journal's database
        thread; its inputs are answered once that commit ended (``_settle_oldest``; no
        tracking: the tracking task takes the work it released once it is committed)."""
        chain = self._chain
        try:
            if self._outbox_failure() is not None:  # the commits on their way end first
                if await self._settle_all():
                    await self._outbox_failed(chain.take_all() + batch, self._outbox_failure())
                else:  # a commit failed and was ridden out meanwhile: resend
                    self.fail_inputs(batch, DiskFull("journal: was unwritable; resend"))
                return
            for item in batch:
                status, reason, event = self._apply_and_journal(item)
                chain.staged.append(Staged(item, status, reason, self.journal.last_seq, event))
            if self.journal.pending and not chain.full():
                self._queue_commit()
            elif not chain.commits:  # nothing journaled, nothing on its way
                self._answer_durable([])
        except Exception as exc:
            fail_waiting(chain.take_all() + batch, EngineClosed(f"fusion engine failed: {exc!r}"))
            raise
        except BaseException as exc:
            fail_waiting(chain.take_all() + batch, EngineClosed(f"fusion engine failed: {exc!r}"))
            raise

    def _queue_commit(self) -> None:
        """Queue a commit of what is appended on the journal's database thread (it takes
        what is appended by the time it starts)."""
        fut = self._db.submit(self.journal.commit)
        fut.add_done_callback(lambda _: self._wake.set())
        self._chain.queue(fut)

    async def _settle_oldest(self) -> bool:
        """The oldest commit on its way ended: answer the inputs it made durable, or
        (it failed for want of space; False) wait for the commits behind it (they fail
        unwritten: ``Journal.commit``) and ride the full disk out, refusing every input
        waiting."""
        chain = self._chain
        try:
            chain.finish_oldest()
        except Exception as exc:
            if not is_disk_full(exc):
                fail_waiting(chain.take_all(), EngineClosed(f"fusion engine failed: {exc!r}"))
                raise
            if chain.commits:
                await asyncio.wait(list(chain.commits), return_when=asyncio.ALL_COMPLETED)
            chain.commits.clear()
            await ride_out(
                self, chain.take_all(), unwritable_message("journal", self.journal.path, exc)
            )
            return False
        self._answer_durable([])
        return True

    async def _settle_all(self) -> bool:
        """Commit everything appended, wait for every commit on its way and answer what
        they made durable; False if one failed (the full disk was ridden out meanwhile)."""
        chain = self._chain
        while True:
            if self.journal.pending and not chain.full():
                self._queue_commit()
            if not chain.commits:
                return True
            await asyncio.wait([chain.commits[0]])
            if not await self._settle_oldest():
                return False

    def _answer_durable(self, events: list[tuple[int, EngineInput]]) -> None:
        """Answer the waiting inputs whose events are durable, in order; their journaled
        events go to the tracking core first."""
        chain = self._chain
        done = chain.durable()
        events += [s.event for s in done if s.event is not None]
        self._release_committed(events, chain.durable_seq)
        for s in done:
            self._answer(s.item, s.status, s.reason)

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

    def _outbox_failure(self) -> BaseException | None:
        """The last outbox write's failure, looked at without waiting for it (a commit
        never waits behind one). Then the batch in hand is refused with everything
        waiting (``_outbox_failed``; the reload's replay outboxes the lost reports again)."""
        fut = self._outbox_write
        if fut is None or not fut.done() or fut.cancelled():
            return None
        return fut.exception()

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
        self, item: EngineInput
    ) -> tuple[FrameStatus, str, tuple[int, EngineInput] | None]:
        """Apply one live input to the ordering core; if it changed state, append it to
        the journal. Returns its status, reason and, for the tracker thread, its event
        (its seq and the tracking core's input)."""
        applied = apply_input(self.orders, self._opens, item, replay=False)
        if applied.frame is not None:
            self.sensor_positions.seen(applied.frame)
        payload = applied.journal_payload
        event = None
        if payload is not None:
            kind = applied.journal_kind or item.kind
            seq = self.journal.append(kind, item.sensor_id, item.now, payload)
            if not self._in_process:  # (a tracking process reads the journal itself)
                if kind == EventKind.FRAME:  # the frame as converted, not parsed again
                    mine = EngineInput(kind, item.sensor_id, item.now, domain=applied.frame)
                else:
                    mine = input_from_event(Event(seq, kind, item.sensor_id, item.now, payload))
                event = (seq, mine)
            if item.now is not None:  # (stream opens and closes carry none)
                self._committed_now = item.now
        return applied.status, applied.reason, event
