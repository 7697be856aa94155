"""Scoring the registration's estimates against the simulator's true biases (issue 12's
bias bound): the true-bias table of the ``biased`` scenario, and the *observable axes*,
the principal axes of each sensor's reported covariance (DESIGN §6, *Observability*)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tracklayer.fusion.domain import NS_PER_S
from tracklayer.fusion.evaluation.registration import BiasTruth, score_registration
from tracklayer.fusion.registration import SensorBias
from tracklayer.sensors.ir_sensor import rotation_matrix
from tracklayer.sensors.scenario import load_scenario
from tracklayer.sensors.simulation import run_metadata
from tracklayer.services.wire import convert

URAD = 1e-6
T0_NS = 1_767_225_600 * NS_PER_S  # 2026-01-01
UPPER = np.triu_indices(3)


def _estimate(est_urad, cov_urad2, sigma_urad=None) -> SensorBias:
    """A snapshot 100 s after T0 with a full covariance (urad^2); sigmas from its diagonal
    unless given."""
    cov = np.asarray(cov_urad2, float)
    sig = np.sqrt(np.diag(cov)) if sigma_urad is None else np.asarray(sigma_urad, float)
    return SensorBias(
        "s",
        T0_NS + 100 * NS_PER_S,
        tuple(float(v) * URAD for v in est_urad),
        tuple(float(v) * URAD for v in sig),
        5,
        tuple(float(v) * URAD**2 for v in cov[UPPER]),
    )


def _truth(true_urad) -> BiasTruth:
    return BiasTruth(np.array([0.0, 1000.0]), {"s": np.array([true_urad, true_urad], float)})


def test_biased_scenario_records_its_true_biases_and_unbiased_ones_do_not():
    sc = load_scenario("biased")
    assert sc.sensor.bias_sigma_urad == 10 and sc.sensor.bias_drift_urad_per_hour > 0
    meta = run_metadata(sc)
    table = meta["sensor_bias"]
    assert table["frame"] == "eci" and set(table["urad"]) == set(sc.sensor_ids())
    truth = BiasTruth.from_table(json.loads(json.dumps(table)))
    rms = math.sqrt(np.mean([truth.at(s, 0.0) ** 2 for s in truth.urad]))
    assert 6.0 < rms < 14.0  # 28 x 3 draws of sigma 10 urad
    assert "sensor_bias" not in run_metadata(load_scenario("single-icbm"))


def test_score_counts_observable_axes_and_coverage():
    """Without a covariance (recordings before it) the ECI axes and their sigmas."""
    truth = _truth([10.0, 0, 0])
    est = [SensorBias("s", T0_NS + 100 * NS_PER_S, (9e-6, 0.0, 8e-6), (1e-6, 1e-6, 9e-6), 5)]
    sc = score_registration(truth, est, T0_NS)
    assert sc.rms_observable_error_urad == pytest.approx(math.sqrt(0.5))  # x and y only
    assert sc.observable_share == pytest.approx(2 / 3)
    assert sc.within_3sigma == 1.0


def _tilted(angle_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A covariance badly seen (9 urad) along v = (sin a, cos a, 0), well (1 urad) across
    it, and an error of 9 urad along v plus 0.5 along each well-seen direction."""
    a = math.radians(angle_deg)
    v = np.array([math.sin(a), math.cos(a), 0.0])
    u = np.array([math.cos(a), -math.sin(a), 0.0])
    z = np.array([0.0, 0.0, 1.0])
    cov = 81.0 * np.outer(v, v) + np.outer(u, u) + np.outer(z, z)
    return cov, 9.0 * v + 0.5 * u + 0.5 * z, v


def test_a_badly_seen_direction_tilted_to_the_eci_axes_is_not_scored():
    cov, err, _ = _tilted(30.0)
    # its ECI x axis passes a sigma test (81 sin^2 30 + cos^2 30 = 21: 4.6 urad) yet holds
    # half of the badly seen direction's 9 urad error
    assert math.sqrt(cov[0, 0]) <= 5.0 and abs(err[0]) > 4.5
    true = np.array([10.0, -4.0, 2.0])
    sc = score_registration(_truth(true), [_estimate(true + err, cov)], T0_NS)
    # the principal axes: only the two well-seen directions count, 0.5 urad each
    assert sc.rms_observable_error_urad == pytest.approx(0.5)
    assert sc.observable_share == pytest.approx(2 / 3)
    assert sc.rms_observable_sigma_urad == pytest.approx(1.0)  # what it expects there
    # the ECI-axis test (covariance not given) would have scored x and z: 4.5 and 0.5
    diag = _estimate(true + err, np.diag(np.diag(cov)))
    old = score_registration(_truth(true), [diag], T0_NS)
    assert old.rms_observable_error_urad == pytest.approx(math.hypot(err[0], err[2]) / math.sqrt(2))


@pytest.mark.parametrize("rotvec", [(0.3, -0.2, 0.9), (1.2, 0.4, -0.1)])
def test_the_observable_error_does_not_depend_on_the_axes_it_is_written_in(rotvec):
    cov, err, _ = _tilted(30.0)
    true = np.array([10.0, -4.0, 2.0])
    base = score_registration(_truth(true), [_estimate(true + err, cov)], T0_NS)
    R = rotation_matrix(np.array(rotvec))
    turned = _estimate(R @ (true + err), R @ cov @ R.T)
    sc = score_registration(_truth(R @ true), [turned], T0_NS)
    assert sc.rms_observable_error_urad == pytest.approx(base.rms_observable_error_urad)
    assert sc.observable_share == pytest.approx(base.observable_share)
    assert sc.rms_true_urad == pytest.approx(base.rms_true_urad)


def test_the_covariance_goes_over_the_wire_and_old_messages_have_none():
    cov, err, _ = _tilted(20.0)
    b = _estimate(err, cov)
    back = convert.bias_from_proto(convert.bias_to_proto(b))
    assert np.allclose(back.covariance_rad2, b.covariance_rad2, rtol=1e-12, atol=0)
    old = convert.bias_to_proto(b)
    del old.covariance_urad2[:]
    assert convert.bias_from_proto(old).covariance_rad2 == ()
    old.covariance_urad2.extend([1.0, 2.0])
    with pytest.raises(ValueError, match="covariance"):
        convert.bias_from_proto(old)
