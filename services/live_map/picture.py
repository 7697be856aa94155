"""What the live map knows: the latest report of each live track with a bounded trail,
where the reports last placed each satellite, and the rates shown in the status bar.
(Which satellites fed which tracks the page works out from the reports' ``sensors``:
the store's CPU is shared, the browser's is the operator's.)

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
from dataclasses import dataclass
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
#: Satellites placed this much (s, report time) before the newest placement are dropped.
SENSOR_FORGET_S = 600.0
_DELETED = track_pb2.TRACK_STATUS_DELETED


@dataclass(slots=True)
class _Track:
    msg: track_pb2.TrackReport
    trail: deque[tuple[float, float, float, float]]
    text: str | None = None  # the JSON of ``msg``, once a page needed it


class LiveMapPicture:
    """The live picture as the browser sees it; :meth:`apply` returns the changes."""

    def __init__(self, trail_points: int = TRAIL_POINTS) -> None:
        self._tracks: dict[str, _Track] = {}
        self._placed: dict[str, track_pb2.SensorPosition] = {}
        self._trail_points = trail_points
        self._arrivals: deque[tuple[float, int]] = deque()
        self._in_window = 0  # reports in _arrivals
        self._last: tuple[float, track_pb2.TrackReport] | None = None
        self.reports_seen = 0

    def arrived(self, reports: list[track_pb2.TrackReport]) -> None:
        """Count a batch the store just stored (reports/s) and keep its last report with
        the time it came, for the store's lag (:meth:`status`)."""
        if reports:
            now = time.time()
            self.reports_seen += len(reports)
            self._arrivals.append((now, len(reports)))
            self._in_window += len(reports)
            self._last = (now, reports[-1])

    def apply(self, reports: Iterable[track_pb2.TrackReport], encode: bool = True) -> list[str]:
        """Take stored reports (store order); return the JSON text of each one that is now
        the latest of its track (an older revision arriving late changes nothing), or
        nothing when ``encode`` is false (no page to send them to: encoded later, if a
        page connects)."""
        changes: list[str] = []
        for msg in reports:
            tid = msg.track_id
            known = self._tracks.get(tid)
            if known is not None and known.msg.revision >= msg.revision:
                continue
            for p in msg.sensor_positions:  # reports come in emission order: newest last
                self._placed[p.sensor_id] = p
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

    def trail(self, track_id: str) -> list[list[float | None]]:
        """The track's trail, oldest first: ``[t s, lat deg, lon deg, alt m]`` per point
        (rounded as in the reports; a null altitude where not finite)."""
        track = self._tracks.get(track_id)
        return [] if track is None else [_point(p) for p in track.trail]

    def snapshot_text(self) -> str:
        """Everything a page needs on connecting, as JSON text: tracks (each with its
        ``trail``), satellites, status."""
        parts = []
        for tid in sorted(self._tracks):
            track = self._tracks[tid]
            if track.text is None:
                track.text = report_text(track.msg)
            trail = json.dumps(self.trail(tid), separators=(",", ":"))
            parts.append(f'{track.text[:-1]},"trail":{trail}}}')
        tail = json.dumps(
            {"satellites": self.satellites(), "status": self.status()}, separators=(",", ":")
        )
        return f'{{"tracks":{json_array(parts)},{tail[1:]}'

    def snapshot(self) -> dict[str, Any]:
        """:meth:`snapshot_text` parsed (checks and tests)."""
        return json.loads(self.snapshot_text())

    def satellites(self) -> list[dict[str, Any]]:
        """Where the reports last placed each satellite: ``id``, ``lat``, ``lon`` (deg),
        ``alt`` (m), ``t`` (s); by id."""
        newest = max((seconds(p.time) for p in self._placed.values()), default=0.0)
        out = []
        for sid in sorted(self._placed):
            pos = sensor_position_json(self._placed[sid])
            if newest - pos["t"] > SENSOR_FORGET_S:  # type: ignore[operator]
                del self._placed[sid]
            else:
                out.append({"id": sid, **pos})
        return out

    def status(self) -> dict[str, Any]:
        """Status bar: reports/s (stored, over the last 5 s), live tracks, the store's lag
        behind the fusion service (s, emitted -> stored, the last batch's last report; a
        fusion service's batch is emitted at once), wall time."""
        now = time.time()
        while self._arrivals and now - self._arrivals[0][0] > RATE_WINDOW_S:
            self._in_window -= self._arrivals.popleft()[1]
        latest = max((seconds(t.msg.time) for t in self._tracks.values()), default=None)
        lag = None
        if self._last is not None and self._last[1].HasField("emitted_at"):
            lag = round(max(0.0, self._last[0] - seconds(self._last[1].emitted_at)), 3)
        return {
            "rate": round(self._in_window / RATE_WINDOW_S, 1),
            "live": len(self._tracks),
            "lag": lag,
            "latest": latest,
            "now": now,
            "seen": self.reports_seen,
        }


def _point(p: tuple[float, float, float, float]) -> list[float | None]:
    t, lat, lon, alt = p
    return [t, round(lat, 5), round(lon, 5), round(alt, 1) if math.isfinite(alt) else None]
