"""What the live map keeps in the store: the latest report of each live track with a
bounded trail, and the rates shown in the status bar. Everything else (the reports'
fields as the page shows them, which satellites fed which tracks and where the reports
placed them) the page works out from the reports themselves: the store's CPU is shared,
the browser's is the operator's (issue 16: the map adds at most 5% to the store).

Every stored batch is counted (:meth:`LiveMapPicture.arrived`); the latest report of each
changed track is taken once per flush of the server (:meth:`apply`), so a track's trail
has one point per flush at most. Reports go to the page as their own protobuf bytes
(``view.reports_b64``); the readable JSON of ``view.report_text`` is only built for
``/api/snapshot``.

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
    reports_b64,
    seconds,
    sensor_position_json,
)
from tracklayer.v1 import track_pb2

#: Trail points kept per track (time, sub-point and altitude of each report): about two
#: minutes of a track reported once a second.
TRAIL_POINTS = 120
#: Window (s) of the reports-per-second figure.
RATE_WINDOW_S = 5.0
#: Satellites placed this much (s, report time) before the newest placement are left out
#: of ``/api/snapshot`` (the page applies the same rule).
SENSOR_FORGET_S = 600.0
_DELETED = track_pb2.TRACK_STATUS_DELETED
_isfinite = math.isfinite


@dataclass(slots=True)
class _Track:
    msg: track_pb2.TrackReport
    trail: deque[tuple[float, float, float, float]]


class LiveMapPicture:
    """The live picture as the browser sees it; :meth:`apply` returns the changes."""

    def __init__(self, trail_points: int = TRAIL_POINTS) -> None:
        self._tracks: dict[str, _Track] = {}
        self._trail_points = trail_points
        self._arrivals: deque[tuple[float, int]] = deque()
        self._in_window = 0  # reports in _arrivals
        self._last: tuple[float, track_pb2.TrackReport] | None = None
        self._latest_t: float | None = None  # newest report time applied (s)
        self.reports_seen = 0

    def arrived(self, reports: list[track_pb2.TrackReport]) -> None:
        """Count a batch the store just stored (reports/s) and keep its last report with
        the time it came, for the store's lag (:meth:`status_text`)."""
        if reports:
            now = time.time()
            self.reports_seen += len(reports)
            self._arrivals.append((now, len(reports)))
            self._in_window += len(reports)
            self._last = (now, reports[-1])

    def apply(self, reports: Iterable[track_pb2.TrackReport]) -> list[track_pb2.TrackReport]:
        """Take stored reports (store order); return those that are now the latest of
        their track (a DELETED one included: the page drops the track; an older revision
        arriving late changes nothing)."""
        changes: list[track_pb2.TrackReport] = []
        tracks, newest = self._tracks, self._latest_t
        for msg in reports:
            tid = msg.track_id
            known = tracks.get(tid)
            if known is not None and known.msg.revision >= msg.revision:
                continue
            changes.append(msg)
            if msg.status == _DELETED:
                tracks.pop(tid, None)
                continue
            if known is None:
                known = tracks[tid] = _Track(msg, deque(maxlen=self._trail_points))
            known.msg = msg
            tm = msg.time
            t = tm.seconds + tm.nanos * 1e-9
            lat, lon = msg.latitude_deg, msg.longitude_deg
            if _isfinite(lat) and _isfinite(lon):
                known.trail.append((t, lat, lon, msg.altitude_m))
            if newest is None or t > newest:
                newest = t
        self._latest_t = newest
        return changes

    def trail(self, track_id: str) -> list[list[float | None]]:
        """The track's trail, oldest first: ``[t s, lat deg, lon deg, alt m]`` per point
        (rounded; a null altitude where not finite)."""
        track = self._tracks.get(track_id)
        return [] if track is None else [_point(p) for p in track.trail]

    def snapshot_text(self) -> str:
        """Everything a page needs on connecting, as JSON text: ``tracks`` (every live
        track's latest report, :func:`view.reports_b64`, by id), ``trails`` (id -> trail),
        ``status``."""
        ids = sorted(self._tracks)
        trails = {tid: self.trail(tid) for tid in ids}
        tracks = reports_b64([self._tracks[tid].msg for tid in ids])
        rest = json.dumps({"trails": trails}, separators=(",", ":"))
        return f'{{"tracks":"{tracks}",{rest[1:-1]},"status":{self.status_text()}}}'

    def snapshot(self) -> dict[str, Any]:
        """The picture as readable JSON (``/api/snapshot``, scripts and checks): ``tracks``
        (each report as ``view.report_text`` gives it, with its ``trail``), ``satellites``
        (:meth:`satellites`), ``status``."""
        parts = []
        for tid in sorted(self._tracks):
            trail = json.dumps(self.trail(tid), separators=(",", ":"))
            parts.append(f'{report_text(self._tracks[tid].msg)[:-1]},"trail":{trail}}}')
        sats = json.dumps(self.satellites(), separators=(",", ":"))
        text = f'{{"tracks":{json_array(parts)},"satellites":{sats},"status":{self.status_text()}}}'
        return json.loads(text)

    def satellites(self) -> list[dict[str, Any]]:
        """Where the live tracks' latest reports placed each satellite (the newest
        placement of each, those at most :data:`SENSOR_FORGET_S` older than the newest of
        all): ``id``, ``lat``, ``lon`` (deg), ``alt`` (m), ``t`` (s); by id."""
        placed: dict[str, dict[str, Any]] = {}
        for track in self._tracks.values():
            for p in track.msg.sensor_positions:
                pos = sensor_position_json(p)
                old = placed.get(p.sensor_id)
                if old is None or pos["t"] > old["t"]:  # type: ignore[operator]
                    placed[p.sensor_id] = pos
        newest = max((p["t"] for p in placed.values()), default=0.0)
        return [
            {"id": sid, **placed[sid]}
            for sid in sorted(placed)
            if newest - placed[sid]["t"] <= SENSOR_FORGET_S  # type: ignore[operator]
        ]

    def status_text(self) -> str:
        """Status bar as JSON text: ``rate`` (reports/s stored, over the last 5 s),
        ``live`` (tracks), ``lag`` (s, the store behind the fusion service: emitted ->
        stored, the last batch's last report; a fusion service's batch is emitted at
        once; null if unknown), ``latest`` (newest report time, s), ``now`` (wall clock,
        s), ``seen`` (reports counted)."""
        now = time.time()
        while self._arrivals and now - self._arrivals[0][0] > RATE_WINDOW_S:
            self._in_window -= self._arrivals.popleft()[1]
        lag = "null"
        if self._last is not None and self._last[1].HasField("emitted_at"):
            lag = f"{max(0.0, self._last[0] - seconds(self._last[1].emitted_at)):.3f}"
        latest = "null" if self._latest_t is None else repr(self._latest_t)
        return (
            f'{{"rate":{self._in_window / RATE_WINDOW_S:.1f},"live":{len(self._tracks)},'
            f'"lag":{lag},"latest":{latest},"now":{now!r},"seen":{self.reports_seen}}}'
        )

    def status(self) -> dict[str, Any]:
        """:meth:`status_text` parsed."""
        return json.loads(self.status_text())


def _point(p: tuple[float, float, float, float]) -> list[float | None]:
    t, lat, lon, alt = p
    return [t, round(lat, 5), round(lon, 5), round(alt, 1) if _isfinite(alt) else None]
