"""What ``tracklayer demo`` shows while the sensors stream: the status lines and the table
of the tracks the store holds, redrawn in place on a terminal, plain lines otherwise.

May import ``tracklayer.fusion`` (report types), ``services.wire`` and ``services.clients``.
"""

from __future__ import annotations

import math
import shutil
from typing import TextIO

from tracklayer.fusion.domain import TrackReport, TrackStatus
from tracklayer.services.clients.client import TrackSubscription
from tracklayer.services.wire.convert import report_from_proto

MAX_ROWS = 14  # tracks shown in the table (the rest counted)


def _fmt_latlon(lat: float, lon: float) -> str:
    return f"{abs(lat):5.2f}{'N' if lat >= 0 else 'S'} {abs(lon):6.2f}{'E' if lon >= 0 else 'W'}"


def _sensors_text(ids: tuple[str, ...]) -> str:
    """``sat-1-2 +4``: the first sensor and how many more (the table stays 80 columns)."""
    if not ids:
        return "-"
    return ids[0] + (f" +{len(ids) - 1}" if len(ids) > 1 else "")


def _track_number(track_id: str) -> int:
    n = track_id.rpartition("-")[2]
    return int(n) if n.isdigit() else 0


def track_table(reports: list[TrackReport], max_rows: int = MAX_ROWS) -> list[str]:
    """Lines of the track table: one row per track, confirmed first, then by number.

    Altitude km (WGS-84), inertial speed km/s, predicted impact point (degrees,
    with its 1-sigma semi-major axis in km), sensors that updated it last.
    """
    order = sorted(
        reports, key=lambda r: (r.status != TrackStatus.CONFIRMED, _track_number(r.track_id))
    )
    w = max([5, *(len(r.track_id) for r in order[:max_rows])])
    rows = [
        f"  {'track':<{w}} {'status':<9} {'phase':<9} {'alt km':>6} {'km/s':>5}  "
        f"{'predicted impact':<23} sensors"
    ]
    for r in order[:max_rows]:
        impact = "-"
        if r.impact is not None:
            impact = (
                f"{_fmt_latlon(r.impact.latitude_deg, r.impact.longitude_deg)} "
                f"±{r.impact.semi_major_m / 1e3:.1f}km"
            )
        speed = float(math.sqrt(float(r.velocity @ r.velocity))) / 1e3
        rows.append(
            f"  {r.track_id:<{w}} {r.status.name:<9} {r.phase.name.lower():<9} "
            f"{r.altitude_m / 1e3:6.0f} {speed:5.2f}  {impact:<23} {_sensors_text(r.sensor_ids)}"
        )
    if len(order) > max_rows:
        rows.append(f"  ... and {len(order) - max_rows} more tracks")
    if not order:
        rows.append("  (no live tracks)")
    return rows


class LivePicture:
    """The latest stored report of each live track, built from a store subscription."""

    def __init__(self, sub: TrackSubscription) -> None:
        self._sub = sub
        self._seen = 0
        self.latest: dict[str, TrackReport] = {}
        self.stored = 0
        self.ever: set[str] = set()
        self.confirmed_last: dict[str, TrackReport] = {}  # ever-confirmed tracks: last report

    def update(self) -> None:
        new = self._sub.reports[self._seen :]
        self._seen += len(new)
        self.stored += len(new)
        for msg in new:
            r = report_from_proto(msg)
            self.ever.add(r.track_id)
            last = self.confirmed_last.get(r.track_id)
            if r.status == TrackStatus.CONFIRMED or last is not None:
                if last is None or last.revision < r.revision:
                    self.confirmed_last[r.track_id] = r
            cur = self.latest.get(r.track_id)
            if cur is not None and cur.revision > r.revision:
                continue
            if r.status == TrackStatus.DELETED:
                self.latest.pop(r.track_id, None)
            else:
                self.latest[r.track_id] = r


class Screen:
    """Redraws a block of lines in place on a terminal; prints them plainly otherwise."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self._height = 0

    def draw(self, lines: list[str]) -> None:
        if self.tty:  # lines cut to the terminal's width: a wrapped line would break the redraw
            width = max(20, shutil.get_terminal_size().columns - 1)
            lines = [ln[:width] for ln in lines]
            up = f"\x1b[{self._height}F" if self._height else ""
            self.out.write(up + "\x1b[J" + "\n".join(lines) + "\n")
            self._height = len(lines)
        else:
            self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def release(self) -> None:
        """Keep what is drawn; later output goes below it."""
        self._height = 0


def status_lines(
    scenario, duration: float, t_live: float, counters: dict[str, int], picture: LivePicture
) -> list[str]:
    """The two status lines above the table: scenario time bar, frame and track counts."""
    t = min(duration, t_live)
    frac = t / duration if duration > 0 else 1.0
    filled = int(round(frac * 24))
    bar = "#" * filled + "." * (24 - filled)
    accepted = counters.get('frames_total{status="accepted"}', 0)
    late = counters.get('frames_total{status="late"}', 0)
    rejected = counters.get('frames_total{status="rejected"}', 0)
    extra = f" ({late} late)" if late else ""
    extra += f" ({rejected} rejected)" if rejected else ""
    confirmed = sum(1 for r in picture.latest.values() if r.status == TrackStatus.CONFIRMED)
    return [
        f"{scenario.name} [{bar}] t = {t:4.0f} / {duration:g} s",
        f"  frames {accepted}{extra}, detections {counters.get('detections_total', 0)}, "
        f"reports {picture.stored}, live tracks {len(picture.latest)} ({confirmed} confirmed)",
    ]
