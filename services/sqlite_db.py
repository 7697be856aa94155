"""Opening and writing the services' SQLite files (journal, outbox, track store) one way.

Every file is opened the same way: WAL journal mode, the caller's ``synchronous``
level, autocommit (``isolation_level=None``: transactions are explicit, see
:func:`transaction`), usable from a worker thread other than the opener, and a
schema version kept in ``PRAGMA user_version`` (0: a new file). The schema itself
(``CREATE ... IF NOT EXISTS`` statements) and its meaning stay with each file's module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite file ``path`` and make sure ``schema_sql`` exists.

    ``what`` names the file's role in messages ("journal", "outbox", ...); every
    failure is raised as ``error``: a file written with another schema version, or
    one SQLite cannot use (not a database, unreadable, locked past the timeout).
    ``synchronous`` is the SQLite ``PRAGMA synchronous`` level (FULL: fsync at each
    commit; NORMAL: WAL checkpoints only).
    """
    with database_errors(path, what, error):
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
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
        cur.execute("ROLLBACK")
        raise
