"""What the live map knows: the latest report of each live track with a bounded trail,
the sensors that contributed, and the rates shown in the status bar.

Every stored batch is counted (:meth:`LiveMapPicture.arrived`); only the latest report of
each changed track is converted, once per flush of the server (:meth:`apply`), so a
track's trail has one point per flush at most.

Fed with the track store's stored reports (``tracklayer.v1.TrackReport``), in the order
they were stored; everything it hands out is JSON-ready (``view``). Single-threaded:
used from the store's event loop only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tracklayer.services.live_map.view import report_json
from tracklayer.v1 import track_pb2

#: Trail points kept per track (sub-point and altitude of each report): about two minutes
#: of a track reported once a second.
TRAIL_POINTS = 120
#: Window (s) of the reports-per-second figure.
RATE_WINDOW_S = 5.0
#: Sensors not heard from for this long (s, wall clock) leave the list.
SENSOR_FORGET_S = 600.0
_DELETED = track_pb2.TRACK_STATUS_DELETED


@dataclass
class _Sensor:
    last_seen: float  # wall clock, s
    last_time: float  # report time, s
    tracks: set[str] = field(default_factory=set)


class LiveMapPicture:
    """The live picture as the browser sees it; :meth:`apply` returns the changes."""

    def __init__(self, trail_points: int = TRAIL_POINTS) -> None:
        self._tracks: dict[str, dict[str, Any]] = {}
        self._trails: dict[str, deque[tuple[float, float, float, float]]] = {}
        self._sensors: dict[str, _Sensor] = {}
        self._trail_points = trail_points
        self._arrivals: deque[tuple[float, int]] = deque()
        self._lag_s: float | None = None
        self.reports_seen = 0

    def arrived(self, reports: list[track_pb2.TrackReport]) -> None:
        """Count a batch the store just stored (reports/s) and take the store's lag from
        its last report: now - ``emitted_at`` (s, wall clock; a fusion service's batch
        is emitted at once)."""
        now = time.time()
        self.reports_seen += len(reports)
        self._arrivals.append((now, len(reports)))
        last = reports[-1] if reports else None
        if last is not None and last.HasField("emitted_at"):
            emitted = last.emitted_at.seconds + last.emitted_at.nanos * 1e-9
            self._lag_s = max(0.0, now - emitted)

    def apply(self, reports: Iterable[track_pb2.TrackReport]) -> list[dict[str, Any]]:
        """Take stored reports (store order); return the JSON of each one that is now the
        latest of its track (an older revision arriving late changes nothing)."""
        now = time.time()
        changes: list[dict[str, Any]] = []
        for msg in reports:
            known = self._tracks.get(msg.track_id)
            if known is not None and known["rev"] >= msg.revision:
                continue
            rep = report_json(msg)
            changes.append(rep)
            self._note_sensors(rep, now)
            if msg.status == _DELETED:
                self._tracks.pop(msg.track_id, None)
                self._trails.pop(msg.track_id, None)
                continue
            trail = self._trails.setdefault(msg.track_id, deque(maxlen=self._trail_points))
            if rep["lat"] is not None and rep["lon"] is not None:
                trail.append((rep["t"], rep["lat"], rep["lon"], rep["alt"]))
            self._tracks[msg.track_id] = rep
        return changes

    def _note_sensors(self, rep: dict[str, Any], now: float) -> None:
        for sid in rep["sensors"]:
            s = self._sensors.get(sid)
            if s is None:
                s = self._sensors[sid] = _Sensor(now, rep["t"])
            s.last_seen, s.last_time = now, max(s.last_time, rep["t"])
            s.tracks.add(rep["id"])
        if rep["status"] == "DELETED":
            for s in self._sensors.values():
                s.tracks.discard(rep["id"])

    def trail(self, track_id: str) -> list[list[float]]:
        """The track's trail, oldest first: ``[t s, lat deg, lon deg, alt m]`` per point."""
        return [list(p) for p in self._trails.get(track_id, ())]

    def snapshot(self) -> dict[str, Any]:
        """Everything a page needs on connecting: tracks with trails, sensors, status."""
        tracks = []
        for tid in sorted(self._tracks):
            rep = dict(self._tracks[tid])
            rep["trail"] = self.trail(tid)
            tracks.append(rep)
        return {"tracks": tracks, "sensors": self.sensors(), "status": self.status()}

    def sensors(self) -> list[dict[str, Any]]:
        """Contributing sensors: id, live tracks they feed, last report time (s)."""
        now = time.time()
        for sid in [k for k, s in self._sensors.items() if now - s.last_seen > SENSOR_FORGET_S]:
            del self._sensors[sid]
        return [
            {"id": sid, "tracks": sorted(s.tracks & self._tracks.keys()), "t": s.last_time}
            for sid, s in sorted(self._sensors.items())
        ]

    def status(self) -> dict[str, Any]:
        """Status bar: reports/s (stored, over the last 5 s), live tracks, the store's lag
        behind the fusion service (s, emitted -> stored, last batch), wall time."""
        now = time.time()
        while self._arrivals and now - self._arrivals[0][0] > RATE_WINDOW_S:
            self._arrivals.popleft()
        n = sum(k for _, k in self._arrivals)
        latest = max((r["t"] for r in self._tracks.values()), default=None)
        return {
            "rate": round(n / RATE_WINDOW_S, 1),
            "live": len(self._tracks),
            "lag": None if self._lag_s is None else round(self._lag_s, 3),
            "latest": latest,
            "now": now,
            "seen": self.reports_seen,
        }
