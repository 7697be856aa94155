"""When the fusion engine checkpoints, and what follows a checkpoint (issue 15).

A checkpoint is written after a group commit every ``checkpoint_every`` journal events
or, with events since the last one, every ``checkpoint_interval_s`` wall seconds; it
bounds the replay of a restart (restart to SERVING within 5 s under the soak's load)
and lets the :class:`~.trimmer.Trimmer` delete the events it covers.

A big state (issue 13's raid: ~55 MB, 1-2.5 s to encode) is not encoded on the event
loop: once a checkpoint took ``IN_CHILD_ABOVE_S`` or more to encode, the next ones are
encoded in a forked child (:mod:`.forked_encode`, where it may fork: the ``tracklayer``
command) while the engine goes on, and one is started no sooner than ``COST_FACTOR`` x
the last encode time after the previous one, so checkpoints take at most about
1/``COST_FACTOR`` of a core (a restart then replays up to that many seconds of
journal, not ``checkpoint_every`` events). Small states (salvo) and engines that may
not fork (inside a test process) encode on the loop as before.

Each checkpoint is logged at DEBUG (``checkpoint_written``: seq, bytes, encode seconds);
at full rate that is about two a second, so INFO gets ``checkpoints_written`` lines
instead (count, last seq, bytes and encode seconds median and max): one for the first
checkpoint of a process, then one per ``SUMMARY_EVERY_S`` wall seconds with checkpoints
in them, and one at the engine's stop.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from tracklayer import __version__
from tracklayer.fusion.core import FusionCore
from tracklayer.services.fusion_service.forked_encode import ChildEncode, can_fork
from tracklayer.services.fusion_service.journal import Journal
from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.services.fusion_service.recovery import (
    CheckpointStore,
    checkpoint_state,
    restore_checkpoint,
)
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.fusion_service.trimmer import DbRun, Trimmer
from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.fusion")

#: Wall seconds between two INFO summaries of the checkpoints written (``checkpoints_written``).
SUMMARY_EVERY_S = 60.0

#: An encode that took this long (s) moves the next checkpoints to a forked child.
IN_CHILD_ABOVE_S = 0.05

#: Past IN_CHILD_ABOVE_S, a checkpoint starts no sooner than this many times the last
#: encode time after the previous one started (checkpoint CPU <= ~1/COST_FACTOR of a core).
COST_FACTOR = 10.0


class Checkpointer:
    """Checkpoint policy and bookkeeping of one engine (its journal, outbox, trimmer)."""

    def __init__(
        self,
        settings: FusionSettings,
        journal: Journal,
        outbox: Outbox,
        db_run: DbRun,
        *,
        store: CheckpointStore | None = None,
        store_run: DbRun | None = None,
        outbox_run: DbRun | None = None,
    ) -> None:
        """``db_run`` runs calls on the journal's database thread (trims); ``store``
        keeps the checkpoints (default: the journal itself, as the scale-out stream
        journal does) and ``store_run`` runs its writes (default: ``db_run``; the
        engine gives its checkpoint file a thread of its own); ``outbox_run`` runs the
        outbox's calls (default: ``db_run``)."""
        self.settings, self.journal, self.outbox, self._db = settings, journal, outbox, db_run
        self.store: CheckpointStore = journal if store is None else store  # type: ignore[assignment]
        self._store_run = db_run if store_run is None else store_run
        self.trimmer = Trimmer(journal, outbox, db_run, outbox_run or db_run)
        self.seq = 0  # newest checkpoint's seq (0: none)
        self.oldest = 0  # oldest kept checkpoint's seq (0: none)
        self.at = time.monotonic()
        self.written = 0  # by this process
        self.last_encode_s = 0.0
        self.in_child = 0  # checkpoints encoded in a forked child (by this process)
        self._child: ChildEncode | None = None
        self._pending: asyncio.Task[None] | None = None  # a checkpoint on its way to the file
        #: False while forking is unsafe for another reason (the command's kernel warmup)
        self.may_fork: Callable[[], bool] = lambda: True
        #: Encoded where it holds the tracking back (the tracking process): a big state's
        #: checkpoints are spaced by COST_FACTOR x its encode time as a forked one's are.
        self.spaced = False
        self._summary = _Summary()

    def restore(self, fresh_core: FusionCore) -> tuple[FusionCore, Counter] | None:
        """The newest usable checkpoint's (core, open-stream counts), or None (replay from
        the start); see :func:`~.recovery.restore_checkpoint`."""
        restored, self.oldest = restore_checkpoint(self.journal, fresh_core, self.store)
        if restored is None:
            return None
        self.seq, core, opens = restored
        return core, opens

    def start(self) -> None:
        """Start the trimmer and catch up with what an earlier process left untrimmed."""
        if self.at != float("-inf"):
            self.at = time.monotonic()  # the interval counts from the start (after replay)
        self.trimmer.start()
        self.trimmer.request(min(self.oldest, self.outbox.journal_mark))

    def after_replay(self, replayed: int) -> None:
        """A restart replayed ``replayed`` events: checkpoint at the first commit, so
        that a service killed again soon does not replay them once more."""
        if replayed > 0:
            self.at = float("-inf")

    def due(self, seq: int) -> bool:
        """A checkpoint of the state after event ``seq`` (committed) is due (events since
        the last, by count or by time)."""
        since = seq - self.seq
        if since <= 0 or self.busy:
            return False
        every, interval = self.settings.checkpoint_every, self.settings.checkpoint_interval_s
        age = time.monotonic() - self.at
        spaced = self._in_child_next() or (self.spaced and self.last_encode_s >= IN_CHILD_ABOVE_S)
        if spaced and age < COST_FACTOR * self.last_encode_s:
            return False  # a big state: bound the share of a core checkpoints take
        by_events = every > 0 and since >= every
        by_time = age >= interval if interval > 0 else self.at < 0
        return by_events or by_time

    def _in_child_next(self) -> bool:
        """The next checkpoint is encoded in a child (the state is big, and we may fork)."""
        return self.last_encode_s >= IN_CHILD_ABOVE_S and can_fork() and self.may_fork()

    @property
    def busy(self) -> bool:
        """A checkpoint is on its way to the file (encoded in a child, or written)."""
        return self._pending is not None and not self._pending.done()

    async def write(
        self,
        core: FusionCore,
        open_streams: Counter,
        seq: int,
        *,
        inline: bool = False,
        after: asyncio.Future[None] | None = None,
    ) -> None:
        """Save the state after event ``seq`` (committed), then ask for a trim. Encoded on the
        loop (the core must not change meanwhile) while that is cheap, else in a forked
        child; written by ``store_run``. Returns once the state is encoded (at once for
        a child): the write goes on in the background (:attr:`busy`, :meth:`settle`),
        so the worker and its acks never wait for it. ``inline``: encoded on the loop
        whatever the cost (at shutdown). ``after``: the outbox write that holds the
        reports of the state's tracked items; the checkpoint is written only once it
        succeeded (a checkpoint durable before it would let a restart skip them)."""
        if not inline and self._in_child_next():
            child = self._child = ChildEncode()
            child.start(lambda: checkpoint_state(core, open_streams))
            self.at = time.monotonic()
            self._pending = asyncio.create_task(self._from_child(child, seq, after))
            return
        t0 = time.perf_counter()
        blob = checkpoint_state(core, open_streams)
        self.store_encoded(seq, blob, time.perf_counter() - t0, after=after)

    def store_encoded(
        self, seq: int, blob: bytes, encode_s: float, *, after: asyncio.Future[None] | None
    ) -> None:
        """Write ``blob`` (the state after event ``seq``, encoded in ``encode_s``; by
        :meth:`write` or the tracking process) in the background, once ``after`` (the
        outbox write holding its items' reports) succeeded; nothing if it failed."""
        self.last_encode_s = encode_s
        if after is not None and not after.done():
            stored = self._store_after(seq, blob, after)
        elif _failed(after):
            return  # the reports it covers are not in the outbox: no checkpoint
        else:
            stored = self._store(seq, blob, self._submit(seq, blob))
        self._pending = asyncio.create_task(stored)

    async def _store_after(self, seq: int, blob: bytes, after: asyncio.Future[None]) -> bool:
        """:meth:`_store` once ``after`` succeeded (False, nothing written, if it failed)."""
        await asyncio.wait([after])
        if _failed(after):
            log.warning(kv("checkpoint_not_written", seq=seq, error="its outbox write failed"))
            return False
        return await self._store(seq, blob, self._submit(seq, blob))

    async def _from_child(
        self, child: ChildEncode, seq: int, after: asyncio.Future[None] | None = None
    ) -> None:
        try:
            blob, self.last_encode_s = await child.result()
            if after is not None and await self._store_after(seq, blob, after):
                self.in_child += 1
            elif after is None and await self._store(seq, blob, self._submit(seq, blob)):
                self.in_child += 1
        except Exception as exc:  # a checkpoint only shortens replay: try again later
            log.warning(kv("checkpoint_not_written", seq=seq, error=str(exc)))
        finally:
            self._child = None

    def on_settled(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` (on the loop) once the checkpoint on its way is settled (at
        once if none is): the next one may be due then."""
        if self._pending is None or self._pending.done():
            fn()
        else:
            self._pending.add_done_callback(lambda _: fn())

    async def settle(self) -> None:
        """Wait for a checkpoint on its way (before the journal closes)."""
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)

    def kill(self) -> None:
        """Abandon a checkpoint on its way (the engine is abandoned, as by SIGKILL)."""
        if self._child is not None:
            self._child.kill()
        if self._pending is not None:
            self._pending.cancel()

    def _submit(self, seq: int, blob: bytes) -> Awaitable[tuple[int, float]]:
        """Queue the write of ``blob`` now (a kill after this point still finds it
        written once the checkpoint thread finishes); await for (oldest kept seq,
        seconds the write took)."""

        def write() -> tuple[int, float]:  # on the checkpoint thread: how long it took
            t0 = time.perf_counter()
            return self.store.write_checkpoint(seq, __version__, blob), time.perf_counter() - t0

        return self._store_run(write)

    async def _store(self, seq: int, blob: bytes, written: Awaitable[tuple[int, float]]) -> bool:
        """Wait for the write; then the bookkeeping, the trim request and the log.
        False: it failed (logged; a checkpoint only shortens replay: try later)."""
        try:
            oldest, write_s = await written
        except Exception as exc:
            log.warning(kv("checkpoint_not_written", seq=seq, error=str(exc)))
            return False
        self.seq, self.oldest, self.at = seq, oldest, time.monotonic()
        self.written += 1
        self.trimmer.request(min(oldest, self.outbox.journal_mark))
        log.debug(
            kv(
                "checkpoint_written",
                seq=seq,
                bytes=len(blob),
                encode_s=round(self.last_encode_s, 3),
                write_s=round(write_s, 3),
            )
        )
        self._summary.add(seq, len(blob), self.last_encode_s, write_s)
        if self.written == 1 or self._summary.age_s() >= SUMMARY_EVERY_S:
            self.log_summary()  # the first one of a process (the state after a replay) at once
        return True

    def log_summary(self) -> None:
        """Log the checkpoints written since the last summary (INFO), if any."""
        line = self._summary.take()
        if line is not None:
            log.info(line)

    def counters(self) -> dict[str, int]:
        """Checkpoint and disk figures for GetStatus / Prometheus."""
        out = self.trimmer.counters()
        out["checkpoints_written_total"] = self.written
        out["checkpoints_in_child_total"] = self.in_child
        out["checkpoint_seq"] = self.seq
        return out


def _failed(fut: asyncio.Future[None] | None) -> bool:
    """``fut`` ended without success (cancelled or raised)."""
    return fut is not None and fut.done() and (fut.cancelled() or fut.exception() is not None)


class _Summary:
    """The checkpoints written since the last ``checkpoints_written`` line."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.since = time.monotonic()
        self.seq = 0
        self.sizes: list[int] = []
        self.encodes: list[float] = []
        self.writes: list[float] = []

    def add(self, seq: int, size: int, encode_s: float, write_s: float = 0.0) -> None:
        self.seq = seq
        self.sizes.append(size)
        self.encodes.append(encode_s)
        self.writes.append(write_s)

    def age_s(self) -> float:
        return time.monotonic() - self.since

    def take(self) -> str | None:
        """The summary line (None: nothing written since the last), and start again."""
        line = None
        if self.sizes:
            line = kv(
                "checkpoints_written",
                count=len(self.sizes),
                seq=self.seq,
                period_s=round(self.age_s(), 1),
                bytes_median=int(statistics.median(self.sizes)),
                bytes_max=max(self.sizes),
                encode_s_median=round(statistics.median(self.encodes), 3),
                encode_s_max=round(max(self.encodes), 3),
                write_s_max=round(max(self.writes), 3),  # the database thread held that long
            )
        self._reset()
        return line
