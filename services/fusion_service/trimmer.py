"""Bounded disk (issue 15): trims journal events that checkpoints cover, in the background.

After each checkpoint the engine asks for the journal to be trimmed up to the oldest
kept checkpoint (never past the outbox's journal mark: a restart re-outboxes reports
of events after it). The trimmer deletes in batches of :data:`TRIM_BATCH_EVENTS`,
each one short transaction on the engine's database thread, so a group commit (and
with it every ack) waits for at most one batch; then it gives freed pages of the
journal and the outbox back to the file system (``auto_vacuum=INCREMENTAL`` files).
Delivered outbox entries are deleted by the forwarder as the store acknowledges them.
A failure (e.g. a full disk) is logged once per run and retried at the next request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tracklayer.services.fusion_service.journal import Journal
from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.fusion")

#: Events deleted per transaction (about 10-30 ms of database thread on this machine).
TRIM_BATCH_EVENTS = 2000
#: Free pages given back per file after a trim run (4 kB pages: 32 MB).
RECLAIM_PAGES = 8192

DbRun = Callable[..., Awaitable[Any]]


class Trimmer:
    """Background journal trimming; :meth:`request` a target, :meth:`start`, :meth:`stop`."""

    def __init__(
        self, journal: Journal, outbox: Outbox, db_run: DbRun, outbox_run: DbRun | None = None
    ) -> None:
        """``db_run``: calls on the journal's database thread; ``outbox_run``: on the
        outbox's (default: the same)."""
        self._journal, self._outbox, self._db = journal, outbox, db_run
        self._outbox_run = db_run if outbox_run is None else outbox_run
        self._target = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.trimmed = 0  # events deleted by this process
        self.runs = 0  # trim runs finished by this process

    def request(self, through_seq: int) -> None:
        """Trim events up to ``through_seq`` (covered by a kept checkpoint) soon."""
        if through_seq > self._target:
            self._target = through_seq
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fusion-trim")

    async def stop(self) -> None:
        """Stop between batches (a batch in progress finishes: it is one transaction)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._trim_to(self._target)
            except Exception as exc:  # noqa: BLE001 - disk trouble: retry at the next request
                log.warning(kv("journal_trim_failed", file=str(self._journal.path), error=exc))

    async def _trim_to(self, target: int) -> None:
        journal = self._journal
        before = journal.trimmed_through
        while journal.trimmed_through < target:
            n = await self._db(journal.trim, target, TRIM_BATCH_EVENTS)
            if n == 0:
                break
            self.trimmed += n
            await asyncio.sleep(0)  # let queued commits run between batches
        await self._db(journal.reclaim, RECLAIM_PAGES)
        await self._outbox_run(self._outbox.reclaim, RECLAIM_PAGES)
        self.runs += 1
        if journal.trimmed_through > before:
            log.debug(kv("journal_trimmed", through_seq=journal.trimmed_through))

    def counters(self) -> dict[str, int]:
        """Disk figures for GetStatus / Prometheus (sizes in bytes, time in Unix s)."""
        j = self._journal
        return {
            "journal_events": j.events_kept,
            "journal_bytes": j.size_bytes,
            "outbox_bytes": self._outbox.size_bytes,
            "journal_trimmed_through": j.trimmed_through,
            "journal_last_trim_unix_seconds": j.last_trim_ns // 1_000_000_000,
            "journal_trimmed_total": self.trimmed,
        }
