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

import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path


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


class Outbox:
    """The queue; one connection, used from one thread at a time (the engine's DB thread)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise OutboxError(
                    f"{self.path}: outbox schema version {version}, this tracklayer reads "
                    f"{SCHEMA_VERSION}"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.depth: int = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            self.rejected: int = self._db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
            row = self._db.execute("SELECT value FROM marks WHERE key='journal_mark'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"{self.path}: not a usable SQLite outbox ({exc})") from None
        self.journal_mark: int = int(row[0]) if row else 0
        self.delivered: int = 0  # removed after STORED/DUPLICATE, this process

    def add(self, reports: Sequence[bytes], journal_mark: int) -> None:
        """Append serialised reports and advance the journal mark, atomically."""
        cur = self._db.cursor()
        cur.execute("BEGIN")
        try:
            cur.executemany("INSERT INTO outbox(report) VALUES (?)", ((r,) for r in reports))
            cur.execute(
                "INSERT INTO marks VALUES ('journal_mark', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (journal_mark,),
            )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self.depth += len(reports)
        self.journal_mark = journal_mark

    def peek(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest ``limit`` entries as (id, serialised report), in order."""
        rows = self._db.execute("SELECT id, report FROM outbox ORDER BY id LIMIT ?", (limit,))
        return [(int(i), bytes(r)) for i, r in rows]

    def settle(self, delivered: Iterable[int], rejected: Iterable[tuple[int, str]] = ()) -> None:
        """Remove delivered ids; move rejected ids (with the store's reason) aside."""
        done = [(i,) for i in delivered]
        bad = list(rejected)
        if not done and not bad:
            return
        now = time.time_ns()
        cur = self._db.cursor()
        cur.execute("BEGIN")
        try:
            for i, reason in bad:
                cur.execute(
                    "INSERT INTO rejected SELECT id, report, ?, ? FROM outbox WHERE id=?",
                    (reason, now, i),
                )
                cur.execute("DELETE FROM outbox WHERE id=?", (i,))
            cur.executemany("DELETE FROM outbox WHERE id=?", done)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self.depth -= len(done) + len(bad)
        self.delivered += len(done)
        self.rejected += len(bad)

    def close(self) -> None:
        self._db.close()
