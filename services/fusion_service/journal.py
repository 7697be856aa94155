"""The fusion service's event journal: one SQLite file (WAL), appended in group commits.

Event sourcing (DESIGN §8): every input that changes the fusion core's state
is appended here, in the order it was applied, and committed before the
frame it carries is acknowledged. Replaying the events in ``seq`` order
through a fresh core with the same settings reproduces the same statuses,
track ids and revisions. Kinds:

=========  =========================================================
FRAME      an ACCEPTED frame (payload: serialised ``v1.SensorFrame``)
DECLARE    sensors declared (payload: ids joined by newlines)
OPEN       a stream of ``sensor_id`` opened
CLOSE      a stream of ``sensor_id`` closed
IDLE       the idle timeout fired (payload: timeout seconds as text)
FLUSH      end of input (shutdown): everything buffered applied
SEEN       a frame of ``sensor_id`` that was not ACCEPTED but moved its
           latest received time (the long-outage rule, DESIGN §6;
           payload: its time in ns as decimal text)
=========  =========================================================

Each event keeps the caller's clock ``now`` (wall seconds, what the core's
idle bookkeeping saw) and the wall time it was written. Frames that were not
ACCEPTED (REJECTED, DUPLICATE, LATE) change no core state except, sometimes,
their sensor's latest received time: only that time is journaled (SEEN).

Checkpoints (optional) hold the engine's state after some event ``seq`` as
data (``checkpoint``: versioned, checksummed, no pickle: loading one cannot run
code) in a file of their own (:mod:`.checkpoint_file`); a restart loads the newest
usable one and replays only the events after it. The ``checkpoints`` table here
is where older versions kept them (moved to that file at the first start).

The journal also pins the settings it was written with (fusion id, config,
allow-list); :meth:`Journal.check_settings` refuses a restart with others,
since replay would then diverge.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from tracklayer.services.sqlite_db import SqliteFile, transaction


class EventKind(IntEnum):
    """Kind of a journaled event (stored as its integer; see the module docstring)."""

    FRAME = 1
    DECLARE = 2
    OPEN = 3
    CLOSE = 4
    IDLE = 5
    FLUSH = 6
    SEEN = 7


@dataclass(frozen=True, slots=True)
class Event:
    """One journaled event (``now``: caller's wall clock, seconds; None if not given)."""

    seq: int
    kind: EventKind
    sensor_id: str
    now: float | None
    payload: bytes


class JournalError(Exception):
    """The journal cannot be used; the message names the file and the problem."""


SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY,
    kind      INTEGER NOT NULL,
    sensor_id TEXT    NOT NULL,
    now       REAL,
    wall_ns   INTEGER NOT NULL,
    payload   BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    seq      INTEGER PRIMARY KEY,  -- state after applying every event up to seq
    wall_ns  INTEGER NOT NULL,
    version  TEXT    NOT NULL,     -- software version that wrote it
    state    BLOB    NOT NULL
);
"""


class Journal(SqliteFile):
    """Append-only event log; :meth:`append` buffers, :meth:`commit` makes the buffer durable.

    Not thread-safe: one owner (the fusion engine's worker) appends and commits;
    the commit may run on a worker thread while the owner waits for it.
    """

    SCHEMA, SCHEMA_VERSION, WHAT, ERROR = _SCHEMA, SCHEMA_VERSION, "journal", JournalError
    RECLAIM_SPACE = True  # events covered by checkpoints are trimmed

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        super().__init__(path, synchronous=synchronous)
        with self._database_errors():
            last, frames = self._db.execute(
                "SELECT COALESCE(MAX(seq), 0), COALESCE(SUM(kind = ?), 0) FROM events",
                (int(EventKind.FRAME),),
            ).fetchone()
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        #: Every event up to this seq was trimmed (covered by a kept checkpoint).
        self.trimmed_through: int = int(meta.get("trimmed_through", 0))
        self.trimmed_frames: int = int(meta.get("trimmed_frames", 0))
        self.last_trim_ns: int = int(meta.get("last_trim_ns", 0))  # wall clock, 0 = never
        self.last_seq: int = max(int(last), self.trimmed_through)  # highest seq appended
        self.committed_seq: int = self.last_seq
        self.frames: int = int(frames) + self.trimmed_frames  # FRAME events ever appended
        self._buffer: list[tuple[int, int, str, float | None, int, bytes]] = []

    # ---- settings ---------------------------------------------------------------
    def check_settings(self, settings: Mapping[str, object]) -> None:
        """Pin ``settings`` in a new journal; in an existing one, require the same values.

        Raises JournalError naming the differing setting.
        """
        stored = dict(self._db.execute("SELECT key, value FROM settings").fetchall())
        wanted = {k: json.dumps(v, sort_keys=True) for k, v in settings.items()}
        if not stored:
            with transaction(self._db) as cur:
                cur.executemany("INSERT INTO settings VALUES (?, ?)", sorted(wanted.items()))
            return
        for key, value in sorted(wanted.items()):
            if key in stored and stored[key] != value:
                raise JournalError(
                    f"{self.path}: written with {key} = {stored[key]}, now {value}; replay "
                    f"would diverge: restart with the same {key} or use a fresh journal"
                )

    # ---- writing ----------------------------------------------------------------
    def append(
        self, kind: EventKind, sensor_id: str = "", now: float | None = None, payload: bytes = b""
    ) -> int:
        """Buffer one event; returns its seq. Durable only after :meth:`commit`."""
        self.last_seq += 1
        self._buffer.append((self.last_seq, int(kind), sensor_id, now, time.time_ns(), payload))
        if kind == EventKind.FRAME:
            self.frames += 1
        return self.last_seq

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def committed_frames(self) -> int:
        """FRAME events up to :attr:`committed_seq` (appended ones not yet committed left out)."""
        return self.frames - sum(1 for row in self._buffer if row[1] == EventKind.FRAME)

    def commit(self) -> int:
        """Write and fsync the buffered events in one transaction; returns committed seq."""
        if not self._buffer:
            return self.committed_seq
        rows, self._buffer = self._buffer, []
        with transaction(self._db) as cur:
            cur.executemany("INSERT INTO events VALUES (?,?,?,?,?,?)", rows)
        self.committed_seq = rows[-1][0]
        return self.committed_seq

    def reset_to_committed(self) -> None:
        """Forget appended events a failed commit did not write (full disk): the next
        append continues after the committed seq."""
        self._buffer = []
        self.last_seq = self.committed_seq
        with self._database_errors():
            (frames,) = self._db.execute(
                "SELECT COALESCE(SUM(kind = ?), 0) FROM events", (int(EventKind.FRAME),)
            ).fetchone()
        self.frames = int(frames) + self.trimmed_frames

    def probe(self) -> None:
        """Write and fsync one small transaction (raises while the disk is full)."""
        with transaction(self._db) as cur:
            cur.execute(
                "INSERT INTO meta VALUES ('probe_ns', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (time.time_ns(),),
            )

    # ---- trimming (bounded disk, issue 15) ---------------------------------------
    @property
    def events_kept(self) -> int:
        """Committed events still in the file (seqs are contiguous)."""
        return self.committed_seq - self.trimmed_through

    def trim(self, through_seq: int, limit: int = 2000) -> int:
        """Delete up to ``limit`` of the oldest events with seq <= ``through_seq`` in one
        short transaction (the caller repeats, between group commits); returns how
        many were deleted. Callers pass a seq no later than the oldest kept checkpoint
        and the outbox's journal mark, so a restart never needs a trimmed event."""
        upto = min(int(through_seq), self.trimmed_through + int(limit), self.committed_seq)
        if upto <= self.trimmed_through:
            return 0
        now = time.time_ns()
        with self._database_errors(), transaction(self._db) as cur:
            (frames,) = cur.execute(
                "SELECT COUNT(*) FROM events WHERE seq <= ? AND kind = ?",
                (upto, int(EventKind.FRAME)),
            ).fetchone()
            cur.execute("DELETE FROM events WHERE seq <= ?", (upto,))
            meta = {
                "trimmed_through": upto,
                "trimmed_frames": self.trimmed_frames + int(frames),
                "last_trim_ns": now,
            }
            cur.executemany(
                "INSERT INTO meta VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                sorted(meta.items()),
            )
        done = upto - self.trimmed_through
        self.trimmed_through, self.trimmed_frames, self.last_trim_ns = (
            upto,
            meta["trimmed_frames"],
            now,
        )
        return done

    # ---- reading ----------------------------------------------------------------
    def events(self, after_seq: int = 0) -> Iterator[Event]:
        """Committed events with seq > ``after_seq``, in order (streamed, not loaded whole)."""
        cur = self._db.execute(
            "SELECT seq, kind, sensor_id, now, payload FROM events WHERE seq > ? ORDER BY seq",
            (after_seq,),
        )
        for seq, kind, sid, now, payload in cur:
            yield Event(int(seq), EventKind(kind), sid, now, bytes(payload))

    def reader(self) -> JournalReader:
        """A reader of committed events on a connection of its own (for another
        thread: the tracker reads a backlog back while the owner appends)."""
        return JournalReader(self.path)

    # ---- checkpoints of an older version (now in their own file: checkpoint_file) ----
    def legacy_checkpoints(self) -> list[tuple[int, int, str, bytes]]:
        """(seq, wall_ns, version, state) of the checkpoints a journal written before
        checkpoints had their own file keeps in its ``checkpoints`` table, oldest first."""
        with self._database_errors():
            rows = self._db.execute(
                "SELECT seq, wall_ns, version, state FROM checkpoints ORDER BY seq"
            ).fetchall()
        return [(int(r[0]), int(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def drop_legacy_checkpoints(self) -> None:
        """Delete them (once they are durable in the checkpoint file) and give the
        pages back."""
        with self._database_errors(), transaction(self._db) as cur:
            cur.execute("DELETE FROM checkpoints")
        self.reclaim()


class JournalReader:
    """Reads committed events of a journal on its own connection (WAL: it sees every
    committed transaction and never blocks the writer); used by one thread at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def events(self, first: int, last: int) -> list[Event]:
        """The committed events with ``first <= seq <= last``, in order; raises
        JournalError unless every one of them is there (trimmed, or not committed)."""
        if self._db is None:
            db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db = db
            self._db.execute("PRAGMA query_only=ON")
        rows = self._db.execute(
            "SELECT seq, kind, sensor_id, now, payload FROM events "
            "WHERE seq BETWEEN ? AND ? ORDER BY seq",
            (first, last),
        ).fetchall()
        if len(rows) != last - first + 1 or (rows and int(rows[0][0]) != first):
            raise JournalError(
                f"{self.path}: events {first}..{last} wanted, {len(rows)} found "
                "(trimmed or not committed)"
            )
        return [Event(int(q), EventKind(k), sid, now, bytes(p)) for q, k, sid, now, p in rows]

    def close(self) -> None:
        """Close the connection (idempotent; from any thread once no read runs)."""
        if self._db is not None:
            self._db.close()
            self._db = None
