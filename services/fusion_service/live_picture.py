"""The fusion service's live picture: the latest published report of each live track.

``ListLiveTracks`` and a subscription's starting picture read it. Reports are kept
as the wire messages that were published; a track known only from the journal
replay is converted from the core lazily, on first read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tracklayer.fusion.domain import SensorPosition, TrackReport, TrackStatus
from tracklayer.services.wire.convert import (
    ns_to_timestamp,
    report_to_proto,
    sensor_position_to_proto,
)
from tracklayer.v1 import track_pb2


def report_message(
    report: TrackReport,
    emitted_ns: int | None = None,
    sensors: Iterable[SensorPosition | track_pb2.SensorPosition] = (),
) -> track_pb2.TrackReport:
    """``report`` on the wire, stamped ``emitted_at = emitted_ns`` unless it has a stamp,
    with the positions of its sensors (``sensor_positions``, for displays; domain
    objects or wire messages, e.g. :meth:`SensorPositions.messages`)."""
    msg = report_to_proto(report)
    if emitted_ns is not None and report.emitted_at_ns is None:
        msg.emitted_at.CopyFrom(ns_to_timestamp(emitted_ns, "emitted_at"))
    msg.sensor_positions.extend(
        p if isinstance(p, track_pb2.SensorPosition) else sensor_position_to_proto(p)
        for p in sensors
    )
    return msg


class LivePicture:
    """Latest published report per live track; ``core_reports`` reads the core's own
    latest reports (a callable: the engine may swap its core for a checkpoint's)."""

    def __init__(self, core_reports: Callable[[], list[TrackReport]]) -> None:
        self._core_reports = core_reports
        #: per live track: its message, its wire bytes (a tracking process's; parsed on
        #: first read) or None (known from the replay only: converted from the core)
        self._latest: dict[str, track_pb2.TrackReport | bytes | None] = {}

    def reset_from_core(self) -> None:
        """Forget everything; know the core's live tracks (converted on first read)."""
        self._latest = dict.fromkeys(r.track_id for r in self._core_reports())

    def remember(
        self,
        reports: list[TrackReport],
        protos: list[track_pb2.TrackReport] | None = None,
        prune: bool = True,
    ) -> None:
        """Keep ``reports`` (published as ``protos``; None: convert on first read)."""
        if not reports:
            return
        for i, r in enumerate(reports):
            if r.status == TrackStatus.DELETED:
                self._latest.pop(r.track_id, None)
            else:
                self._latest[r.track_id] = protos[i] if protos is not None else None
        if prune:
            self.prune()

    def remember_wire(
        self, ids: list[tuple[str, bool]], wire: list[bytes], dropped: list[str] = ()
    ) -> None:
        """Keep reports given as wire bytes (``ids``: each one's track id and whether it
        is DELETED) and forget the ``dropped`` tracks (those the tracking process no
        longer holds: its :meth:`prune`)."""
        latest = self._latest
        for (tid, deleted), blob in zip(ids, wire, strict=True):
            if deleted:
                latest.pop(tid, None)
            else:
                latest[tid] = blob
        for tid in dropped:
            latest.pop(tid, None)

    def prune(self) -> None:
        """Forget tracks the tracker no longer holds (e.g. dropped tentative ones)."""
        live_ids = {r.track_id for r in self._core_reports()}
        for tid in [t for t in self._latest if t not in live_ids]:
            del self._latest[tid]

    def tracks(self) -> list[track_pb2.TrackReport]:
        """Latest published report of each live track, ordered by track id."""
        out = []
        for tid in sorted(self._latest):
            msg = self._latest[tid]
            if isinstance(msg, bytes):
                msg = self._latest[tid] = track_pb2.TrackReport.FromString(msg)
            elif msg is None:  # known from the replay only: convert lazily
                msg = self._latest[tid] = self._from_core(tid)
            if msg is not None:
                out.append(msg)
        return out

    def _from_core(self, track_id: str) -> track_pb2.TrackReport | None:
        for r in self._core_reports():
            if r.track_id == track_id:
                return report_message(r)
        return None
