"""services/wire/report_bytes.py: a report's bytes written directly are the protobuf
message's bytes (``report_to_proto(r).SerializeToString()``), for every kind of value
proto3 treats specially, and bad values raise what the message path raises."""

import math

import numpy as np
import pytest

from tracklayer.fusion.domain import FlightPhase, GroundEllipse, TrackReport, TrackStatus
from tracklayer.services.wire import convert
from tracklayer.services.wire.report_bytes import report_bytes
from tracklayer.v1 import track_pb2

_T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z, ns
# Values proto3 writes or leaves out by their bits: zero is left out, -0.0 and NaN are not.
_SPECIAL = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, -1.5e308, 1.0]


def _message_bytes(report: TrackReport) -> bytes:
    return convert.report_to_proto(report).SerializeToString()


def _ellipse(rng: np.random.Generator, special: bool) -> GroundEllipse:
    pick = (lambda: float(rng.choice(_SPECIAL))) if special else (lambda: rng.normal() * 100)
    return GroundEllipse(
        latitude_deg=pick(),
        longitude_deg=pick(),
        time_ns=int(_T0 + rng.integers(-(10**18), 10**12)) if special else _T0,
        semi_major_m=pick(),
        semi_minor_m=pick(),
        orientation_deg=pick(),
    )


def _report(rng: np.random.Generator, special: bool) -> TrackReport:
    """A report with ordinary values, or (``special``) with zeros, signed zeros, NaNs,
    infinities, times before 1970 and on whole seconds, extreme integers, long ids."""

    def vec() -> np.ndarray:
        if special:
            return rng.choice(np.array(_SPECIAL), 3)
        return rng.normal(size=3) * 7e6

    cov = rng.normal(size=(6, 6))
    if special:
        cov[rng.random((6, 6)) < 0.3] = 0.0
        cov[0, 1] = rng.choice(_SPECIAL)
    whole_s = special and rng.random() < 0.5
    return TrackReport(
        track_id=("trk-" * int(rng.integers(1, 60)) if special else "fusion-") + "7",
        revision=[0, 1, 127, 128, 2**63, 2**64 - 1][rng.integers(6)] if special else 3,
        status=TrackStatus(int(rng.integers(0, len(TrackStatus)))),
        time_ns=(int(rng.integers(-(10**18), 10**18)) // 10**9 * 10**9)
        if whole_s
        else int(_T0 + rng.integers(0, 10**12)),
        position=vec(),
        velocity=vec(),
        covariance=cov,
        latitude_deg=float(rng.choice(_SPECIAL)) if special else 12.5,
        longitude_deg=float(rng.choice(_SPECIAL)) if special else -100.25,
        altitude_m=float(rng.choice(_SPECIAL)) if special else 350e3,
        phase=FlightPhase(int(rng.integers(0, len(FlightPhase)))),
        impact=_ellipse(rng, special) if rng.random() < 0.7 else None,
        launch=_ellipse(rng, special) if rng.random() < 0.7 else None,
        sensor_ids=tuple(
            f"sat-{i}-é" * int(rng.integers(1, 40)) for i in range(rng.integers(0, 4))
        ),
        update_count=[0, 1, 300, 2**32 - 1][rng.integers(4)],
        emitted_at_ns=int(_T0 + rng.integers(0, 10**9)) if rng.random() < 0.5 else None,
    )


@pytest.mark.parametrize("special", [False, True])
def test_bytes_are_the_messages_bytes(special: bool) -> None:
    rng = np.random.default_rng(26 + special)
    for _ in range(400):
        report = _report(rng, special)
        assert report_bytes(report) == _message_bytes(report)


def test_an_ellipse_reported_again_and_its_twin_give_the_same_bytes() -> None:
    """The encoding kept with a track's ellipse object is the one its fields give."""
    rng = np.random.default_rng(5)
    report = _report(rng, False)
    report.impact = GroundEllipse(10.0, 20.0, _T0, 300.0, 200.0, 45.0)
    first = report_bytes(report)
    assert report_bytes(report) == first == _message_bytes(report)
    report.impact = GroundEllipse(10.0, 20.0, _T0, 300.0, 200.0, 46.0)
    assert report_bytes(report) == _message_bytes(report) != first


def test_the_bytes_decode_to_the_report() -> None:
    rng = np.random.default_rng(11)
    report = _report(rng, False)
    back = convert.report_from_proto(track_pb2.TrackReport.FromString(report_bytes(report)))
    assert back.track_id == report.track_id and back.revision == report.revision
    assert back.time_ns == report.time_ns and back.sensor_ids == report.sensor_ids
    assert np.array_equal(back.covariance, report.covariance)
    assert np.array_equal(back.position, report.position)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("revision", -1, ValueError),
        ("revision", 2**64, ValueError),
        ("revision", True, TypeError),
        ("update_count", 2**32, ValueError),
        ("time_ns", 10**21, ValueError),
        ("time_ns", 1.5, TypeError),
        ("emitted_at_ns", -(10**21), ValueError),
        ("track_id", 7, TypeError),
        ("sensor_ids", ("a", 3), TypeError),
    ],
)
def test_bad_values_raise_what_the_message_path_raises(field, value, error) -> None:
    report = _report(np.random.default_rng(1), False)
    setattr(report, field, value)
    with pytest.raises(error) as ours:
        report_bytes(report)
    with pytest.raises(error) as theirs:
        _message_bytes(report)
    assert str(ours.value) == str(theirs.value)
