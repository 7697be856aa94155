"""Domain <-> protobuf conversion (services/convert.py): exact round trips of every message.

Every round trip goes domain -> v1 message -> wire bytes -> v1 message -> domain, so
it also covers serialisation. Doubles must survive bit for bit (no tolerance: the
wire format stores IEEE-754 doubles verbatim) and times to the nanosecond.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from tracklayer.fusion.domain import (
    DetectionTruth,
    FlightPhase,
    FrameStatus,
    GroundEllipse,
    SensorFrame,
    SensorPosition,
    TrackReport,
    TrackStatus,
    TruthFrame,
    TruthState,
)
from tracklayer.services.wire import convert, detection_bytes
from tracklayer.v1 import common_pb2, sensor_pb2, track_pb2, truth_pb2

settings.register_profile("convert", deadline=None, max_examples=150)
settings.load_profile("convert")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# --- strategies -----------------------------------------------------------------------

doubles = st.floats(allow_nan=False)  # +-inf, subnormals and -0.0 included
ids = st.text(max_size=12)
time_ns = st.integers(convert.TIMESTAMP_MIN_NS, convert.TIMESTAMP_MAX_NS)
# times a simulation or live service produces: 1900..2200, int64-representable
realistic_ns = st.integers(-(2**61), 2**62)
uint64 = st.integers(0, 2**64 - 1)


def vec3():
    return st.lists(doubles, min_size=3, max_size=3).map(np.array)


@st.composite
def sensor_frames(draw, max_detections: int = 12) -> SensorFrame:
    n = draw(st.integers(0, max_detections))
    flat = draw(st.lists(doubles, min_size=5 * n, max_size=5 * n))
    cols = np.array(flat, dtype=float).reshape(n, 5)
    return SensorFrame(
        sensor_id=draw(ids),
        sequence=draw(uint64),
        time_ns=draw(time_ns),
        position=draw(vec3()),
        velocity=draw(vec3()),
        los=cols[:, :3],
        sigma=cols[:, 3],
        intensity=cols[:, 4],
    )


@st.composite
def ground_ellipses(draw) -> GroundEllipse:
    return GroundEllipse(
        latitude_deg=draw(doubles),
        longitude_deg=draw(doubles),
        time_ns=draw(time_ns),
        semi_major_m=draw(doubles),
        semi_minor_m=draw(doubles),
        orientation_deg=draw(doubles),
    )


@st.composite
def track_reports(draw) -> TrackReport:
    return TrackReport(
        track_id=draw(ids),
        revision=draw(uint64),
        status=draw(st.sampled_from(TrackStatus)),
        time_ns=draw(time_ns),
        position=draw(vec3()),
        velocity=draw(vec3()),
        covariance=np.array(draw(st.lists(doubles, min_size=36, max_size=36))),
        latitude_deg=draw(doubles),
        longitude_deg=draw(doubles),
        altitude_m=draw(doubles),
        phase=draw(st.sampled_from(FlightPhase)),
        impact=draw(st.none() | ground_ellipses()),
        launch=draw(st.none() | ground_ellipses()),
        sensor_ids=tuple(draw(st.lists(ids, max_size=5))),
        update_count=draw(st.integers(0, 2**32 - 1)),
        emitted_at_ns=draw(st.none() | time_ns),
    )


@st.composite
def truth_frames(draw) -> TruthFrame:
    objects = draw(
        st.lists(
            st.builds(
                TruthState,
                object_id=ids,
                position=vec3(),
                velocity=vec3(),
                phase=st.sampled_from(FlightPhase),
            ),
            max_size=8,
        )
    )
    return TruthFrame(time_ns=draw(time_ns), objects=objects)


detection_truths = st.builds(
    DetectionTruth,
    sensor_id=ids,
    sequence=uint64,
    object_ids=st.lists(st.sampled_from(["", "M1-01", "M1-02", "M3-24"]) | ids, max_size=10).map(
        tuple
    ),
)


def _wire(msg):
    """Serialise and parse again, as the network or a recording would."""
    return type(msg).FromString(msg.SerializeToString())


def _bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).view(np.uint64)


# --- timestamps -----------------------------------------------------------------------


@given(time_ns)
def test_timestamp_round_trips_to_the_nanosecond(ns):
    assert convert.timestamp_to_ns(_wire(convert.ns_to_timestamp(ns))) == ns


@given(time_ns)
def test_timestamp_matches_protobufs_own_nanosecond_conversion(ns):
    reference = Timestamp()
    reference.FromNanoseconds(ns)  # protobuf's implementation, independent of ours
    ts = convert.ns_to_timestamp(ns)
    assert (ts.seconds, ts.nanos) == (reference.seconds, reference.nanos)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=st.none(),
    ),
    st.integers(0, 999_999_999),
)
def test_timestamp_agrees_with_the_calendar(dt, nanos):
    # Independent reference: the proleptic Gregorian calendar of `datetime` and the
    # RFC 3339 text form of the Timestamp (seconds of the day + 9 fraction digits).
    whole = dt.replace(microsecond=0, tzinfo=UTC)
    delta = whole - EPOCH
    expected_ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + nanos
    text = (
        f"{whole.year:04d}-{whole.month:02d}-{whole.day:02d}T"
        f"{whole.hour:02d}:{whole.minute:02d}:{whole.second:02d}.{nanos:09d}Z"
    )
    parsed = Timestamp()
    parsed.FromJsonString(text)
    assert convert.timestamp_to_ns(parsed) == expected_ns
    assert convert.ns_to_timestamp(expected_ns) == parsed


@pytest.mark.parametrize(
    ("ns", "seconds", "nanos", "text"),
    [
        (0, 0, 0, "1970-01-01T00:00:00Z"),
        (-1, -1, 999_999_999, "1969-12-31T23:59:59.999999999Z"),
        (-1_000_000_000, -1, 0, "1969-12-31T23:59:59Z"),
        (-1_500_000_001, -2, 499_999_999, "1969-12-31T23:59:58.499999999Z"),
        (1_767_225_600_000_000_001, 1_767_225_600, 1, "2026-01-01T00:00:00.000000001Z"),
    ],
)
def test_pre_1970_timestamps_use_negative_seconds_and_positive_nanos(ns, seconds, nanos, text):
    ts = convert.ns_to_timestamp(ns)
    assert (ts.seconds, ts.nanos) == (seconds, nanos)
    assert ts.ToJsonString() == text


@pytest.mark.parametrize("ns", [convert.TIMESTAMP_MIN_NS - 1, convert.TIMESTAMP_MAX_NS + 1])
def test_timestamp_outside_years_1_to_9999_is_an_error_naming_the_field(ns):
    with pytest.raises(ValueError, match="emitted_at"):
        convert.ns_to_timestamp(ns, "emitted_at")


def test_timestamp_refuses_float_nanoseconds_instead_of_rounding():
    with pytest.raises(TypeError, match="time"):
        convert.ns_to_timestamp(1.5e18)


def test_malformed_timestamp_nanos_is_an_error():
    with pytest.raises(ValueError, match="nanos"):
        convert.timestamp_to_ns(Timestamp(seconds=0, nanos=-1))


def test_numpy_integer_times_are_accepted_exactly():
    assert convert.timestamp_to_ns(convert.ns_to_timestamp(np.int64(-(2**62) - 7))) == -(2**62) - 7


# --- sensor frames and detections -----------------------------------------------------


@given(sensor_frames())
def test_sensor_frame_round_trips(frame):
    back = convert.frame_from_proto(_wire(convert.frame_to_proto(frame)))
    assert back == frame
    assert back.n_detections == frame.n_detections


@given(sensor_frames(max_detections=4))
def test_sensor_frame_doubles_survive_bit_for_bit(frame):
    back = convert.frame_from_proto(_wire(convert.frame_to_proto(frame)))
    for a, b in [
        (frame.position, back.position),
        (frame.velocity, back.velocity),
        (frame.los, back.los),
        (frame.sigma, back.sigma),
        (frame.intensity, back.intensity),
    ]:
        assert np.array_equal(_bits(a), _bits(b))  # -0.0 keeps its sign


_FIELDS = ("position", "velocity", "los", "sigma", "intensity")


def _same_bits(a: SensorFrame, b: SensorFrame) -> bool:
    return a == b and all(
        np.array_equal(_bits(getattr(a, f)), _bits(getattr(b, f))) for f in _FIELDS
    )


@given(sensor_frames(), st.booleans())
def test_a_frame_read_from_its_bytes_is_the_frame_read_from_the_message(frame, nonzero):
    """The engine and the tracking process hand ``frame_from_proto`` the frame's wire
    bytes too (the journal payload): its detections are then read from them at once
    when every field is set (the usual layout), else from the message. Both ways must
    give the same floats bit for bit, zeros (left off the wire), -0.0 and inf included."""
    if nonzero:  # the usual layout: no field left off the wire
        for a in (frame.los, frame.sigma, frame.intensity):
            a[a == 0] = 1.0
    msg = _wire(convert.frame_to_proto(frame))
    raw = msg.SerializeToString()
    back = convert.frame_from_proto(msg, raw)
    assert _same_bits(back, convert.frame_from_proto(msg))
    assert _same_bits(back, frame)
    if nonzero:
        assert (
            detection_bytes.detection_columns(raw, len(msg.detections)) is not None
        )  # the fast way


def test_a_frame_whose_bytes_are_not_the_usual_layout_is_read_from_the_message():
    """Unknown fields after the detections, a detection field left at zero, or bytes
    that hold fewer detections than the message: the bytes are not used."""
    frame = SensorFrame("s", 3, 5, [1, 2, 3], [4, 5, 6], np.eye(3) + 0.5, [1e-5] * 3, [2.0] * 3)
    msg = convert.frame_to_proto(frame)
    raw = msg.SerializeToString()
    assert detection_bytes.detection_columns(raw, 3) is not None
    extra = raw + b"\x38\x01"  # field 7 (unknown to v1): a newer sender's
    assert detection_bytes.detection_columns(extra, 3) is None
    assert _same_bits(convert.frame_from_proto(type(msg).FromString(extra), extra), frame)
    assert detection_bytes.detection_columns(raw, 4) is None
    msg.detections[1].intensity = 0.0
    zero = msg.SerializeToString()
    assert detection_bytes.detection_columns(zero, 3) is None
    assert convert.frame_from_proto(msg, zero).intensity.tolist() == [2.0, 0.0, 2.0]
    msg.detections[2].ClearField("line_of_sight_eci")
    with pytest.raises(ValueError, match=r"detections\[2\]\.line_of_sight_eci"):
        convert.frame_from_proto(msg, msg.SerializeToString())


def _det_bytes(los, sigma, intensity) -> bytes:
    """One detection as ``SensorFrame`` writes it with every field set (field 6)."""
    x, y, z = los
    inner = b"\x09" + struct.pack("<d", x) + b"\x11" + struct.pack("<d", y)
    inner += b"\x19" + struct.pack("<d", z)
    body = b"\x0a\x1b" + inner + b"\x11" + struct.pack("<d", sigma)
    body += b"\x19" + struct.pack("<d", intensity)
    return b"\x32\x2f" + body


def test_detections_are_read_from_the_bytes_whatever_precedes_them():
    """Fields 1-5 in the writer's order (the quick look), in another order, a long id
    or a zero sequence (left off the wire): the same floats as from the message. Bytes
    that put the detections anywhere but last are read from the message instead."""
    los = np.array([[0.6, 0.8, 0.5], [0.1, 0.6, -0.8]])  # no zero: every field on the wire
    frame = SensorFrame("s" * 200, 0, -5, [1, 2, 3], [4, 5, 6], los, [1e-5, 2e-5], [2.0, 3.0])
    msg = convert.frame_to_proto(frame)
    dets = b"".join(
        _det_bytes(u, s, i) for u, s, i in zip(los.tolist(), [1e-5, 2e-5], [2.0, 3.0], strict=True)
    )
    short = SensorFrame("t", 7, 9, [1, 2, 3], [4, 5, 6], los, [1e-5, 2e-5], [2.0, 3.0])
    short_raw = convert.frame_to_proto(short).SerializeToString()
    assert detection_bytes._usual_head(short_raw) == len(short_raw) - len(dets)
    time_field = msg.time.SerializeToString()
    moved = b"\x22\x1b" + msg.sensor_position_eci.SerializeToString()  # vectors, time, id:
    moved += b"\x2a\x1b" + msg.sensor_velocity_eci.SerializeToString()  # another order
    moved += b"\x1a" + bytes([len(time_field)]) + time_field + b"\x0a\xc8\x01" + b"s" * 200
    for raw in (short_raw, msg.SerializeToString(), moved + dets):
        parsed = type(msg).FromString(raw)
        cols = detection_bytes.detection_columns(raw, 2)
        assert cols is not None
        assert [c.tolist() for c in cols] == [los.tolist(), [1e-5, 2e-5], [2.0, 3.0]]
        assert all(c.flags.c_contiguous and c.flags.writeable for c in cols)
        assert _same_bits(convert.frame_from_proto(parsed, raw), convert.frame_from_proto(parsed))
    first = dets + msg.SerializeToString()[: -len(dets)]  # detections first: not last
    assert detection_bytes.detection_columns(first, 2) is None
    assert _same_bits(convert.frame_from_proto(type(msg).FromString(first), first), frame)


def test_nan_survives_the_wire_bit_for_bit():
    # Conversion must not judge values (validation rejects NaN later, naming the field).
    payload = np.array([np.nan, -np.nan, -0.0, 5e-324])
    frame = SensorFrame("s", 1, 0, payload[:3], payload[1:], [payload[:3]], [np.nan], [-0.0])
    back = convert.frame_from_proto(_wire(convert.frame_to_proto(frame)))
    assert np.array_equal(_bits(back.position), _bits(payload[:3]))
    assert np.array_equal(_bits(back.velocity), _bits(payload[1:]))
    assert np.array_equal(_bits(back.los), _bits([payload[:3]]))


def test_empty_frame_is_a_heartbeat_with_zero_detections():
    frame = SensorFrame("sat-1-1", 7, 1_767_225_600_000_000_000, [7e6, 0, 0], [0, 7.5e3, 0])
    msg = convert.frame_to_proto(frame)
    assert len(msg.detections) == 0
    back = convert.frame_from_proto(_wire(msg))
    assert back.los.shape == (0, 3) and back.sigma.shape == (0,) and back == frame


def test_detections_keep_their_order_and_fields():
    los = np.eye(3)
    frame = SensorFrame("s", 1, 0, [1, 2, 3], [4, 5, 6], los, [1e-5, 2e-5, 3e-5], [0.1, 0.2, 0.3])
    msg = convert.frame_to_proto(frame)
    for i, d in enumerate(msg.detections):
        u = d.line_of_sight_eci
        assert [u.x, u.y, u.z] == los[i].tolist()
        assert d.angular_sigma == [1e-5, 2e-5, 3e-5][i]
        assert d.intensity == [0.1, 0.2, 0.3][i]


def test_frame_without_time_is_an_error_naming_time():
    msg = convert.frame_to_proto(SensorFrame("s", 1, 0, [1, 2, 3], [4, 5, 6]))
    msg.ClearField("time")
    with pytest.raises(ValueError, match="^time: not set"):
        convert.frame_from_proto(msg)


def test_detection_without_line_of_sight_is_an_error_naming_the_detection():
    msg = convert.frame_to_proto(
        SensorFrame("s", 1, 0, [1, 2, 3], [4, 5, 6], np.eye(3), [1e-5] * 3, [1] * 3)
    )
    msg.detections[1].ClearField("line_of_sight_eci")
    with pytest.raises(ValueError, match=r"detections\[1\]\.line_of_sight_eci"):
        convert.frame_from_proto(msg)


def test_negative_sequence_is_an_error_naming_sequence():
    with pytest.raises(ValueError, match="sequence"):
        convert.frame_to_proto(SensorFrame("s", -1, 0, [1, 2, 3], [4, 5, 6]))


# --- track reports --------------------------------------------------------------------


@given(track_reports())
def test_track_report_round_trips(report):
    back = convert.report_from_proto(_wire(convert.report_to_proto(report)))
    assert back == report
    assert np.array_equal(_bits(back.covariance), _bits(report.covariance))


@given(track_reports())
def test_absent_impact_launch_and_emitted_at_leave_the_fields_unset(report):
    msg = _wire(convert.report_to_proto(report))
    assert msg.HasField("impact") == (report.impact is not None)
    assert msg.HasField("launch") == (report.launch is not None)
    assert msg.HasField("emitted_at") == (report.emitted_at_ns is not None)


def _report(**overrides) -> TrackReport:
    fields = dict(
        track_id="fusion-1",
        revision=1,
        status=TrackStatus.CONFIRMED,
        time_ns=1_767_225_660_123_456_789,
        position=[6.9e6, 1.0e5, 2.0e5],
        velocity=[100.0, 7000.0, 500.0],
        covariance=np.eye(6),
        latitude_deg=1.0,
        longitude_deg=2.0,
        altitude_m=5.0e5,
    )
    fields.update(overrides)
    return TrackReport(**fields)


def test_report_with_impact_and_launch_carries_both_ellipses_with_their_times():
    impact = GroundEllipse(47.6, -122.3, 1_767_227_500_000_000_001, 3000.0, 800.0, 35.0)
    launch = GroundEllipse(40.0, 100.0, -5, 1500.0, 400.0, 179.5)
    msg = convert.report_to_proto(_report(impact=impact, launch=launch, emitted_at_ns=-3))
    assert isinstance(msg.impact, track_pb2.ImpactPrediction)
    assert (msg.impact.latitude_deg, msg.impact.semi_major_m) == (47.6, 3000.0)
    assert convert.timestamp_to_ns(msg.impact.time) == 1_767_227_500_000_000_001
    assert (msg.launch.time.seconds, msg.launch.time.nanos) == (-1, 999_999_995)
    assert convert.timestamp_to_ns(msg.emitted_at) == -3
    back = convert.report_from_proto(_wire(msg))
    assert back.impact == impact and back.launch == launch and back.emitted_at_ns == -3


def test_covariance_goes_out_row_major():
    # Independent construction: element (i, j) = 10 i + j, asymmetric so that a
    # transposed (column-major) layout would be caught. Row-major means wire index 6 i + j.
    cov = np.array([[10.0 * i + j for j in range(6)] for i in range(6)])
    for layout in (cov, np.asfortranarray(cov)):  # memory order must not matter
        msg = convert.report_to_proto(_report(covariance=layout))
        assert len(msg.covariance) == 36
        for i in range(6):
            for j in range(6):
                assert msg.covariance[6 * i + j] == 10 * i + j


def test_covariance_comes_in_row_major():
    msg = convert.report_to_proto(_report())
    msg.ClearField("covariance")
    msg.covariance.extend(float(k) for k in range(36))
    cov = convert.report_from_proto(msg).covariance
    assert cov.shape == (6, 6)
    # position-velocity cross term (x, vx) is row 0, column 3 -> wire index 3
    assert cov[0, 3] == 3.0 and cov[3, 0] == 18.0
    assert all(cov[i, j] == 6 * i + j for i in range(6) for j in range(6))


@pytest.mark.parametrize("n", [0, 21, 35, 37])
def test_covariance_of_wrong_length_is_an_error_naming_covariance(n):
    msg = convert.report_to_proto(_report())
    del msg.covariance[:]
    msg.covariance.extend([1.0] * n)
    with pytest.raises(ValueError, match="^covariance: expected 36"):
        convert.report_from_proto(msg)


def test_impact_without_time_is_an_error_naming_impact_time():
    msg = convert.report_to_proto(_report(impact=GroundEllipse(1, 2, 3, 4, 5, 6)))
    msg.impact.ClearField("time")
    with pytest.raises(ValueError, match=r"^impact\.time: not set"):
        convert.report_from_proto(msg)


def test_unknown_wire_enum_value_is_an_error_naming_the_field():
    msg = convert.report_to_proto(_report())
    msg.status = 9  # proto3 enums are open: a newer peer could send this
    with pytest.raises(ValueError, match="^status: unknown TrackStatus value 9"):
        convert.report_from_proto(msg)


def test_update_count_beyond_uint32_is_an_error_naming_the_field():
    with pytest.raises(ValueError, match="update_count"):
        convert.report_to_proto(_report(update_count=2**32))


# --- truth ----------------------------------------------------------------------------


@given(truth_frames())
def test_truth_frame_round_trips(truth):
    back = convert.truth_from_proto(_wire(convert.truth_to_proto(truth)))
    assert back.time_ns == truth.time_ns
    assert back.objects == truth.objects


def test_truth_frame_with_no_objects_round_trips():
    back = convert.truth_from_proto(_wire(convert.truth_to_proto(TruthFrame(-7))))
    assert back == TruthFrame(-7, [])


def test_truth_state_without_position_is_an_error_naming_the_object():
    msg = convert.truth_to_proto(
        TruthFrame(0, [TruthState("M1-01", [1, 2, 3], [4, 5, 6], FlightPhase.BOOST)] * 2)
    )
    msg.objects[1].ClearField("position_eci")
    with pytest.raises(ValueError, match=r"objects\[1\]\.position_eci: not set"):
        convert.truth_from_proto(msg)


@given(detection_truths)
def test_detection_truth_round_trips(dt):
    assert convert.detection_truth_from_proto(_wire(convert.detection_truth_to_proto(dt))) == dt


def test_detection_truth_keeps_clutter_as_empty_string_in_place():
    dt = DetectionTruth("sat-1-2", 40, ("", "M1-01", ""))
    msg = _wire(convert.detection_truth_to_proto(dt))
    assert list(msg.object_ids) == ["", "M1-01", ""]


# --- enums ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain_enum", "wire_enum", "prefix", "to_proto", "from_proto"),
    [
        (
            FlightPhase,
            common_pb2.FlightPhase,
            "FLIGHT_PHASE_",
            convert.flight_phase_to_proto,
            convert.flight_phase_from_proto,
        ),
        (
            TrackStatus,
            track_pb2.TrackStatus,
            "TRACK_STATUS_",
            convert.track_status_to_proto,
            convert.track_status_from_proto,
        ),
        (
            FrameStatus,
            sensor_pb2.FrameStatus,
            "FRAME_STATUS_",
            convert.frame_status_to_proto,
            convert.frame_status_from_proto,
        ),
    ],
)
def test_enum_maps_pair_members_by_name_and_cover_every_wire_value(
    domain_enum, wire_enum, prefix, to_proto, from_proto
):
    # Reference: the wire enum's own names in the descriptor (independent of the maps).
    for member in domain_enum:
        wire_value = to_proto(member)
        assert wire_enum.Name(wire_value) == prefix + member.name
        assert from_proto(wire_value) is member
    assert sorted(wire_enum.values()) == sorted(to_proto(m) for m in domain_enum)


def test_truth_messages_are_the_v1_types():
    assert isinstance(convert.truth_to_proto(TruthFrame(0)), truth_pb2.TruthFrame)
    assert isinstance(
        convert.detection_truth_to_proto(DetectionTruth("s", 1)), truth_pb2.DetectionTruth
    )


def test_sensor_position_round_trips_and_needs_its_time():
    p = SensorPosition("sat-1-2", -1_500_000_001, 51.5, -0.125, 812_345.5)
    msg = convert.sensor_position_to_proto(p)
    assert (msg.time.seconds, msg.time.nanos) == (-2, 499_999_999)
    assert convert.sensor_position_from_proto(msg) == p
    msg.ClearField("time")
    with pytest.raises(ValueError, match=r"^sensor_positions\.time: not set"):
        convert.sensor_position_from_proto(msg)
