"""compare_tracks: two runs' reports side by side find what moved, and only that."""

from __future__ import annotations

import dataclasses

import numpy as np

from tracklayer.fusion.domain import GroundEllipse, TrackReport, TrackStatus
from tracklayer.services.evaluation.compare_tracks import compare_reports


def _report(tid: str, rev: int, status=TrackStatus.CONFIRMED, dx: float = 0.0) -> TrackReport:
    return TrackReport(
        track_id=tid,
        revision=rev,
        status=status,
        time_ns=rev * 1_000_000_000,
        position=np.array([6.5e6 + dx, 1.0e5, 2.0e5]),
        velocity=np.array([100.0, 7_000.0, 0.0]),
        covariance=np.eye(6) * 25.0,
        latitude_deg=10.0,
        longitude_deg=20.0,
        altitude_m=120_000.0,
        impact=GroundEllipse(11.0, 21.0, 900 * 10**9, 500.0, 200.0, 30.0),
        sensor_ids=("sat-1", "sat-2"),
        update_count=rev + 2,
    )


def test_identical_runs_differ_in_nothing():
    a = [_report("f-1", r) for r in range(1, 5)] + [_report("f-2", 1, TrackStatus.TENTATIVE)]
    d = compare_reports(a, list(reversed(a)))
    assert d.same_decisions and d.reports_a == d.reports_b == 5
    assert d.confirmed_a == {"f-1"}
    assert d.position_m == d.velocity_mps == d.covariance_rel == d.ellipse_centre_m == 0.0


def test_moved_numbers_are_measured_and_changed_decisions_are_found():
    a = [_report("f-1", r) for r in range(1, 4)]
    b = [_report("f-1", 1), _report("f-1", 2, dx=0.004), _report("f-1", 3)]
    # one report's impact centre moved by 0.001 deg of latitude (~111 m)
    b[2].impact = dataclasses.replace(a[2].impact, latitude_deg=11.001)
    d = compare_reports(a, b)
    assert d.same_decisions  # only numbers moved
    assert abs(d.position_m - 0.004) < 1e-6 and d.position_rel < 1e-9
    assert 100.0 < d.ellipse_centre_m < 120.0
    # a status that differs, a report in one run only, a track confirmed in one only
    c = [_report("f-1", 1), _report("f-1", 2, TrackStatus.COASTING)]
    d = compare_reports(a, c)
    assert not d.same_decisions
    assert d.decisions_differ == 1 and d.only_a == 1 and d.only_b == 0
    e = [_report("f-1", r, TrackStatus.TENTATIVE) for r in range(1, 4)]
    d = compare_reports(a, e)
    assert d.confirmed_a == {"f-1"} and d.confirmed_b == frozenset() and not d.same_decisions
    # an impact ellipse present in one run only
    f = [_report("f-1", r) for r in range(1, 4)]
    f[0].impact = None
    assert compare_reports(a, f).ellipse_presence_differ == 1
