"""The fusion engine's checkpoints in an SQLite file of their own (issue 13 item 6).

A raid-scale checkpoint is 20-55 MB; written into the journal's file it held the
journal's connection and database thread for ~0.4 s, and every group commit (so every
ack) and outbox write queued behind it. Kept in ``<journal stem>.checkpoints.sqlite``
beside the journal, written on a thread and connection of their own, they no longer
share anything with the commits but the disk.

Each row is the engine's state after journal event ``seq`` (the mark it covers;
``checkpoint`` data: versioned, checksummed, no pickle); the
:attr:`CheckpointFile.CHECKPOINTS_KEPT` newest are kept. The journal trims events only
up to the oldest kept checkpoint, and only after that checkpoint's transaction is
durable here, so a kill at any point leaves either the old checkpoints or the new one,
each with every event after it still in the journal. A checkpoint whose seq is past
the journal's last event cannot belong to that journal and is refused at restart.

Journals written before this file existed kept their checkpoints in their own
``checkpoints`` table: :func:`adopt_legacy_checkpoints` copies them here (one
transaction, fsynced) and only then deletes them from the journal, so a kill between
the two steps leaves a copy in both places and the next start does it again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tracklayer.services.fusion_service.journal import Journal, JournalError
from tracklayer.services.rpc.server import kv
from tracklayer.services.sqlite_db import SqliteFile, transaction

log = logging.getLogger("tracklayer.services.fusion")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    seq      INTEGER PRIMARY KEY,  -- state after applying every journal event up to seq
    wall_ns  INTEGER NOT NULL,
    version  TEXT    NOT NULL,     -- software version that wrote it
    state    BLOB    NOT NULL
);
"""


def checkpoint_path(journal_path: str | Path) -> Path:
    """Where the checkpoints of the journal at ``journal_path`` live:
    ``fusion.journal.sqlite`` -> ``fusion.journal.checkpoints.sqlite``."""
    p = Path(journal_path)
    return p.with_name(f"{p.stem}.checkpoints{p.suffix or '.sqlite'}")


class CheckpointFile(SqliteFile):
    """The kept checkpoints (newest first when read); one writer at a time (the
    engine's checkpoint thread), reads at start before any write."""

    SCHEMA, SCHEMA_VERSION, WHAT, ERROR = _SCHEMA, SCHEMA_VERSION, "checkpoint file", JournalError
    RECLAIM_SPACE = True  # for the WAL size limit: a checkpoint passes through the WAL

    #: Checkpoints kept: the newest and the one before it (the fallback when the
    #: newest cannot be used; the journal keeps every event after the oldest kept).
    CHECKPOINTS_KEPT = 2

    def write_checkpoint(self, seq: int, version: str, state: bytes) -> int:
        """Keep ``state`` as the state after journal event ``seq``; only the
        :attr:`CHECKPOINTS_KEPT` newest stay. Returns the oldest kept seq (journal
        events up to it may be trimmed: this transaction is durable on return)."""
        return self._keep([(seq, time.time_ns(), version, state)])

    def _keep(self, rows: list[tuple[int, int, str, bytes]]) -> int:
        # The state goes in through a blob handle, not as a bound parameter: SQLite copies
        # a bound blob and the connection's cached statement keeps that copy until its
        # next run, so the engine held its last checkpoint twice (20-57 MB at raid scale,
        # growing with the state) between writes.
        with self._database_errors(), transaction(self._db) as cur:
            for seq, wall_ns, version, state in rows:
                cur.execute(
                    "INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,zeroblob(?))",
                    (seq, wall_ns, version, len(state)),
                )
                with self._db.blobopen("checkpoints", "state", seq) as blob:
                    blob.write(state)
            cur.execute(
                "DELETE FROM checkpoints WHERE seq NOT IN "
                "(SELECT seq FROM checkpoints ORDER BY seq DESC LIMIT ?)",
                (self.CHECKPOINTS_KEPT,),
            )
            (oldest,) = cur.execute("SELECT COALESCE(MIN(seq), 0) FROM checkpoints").fetchone()
        return int(oldest)  # freed pages are reused by the next checkpoint, not given back

    def checkpoints(self) -> list[tuple[int, str, bytes]]:
        """(seq, version, state) of every kept checkpoint, newest first."""
        with self._database_errors():
            rows = self._db.execute(
                "SELECT seq, version, state FROM checkpoints ORDER BY seq DESC"
            ).fetchall()
        return [(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    def latest_checkpoint(self) -> tuple[int, str, bytes] | None:
        """(seq, version, state) of the newest checkpoint, or None."""
        kept = self.checkpoints()
        return kept[0] if kept else None


def adopt_legacy_checkpoints(journal: Journal, into: CheckpointFile) -> int:
    """Move the checkpoints a journal of an older version kept in its own table into
    ``into`` (copy durable first, then delete from the journal); returns how many."""
    rows = journal.legacy_checkpoints()
    if rows:
        into._keep(rows)
        journal.drop_legacy_checkpoints()
    return len(rows)


def open_checkpoint_file(journal: object, synchronous: str = "FULL") -> CheckpointFile | None:
    """The SQLite journal's checkpoint file (those an older version kept in the journal
    moved into it, logged ``checkpoints_moved``); None for a journal that keeps its own
    (the scale-out stream journal)."""
    if not isinstance(journal, Journal):
        return None
    cpf = CheckpointFile(checkpoint_path(journal.path), synchronous=synchronous)
    moved = adopt_legacy_checkpoints(journal, cpf)
    if moved:
        log.info(kv("checkpoints_moved", journal=str(journal.path), to=str(cpf.path), count=moved))
    return cpf
