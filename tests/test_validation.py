"""Frame validation: each REJECTED rule of DESIGN §4, the error naming the field."""

import numpy as np
import pytest

from tracklayer.fusion.domain import NS_PER_S, SensorFrame
from tracklayer.fusion.validation import validate_frame

T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z
SAT_POS = [7_378_137.0, 0.0, 0.0]  # m, a 1,000 km orbit radius
SAT_VEL = [0.0, 7_350.0, 0.0]  # m/s, about circular speed there


def frame(los=None, sigma=None, **kw) -> SensorFrame:
    los = np.array([[0.0, 0.6, 0.8], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]) if los is None else los
    n = len(los)
    sigma = np.full(n, 20e-6) if sigma is None else sigma
    args = dict(sensor_id="sat-1-1", sequence=5, time_ns=T0, position=SAT_POS, velocity=SAT_VEL)
    args.update(kw)
    return SensorFrame(los=los, sigma=sigma, intensity=np.ones(n), **args)


def test_valid_frame_passes():
    validate_frame(frame(), T0 - 10 * NS_PER_S, frozenset({"sat-1-1"}))


def test_heartbeat_without_detections_passes():
    validate_frame(frame(los=np.zeros((0, 3))))


def test_empty_sensor_id_is_rejected():
    with pytest.raises(ValueError, match="^sensor_id: empty"):
        validate_frame(frame(sensor_id=""))


def test_sensor_not_on_allow_list_is_rejected():
    with pytest.raises(ValueError, match="^sensor_id: 'sat-1-1' is not on the allow-list"):
        validate_frame(frame(), None, frozenset({"sat-2-1"}))


def test_non_finite_line_of_sight_names_the_detection_index():
    los = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [np.nan, 0.0, 1.0]])
    with pytest.raises(ValueError, match=r"^detections\[2\]\.line_of_sight_eci: not finite"):
        validate_frame(frame(los=los))


def test_line_of_sight_off_unit_length_by_more_than_1e6_is_rejected():
    # 2e-6 relative: twice the DESIGN tolerance, far above float64 rounding (~1e-16).
    los = np.array([[1.0, 0.0, 0.0], [0.0, 1.0 + 2e-6, 0.0]])
    with pytest.raises(ValueError, match=r"^detections\[1\]\.line_of_sight_eci: not a unit"):
        validate_frame(frame(los=los))


def test_line_of_sight_within_1e6_of_unit_length_passes():
    # 5e-7: inside the 1e-6 tolerance (a float32 round trip gives ~6e-8).
    validate_frame(frame(los=np.array([[0.0, 0.0, 1.0 + 5e-7]])))


def test_sigma_in_microradians_sent_as_radians_is_rejected_with_a_hint():
    sigma = np.array([20e-6, 20.0, 20e-6])
    with pytest.raises(
        ValueError,
        match=r"^detections\[1\]\.angular_sigma: 20\.0 rad is outside .*microradians sent as",
    ):
        validate_frame(frame(sigma=sigma))


@pytest.mark.parametrize("bad", [0.0, -1e-5, np.nan, np.inf])
def test_sigma_zero_negative_or_non_finite_is_rejected(bad):
    sigma = np.array([20e-6, 20e-6, bad])
    with pytest.raises(ValueError, match=r"^detections\[2\]\.angular_sigma: .* outside"):
        validate_frame(frame(sigma=sigma))


def test_sigma_exactly_at_the_1e2_bound_passes():
    validate_frame(frame(sigma=np.full(3, 1e-2)))


@pytest.mark.parametrize("field", ["position", "velocity"])
def test_non_finite_sensor_state_is_rejected(field):
    bad = {"position": [np.nan, 0.0, 0.0], "velocity": [0.0, np.inf, 0.0]}[field]
    with pytest.raises(ValueError, match=f"^sensor_{field}_eci: not finite"):
        validate_frame(frame(**{field: bad}))


def test_non_integer_time_is_rejected():
    with pytest.raises(ValueError, match="^time: not finite"):
        validate_frame(frame(time_ns=float("nan")))


def test_time_more_than_600_s_after_latest_accepted_is_rejected():
    with pytest.raises(ValueError, match="^time: 600.001 s after sensor 'sat-1-1'"):
        validate_frame(frame(time_ns=T0 + 600 * NS_PER_S + 1_000_000), T0)


def test_time_exactly_600_s_after_latest_accepted_passes():
    validate_frame(frame(time_ns=T0 + 600 * NS_PER_S), T0)


def test_time_far_before_latest_is_not_a_validation_error():
    # Out-of-order delivery is normal; old frames are LATE (ordering), not REJECTED.
    validate_frame(frame(time_ns=T0 - 3600 * NS_PER_S), T0)


def test_negative_sequence_is_rejected():
    with pytest.raises(ValueError, match="^sequence:"):
        validate_frame(frame(sequence=-1))
