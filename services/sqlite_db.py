"""Opening, writing and calling the services' SQLite files (journal, outbox, track store) one way.

Every file is opened the same way: WAL journal mode, the caller's ``synchronous``
level, autocommit (``isolation_level=None``: transactions are explicit, see
:func:`transaction`), usable from a worker thread other than the opener, and a
schema version kept in ``PRAGMA user_version`` (0: a new file). The schema itself
(``CREATE ... IF NOT EXISTS`` statements) and its meaning stay with each file's module,
in a subclass of :class:`SqliteFile`. A server makes its SQLite calls on one
:class:`DatabaseThread`, so that a commit's fsync never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import ClassVar, TypeVar

R = TypeVar("R")


@contextmanager
def database_errors(path: str | Path, what: str, error: type[Exception]) -> Iterator[None]:
    """Re-raise ``sqlite3.DatabaseError`` as ``error("<path>: not a usable SQLite <what> ...")``."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise error(f"{path}: not a usable SQLite {what} ({exc})") from None


def open_database(
    path: str | Path,
    schema_sql: str,
    schema_version: int,
    *,
    what: str,
    error: type[Exception],
    synchronous: str = "FULL",
    reclaim_space: bool = False,
) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite file ``path`` and make sure ``schema_sql`` exists.

    ``what`` names the file's role in messages ("journal", "outbox", ...); every
    failure is raised as ``error``: a file written with another schema version, or
    one SQLite cannot use (not a database, unreadable, locked past the timeout).
    ``synchronous`` is the SQLite ``PRAGMA synchronous`` level (FULL: fsync at each
    commit; NORMAL: WAL checkpoints only). ``reclaim_space`` (files that delete rows
    as they go: journal, outbox): a new file gets ``auto_vacuum=INCREMENTAL`` (freed
    pages can be given back with :func:`reclaim_pages`; a file created before keeps
    reusing its free pages) and the WAL file is truncated to 16 MB after checkpoints.
    """
    with database_errors(path, what, error):
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            if reclaim_space:  # only takes effect on a new, empty file (before any table)
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, schema_version):
                raise error(
                    f"{path}: {what} schema version {version}, this tracklayer reads "
                    f"{schema_version}"
                )
            db.executescript(schema_sql)
            db.execute(f"PRAGMA user_version={int(schema_version)}")
        except BaseException:
            db.close()
            raise
    return db


#: WAL file size kept after a WAL checkpoint in files that reclaim space (bytes).
WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024


def reclaim_pages(db: sqlite3.Connection, pages: int = 2048) -> int:
    """Give up to ``pages`` free pages back to the file system (``auto_vacuum=INCREMENTAL``
    files; elsewhere free pages are only reused). Returns the free pages left."""
    db.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
    return int(db.execute("PRAGMA freelist_count").fetchone()[0])


def file_bytes(path: str | Path) -> int:
    """Size on disk of an SQLite file with its WAL and shared-memory files (bytes)."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += Path(f"{path}{suffix}").stat().st_size
        except OSError:
            continue
    return total


@contextmanager
def transaction(db: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[sqlite3.Cursor]:
    """One explicit transaction on an autocommit connection: COMMIT on success, else ROLLBACK.

    ``begin`` is the opening statement ("BEGIN", or "BEGIN IMMEDIATE" to take the
    write lock at once); the yielded cursor runs the transaction's statements.
    """
    cur = db.cursor()
    cur.execute(begin)
    try:
        yield cur
        cur.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (an I/O error, a full disk): the original
        # error is the one to report, not "cannot rollback - no transaction is active".
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                cur.execute("ROLLBACK")
        raise


class SqliteFile:
    """Base of the services' SQLite files: opens ``path`` with the subclass's schema.

    A subclass sets ``SCHEMA`` (the ``CREATE ... IF NOT EXISTS`` statements),
    ``SCHEMA_VERSION``, ``WHAT`` (its role in messages) and ``ERROR`` (the exception
    every failure to use the file is raised as); see :func:`open_database`.
    """

    SCHEMA: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]
    WHAT: ClassVar[str]
    ERROR: ClassVar[type[Exception]]
    RECLAIM_SPACE: ClassVar[bool] = False  # see open_database

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._db = open_database(
            self.path,
            self.SCHEMA,
            self.SCHEMA_VERSION,
            what=self.WHAT,
            error=self.ERROR,
            synchronous=synchronous,
            reclaim_space=self.RECLAIM_SPACE,
        )

    @property
    def size_bytes(self) -> int:
        """The file's size on disk with its WAL (bytes)."""
        return file_bytes(self.path)

    def reclaim(self, pages: int = 2048) -> int:
        """:func:`reclaim_pages` on this file; returns the free pages left."""
        with self._database_errors():
            return reclaim_pages(self._db, pages)

    def _database_errors(self) -> AbstractContextManager[None]:
        """:func:`database_errors` for this file (its path, role and error class)."""
        return database_errors(self.path, self.WHAT, self.ERROR)

    def close(self) -> None:
        """Close the connection (the file stays as committed)."""
        self._db.close()


class DatabaseThread:
    """The one worker thread a server runs its SQLite calls on (in submission order)."""

    def __init__(self, name: str) -> None:
        self._exec: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name
        )
        self.busy_s = 0.0  # wall seconds the thread spent running calls (its load)

    def _timed(self, fn: Callable[..., R], *args: object) -> R:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.busy_s += time.perf_counter() - t0

    async def run(self, fn: Callable[..., R], *args: object) -> R:
        """``fn(*args)`` on the database thread, awaited from the event loop."""
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., R], *args: object) -> asyncio.Future[R]:
        """``fn(*args)`` queued on the database thread now (in order with every other
        call); await the future later, or never block on it at all."""
        return asyncio.get_running_loop().run_in_executor(self._exec, self._timed, fn, *args)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._exec is None

    def close(self) -> None:
        """Finish the calls already submitted, then end the thread (idempotent)."""
        if self._exec is not None:
            self._exec.shutdown(wait=True)
            self._exec = None
