"""The simulated sensor stream against physics and statistics (sensors/simulation.py).

Runs are shortened where the physics allows and shared through the session fixtures
``sim_result`` (tests/conftest.py). Statistical bounds are ~4.5 sigma wide so that a
correct model fails less than once in ~10^5 runs, and every random number is keyed by
the seed, so a given run either passes or fails for good.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats

from tracklayer.fusion.constants import R_EARTH_EQ
from tracklayer.fusion.domain import NS_PER_S, DetectionTruth, FlightPhase, SensorFrame
from tracklayer.fusion.geodesy import ecef_to_geodetic, ecef_to_teme, teme_to_ecef
from tracklayer.sensors.scenario import load_scenario, parse_scenario
from tracklayer.sensors.simulation import build_world, simulate, simulate_to_lists

SHORT_S = 400.0  # single-icbm: launch at 30 s, boost to ~212 s, then midcourse
Z = 4.5  # width of the statistical bounds in standard deviations


def _flights(name: str):
    return {f.object_id: f for f in build_world(load_scenario(name)).flights}


def _object_views(result, name: str):
    """Per (frame, object in flight): true LOS, range, phase and an independent visibility
    class: +1 clearly visible, -1 clearly hidden, 0 near a boundary (not judged)."""
    sc = load_scenario(name)
    flights = _flights(name)
    graze, max_r = sc.sensor.grazing_height_km * 1e3, sc.sensor.max_range_km * 1e3
    out = []
    for fr, dt in zip(result.frames, result.detection_truth, strict=True):
        t = np.array([fr.time_s])
        for oid, f in flights.items():
            if not f.launch_s <= fr.time_s <= f.impact_time_s:
                continue
            r = f.state_teme(t)[0][0]
            d = r - fr.position
            rng = float(np.linalg.norm(d))
            # sphere geometry; 30 km margins cover the WGS-84 flattening (21 km)
            u = -float(fr.position @ d) / rng**2
            closest = fr.position + min(max(u, 0.0), 1.0) * d
            clear = float(np.linalg.norm(closest)) - R_EARTH_EQ
            alt = float(np.linalg.norm(r)) - R_EARTH_EQ
            if rng > max_r + 50e3 or (0.0 < u < 0.98 and clear < graze - 30e3):
                cls = -1
            elif rng < max_r - 50e3 and (
                (u > 1.02 and alt > 1e3) or (0.0 < u < 0.98 and clear > graze + 30e3)
            ):
                cls = 1
            else:
                cls = 0
            phase = int(f.phase(t)[0])
            out.append((fr, dt, oid, d / rng, rng, phase, cls))
    return out


@pytest.fixture(scope="module")
def short_icbm(sim_result):
    return sim_result("single-icbm", duration_s=SHORT_S)


@pytest.fixture(scope="module")
def short_views(short_icbm):
    return _object_views(short_icbm, "single-icbm")


def test_every_look_produces_a_frame_heartbeats_included(short_icbm):
    by_sensor = defaultdict(list)
    for f in short_icbm.frames:
        by_sensor[f.sensor_id].append(f.sequence)
    # no drops or outages in single-icbm: 1 Hz looks over 400 s, sequence = look index
    assert sorted(by_sensor) == load_scenario("single-icbm").sensor_ids()
    assert all(sorted(s) == list(range(int(SHORT_S))) for s in by_sensor.values())
    # looks with nothing in them still produce (empty) frames: the heartbeats
    assert any(f.n_detections == 0 for f in short_icbm.frames)


def test_random_frame_phase_spreads_the_looks_within_the_second(short_icbm):
    offsets = {f.sensor_id: f.time_s % 1.0 for f in short_icbm.frames if f.sequence == 0}
    assert len(set(np.round(list(offsets.values()), 6))) == len(offsets)
    # a frame's time is epoch + offset + sequence * period, exactly as its sequence says
    epoch = load_scenario("single-icbm").epoch_s
    for f in short_icbm.frames[:500]:
        assert f.time_s - epoch - f.sequence == pytest.approx(offsets[f.sensor_id], abs=1e-6)


def test_hidden_objects_are_never_detected(short_views):
    hidden = [v for v in short_views if v[6] == -1]
    assert len(hidden) > 100  # the geometry does hide the missile from many satellites
    assert not any(v[2] in v[1].object_ids for v in hidden)


@pytest.mark.parametrize(
    ("phase", "pd"), [(FlightPhase.BOOST, 0.98), (FlightPhase.MIDCOURSE, 0.85)]
)
def test_detection_rate_of_visible_objects_matches_pd(short_views, phase, pd):
    seen = np.array([v[2] in v[1].object_ids for v in short_views if v[6] == 1 and v[5] == phase])
    n = seen.size
    assert n > 200  # ~3 minutes of boost seen by ~1.5 satellites clear of any boundary
    assert abs(seen.mean() - pd) < Z * math.sqrt(pd * (1 - pd) / n)


def test_angular_residuals_are_consistent_with_the_stated_sigma(short_views):
    res, sig = [], []
    for fr, dt, oid, u_true, _rng, _ph, _cls in short_views:
        for i, o in enumerate(dt.object_ids):
            if o == oid:
                m = fr.los[i]
                # tangent-plane residual of the measured LOS around the true one
                e1 = np.cross([0.0, 0.0, 1.0], u_true)
                e1 /= np.linalg.norm(e1)
                e2 = np.cross(u_true, e1)
                res.append([m @ e1, m @ e2])
                sig.append(fr.sigma[i])
    r = np.asarray(res) / np.asarray(sig)[:, None]
    n = r.size
    assert n > 2000
    # sum of squares of independent unit normals ~ chi-square(n)
    p = stats.chi2.cdf(np.sum(r**2), n)
    assert 1e-5 < p < 1 - 1e-5
    assert abs(r.mean()) < Z / math.sqrt(n)  # unbiased (no pointing bias in single-icbm)
    assert stats.kstest(r.ravel(), "norm").pvalue > 1e-5


def test_clutter_per_frame_is_poisson_with_the_scenario_rate(short_icbm):
    counts = np.array([sum(1 for o in dt.object_ids if not o) for dt in short_icbm.detection_truth])
    lam, n = 2.0, counts.size
    assert abs(counts.mean() - lam) < Z * math.sqrt(lam / n)
    # Poisson: variance = mean; the sample variance has variance (lam + 2 lam^2) / n
    assert abs(counts.var() - lam) < Z * math.sqrt((lam + 2 * lam**2) / n)


def test_frames_arrive_in_delivery_order_out_of_measurement_order(short_icbm):
    t_meas = np.array([f.time_ns for f in short_icbm.frames])
    t_del = np.array(short_icbm.delivery_ns)
    assert np.all(np.diff(t_del) >= 0)
    lat = (t_del - t_meas) / NS_PER_S
    # exponential latency, mean 0.2 s, capped at 5 s
    assert lat.min() >= 0.0 and lat.max() <= 5.0
    assert abs(lat.mean() - 0.2) < Z * 0.2 / math.sqrt(lat.size)
    # frames of one satellite overtake each other when latencies differ by > 1 s
    overtaken = 0
    last: dict[str, int] = {}
    for f in short_icbm.frames:
        overtaken += f.sequence < last.get(f.sensor_id, -1)
        last[f.sensor_id] = max(f.sequence, last.get(f.sensor_id, -1))
    assert overtaken > 0


def test_detection_truth_follows_its_frame_and_log_time_never_decreases():
    items = list(simulate(load_scenario("single-icbm"), duration_s=60.0))
    times = [t for t, _ in items]
    assert times == sorted(times)
    for k, (t, item) in enumerate(items):
        if isinstance(item, SensorFrame):
            t2, dt = items[k + 1]
            assert isinstance(dt, DetectionTruth) and t2 == t
            assert (dt.sensor_id, dt.sequence) == (item.sensor_id, item.sequence)
            assert len(dt.object_ids) == item.n_detections


SRBM = """\
name = "srbm-test"
epoch = "2026-01-01T00:00:00Z"
duration_s = 420
[constellation]
[sensor]
clutter_per_frame = 0
[[launch]]
id = "S1"
missile = "srbm"
site = { lat_deg = 35.0, lon_deg = 40.0 }
target = { lat_deg = 37.3, lon_deg = 41.7 }
time_s = 3.5
"""


@pytest.fixture(scope="module")
def srbm_run():
    sc = parse_scenario(SRBM, "srbm-test.toml")
    return sc, simulate_to_lists(sc)


def test_truth_covers_each_object_at_1_hz_from_launch_to_impact(srbm_run):
    sc, res = srbm_run
    f = build_world(sc).flights[0]
    times = np.array([tf.time_ns for tf in res.truth if tf.objects]) / NS_PER_S
    assert times[0] == pytest.approx(f.launch_s, abs=1e-6)
    assert times[-1] == pytest.approx(f.impact_time_s, abs=1e-6)
    assert np.max(np.diff(times)) <= 1.0 + 1e-9
    final = [tf for tf in res.truth if tf.objects][-1]
    last = final.objects[0]
    t_imp = np.array([final.time_ns / NS_PER_S])
    alt = ecef_to_geodetic(teme_to_ecef(last.position[None], t_imp))[2][0]
    assert abs(alt) < 5.0  # the last truth state is on the WGS-84 surface
    assert last.phase == FlightPhase.REENTRY


def test_truth_is_empty_after_impact_and_a_landed_object_is_never_detected(srbm_run):
    sc, res = srbm_run
    t_imp = build_world(sc).flights[0].impact_time_s
    assert all(tf.time_ns / NS_PER_S <= t_imp + 1e-6 for tf in res.truth if tf.objects)
    # truth still ticks every second, saying "nothing in flight"
    assert any(tf.time_ns / NS_PER_S > t_imp + 10 and not tf.objects for tf in res.truth)
    late = [dt for fr, dt in zip(res.frames, res.detection_truth, strict=True) if fr.time_s > t_imp]
    assert late and not any(o for dt in late for o in dt.object_ids)


DROPOUT_S = 240.0


@pytest.fixture(scope="module")
def dropout_runs():
    """The dropout scenario (5% drops, latency up to 5 s) with its 60 s outage moved to
    100 s so that 240 s cover it; and the same without the outage, and without any
    latency, drops or outage."""
    built_in = load_scenario("dropout")
    base = dataclasses.replace(
        built_in, outages=(dataclasses.replace(built_in.outages[0], start_s=100.0),)
    )
    clean = dataclasses.replace(
        base,
        sensor=dataclasses.replace(base.sensor, latency_mean_s=0.0, drop_probability=0.0),
        outages=(),
    )
    no_outage = dataclasses.replace(base, outages=())
    return (
        base,
        simulate_to_lists(base, duration_s=DROPOUT_S),
        simulate_to_lists(no_outage, duration_s=DROPOUT_S),
        simulate_to_lists(clean, duration_s=DROPOUT_S),
    )


def _keyed(res):
    return {
        (f.sensor_id, f.sequence): (f, dt, t)
        for f, dt, t in zip(res.frames, res.detection_truth, res.delivery_ns, strict=True)
    }


def test_latency_and_drops_leave_every_frame_noise_unchanged(dropout_runs):
    _, dropout, _, clean = dropout_runs
    a, b = _keyed(dropout), _keyed(clean)
    assert len(a) < len(b)
    for key, (f, dt, _t) in a.items():
        g, dt2, _ = b[key]
        assert f == g and dt == dt2  # same time, position, LOS, sigma and intensity


def test_drop_rate_matches_the_scenario(dropout_runs):
    base, _, no_outage, clean = dropout_runs
    n, kept = len(clean.frames), len(no_outage.frames)
    p = base.sensor.drop_probability
    assert abs((n - kept) / n - p) < Z * math.sqrt(p * (1 - p) / n)


def test_outage_silences_exactly_its_window(dropout_runs):
    base, dropout, no_outage, _ = dropout_runs
    o = base.outages[0]
    lo = base.epoch_ns + int(o.start_s * NS_PER_S)
    hi = lo + int(o.duration_s * NS_PER_S)
    a, b = _keyed(dropout), _keyed(no_outage)
    missing = set(b) - set(a)
    expected = {
        k
        for k, (f, _dt, t_del) in b.items()
        if k[0] == o.sensor_id and (lo <= f.time_ns < hi or lo <= t_del < hi)
    }
    assert missing == expected
    assert len(expected) >= o.duration_s * 0.9  # about one look per second of outage
    assert set(a) <= set(b)


def test_delivery_latency_is_capped_exponential(dropout_runs):
    base, dropout, _, _ = dropout_runs
    lat = (np.array(dropout.delivery_ns) - np.array([f.time_ns for f in dropout.frames])) / 1e9
    cap, mean = base.sensor.latency_max_s, base.sensor.latency_mean_s
    assert lat.max() <= cap + 1e-9
    expected_mean = mean * (1 - math.exp(-cap / mean))  # E[min(Exp(mean), cap)]
    assert abs(lat.mean() - expected_mean) < Z * mean / math.sqrt(lat.size)


def test_same_seed_gives_equal_streams_and_another_seed_does_not():
    sc = load_scenario("clutter")
    a = simulate_to_lists(sc, duration_s=20.0)
    b = simulate_to_lists(sc, duration_s=20.0)
    c = simulate_to_lists(sc, seed=99, duration_s=20.0)
    assert a.frames == b.frames and a.detection_truth == b.detection_truth
    assert a.frames != c.frames


def test_hot_spots_are_earth_fixed_sources_detected_whenever_in_view(sim_result):
    sc = load_scenario("clutter")
    res = sim_result("clutter", duration_s=120.0)
    hot = build_world(sc).hotspots_ecef
    sigma = sc.sensor.angular_sigma_urad * 1e-6
    in_view, hidden = [], []
    for fr in res.frames:
        h = ecef_to_teme(hot, fr.time_s)
        d = fr.position - h
        rng = np.linalg.norm(d, axis=1)
        # elevation of the satellite seen from the hot spot (geocentric up; 2 deg margins)
        elev = np.degrees(np.arcsin(np.sum(d * h, axis=1) / rng / np.linalg.norm(h, axis=1)))
        # a detection within 6 sigma of the direction to a hot spot is that hot spot
        u = -d / rng[:, None]
        hit = np.any(u @ fr.los.T > math.cos(6 * sigma), axis=1) if fr.n_detections else 0 * rng
        ok = (elev > 2.0) & (rng < sc.sensor.max_range_km * 1e3 - 50e3)
        in_view += list(hit[ok])
        hidden += list(hit[elev < -2.0])
    seen = np.array(in_view, float)
    pd, n = sc.sensor.pd_boost, seen.size
    assert n > 1000
    assert abs(seen.mean() - pd) < Z * math.sqrt(pd * (1 - pd) / n)
    assert not any(hidden)


def test_missile_is_seen_in_stereo_for_most_of_its_flight(sim_result):
    """DESIGN §7: stereo at t when, within the last 2 s, two satellites detected the object
    with lines of sight crossing at >= 10 degrees."""
    res = sim_result("single-icbm")
    det = defaultdict(list)  # second -> [(sensor, los)]
    for fr, dt in zip(res.frames, res.detection_truth, strict=True):
        for i, o in enumerate(dt.object_ids):
            if o == "M1-01":
                det[int(fr.time_s)].append((fr.sensor_id, fr.los[i]))
    f = _flights("single-icbm")["M1-01"]
    seconds = range(int(f.launch_s) + 1, int(f.impact_time_s))
    cos10 = math.cos(math.radians(10.0))
    stereo = 0
    for s in seconds:
        looks = det[s] + det[s - 1]
        stereo += any(
            a[0] != b[0] and a[1] @ b[1] <= cos10 for i, a in enumerate(looks) for b in looks[i:]
        )
    assert stereo / len(seconds) > 0.9


PAIR = """\
name = "pair"
epoch = "2026-01-01T00:00:00Z"
duration_s = 330
[constellation]
[sensor]
clutter_per_frame = 0
resolution_urad = 1000
[[launch]]
id = "P"
missile = "srbm"
site = { lat_deg = 35.0, lon_deg = 40.0 }
target = { lat_deg = 37.3, lon_deg = 41.7 }
count = 2
spacing_s = 5.0
"""


def test_objects_closer_than_the_resolution_give_one_detection_named_for_the_nearer():
    sc = parse_scenario(PAIR, "pair.toml")
    res = simulate_to_lists(sc)
    a, b = build_world(sc).flights
    res_rad = sc.sensor.resolution_urad * 1e-6
    merged = apart = both = 0
    for fr, dt in zip(res.frames, res.detection_truth, strict=True):
        t = np.array([fr.time_s])
        if not (b.launch_s <= fr.time_s <= a.impact_time_s) or not any(dt.object_ids):
            continue
        ra, rb = a.state_teme(t)[0][0] - fr.position, b.state_teme(t)[0][0] - fr.position
        sep = math.acos(min(1.0, ra @ rb / np.linalg.norm(ra) / np.linalg.norm(rb)))
        ids = [o for o in dt.object_ids if o]
        if sep < 0.9 * res_rad:  # 10% margin: the truth is sampled, not the sensor's view
            merged += 1
            nearer = "P-01" if np.linalg.norm(ra) < np.linalg.norm(rb) else "P-02"
            assert ids == [nearer]
        elif sep > 1.1 * res_rad:
            apart += 1
            both += len(ids) == 2
    assert merged > 50 and apart > 50
    assert both > 0.5 * apart  # resolved pairs are mostly both detected (Pd 0.85-0.98)


def test_pointing_bias_is_static_per_sensor():
    base = load_scenario("single-icbm")
    sensor = dataclasses.replace(base.sensor, bias_sigma_urad=300.0, clutter_per_frame=0.0)
    sc = dataclasses.replace(base, sensor=sensor)
    res = simulate_to_lists(sc, duration_s=SHORT_S)
    f = build_world(sc).flights[0]
    sigma = sc.sensor.angular_sigma_urad * 1e-6
    per_sensor = defaultdict(list)
    for fr, dt in zip(res.frames, res.detection_truth, strict=True):
        if "M1-01" in dt.object_ids:
            u = f.state_teme(np.array([fr.time_s]))[0][0] - fr.position
            u /= np.linalg.norm(u)
            m = fr.los[dt.object_ids.index("M1-01")]
            per_sensor[fr.sensor_id].append((u, m - u))
    rotations, scatter = [], []
    for pairs in per_sensor.values():
        if len(pairs) < 30:
            continue
        u = np.array([p[0] for p in pairs])
        d = np.array([p[1] for p in pairs])
        # a static small rotation b moves each LOS by b x u = -[u]x b: fit b by least squares
        a = np.zeros((len(u), 3, 3))
        a[:, 0, 1], a[:, 0, 2], a[:, 1, 2] = u[:, 2], -u[:, 1], u[:, 0]
        a -= np.swapaxes(a, 1, 2)  # a = -[u]x, so that b x u = a b
        b = np.linalg.lstsq(a.reshape(-1, 3), d.reshape(-1), rcond=None)[0]
        left = d - np.cross(b, u)
        rotations.append(np.linalg.norm(b))
        scatter.append(np.sqrt(np.mean(np.sum(left**2, axis=1)) / 2))
    assert len(rotations) >= 3
    # rotations of ~300 urad per sensor (3-D Gaussian, 300 urad per axis), far above noise
    assert np.median(rotations) > 5 * sigma
    # once each sensor's own fixed rotation is removed, what is left is the 20 urad noise
    assert np.allclose(scatter, sigma, rtol=0.3)


def test_aligned_frame_phase_makes_every_satellite_look_on_the_whole_second():
    base = load_scenario("single-icbm")
    sc = dataclasses.replace(base, sensor=dataclasses.replace(base.sensor, frame_phase="aligned"))
    res = simulate_to_lists(sc, duration_s=5.0)
    assert len(res.frames) == 28 * 5
    assert all(f.time_ns == base.epoch_ns + f.sequence * NS_PER_S for f in res.frames)


ISS = """ISS (ZARYA)
1 25544U 98067A   26001.00000000  .00016717  00000-0  10270-3 0  9005
2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579 12345
"""


def test_a_tle_constellation_produces_frames_named_after_the_tle():
    text = SRBM.replace("[constellation]", '[constellation]\nkind = "tle"\ntle_file = "iss.tle"')
    res = simulate_to_lists(parse_scenario(text, "tle.toml", tle_text=ISS), duration_s=5.0)
    assert {f.sensor_id for f in res.frames} == {"ISS (ZARYA)"}
    alt_km = [(np.linalg.norm(f.position) - R_EARTH_EQ) / 1e3 for f in res.frames]
    assert all(380 < a < 460 for a in alt_km)  # the ISS, propagated by the same SGP4
