"""Durable outbox of track reports bound for the track store (one SQLite file, WAL).

Reports enter in emission order together with the journal seq whose event
produced them (one transaction), and leave only when the store acknowledges
them STORED or DUPLICATE. A report the store REJECTS (it conflicts with a
stored revision, which a deterministic replay never causes) would block the
queue forever if retried, so it moves to the ``rejected`` table with the
store's reason instead: kept, counted and logged, never silently dropped.

``journal_mark`` is the highest journal seq whose reports are in the outbox
(or already delivered): on restart, the journal replay re-emits every report,
and only those of later events are added again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from tracklayer.services.sqlite_db import SqliteFile, transaction


class OutboxError(Exception):
    """The outbox cannot be used; the message names the file and the problem."""


SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    report BLOB NOT NULL              -- serialised tracklayer.v1.TrackReport
);
CREATE TABLE IF NOT EXISTS rejected (
    id       INTEGER PRIMARY KEY,
    report   BLOB NOT NULL,
    reason   TEXT NOT NULL,
    at_ns    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS marks (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""


class Outbox(SqliteFile):
    """The queue; one connection, used from one thread at a time (the engine's DB thread)."""

    SCHEMA, SCHEMA_VERSION, WHAT, ERROR = _SCHEMA, SCHEMA_VERSION, "outbox", OutboxError
    RECLAIM_SPACE = True  # delivered entries are deleted: give their pages back

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        super().__init__(path, synchronous=synchronous)
        with self._database_errors():
            self.depth: int = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            self.rejected: int = self._db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
            row = self._db.execute("SELECT value FROM marks WHERE key='journal_mark'").fetchone()
            items = self._db.execute("SELECT value FROM marks WHERE key='items_mark'").fetchone()
        self.journal_mark: int = int(row[0]) if row else 0
        #: The core's work items (``FusionCore.items_tracked``) whose reports are in the
        #: outbox (None: written by a version that kept only the journal mark).
        self.items_mark: int | None = int(items[0]) if items else None
        self.delivered: int = 0  # removed after STORED/DUPLICATE, this process

    def add(
        self, reports: Sequence[bytes], journal_mark: int, items_mark: int | None = None
    ) -> None:
        """Append serialised reports and advance the journal mark (every event up to
        it has its reports here) and the items mark (every tracked work item up to it
        has), atomically."""
        marks = [("journal_mark", journal_mark)]
        if items_mark is not None:
            marks.append(("items_mark", items_mark))
        with transaction(self._db) as cur:
            cur.executemany("INSERT INTO outbox(report) VALUES (?)", ((r,) for r in reports))
            cur.executemany(
                "INSERT INTO marks VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                marks,
            )
        self.depth += len(reports)
        self.journal_mark = journal_mark
        if items_mark is not None:
            self.items_mark = items_mark

    def probe(self) -> None:
        """Write and fsync one small transaction (raises while the disk is full)."""
        with transaction(self._db) as cur:
            cur.execute(
                "INSERT INTO marks VALUES ('probe_ns', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (time.time_ns(),),
            )

    def peek(self, limit: int, after_id: int = 0) -> list[tuple[int, bytes]]:
        """The oldest ``limit`` entries with an id above ``after_id`` as (id, serialised
        report), in order."""
        rows = self._db.execute(
            "SELECT id, report FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        )
        return [(int(i), bytes(r)) for i, r in rows]

    def settle(self, delivered: Iterable[int], rejected: Iterable[tuple[int, str]] = ()) -> None:
        """Remove delivered ids; move rejected ids (with the store's reason) aside."""
        done = [(i,) for i in delivered]
        bad = list(rejected)
        if not done and not bad:
            return
        now = time.time_ns()
        with transaction(self._db) as cur:
            for i, reason in bad:
                cur.execute(
                    "INSERT INTO rejected SELECT id, report, ?, ? FROM outbox WHERE id=?",
                    (reason, now, i),
                )
                cur.execute("DELETE FROM outbox WHERE id=?", (i,))
            cur.executemany("DELETE FROM outbox WHERE id=?", done)
        self.depth -= len(done) + len(bad)
        self.delivered += len(done)
        self.rejected += len(bad)
