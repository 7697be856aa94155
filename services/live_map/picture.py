"""What the live map knows: the latest report of each live track with a bounded trail,
the sensors that contributed, and the rates shown in the status bar.

Every stored batch is counted (:meth:`LiveMapPicture.arrived`); the latest report of each
changed track is taken once per flush of the server (:meth:`apply`), so a track's trail
has one point per flush at most. A report is encoded to JSON text once, and only when a
page needs it: at the flush while pages are connected, else when a page connects
(:meth:`snapshot_text`).

Fed with the track store's stored reports (``tracklayer.v1.TrackReport``), in the order
they were stored. Single-threaded: used from the store's event loop only.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tracklayer.services.live_map.view import (
    json_array,
    report_text,
    seconds,
    sensor_position_json,
)
from tracklayer.v1 import track_pb2

#: Trail points kept per track (sub-point and altitude of each report): about two minutes
#: of a track reported once a second.
TRAIL_POINTS = 120
#: Window (s) of the reports-per-second figure.
RATE_WINDOW_S = 5.0
#: Sensors not heard from for this long (s, wall clock) leave the list.
SENSOR_FORGET_S = 600.0
_DELETED = track_pb2.TRACK_STATUS_DELETED


@dataclass(slots=True)
class _Sensor:
    last_seen: float  # wall clock, s
    last_time: float  # report time, s
    tracks: set[str] = field(default_factory=set)
    position: track_pb2.SensorPosition | None = None  # the latest a report carried


@dataclass(slots=True)
class _Track:
    msg: track_pb2.TrackReport
    trail: deque[tuple[float, float, float, float]]
    text: str | None = None  # the JSON of ``msg``, once a page needed it


class LiveMapPicture:
    """The live picture as the browser sees it; :meth:`apply` returns the changes."""

    def __init__(self, trail_points: int = TRAIL_POINTS) -> None:
        self._tracks: dict[str, _Track] = {}
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
        if reports and reports[-1].HasField("emitted_at"):
            self._lag_s = max(0.0, now - seconds(reports[-1].emitted_at))

    def apply(self, reports: Iterable[track_pb2.TrackReport], encode: bool = True) -> list[str]:
        """Take stored reports (store order); return the JSON text of each one that is now
        the latest of its track (an older revision arriving late changes nothing), or
        nothing when ``encode`` is false (no page to send them to: encoded later, if a
        page connects)."""
        now = time.time()
        changes: list[str] = []
        for msg in reports:
            tid = msg.track_id
            known = self._tracks.get(tid)
            if known is not None and known.msg.revision >= msg.revision:
                continue
            self._note_sensors(msg, now)
            if msg.status == _DELETED:
                self._tracks.pop(tid, None)
                if encode:
                    changes.append(report_text(msg))
                continue
            if known is None:
                known = self._tracks[tid] = _Track(msg, deque(maxlen=self._trail_points))
            known.msg = msg
            known.text = report_text(msg) if encode else None
            lat, lon = msg.latitude_deg, msg.longitude_deg
            if math.isfinite(lat) and math.isfinite(lon):
                known.trail.append((seconds(msg.time), lat, lon, msg.altitude_m))
            if encode:
                changes.append(known.text)  # type: ignore[arg-type]
        return changes

    def _note_sensors(self, msg: track_pb2.TrackReport, now: float) -> None:
        t, tid, sensors = seconds(msg.time), msg.track_id, self._sensors
        for sid in msg.sensor_ids:
            s = sensors.get(sid)
            if s is None:
                s = sensors[sid] = _Sensor(now, t)
            s.last_seen = now
            if t > s.last_time:
                s.last_time = t
            s.tracks.add(tid)
        for p in msg.sensor_positions:  # reports come in emission order: newest last
            s = sensors.get(p.sensor_id)
            if s is not None:
                s.position = p
        if msg.status == _DELETED:
            for s in self._sensors.values():
                s.tracks.discard(msg.track_id)

    def trail(self, track_id: str) -> list[list[float | None]]:
        """The track's trail, oldest first: ``[t s, lat deg, lon deg, alt m]`` per point
        (rounded as in the reports; a null altitude where not finite)."""
        track = self._tracks.get(track_id)
        return [] if track is None else [_point(p) for p in track.trail]

    def snapshot_text(self) -> str:
        """Everything a page needs on connecting, as JSON text: tracks (each with its
        ``trail``), sensors, status."""
        parts = []
        for tid in sorted(self._tracks):
            track = self._tracks[tid]
            if track.text is None:
                track.text = report_text(track.msg)
            trail = json.dumps(self.trail(tid), separators=(",", ":"))
            parts.append(f'{track.text[:-1]},"trail":{trail}}}')
        tail = json.dumps(
            {"sensors": self.sensors(), "status": self.status()}, separators=(",", ":")
        )
        return f'{{"tracks":{json_array(parts)},{tail[1:]}'

    def snapshot(self) -> dict[str, Any]:
        """:meth:`snapshot_text` parsed (checks and tests)."""
        return json.loads(self.snapshot_text())

    def sensors(self) -> list[dict[str, Any]]:
        """Contributing sensors: id, live tracks they feed, last report time (s) and
        ``pos``, where the reports last placed it (``lat``, ``lon`` deg, ``alt`` m, ``t``
        s) or null."""
        now = time.time()
        for sid in [k for k, s in self._sensors.items() if now - s.last_seen > SENSOR_FORGET_S]:
            del self._sensors[sid]
        return [
            {
                "id": sid,
                "tracks": sorted(s.tracks & self._tracks.keys()),
                "t": s.last_time,
                "pos": None if s.position is None else sensor_position_json(s.position),
            }
            for sid, s in sorted(self._sensors.items())
        ]

    def status(self) -> dict[str, Any]:
        """Status bar: reports/s (stored, over the last 5 s), live tracks, the store's lag
        behind the fusion service (s, emitted -> stored, last batch), wall time."""
        now = time.time()
        while self._arrivals and now - self._arrivals[0][0] > RATE_WINDOW_S:
            self._arrivals.popleft()
        n = sum(k for _, k in self._arrivals)
        latest = max((seconds(t.msg.time) for t in self._tracks.values()), default=None)
        return {
            "rate": round(n / RATE_WINDOW_S, 1),
            "live": len(self._tracks),
            "lag": None if self._lag_s is None else round(self._lag_s, 3),
            "latest": latest,
            "now": now,
            "seen": self.reports_seen,
        }


def _point(p: tuple[float, float, float, float]) -> list[float | None]:
    t, lat, lon, alt = p
    return [t, round(lat, 5), round(lon, 5), round(alt, 1) if math.isfinite(alt) else None]
