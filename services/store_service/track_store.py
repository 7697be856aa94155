"""The track store's persistence: one SQLite file (WAL), every report revision once.

A (track_id, revision) is stored once. Publishing it again with the same
content (every field but the wall-clock ``emitted_at`` and the display aid
``sensor_positions``) is a DUPLICATE;
with different content it is REJECTED, and the reason names the differing
fields. Reports are kept as their serialised ``tracklayer.v1.TrackReport``
(exactly as received) beside a canonical form without those two used for the
comparison. Synchronous and single-connection: the servicer calls it
from one worker thread.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tracklayer.services.limits import MAX_TRACK_ID_CHARS
from tracklayer.services.sqlite_db import SqliteFile, transaction
from tracklayer.v1 import track_pb2

STORED = track_pb2.PUBLISH_STATUS_STORED
DUPLICATE = track_pb2.PUBLISH_STATUS_DUPLICATE
REJECTED = track_pb2.PUBLISH_STATUS_REJECTED
DELETED = track_pb2.TRACK_STATUS_DELETED

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    track_id     TEXT    NOT NULL,
    revision     INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    time_ns      INTEGER NOT NULL,
    content      BLOB    NOT NULL,  -- canonical TrackReport without emitted_at
    report       BLOB    NOT NULL,  -- TrackReport as received
    stored_at_ns INTEGER NOT NULL,  -- wall clock
    PRIMARY KEY (track_id, revision)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tracks (
    track_id        TEXT    PRIMARY KEY,
    latest_revision INTEGER NOT NULL,
    status          INTEGER NOT NULL
) WITHOUT ROWID;
"""


class TrackStoreError(Exception):
    """The store file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Outcome of one published report (``status`` is a ``PublishStatus`` value)."""

    track_id: str
    revision: int
    status: int
    reason: str = ""
    latest: bool = False  # STORED and now the track's latest revision
    raw: bytes = b""  # STORED: the report's bytes as stored (the live map sends them on)


#: Fields set on emission that are not the report's content: the wall clock and where
#: the sensors were (for displays).
NOT_CONTENT = ("emitted_at", "sensor_positions")


def canonical_bytes(report: track_pb2.TrackReport) -> bytes:
    """Deterministic serialisation of ``report`` without :data:`NOT_CONTENT` (the
    compared content)."""
    if report.HasField("emitted_at") or report.sensor_positions:
        report = track_pb2.TrackReport.FromString(report.SerializeToString())
        for name in NOT_CONTENT:
            report.ClearField(name)
    return report.SerializeToString(deterministic=True)


def differing_fields(a: track_pb2.TrackReport, b: track_pb2.TrackReport) -> list[str]:
    """Names of the top-level fields (:data:`NOT_CONTENT` aside) whose values differ."""
    out = []
    for fd in track_pb2.TrackReport.DESCRIPTOR.fields:
        if fd.name in NOT_CONTENT:
            continue
        va, vb = getattr(a, fd.name), getattr(b, fd.name)
        if fd.message_type is not None and not _is_repeated(fd):
            if a.HasField(fd.name) != b.HasField(fd.name) or va.SerializeToString(
                deterministic=True
            ) != vb.SerializeToString(deterministic=True):
                out.append(fd.name)
        elif _is_repeated(fd):
            if list(va) != list(vb):
                out.append(fd.name)
        elif va != vb:
            out.append(fd.name)
    return out


def _is_repeated(fd: object) -> bool:
    return bool(getattr(fd, "is_repeated", False)) or getattr(fd, "label", 0) == 3


_INT64_MAX = 2**63 - 1


def validate_report(report: track_pb2.TrackReport) -> str:
    """Reason the report cannot be stored ("field: why"), or "" when it can."""
    if not report.track_id:
        return "track_id: empty"
    if len(report.track_id) > MAX_TRACK_ID_CHARS:
        return f"track_id: longer than {MAX_TRACK_ID_CHARS} characters"
    if report.revision < 1:
        return "revision: must be >= 1 (revisions count 1, 2, 3, ...)"
    if report.revision > _INT64_MAX:  # SQLite INTEGER is 64-bit signed
        return f"revision: {report.revision} is above 2^63 - 1"
    if not 0 <= report.time.nanos < 1_000_000_000:
        return f"time: nanos {report.time.nanos} outside [0, 999999999]"
    if not -_INT64_MAX - 1 <= report.time.seconds * 1_000_000_000 + report.time.nanos <= _INT64_MAX:
        return f"time: {report.time.seconds} s is outside the int64-nanosecond range (1677-2262)"
    if report.status not in (1, 2, 3, 4):
        return f"status: {report.status} is not a track status"
    if len(report.covariance) not in (0, 36):
        return f"covariance: expected 36 values (6x6 row-major), got {len(report.covariance)}"
    pos = report.position_eci
    if not all(math.isfinite(v) for v in (pos.x, pos.y, pos.z)):
        return "position_eci: not finite"
    return ""


