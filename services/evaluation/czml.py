"""A recording as CZML (``tracklayer export FILE.mcap --czml OUT.czml``; ``evaluate`` writes
``scene.czml`` beside its plots), built with the ``czml3`` library, for Cesium and STK.

Packets (ids): ``document`` (clock over the recording), ``truth/<object>`` (true
trajectory, white), ``track/<track id>`` (time-tagged report positions, point coloured by
flight phase over time, path, availability first to last report), ``impact/<track id>``
and ``impact3/<track id>`` (predicted impact point with its 1- and 3-sigma ground ellipse,
each report's prediction valid until the next), ``launch/<track id>`` (latest launch-point
estimate with its 1-sigma ellipse) and ``satellite/<sensor id>`` (positions of its frames,
one sample per :data:`SATELLITE_STEP_S` at most).

Positions are geodetic ``cartographicDegrees`` (lon deg, lat deg, height m; WGS-84):
TEME states are turned into Earth-fixed ones with ``fusion.geodesy`` (DESIGN §2), so no
viewer-side inertial frame (Cesium's is ICRF, not TEME) is involved.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from czml3 import Document, Packet
from czml3.properties import (
    Clock,
    Color,
    Ellipse,
    Label,
    Material,
    Point,
    PolylineMaterial,
    Position,
    SolidColorMaterial,
)
from czml3.properties import (
    Path as CzmlPath,
)
from czml3.types import IntervalValue, TimeInterval, TimeIntervalCollection

from tracklayer.fusion.domain import FlightPhase, GroundEllipse, TrackReport, TrackStatus
from tracklayer.fusion.geodesy import teme_to_geodetic
from tracklayer.services.errors import UserError
from tracklayer.services.wire.recording import (
    TOPIC_FRAMES,
    TOPIC_TRACKS,
    TOPIC_TRUTH,
    RecordingError,
    RecordingReader,
)

#: RGBA per flight phase (the live map's colours).
PHASE_RGBA = {
    FlightPhase.BOOST: [255, 176, 32, 255],
    FlightPhase.MIDCOURSE: [54, 197, 255, 255],
    FlightPhase.REENTRY: [255, 77, 77, 255],
    FlightPhase.GLIDE: [208, 123, 255, 255],
    FlightPhase.UNSPECIFIED: [163, 173, 186, 255],
}
TRUTH_RGBA = [255, 255, 255, 200]
LAUNCH_RGBA = [143, 227, 136, 255]
SATELLITE_RGBA = [200, 200, 120, 255]
#: Seconds between two kept samples of a satellite's position.
SATELLITE_STEP_S = 10.0
#: Seconds between two kept samples of a truth trajectory.
TRUTH_STEP_S = 2.0


def czml_rotation(orientation_deg: float) -> float:
    """CZML ellipse ``rotation`` (rad) of a major axis ``orientation_deg`` clockwise from
    north. Cesium draws the major axis east at rotation 0 and turns it counter-clockwise
    (``EllipseGeometryLibrary``: direction = east cos r + north sin r), so r = 90 deg -
    orientation."""
    return math.radians(90.0 - orientation_deg)


def _utc(t_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t_s, tz=dt.UTC)


def _interval(t0: float, t1: float) -> TimeInterval:
    return TimeInterval(start=_utc(t0), end=_utc(max(t1, t0 + 1e-3)))


def _material(rgba: list[int]) -> Material:
    return Material(solidColor=SolidColorMaterial(color=Color(rgba=rgba)))


def _line(rgba: list[int]) -> PolylineMaterial:
    return PolylineMaterial(solidColor=SolidColorMaterial(color=Color(rgba=rgba)))


def _samples(t0: float, rows: list[tuple[float, float, float, float]]) -> list[float]:
    """``[(t s, lat, lon, h m), ...]`` (time order) -> CZML cartographicDegrees ``[dt, lon,
    lat, h, ...]``. CZML needs strictly increasing times: of rows at the same instant
    (to the millisecond: two reports of one data time, an ellipse's end at its start)
    the last one is kept."""
    out: list[float] = []
    for t, lat, lon, h in rows:
        dt = round(t - t0, 3)
        if out and dt <= out[-4]:
            del out[-4:]
        out += [dt, round(lon, 6), round(lat, 6), round(h, 1)]
    return out


@dataclass
class _Recording:
    """What the CZML needs from a recording, in time order."""

    truth: dict[str, list[tuple[float, float, float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    tracks: dict[str, list[TrackReport]] = field(default_factory=lambda: defaultdict(list))
    satellites: dict[str, list[tuple[float, float, float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    start: float = math.inf
    end: float = -math.inf

    def span(self, t: float) -> None:
        self.start, self.end = min(self.start, t), max(self.end, t)


def _read(path: Path) -> _Recording:
    """Truth (thinned), every report, satellite positions (thinned) of ``path``."""
    rec = _Recording()
    last_truth: dict[str, float] = {}
    sat_times: dict[str, list[tuple[float, np.ndarray]]] = defaultdict(list)
    try:
        with RecordingReader(path) as reader:
            for topic, _log, obj in reader.messages([TOPIC_TRUTH, TOPIC_TRACKS, TOPIC_FRAMES]):
                if topic == TOPIC_TRACKS:
                    rec.tracks[obj.track_id].append(obj)
                    rec.span(obj.time_s)
                elif topic == TOPIC_TRUTH:
                    t = obj.time_ns / 1e9
                    for s in obj.objects:
                        if t - last_truth.get(s.object_id, -math.inf) >= TRUTH_STEP_S:
                            last_truth[s.object_id] = t
                            lat, lon, h = teme_to_geodetic(s.position, t)
                            rec.truth[s.object_id].append((t, float(lat), float(lon), float(h)))
                    rec.span(t)
                else:
                    sat_times[obj.sensor_id].append((obj.time_s, obj.position))
    except RecordingError as exc:
        raise UserError(str(exc)) from None
    for sid, rows in sat_times.items():
        rows.sort(key=lambda r: r[0])
        kept, last = [], -math.inf
        for t, r in rows:
            if t - last >= SATELLITE_STEP_S:
                kept.append((t, r))
                last = t
        lat, lon, h = teme_to_geodetic(
            np.array([r for _, r in kept]), np.array([t for t, _ in kept])
        )
        rec.satellites[sid] = [
            (t, float(a), float(o), float(z))
            for (t, _), a, o, z in zip(kept, lat, lon, h, strict=True)
        ]
    for reports in rec.tracks.values():
        reports.sort(key=lambda r: (r.time_ns, r.revision))
    return rec


def _ellipse_packet(
    pid: str, name: str, items: list[tuple[float, float, GroundEllipse]], k: float, rgba: list[int]
) -> Packet:
    """One ground ellipse over time: ``items`` = (valid from s, valid to s, ellipse)."""
    t0 = items[0][0]
    coll = defaultdict(list)
    for a, b, e in items:
        iv = _interval(a, b)
        major, minor = max(e.semi_major_m, e.semi_minor_m), min(e.semi_major_m, e.semi_minor_m)
        coll["major"].append(IntervalValue(start=iv.start, end=iv.end, value=k * major))
        coll["minor"].append(IntervalValue(start=iv.start, end=iv.end, value=k * minor))
        rot = czml_rotation(e.orientation_deg)
        coll["rot"].append(IntervalValue(start=iv.start, end=iv.end, value=rot))
    rows = [(a, e.latitude_deg, e.longitude_deg, 0.0) for a, _, e in items]
    rows.append((items[-1][1], items[-1][2].latitude_deg, items[-1][2].longitude_deg, 0.0))
    fill = [*rgba[:3], 60 if k == 1 else 0]
    return Packet(
        id=pid,
        name=name,
        availability=_interval(t0, items[-1][1]),
        position=Position(epoch=_utc(t0), cartographicDegrees=_samples(t0, rows)),
        ellipse=Ellipse(
            semiMajorAxis=TimeIntervalCollection(values=coll["major"]),
            semiMinorAxis=TimeIntervalCollection(values=coll["minor"]),
            rotation=TimeIntervalCollection(values=coll["rot"]),
            material=_material(fill),
            outline=True,
            outlineColor=Color(rgba=rgba),
        ),
    )


def _track_packets(tid: str, reports: list[TrackReport], end: float) -> list[Packet]:
    """``track/``, ``impact/``, ``impact3/`` and ``launch/`` packets of one track."""
    t0, t1 = reports[0].time_s, reports[-1].time_s
    rows = [
        (r.time_s, r.latitude_deg, r.longitude_deg, r.altitude_m)
        for r in reports
        if r.status != TrackStatus.DELETED or r is reports[0]
    ]
    colours = []
    for i, r in enumerate(reports):
        nxt = reports[i + 1].time_s if i + 1 < len(reports) else t1
        iv = _interval(r.time_s, nxt)
        colours.append(
            IntervalValue(start=iv.start, end=iv.end, value=Color(rgba=PHASE_RGBA[r.phase]))
        )
    out = [
        Packet(
            id=f"track/{tid}",
            name=tid,
            description=f"track {tid}: {len(reports)} reports",
            availability=_interval(t0, t1),
            position=Position(epoch=_utc(t0), cartographicDegrees=_samples(t0, rows)),
            point=Point(pixelSize=8, color=TimeIntervalCollection(values=colours)),
            path=CzmlPath(
                width=2, leadTime=0, trailTime=300, material=_line(PHASE_RGBA[reports[-1].phase])
            ),
            label=Label(text=tid, fillColor=Color(rgba=[232, 238, 246, 255]), scale=0.5),
        )
    ]
    impacts = []
    for i, r in enumerate(reports):
        if r.impact is not None:
            nxt = reports[i + 1].time_s if i + 1 < len(reports) else max(t1, r.impact.time_ns / 1e9)
            impacts.append((r.time_s, nxt, r.impact))
    if impacts:
        for k, prefix in ((1.0, "impact"), (3.0, "impact3")):
            out.append(
                _ellipse_packet(
                    f"{prefix}/{tid}",
                    f"{tid} impact {k:g}-sigma",
                    impacts,
                    k,
                    PHASE_RGBA[FlightPhase.REENTRY],
                )
            )
    launches = [r for r in reports if r.launch is not None]
    if launches:
        first = launches[0].time_s
        out.append(
            _ellipse_packet(
                f"launch/{tid}",
                f"{tid} launch point",
                [(first, max(end, first), launches[-1].launch)],
                1.0,
                LAUNCH_RGBA,
            )
        )
    return out


def build_czml(path: Path, name: str | None = None) -> Document:
    """The recording at ``path`` as a czml3 ``Document`` (packets in the module text)."""
    rec = _read(path)
    if not rec.tracks and not rec.truth:
        raise UserError(f"{path}: no /tracks and no /truth: nothing to export")
    start, end = rec.start, rec.end
    packets = [
        Packet(
            id="document",
            name=name or path.stem,
            version="1.0",
            clock=Clock(interval=_interval(start, end), currentTime=_utc(start), multiplier=10),
        )
    ]
    for oid, rows in sorted(rec.truth.items()):
        t0 = rows[0][0]
        packets.append(
            Packet(
                id=f"truth/{oid}",
                name=f"{oid} (truth)",
                availability=_interval(t0, rows[-1][0]),
                position=Position(epoch=_utc(t0), cartographicDegrees=_samples(t0, rows)),
                point=Point(pixelSize=4, color=Color(rgba=TRUTH_RGBA)),
                path=CzmlPath(width=1, leadTime=0, trailTime=3600, material=_line(TRUTH_RGBA)),
            )
        )
    for tid, reports in sorted(rec.tracks.items()):
        packets += _track_packets(tid, reports, end)
    for sid, rows in sorted(rec.satellites.items()):
        if not rows:
            continue
        t0 = rows[0][0]
        packets.append(
            Packet(
                id=f"satellite/{sid}",
                name=sid,
                availability=_interval(t0, rows[-1][0]),
                position=Position(
                    epoch=_utc(t0),
                    cartographicDegrees=_samples(t0, rows),
                    interpolationAlgorithm="LAGRANGE",
                    interpolationDegree=5,
                ),
                point=Point(pixelSize=5, color=Color(rgba=SATELLITE_RGBA)),
                label=Label(text=sid, fillColor=Color(rgba=SATELLITE_RGBA), scale=0.4),
            )
        )
    return Document(packets=packets)


def write_czml(path: Path, out: Path, name: str | None = None) -> int:
    """Write the CZML of the recording at ``path`` to ``out``; returns the packet count.
    UserError naming the file for an unusable recording or an unwritable ``out``."""
    doc = build_czml(path, name)
    try:
        out.write_text(doc.to_json(indent=None))
    except OSError as exc:
        raise UserError(f"{out}: cannot write: {exc.strerror}") from None
    return len(doc.packets)
