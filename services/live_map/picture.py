"""What a page gets from the store besides the stream of reports: the snapshot it starts
from (every live track's latest report, a trail per track from the stored history,
the status) and the status bar's figures (:class:`Rates`).

The store keeps no picture of its own for the map: the latest report of each live track
is the track store's (``TrackStoreServicer.live_reports``), the trails are its history
(read on the database thread when a page connects), and everything else (the reports'
fields as the page shows them, the trails from then on, which satellites fed which
tracks and where the reports placed them) the page works out from the reports
themselves: the store's CPU is shared, the browser's is the operator's (issue 16: the map
adds at most 5% to the store).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from tracklayer.services.live_map.view import (
    SNAPSHOT,
    frame_reports,
    json_array,
    message,
    report_text,
    seconds,
    sensor_position_json,
)
from tracklayer.v1 import track_pb2

#: Trail points a page gets per track on connecting (one per stored report: about two
#: minutes of a track reported once a second) ...
TRAIL_POINTS = 120
#: ... and in all (a raid's 1,000 tracks get 20 points each), at least MIN_TRAIL_POINTS.
SNAPSHOT_POINTS = 20_000
MIN_TRAIL_POINTS = 10
#: Window (s) of the reports-per-second figure.
RATE_WINDOW_S = 5.0
#: Satellites placed this much (s, report time) before the newest placement are left out
#: of ``/api/snapshot`` (the page applies the same rule).
SENSOR_FORGET_S = 600.0
_isfinite = math.isfinite


def trail_length(n_tracks: int) -> int:
    """Trail points per track in a snapshot of ``n_tracks`` tracks."""
    return max(MIN_TRAIL_POINTS, min(TRAIL_POINTS, SNAPSHOT_POINTS // max(1, n_tracks)))


def trail(reports: Iterable[track_pb2.TrackReport]) -> list[list[float | None]]:
    """A track's stored reports (oldest first) as its trail: ``[t s, lat deg, lon deg,
    alt m]`` per report with a finite sub-point (rounded; a null altitude where not
    finite)."""
    out: list[list[float | None]] = []
    for r in reports:
        lat, lon, alt = r.latitude_deg, r.longitude_deg, r.altitude_m
        if _isfinite(lat) and _isfinite(lon):
            alt_out = round(alt, 1) if _isfinite(alt) else None
            out.append([seconds(r.time), round(lat, 5), round(lon, 5), alt_out])
    return out


def trails(
    live: list[track_pb2.TrackReport], recent: dict[str, list[track_pb2.TrackReport]]
) -> dict[str, list[list[float | None]]]:
    """Each live track's trail from its recent stored reports, none newer than ``live``'s
    (a report stored while the history was read comes with the stream)."""
    return {
        r.track_id: trail(h for h in recent.get(r.track_id, []) if h.revision <= r.revision)
        for r in live
    }


def snapshot_message(live: list[track_pb2.TrackReport], tails: dict, status: str) -> bytes:
    """What a page gets on connecting, one :func:`view.message` of kind ``SNAPSHOT``: the
    JSON text ``{"trails": {id: trail}, "status": ...}`` (:meth:`Rates.status_text`),
    then the live tracks' latest reports (:func:`view.frame_reports`)."""
    trails = json.dumps(tails, separators=(",", ":"))
    return message(SNAPSHOT, f'{{"trails":{trails},"status":{status}}}', frame_reports(live))


def snapshot(live: list[track_pb2.TrackReport], tails: dict, status: str) -> dict[str, Any]:
    """The same as readable JSON (``/api/snapshot``, scripts and checks): ``tracks`` (each
    report as ``view.report_text`` gives it, with its ``trail``), ``satellites``
    (:func:`satellites`), ``status``."""
    parts = []
    for r in live:
        tail = json.dumps(tails.get(r.track_id, []), separators=(",", ":"))
        parts.append(f'{report_text(r)[:-1]},"trail":{tail}}}')
    sats = json.dumps(satellites(live), separators=(",", ":"))
    return json.loads(f'{{"tracks":{json_array(parts)},"satellites":{sats},"status":{status}}}')


def satellites(live: Iterable[track_pb2.TrackReport]) -> list[dict[str, Any]]:
    """Where the live tracks' latest reports placed each satellite (the newest placement
    of each, those at most :data:`SENSOR_FORGET_S` older than the newest of all): ``id``,
    ``lat``, ``lon`` (deg), ``alt`` (m), ``t`` (s); by id."""
    placed: dict[str, dict[str, Any]] = {}
    for rep in live:
        for p in rep.sensor_positions:
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


class Rates:
    """The status bar's figures: every stored batch is counted (:meth:`arrived`)."""

    def __init__(self) -> None:
        self._arrivals: deque[tuple[float, int]] = deque()
        self._in_window = 0  # reports in _arrivals
        self._last: tuple[float, track_pb2.TrackReport] | None = None
        self.reports_seen = 0

    def arrived(self, reports: list[track_pb2.TrackReport]) -> None:
        """Count a batch the store just stored (reports/s) and keep its last report with
        the time it came, for the store's lag (:meth:`status_text`)."""
        now = time.time()
        self.reports_seen += len(reports)
        self._arrivals.append((now, len(reports)))
        self._in_window += len(reports)
        self._last = (now, reports[-1])

    def status_text(self, live: int) -> str:
        """Status bar as JSON text: ``rate`` (reports/s stored, over the last 5 s),
        ``live`` (tracks, given), ``lag`` (s, the store behind the fusion service:
        emitted -> stored, the last batch's last report; a fusion service's batch is
        emitted at once; null if unknown), ``now`` (wall clock, s), ``seen`` (reports
        counted)."""
        now = time.time()
        while self._arrivals and now - self._arrivals[0][0] > RATE_WINDOW_S:
            self._in_window -= self._arrivals.popleft()[1]
        lag = "null"
        if self._last is not None and self._last[1].HasField("emitted_at"):
            lag = f"{max(0.0, self._last[0] - seconds(self._last[1].emitted_at)):.3f}"
        return (
            f'{{"rate":{self._in_window / RATE_WINDOW_S:.1f},"live":{live},"lag":{lag},'
            f'"now":{now!r},"seen":{self.reports_seen}}}'
        )