class TrackStore(SqliteFile):
    """SQLite-backed store of track reports (one file, WAL, survives restarts)."""

    SCHEMA, SCHEMA_VERSION, WHAT, ERROR = _SCHEMA, SCHEMA_VERSION, "track store", TrackStoreError

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        super().__init__(path, synchronous=synchronous)
        with self._database_errors():
            counts = self.counts()
        self.n_reports: int = counts["reports"]  # stored reports (kept current by publish)
        self.n_tracks: int = counts["tracks"]
        self._pending_reports = self._pending_tracks = 0

    def publish(self, reports: Sequence[track_pb2.TrackReport]) -> list[PublishResult]:
        """Store each report (one transaction for the batch); one result per report, in order."""
        results: list[PublishResult] = []
        now = time.time_ns()
        self._pending_reports = self._pending_tracks = 0
        with transaction(self._db, "BEGIN IMMEDIATE") as cur:
            for rep in reports:
                results.append(self._publish_one(cur, rep, now))
        self.n_reports += self._pending_reports
        self.n_tracks += self._pending_tracks
        return results

    def _publish_one(
        self, cur: sqlite3.Cursor, rep: track_pb2.TrackReport, now_ns: int
    ) -> PublishResult:
        tid, rev = rep.track_id, int(rep.revision)
        reason = validate_report(rep)
        if reason:
            return PublishResult(tid, rev, REJECTED, reason)
        content = canonical_bytes(rep)
        row = cur.execute(
            "SELECT content FROM reports WHERE track_id=? AND revision=?", (tid, rev)
        ).fetchone()
        if row is not None:
            if row[0] == content:
                return PublishResult(tid, rev, DUPLICATE)
            old = track_pb2.TrackReport.FromString(row[0])
            fields = ", ".join(differing_fields(old, rep)) or "encoding"
            return PublishResult(
                tid,
                rev,
                REJECTED,
                f"revision: {tid} revision {rev} is already stored with different "
                f"content (differs in: {fields})",
            )
        t_ns = rep.time.seconds * 1_000_000_000 + rep.time.nanos
        raw = rep.SerializeToString()
        cur.execute(
            "INSERT INTO reports VALUES (?,?,?,?,?,?,?)",
            (tid, rev, int(rep.status), t_ns, content, raw, now_ns),
        )
        known = cur.execute(
            "SELECT latest_revision FROM tracks WHERE track_id=?", (tid,)
        ).fetchone()
        if known is None:
            cur.execute("INSERT INTO tracks VALUES (?,?,?)", (tid, rev, int(rep.status)))
            self._pending_tracks += 1
        elif rev > known[0]:
            cur.execute(
                "UPDATE tracks SET latest_revision=?, status=? WHERE track_id=?",
                (rev, int(rep.status), tid),
            )
        self._pending_reports += 1
        return PublishResult(tid, rev, STORED, latest=known is None or rev > known[0], raw=raw)

    def latest(self, include_deleted: bool = False) -> list[track_pb2.TrackReport]:
        """Latest revision of each track, ordered by track id (DELETED ones on request)."""
        sql = (
            "SELECT r.report FROM tracks t JOIN reports r "
            "ON r.track_id=t.track_id AND r.revision=t.latest_revision"
        )
        if not include_deleted:
            sql += f" WHERE t.status != {DELETED}"
        sql += " ORDER BY t.track_id"
        return _parse(row[0] for row in self._db.execute(sql))

    def history(self, track_id: str) -> list[track_pb2.TrackReport]:
        """Every stored revision of ``track_id`` in revision order (empty if unknown)."""
        rows = self._db.execute(
            "SELECT report FROM reports WHERE track_id=? ORDER BY revision", (track_id,)
        )
        return _parse(row[0] for row in rows)

    def recent(self, track_ids: Iterable[str], n: int) -> dict[str, list[track_pb2.TrackReport]]:
        """The last ``n`` stored revisions of each of ``track_ids``, oldest first (an
        unknown id maps to an empty list)."""
        out = {}
        for tid in track_ids:
            rows = self._db.execute(
                "SELECT report FROM reports WHERE track_id=? ORDER BY revision DESC LIMIT ?",
                (tid, n),
            ).fetchall()
            out[tid] = _parse(row[0] for row in reversed(rows))
        return out

    def counts(self) -> dict[str, int]:
        """Numbers of stored reports and tracks (all, and not deleted)."""
        reports = self._db.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
        tracks, live = self._db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(status != {DELETED}), 0) FROM tracks"
        ).fetchone()
        return {"reports": int(reports), "tracks": int(tracks), "tracks_live": int(live)}


def _parse(blobs: Iterable[bytes]) -> list[track_pb2.TrackReport]:
    return [track_pb2.TrackReport.FromString(b) for b in blobs]
