"""fusion/evaluation/ against hand calculations and synthetic runs with known errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from synthetic_tracking import (
    SyntheticMissile,
    report,
    stereo_detections,
    track_reports,
    truth_frames,
)

from tracklayer.fusion.constants import R_EARTH_MEAN
from tracklayer.fusion.domain import FlightPhase, GroundEllipse, TrackStatus
from tracklayer.fusion.evaluation import (
    GOSPA_C_M,
    MetricsAccumulator,
    evaluate,
    gospa,
    hermite_interpolate,
    inside_ellipse,
    line_angle_deg,
    nees,
)

C = GOSPA_C_M

# ---------------------------------------------------------------- GOSPA by hand


def test_gospa_of_identical_sets_is_zero():
    x = np.array([[0.0, 0, 0], [1e6, 0, 0]])
    g = gospa(x, x.copy())
    assert g.distance_m == 0.0
    assert g.n_missed == g.n_false == 0


def test_gospa_one_missed_object_costs_c_squared_over_alpha():
    g = gospa(np.zeros((1, 3)), np.zeros((0, 3)))
    assert g.n_missed == 1 and g.n_false == 0
    assert g.missed_m2 == pytest.approx(C**2 / 2)
    assert g.distance_m == pytest.approx(C / math.sqrt(2))


def test_gospa_localisation_is_the_distance_of_the_pair():
    g = gospa(np.zeros((1, 3)), np.array([[300.0, 400.0, 0.0]]))
    assert g.localisation_m2 == pytest.approx(500.0**2)
    assert g.distance_m == pytest.approx(500.0)


def test_gospa_pair_beyond_c_counts_as_missed_plus_false():
    g = gospa(np.zeros((1, 3)), np.array([[6000.0, 0, 0]]))
    assert (g.n_missed, g.n_false) == (1, 1)
    assert g.distance_m == pytest.approx(C)  # sqrt(c^2/2 + c^2/2)


def test_gospa_picks_the_optimal_assignment():
    # greedy nearest-first would pair truth 0 with track 0 (900 m) but the optimum crosses
    x = np.array([[0.0, 0, 0], [1000.0, 0, 0]])
    y = np.array([[900.0, 0, 0], [100.0, 0, 0]])
    g = gospa(x, y)
    assert sorted(g.pairs) == [(0, 1), (1, 0)]
    assert g.distance_m == pytest.approx(math.sqrt(100.0**2 + 100.0**2))


def test_gospa_mixed_case_adds_localisation_and_missed():
    x = np.array([[0.0, 0, 0], [50_000.0, 0, 0]])
    g = gospa(x, np.array([[0.0, 300.0, 0]]))
    assert g.distance_m == pytest.approx(math.sqrt(300.0**2 + C**2 / 2))


# ---------------------------------------------------------------- small pieces


def test_hermite_interpolation_is_exact_for_a_cubic():
    rng = np.random.default_rng(3)
    coef = rng.normal(size=(4, 3)) * [[1e6], [7e3], [5.0], [0.01]]
    t = np.array([0.0, 0.7, 2.0, 2.5, 4.0, 6.1])

    def p(x):
        return coef[0] + np.outer(x, coef[1]) + np.outer(x**2, coef[2]) + np.outer(x**3, coef[3])

    def v(x):
        return coef[1] + np.outer(2 * x, coef[2]) + np.outer(3 * x**2, coef[3])

    q = rng.uniform(0.0, 6.1, 50)
    pos, vel = hermite_interpolate(t, p(t), v(t), q)
    # a cubic Hermite segment reproduces any cubic exactly: only float rounding remains
    # (positions ~1e6 m -> ~1e-9 relative)
    np.testing.assert_allclose(pos, p(q), rtol=0, atol=1e-6)
    np.testing.assert_allclose(vel, v(q), rtol=0, atol=1e-6)


def test_hermite_interpolation_is_nan_outside_the_samples():
    t = np.array([0.0, 1.0])
    pos, _ = hermite_interpolate(t, np.zeros((2, 3)), np.zeros((2, 3)), np.array([-0.1, 1.1]))
    assert np.all(np.isnan(pos))


def test_line_angle_treats_opposite_directions_as_one_line():
    a = np.array([1.0, 0, 0])
    b = np.array([-math.cos(math.radians(5)), math.sin(math.radians(5)), 0])
    assert line_angle_deg(a, b) == pytest.approx(5.0)


def test_nees_of_gaussian_errors_averages_the_state_dimension():
    rng = np.random.default_rng(11)
    a = rng.normal(size=(6, 6))
    P = a @ a.T + 6 * np.eye(6)
    n = 20_000
    e = rng.multivariate_normal(np.zeros(6), P, size=n)
    v = nees(e, np.broadcast_to(P, (n, 6, 6)))
    # chi-square with 6 dof: mean 6, variance 12 -> std of the mean sqrt(12/n) = 0.024
    assert v.mean() == pytest.approx(6.0, abs=0.1)


def test_inside_ellipse_on_constructed_ellipses():
    th = 30.0  # major axis 30 deg clockwise from north
    major = np.array([math.sin(math.radians(th)), math.cos(math.radians(th))])  # (E, N)
    minor = np.array([math.cos(math.radians(th)), -math.sin(math.radians(th))])
    pts = np.array(
        [major * 299.0, major * 301.0, minor * 149.0, minor * 151.0, -major * 299.0]
    )  # 3-sigma: 300 m along the major axis, 150 m along the minor
    got = inside_ellipse(pts[:, 0], pts[:, 1], 100.0, 50.0, th)
    assert got.tolist() == [True, False, True, False, True]


# ---------------------------------------------------------------- whole evaluations

M1 = SyntheticMissile("M1-01")
M2 = SyntheticMissile("M2-01", lat_deg=35.0, lon_deg=20.0, launch_s=100)


def test_perfect_tracks_score_zero_error_and_full_completeness():
    reports = track_reports(M1, "fusion-1", range(0, M1.flight_s + 1))
    reports += track_reports(M2, "fusion-2", range(0, M2.flight_s + 1))
    dets = stereo_detections(M1, range(0, 1201), 30.0) + stereo_detections(M2, range(0, 1201), 30)
    res = evaluate(reports, truth_frames([M1, M2]), dets)
    t = res.truth
    assert res.has_truth
    assert t["n_objects"] == 2
    assert t["gospa_max_m"] == pytest.approx(0.0, abs=1e-6)
    assert t["position_rmse_m"]["all"] == pytest.approx(0.0, abs=1e-6)
    assert t["completeness"] == 1.0
    assert t["false_track_share"] == 0.0
    assert t["id_switches"] == 0
    assert t["detection_delay_max_s"] == 0.0


def test_constant_errors_give_that_rmse_in_every_phase():
    dp = np.array([30.0, 0.0, 0.0])
    dv = np.array([0.0, 0.3, 0.4])
    reports = track_reports(M1, "fusion-1", range(0, M1.flight_s + 1), dpos=dp, dvel=dv)
    res = evaluate(reports, truth_frames([M1]))
    t = res.truth
    for phase in ("boost", "midcourse", "reentry", "all"):
        assert t["position_rmse_m"][phase] == pytest.approx(30.0, abs=1e-6)
        assert t["velocity_rmse_mps"][phase] == pytest.approx(0.5, abs=1e-6)
    # one object, one track 30 m off: GOSPA = 30 m at every evaluation time
    assert t["gospa_mean_m"] == pytest.approx(30.0, abs=1e-6)


def test_phase_windows_follow_burnout_and_descent_through_100_km():
    reports = track_reports(M1, "fusion-1", range(0, M1.flight_s + 1))
    t = evaluate(reports, truth_frames([M1])).truth
    # samples at whole seconds: boost 0..59 (60), midcourse 120..floor(reentry), reentry rest
    re = M1.reentry_s
    assert t["rmse_samples"]["boost"] == 60
    assert t["rmse_samples"]["midcourse"] == math.floor(re) - 120 + 1
    assert t["rmse_samples"]["reentry"] == M1.flight_s - math.floor(re)
    obj = t["per_object"][0]
    # altitude crossing interpolated linearly between 1 Hz samples of a parabola: < 0.1 s off
    assert obj["reentry_s"] == pytest.approx(re, abs=0.1)
    assert obj["burnout_s"] == 60.0


# Low apogee: 80 km at mid-flight (150 s of 300 s), so the top is a whole-second truth sample.
LOW = SyntheticMissile("L1-01", flight_s=300, apogee_m=80_000.0)


def test_reentry_of_an_object_below_100_km_starts_at_apogee():
    reports = track_reports(LOW, "fusion-1", range(0, LOW.flight_s + 1))
    t = evaluate(reports, truth_frames([LOW])).truth
    # boost 0..59, midcourse 120..149 (burnout + 60 s until apogee), reentry 150..300
    assert t["rmse_samples"]["boost"] == 60
    assert t["rmse_samples"]["midcourse"] == 30
    assert t["rmse_samples"]["reentry"] == 151
    # the apogee is the highest 1 Hz sample exactly (altitude falls ~3.6 m either side)
    assert t["per_object"][0]["reentry_s"] == 150.0


def test_a_truth_ending_while_climbing_has_no_reentry():
    end_ns = LOW.time_ns(130)  # still climbing at 130 s (apogee at 150 s), below 100 km
    frames = [f for f in truth_frames([LOW]) if f.time_ns <= end_ns]
    reports = track_reports(LOW, "fusion-1", range(0, 131))
    t = evaluate(reports, frames).truth
    assert t["rmse_samples"]["reentry"] == 0
    assert t["rmse_samples"]["boost"] == 60
    assert t["rmse_samples"]["midcourse"] == 11  # 120..130: burnout + 60 s to the end
    assert math.isinf(t["per_object"][0]["reentry_s"])


def test_a_truth_ending_above_100_km_has_no_reentry():
    end_ns = M1.time_ns(300)  # ICBM-like arc, ~750 km up and climbing at 300 s
    frames = [f for f in truth_frames([M1]) if f.time_ns <= end_ns]
    reports = track_reports(M1, "fusion-1", range(0, 301))
    t = evaluate(reports, frames).truth
    assert t["rmse_samples"]["reentry"] == 0
    assert t["rmse_samples"]["midcourse"] == 181  # 120..300
    assert math.isinf(t["per_object"][0]["reentry_s"])


def test_stereo_needs_lines_of_sight_crossing_at_10_degrees():
    reports = track_reports(M1, "fusion-1", range(0, 300))
    wide = evaluate(reports, truth_frames([M1]), stereo_detections(M1, range(0, 300), 11.0))
    narrow = evaluate(reports, truth_frames([M1]), stereo_detections(M1, range(0, 300), 9.0))
    assert wide.truth["per_object"][0]["first_stereo_s"] == 0.0
    assert math.isnan(narrow.truth["per_object"][0]["first_stereo_s"])
    assert narrow.truth["completeness_samples"] == 0


def test_stereo_needs_two_different_satellites():
    dets = [p for p in stereo_detections(M1, range(0, 300), 30.0) if p[0].sensor_id == "sat-1-1"]
    res = evaluate(track_reports(M1, "fusion-1", range(0, 300)), truth_frames([M1]), dets)
    assert math.isnan(res.truth["per_object"][0]["first_stereo_s"])


def test_completeness_counts_after_the_first_20_s_of_stereo():
    # stereo from 100 s to 400 s (detections 100..398, each valid for 2 s); track from 130 s
    dets = stereo_detections(M1, range(100, 399), 30.0)
    reports = track_reports(M1, "fusion-1", range(130, 1201))
    t = evaluate(reports, truth_frames([M1]), dets).truth
    assert t["completeness_samples"] == 281  # 120..400
    assert t["completeness"] == pytest.approx(271 / 281)  # 130..400 assigned
    assert t["detection_delay_max_s"] == 30.0


def test_a_handover_between_track_ids_is_one_id_switch():
    reports = track_reports(M1, "fusion-1", range(0, 500), end_deleted=True)
    reports += track_reports(M1, "fusion-2", range(500, 1201))
    t = evaluate(reports, truth_frames([M1])).truth
    assert t["id_switches"] == 1
    assert t["per_object"][0]["track_ids"] == ["fusion-1", "fusion-2"]


def test_a_gap_without_another_track_is_no_id_switch():
    reports = track_reports(M1, "fusion-1", range(0, 500))
    reports += track_reports(M1, "fusion-1", range(600, 1201), first_revision=501)
    assert evaluate(reports, truth_frames([M1])).truth["id_switches"] == 0


# two objects 222 m apart on parallel paths (0.002 deg of latitude), one track each
CSO_A = SyntheticMissile("A-01", flight_s=300)
CSO_B = SyntheticMissile("B-01", lat_deg=30.002, flight_s=300)


def _near_pair(taus: range, lean: callable) -> list:
    """Both tracks at every ``tau``, each moved ``lean(tau)`` of the way towards the other
    object (0: on its own object, 1: on the other)."""
    out = []
    for i, tau in enumerate(taus):
        ra = CSO_A.states(np.array([float(tau)]))[0][0]
        rb = CSO_B.states(np.array([float(tau)]))[0][0]
        f = lean(tau)
        out.append(report(CSO_A, "fusion-1", i + 1, tau, dpos=f * (rb - ra)))
        out.append(report(CSO_B, "fusion-2", i + 1, tau, dpos=f * (ra - rb)))
    return out


def test_tracks_wavering_between_two_near_objects_flip_gospa_but_keep_clear_mot_pairs():
    # every odd second each track leans 60 % of the way to the other object (133 m from
    # its own, 89 m from the other): the fresh assignment of each second takes the
    # crossed pairing (2 x 89^2 < 2 x 133^2) and back, a switch for each object each time;
    # CLEAR-MOT keeps each object's track (within 1 km) and counts none
    t = evaluate(
        _near_pair(range(0, 301), lambda tau: 0.6 * (tau % 2)), truth_frames([CSO_A, CSO_B])
    ).truth
    flips = 2 * 300  # parity changes between the 301 seconds 0..300, for each object
    assert t["id_switches"] == flips
    assert t["id_switches_clear_mot"] == 0
    minutes = t["object_time_s"] / 60.0
    assert t["id_switches_clear_mot_per_10_object_minutes"] == 0.0
    assert t["id_switches_per_10_object_minutes"] == pytest.approx(flips / minutes * 10.0)


def test_a_swap_inside_the_clear_mot_distance_is_not_seen_by_it():
    # from 150 s on the two tracks follow each other's object for good: one switch each
    # by the fresh assignment; the objects are 222 m apart, inside the 1 km a pair is
    # kept for, so the CLEAR-MOT count does not see it (its limit, by definition)
    t = evaluate(
        _near_pair(range(0, 301), lambda tau: float(tau >= 150)), truth_frames([CSO_A, CSO_B])
    ).truth
    assert t["id_switches"] == 2
    assert t["id_switches_clear_mot"] == 0  # 222 m apart: a swap within 1 km is kept


def test_a_track_that_leaves_its_object_loses_it_in_the_clear_mot_count():
    # fusion-1 follows M1 until 500 s, then wanders 2 km off; fusion-2 follows M1 from
    # 400 s: GOSPA gives M1 to fusion-2 at once (400 s), CLEAR-MOT only when fusion-1 is
    # more than 1 km away (500 s): one switch in each count
    off = np.array([2000.0, 0.0, 0.0])
    reports = track_reports(M1, "fusion-1", range(0, 500), dpos=np.array([50.0, 0.0, 0.0]))
    reports += track_reports(M1, "fusion-1", range(500, 1201), dpos=off, first_revision=501)
    reports += track_reports(M1, "fusion-2", range(400, 1201))
    t = evaluate(reports, truth_frames([M1])).truth
    assert t["id_switches"] == 1
    assert t["id_switches_clear_mot"] == 1
    # fusion-1 is still reported at the switch, 2 km off: a slide (DESIGN §6)
    assert t["id_switches_clear_mot_slides"] == 1


def test_a_clear_mot_switch_whose_old_track_ended_is_no_slide():
    # fusion-1 follows M1 until 499 s and is never reported again; fusion-2 follows M1
    # from 400 s and takes it once fusion-1 is no longer selected: a CLEAR-MOT switch,
    # not a slide (the old track was lost, not drifted onto something else)
    reports = track_reports(M1, "fusion-1", range(0, 500))
    reports += track_reports(M1, "fusion-2", range(400, 1201), dpos=np.array([300.0, 0, 0]))
    t = evaluate(reports, truth_frames([M1])).truth
    assert t["id_switches_clear_mot"] == 1
    assert t["id_switches_clear_mot_slides"] == 0


def test_losing_the_object_while_in_stereo_is_a_track_break():
    # reports stop at 499 s (selected until 501 s); stereo continues: one break at 502 s
    reports = track_reports(M1, "fusion-1", range(0, 500))
    reports += track_reports(M1, "fusion-1", range(600, 1201), first_revision=501)
    in_stereo = stereo_detections(M1, range(0, 1201), 30.0)
    t = evaluate(reports, truth_frames([M1]), in_stereo).truth
    assert t["track_breaks_in_stereo"] == 1
    # the same gap without stereo coverage is no break
    dark = stereo_detections(M1, range(0, 450), 30.0)
    assert evaluate(reports, truth_frames([M1]), dark).truth["track_breaks_in_stereo"] == 0


def test_a_track_far_from_every_object_is_counted_false():
    reports = track_reports(M1, "fusion-1", range(0, 1201))
    # a ghost 50 km off the missile, confirmed for 15 reports then deleted
    ghost = track_reports(M1, "fusion-9", range(200, 215), dpos=np.array([0, 5e4, 0]))
    ghost.append(report(M1, "fusion-9", 16, 215, status=TrackStatus.DELETED))
    t = evaluate(reports + ghost, truth_frames([M1])).truth
    assert t["false_track_time_s"] == 15.0  # evaluation times 200..214
    assert t["confirmed_track_time_s"] == 1201 + 15
    assert t["false_track_share"] == pytest.approx(15 / 1216)
    assert t["false_run_max_s"] == 15.0
    assert t["tracks_unassigned_over_10s"] == 1


def test_a_silent_track_is_dropped_two_seconds_after_its_last_report():
    reports = track_reports(M1, "fusion-1", range(0, 100))  # last report at 99 s, no deletion
    t = evaluate(reports, truth_frames([M1])).truth
    # selected at 0..101 (reports up to 2 s old); nothing else is false
    assert t["confirmed_track_time_s"] == 102.0
    assert t["false_track_time_s"] == 0.0


def test_nees_over_midcourse_of_consistent_gaussian_errors_is_about_6():
    rng = np.random.default_rng(5)
    P = np.diag([80.0**2, 120.0**2, 60.0**2, 0.5**2, 0.8**2, 0.3**2])
    P[0, 3] = P[3, 0] = 0.5 * 80.0 * 0.5
    e = rng.multivariate_normal(np.zeros(6), P, size=M1.flight_s + 1)
    reports = [
        report(M1, "fusion-1", tau + 1, tau, dpos=e[tau, :3], dvel=e[tau, 3:], cov=P)
        for tau in range(M1.flight_s + 1)
    ]
    t = evaluate(reports, truth_frames([M1])).truth
    n = t["nees_samples"]
    assert n == t["rmse_samples"]["midcourse"]
    # mean of n chi-square(6) draws: std sqrt(12 / n) ~ 0.11 for n ~ 1050; 4 sigma
    assert t["nees_midcourse_mean"] == pytest.approx(6.0, abs=4 * math.sqrt(12 / n))
    assert t["nees_midcourse_share_above"] < 0.01  # P(chi2_6 > 22.5) = 0.001


def _impact_at(dnorth_m: float, deast_m: float, smaj: float, smin: float, orient: float):
    lat, lon = M1.impact_latlon
    lat2 = lat + math.degrees(dnorth_m / R_EARTH_MEAN)
    lon2 = lon + math.degrees(deast_m / (R_EARTH_MEAN * math.cos(math.radians(lat))))
    return GroundEllipse(lat2, lon2, 0, smaj, smin, orient)


def test_impact_error_and_ellipse_containment():
    # 2 km north of the truth: inside a north-pointing 1000 x 500 m ellipse (3-sigma 3 km)
    north = _impact_at(2000.0, 0.0, 1000.0, 500.0, 0.0)
    # 2 km east: outside it (3-sigma 1.5 km across)
    east = _impact_at(0.0, 2000.0, 1000.0, 500.0, 0.0)
    reports = [
        report(M1, "fusion-1", tau + 1, tau, impact=north if tau < 800 else east)
        for tau in range(0, M1.flight_s + 1)
    ]
    t = evaluate(reports, truth_frames([M1])).truth
    # counted from burnout + 300 s = 360 s: 360..799 inside (440), 800..1200 outside (401)
    assert t["impact_samples"] == 841
    assert t["impact_inside_3sigma_share"] == pytest.approx(440 / 841)
    # offsets built on the mean sphere, measured on it: equal to rounding
    assert t["impact_error_median_m"] == pytest.approx(2000.0, rel=1e-6)


def test_launch_error_against_the_start_of_truth():
    lat, lon = M1.lat_deg, M1.lon_deg
    est = GroundEllipse(lat + math.degrees(5000.0 / R_EARTH_MEAN), lon, 0, 2000.0, 1000.0, 0.0)
    reports = [report(M1, "fusion-1", k + 1, k, launch=est) for k in range(0, 600)]
    t = evaluate(reports, truth_frames([M1])).truth
    assert t["launch_error_median_m"] == pytest.approx(5000.0, rel=1e-6)
    assert t["launch_inside_3sigma_share"] == 1.0  # 5 km < 3 x 2 km along the major axis


def test_track_statistics_without_truth():
    acc = MetricsAccumulator()
    for r in track_reports(M1, "fusion-1", range(0, 101)):
        acc.add_report(r)
    acc.add_report(report(M1, "fusion-2", 1, 50, status=TrackStatus.TENTATIVE, sensors=("a",)))
    res = acc.finish()
    d = res.to_dict()
    assert d["has_truth"] is False and "truth" not in d
    s = d["tracks"]
    assert (s["n_tracks"], s["n_confirmed"], s["n_reports"]) == (2, 1, 102)
    assert s["confirmed_lifetime_median_s"] == 100.0
    assert s["update_rate_median_hz"] == pytest.approx(1.0)  # one update per 1 s report
    assert s["sensors_per_update_mean"] == pytest.approx((101 * 2 + 1) / 102)
    assert s["reports_by_status"]["tentative"] == 1
    json.dumps(d)  # JSON-ready


def test_accumulator_pairs_frames_with_the_detection_truth_that_follows():
    acc = MetricsAccumulator()
    for r in track_reports(M1, "fusion-1", range(0, 100)):
        acc.add_report(r)
    for tf in truth_frames([M1]):
        acc.add_truth(tf)
    for frame, dt in stereo_detections(M1, range(10, 100), 30.0):
        acc.add_frame(frame)
        acc.add_detection_truth(dt)
    assert acc.finish().truth["per_object"][0]["first_stereo_s"] == 10.0


def test_to_dict_is_json_ready_with_truth():
    reports = track_reports(M1, "fusion-1", range(0, 1201))
    d = evaluate(reports, truth_frames([M1]), stereo_detections(M1, range(0, 50), 30)).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert '"position_rmse_m"' in text and d["has_truth"] is True


def test_reported_phase_is_compared_with_the_truth_phase():
    reports = track_reports(M1, "fusion-1", range(0, M1.flight_s + 1))
    assert evaluate(reports, truth_frames([M1])).truth["phase_agreement_share"] == 1.0
    for r in reports:
        r.phase = FlightPhase.MIDCOURSE
    t = evaluate(reports, truth_frames([M1])).truth
    # truth is MIDCOURSE from 60 s (boost_s) until the descent through 100 km
    n_mid = math.floor(M1.reentry_s) - 60 + 1
    assert t["phase_agreement_share"] == pytest.approx(n_mid / (M1.flight_s + 1))
