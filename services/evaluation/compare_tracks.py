"""Two runs' ``/tracks`` side by side: did only rounding move?

A change that moves floats on purpose (compiled kernels, DESIGN §9) must show that the
tracker still makes the same decisions and reports the same states to within rounding.
:func:`compare_reports` pairs the reports of two runs by (track id, revision) and
measures what differs: which reports exist in one run only, which tracks were ever
confirmed, statuses, phases, times, sensors and update counts (decisions, compared
exactly), and the largest differences of the numbers (positions m, velocities m/s,
covariances relative to their largest element, geodetic fields, the impact and launch
ellipses' centres m and axes m, their times s).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from tracklayer.fusion.domain import GroundEllipse, TrackReport, TrackStatus

_EARTH_M_PER_DEG = 6_371_000.0 * math.pi / 180.0  # m per degree of arc (centre offsets)


@dataclass
class TrackDiff:
    """What differs between run A's and run B's reports (see :func:`compare_reports`)."""

    reports_a: int = 0
    reports_b: int = 0
    only_a: int = 0  # (track id, revision) pairs in A only
    only_b: int = 0
    confirmed_a: frozenset[str] = frozenset()  # track ids ever CONFIRMED
    confirmed_b: frozenset[str] = frozenset()
    decisions_differ: int = 0  # paired reports whose status/phase/time/sensors/count differ
    ellipse_presence_differ: int = 0  # paired reports with an impact/launch in one run only
    position_m: float = 0.0  # largest |dr| over paired reports
    position_rel: float = 0.0  # largest |dr| / |r|
    velocity_mps: float = 0.0
    covariance_rel: float = 0.0  # largest |dC| / max |C| per report
    altitude_m: float = 0.0
    ground_m: float = 0.0  # largest offset of the report's lat/lon, m along the surface
    ellipse_centre_m: float = 0.0  # impact and launch centres
    ellipse_axis_m: float = 0.0  # their semi-axes
    ellipse_time_s: float = 0.0  # their times
    examples: list[str] = field(default_factory=list)  # a few differing keys, for the eye

    @property
    def same_decisions(self) -> bool:
        """Same reports, same confirmed tracks, same statuses, phases, times, sensors."""
        return (
            self.only_a == 0
            and self.only_b == 0
            and self.confirmed_a == self.confirmed_b
            and self.decisions_differ == 0
            and self.ellipse_presence_differ == 0
        )

    def summary(self) -> str:
        """One paragraph for a terminal or a results table."""
        return (
            f"reports {self.reports_a} / {self.reports_b} (only A {self.only_a}, only B "
            f"{self.only_b}); confirmed {len(self.confirmed_a)} / {len(self.confirmed_b)} "
            f"(same ids: {self.confirmed_a == self.confirmed_b}); decisions differ in "
            f"{self.decisions_differ}, ellipse presence in {self.ellipse_presence_differ}; "
            f"max |dr| {self.position_m:.3g} m (rel {self.position_rel:.2g}), |dv| "
            f"{self.velocity_mps:.3g} m/s, cov rel {self.covariance_rel:.2g}, alt "
            f"{self.altitude_m:.3g} m, ground {self.ground_m:.3g} m, ellipse centre "
            f"{self.ellipse_centre_m:.3g} m, axes {self.ellipse_axis_m:.3g} m, time "
            f"{self.ellipse_time_s:.3g} s"
        )


def _ground_m(lat_a: float, lon_a: float, lat_b: float, lon_b: float) -> float:
    """Surface distance (m, small-angle) between two geodetic points in degrees."""
    dlon = (lon_a - lon_b + 180.0) % 360.0 - 180.0
    return _EARTH_M_PER_DEG * math.hypot(lat_a - lat_b, dlon * math.cos(math.radians(lat_a)))


def _decision(r: TrackReport) -> tuple:
    return (r.status, r.phase, r.time_ns, tuple(r.sensor_ids), r.update_count)


def _ellipses(d: TrackDiff, a: GroundEllipse | None, b: GroundEllipse | None) -> bool:
    """Fold one pair of ellipses into ``d``; False if only one run has one."""
    if a is None or b is None:
        return a is None and b is None
    centre = _ground_m(a.latitude_deg, a.longitude_deg, b.latitude_deg, b.longitude_deg)
    d.ellipse_centre_m = max(d.ellipse_centre_m, centre)
    d.ellipse_axis_m = max(
        d.ellipse_axis_m, abs(a.semi_major_m - b.semi_major_m), abs(a.semi_minor_m - b.semi_minor_m)
    )
    d.ellipse_time_s = max(d.ellipse_time_s, abs(a.time_ns - b.time_ns) / 1e9)
    return True


def compare_reports(a: Iterable[TrackReport], b: Iterable[TrackReport]) -> TrackDiff:
    """Compare two runs' reports (each an iterable of :class:`TrackReport`, any order),
    paired by (track id, revision)."""
    ra = {(r.track_id, r.revision): r for r in a}
    rb = {(r.track_id, r.revision): r for r in b}
    d = TrackDiff(reports_a=len(ra), reports_b=len(rb))
    d.only_a = len(ra.keys() - rb.keys())
    d.only_b = len(rb.keys() - ra.keys())
    confirmed = TrackStatus.CONFIRMED
    d.confirmed_a = frozenset(r.track_id for r in ra.values() if r.status == confirmed)
    d.confirmed_b = frozenset(r.track_id for r in rb.values() if r.status == confirmed)
    for key in sorted(ra.keys() & rb.keys()):
        x, y = ra[key], rb[key]
        if _decision(x) != _decision(y):
            d.decisions_differ += 1
            if len(d.examples) < 5:
                d.examples.append(f"{key}: {_decision(x)} vs {_decision(y)}")
        dr = float(np.linalg.norm(x.position - y.position))
        d.position_m = max(d.position_m, dr)
        d.position_rel = max(d.position_rel, dr / max(float(np.linalg.norm(x.position)), 1.0))
        d.velocity_mps = max(d.velocity_mps, float(np.linalg.norm(x.velocity - y.velocity)))
        scale = max(float(np.abs(x.covariance).max()), 1e-300)
        d.covariance_rel = max(
            d.covariance_rel, float(np.abs(x.covariance - y.covariance).max()) / scale
        )
        d.altitude_m = max(d.altitude_m, abs(x.altitude_m - y.altitude_m))
        d.ground_m = max(
            d.ground_m, _ground_m(x.latitude_deg, x.longitude_deg, y.latitude_deg, y.longitude_deg)
        )
        both = _ellipses(d, x.impact, y.impact) and _ellipses(d, x.launch, y.launch)
        if not both:
            d.ellipse_presence_differ += 1
    return d
