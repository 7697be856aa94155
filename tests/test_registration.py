"""Sensor registration (issue 12), fast parts: the simulator's drifting bias, the
estimator on synthetic geometry (a known bias is found, bad input never applied), the
configuration switch and the CLI flag."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import NS_PER_S, SensorFrame
from tracklayer.fusion.registration import Evidence, Registration
from tracklayer.sensors.ir_sensor import rotation_matrix
from tracklayer.sensors.pointing_bias import DRIFT_STEP_S, PointingBias
from tracklayer.sensors.scenario import load_scenario, parse_scenario

URAD = 1e-6
T0_NS = 1_767_225_600 * NS_PER_S  # 2026-01-01


# ------------------------------------------------------------------ simulation


def test_drift_is_a_random_walk_of_the_stated_size():
    n_sensors, drift = 400, 8e-6
    pb = PointingBias(5, list(range(1000, 1000 + n_sensors)), 0.0, drift, 3600.0)
    final = np.array([pb.angles(k, 3600.0) for k in range(n_sensors)])
    # after one hour each axis has spread by the stated sigma (400 x 3 samples: +-7 %)
    assert np.std(final) == pytest.approx(drift, rel=0.1)
    assert np.allclose(pb.angles(0, 0.0), 0.0)
    half = pb.angles(0, DRIFT_STEP_S / 2)  # linear between the grid points
    assert np.allclose(half, 0.5 * (pb.angles(0, 0.0) + pb.angles(0, DRIFT_STEP_S)))


def test_constant_bias_keeps_its_rotation_and_no_bias_means_none():
    pb = PointingBias(3, [11, 12], 10e-6, 0.0, 600.0)
    assert pb.active and not pb.drifting
    assert np.allclose(pb.rotation(1, 400.0), rotation_matrix(pb.theta0[1]))
    off = PointingBias(3, [11, 12], 0.0, 0.0, 600.0)
    assert not off.active and off.rotation(0, 10.0) is None


def test_drift_key_is_validated():
    text = load_scenario("biased").source
    base = (
        'name = "x"\nepoch = "2026-01-01T00:00:00Z"\nduration_s = 100\n[constellation]\n'
        "[sensor]\nbias_drift_urad_per_hour = -1\n"
        '[[launch]]\nid = "A"\nmissile = "srbm"\nsite = { lat_deg = 0, lon_deg = 0 }\n'
        "target = { lat_deg = 0, lon_deg = 3 }\n"
    )
    with pytest.raises(ValueError, match="bias_drift_urad_per_hour"):
        parse_scenario(base, "x.toml")
    assert text


# ------------------------------------------------------------------ estimator


def _sensors(n: int = 5, seed: int = 1) -> list[np.ndarray]:
    """Sensor positions (m, ECI) at 7,400 km radius around the +x axis."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = np.array([1.0, 0.0, 0.0]) + rng.normal(0, 0.35, 3)
        out.append(7.4e6 * d / np.linalg.norm(d))
    return out


def _feed(
    reg: Registration,
    bias: dict[int, np.ndarray],
    seconds: int,
    noise: float,
    turn_s: int | None = None,
    start: int = 0,
):
    """Earth-fixed targets seen by every sensor once a second with the given true biases
    (rad) and noise (rad); detections handed over as the tracker would. ``turn_s``: the
    sensors look in turn instead, sensor k during [k turn_s, (k + 1) turn_s - 15) s."""
    rng = np.random.default_rng(7)
    sensors = _sensors()
    targets = [6.4e6 * np.array([1.0, 0.1 * k - 0.2, 0.15 * (k % 3) - 0.15]) for k in range(5)]
    targets = [t / np.linalg.norm(t) * 6.4e6 for t in targets]
    for s in range(start, seconds):
        a = 7.292115146706979e-5 * s  # the Earth turns: hot spots move with it
        rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0],
                        [0, 0, 1]])  # fmt: skip
        now = [rot @ t for t in targets]
        states = np.zeros((len(now), 9))
        states[:, :3] = now
        for k, pos in enumerate(sensors):
            t_ns = T0_NS + s * NS_PER_S + k * 1000
            if turn_s is not None and not (k * turn_s <= s < (k + 1) * turn_s - 15):
                empty = SensorFrame(f"sat-{k}", s, t_ns, pos, np.zeros(3))  # sees nothing
                reg.correct(empty)
                reg.observe(empty, [], [], np.zeros(0, int), np.zeros((0, 9)))
                continue
            los = []
            for tgt in now:
                u = (tgt - pos) / np.linalg.norm(tgt - pos)
                m = rotation_matrix(bias.get(k, np.zeros(3))) @ u + rng.normal(0, noise, 3)
                los.append(m / np.linalg.norm(m))
            frame = SensorFrame(f"sat-{k}", s, t_ns, pos, np.zeros(3), np.array(los),
                                np.full(len(los), max(noise, 1e-6)), np.ones(len(los)))  # fmt: skip
            reg.correct(frame)
            reg.observe(frame, list(range(len(now))), [Evidence.EARTH_FIXED] * len(now),
                        np.arange(len(now)), states)  # fmt: skip
    return reg


def test_relative_bias_of_a_sensor_is_found_within_its_sigma():
    bias = {2: np.array([8e-6, -6e-6, 5e-6])}
    reg = _feed(Registration(FusionConfig()), bias, 120, 5e-6)
    est = {b.sensor_id: b for b in reg.estimates()}
    assert reg.windows_total > 0 and reg.rejected_total == 0
    relative = np.array(est["sat-2"].angles_rad) - np.mean(
        [est[f"sat-{k}"].angles_rad for k in (0, 1, 3, 4)], axis=0
    )
    sigma = np.array(est["sat-2"].sigma_rad)
    err = relative - bias[2]
    # the axes across the lines of sight are observed: error small and inside 3 sigma
    assert np.all(sigma < 5e-6)
    assert np.all(np.abs(err) <= np.maximum(3 * sigma, 1.5e-6))


def test_a_hot_spot_seen_by_one_satellite_at_a_time_registers_the_satellites():
    """Five satellites look at five hot spots in turn, each alone for 55 s, then 15 s of
    nothing: every window holds one satellite's looks, which alone say nothing of its
    bias (the site's position absorbs them). Each site keeps its windows' normal
    equations, so its position is eliminated once over all of them and the later
    satellites' windows, tied to the earlier ones through the site, find the biased
    sensor's bias relative to the others within 3 sigma (``registration_site_memory_s``
    > 0). Solved per window (the default), nothing is learnt: no window had two
    satellites."""
    bias = {2: np.array([8e-6, -6e-6, 5e-6])}
    cfg = FusionConfig(registration_site_memory_s=3600.0)
    reg = _feed(Registration(cfg), bias, 5 * 70 + 20, 5e-6, turn_s=70)
    est = {b.sensor_id: b for b in reg.estimates()}
    assert reg.windows_total >= 16 and reg.rejected_total == 0 and reg.outliers_total == 0  # 20
    others = np.mean([est[f"sat-{k}"].angles_rad for k in (0, 1, 3, 4)], axis=0)
    err = np.array(est["sat-2"].angles_rad) - others - bias[2]
    sigma = np.array(est["sat-2"].sigma_rad)
    assert np.all(sigma < 5e-6)  # measured 1.2, 1.9, 1.9 urad; error 0.4, 1.7, 0.1
    assert np.all(np.abs(err) <= np.maximum(3 * sigma, 1.5e-6))
    off = _feed(Registration(FusionConfig()), bias, 5 * 70 + 20, 5e-6, turn_s=70)
    assert off.windows_total == 0  # each window alone (the default, 0): nothing learnt


def _feed_moving(reg: Registration, bias: dict[int, np.ndarray], seconds: int, noise: float):
    """A ballistic target in orbit (RK4 in 0.25 s steps: the truth) seen once a second by
    every sensor with the given true biases (rad) and noise (rad); the tracker's state
    handed over is the true one (its error is eliminated in a window anyway)."""
    from tracklayer.fusion.dynamics import propagate

    rng = np.random.default_rng(11)
    sensors = _sensors()
    x0 = np.zeros(9)
    x0[:3] = [6.9e6, 0.0, 0.0]
    x0[3:6] = [0.0, 6.0e3, 3.5e3]  # m/s: a sub-orbital arc above the sensors' theatre
    x = x0
    for s in range(seconds):
        if s:
            x = propagate(x[None], 1.0, max_step=0.25, with_stm=False)[0][0]
        for k, pos in enumerate(sensors):
            t_ns = T0_NS + s * NS_PER_S + k * 1000
            u = (x[:3] - pos) / np.linalg.norm(x[:3] - pos)
            m = rotation_matrix(bias.get(k, np.zeros(3))) @ u + rng.normal(0, noise, 3)
            los = (m / np.linalg.norm(m))[None]
            frame = SensorFrame(f"sat-{k}", s, t_ns, pos, np.zeros(3), los,
                                np.array([max(noise, 1e-7)]), np.ones(1))  # fmt: skip
            reg.correct(frame)
            reg.observe(frame, [1], [Evidence.MOVING], np.zeros(1, int), x[None])
    return reg


def test_a_moving_targets_windows_find_the_relative_bias_within_sigma():
    """A ballistic target seen by five sensors, one of them biased, with 0.1 urad noise:
    its 20 s windows (position and velocity errors eliminated, the target propagated by
    the window's third-order expansion: 4 cm off at 20 s, 3.6 m at 60 s, which taught false
    biases of up to 18 urad here when tried with 60 s windows) are all accepted, and every
    sensor's estimate is within 3 sigma of its true bias (measured: at most 0.8 sigma)."""
    bias = {2: np.array([6e-6, -4e-6, 3e-6])}
    reg = _feed_moving(Registration(FusionConfig()), bias, 181, 1e-7)
    assert reg.windows_total >= 8 and reg.outliers_total == 0 and reg.rejected_total == 0
    for b in reg.estimates():
        err = np.array(b.angles_rad) - bias.get(int(b.sensor_id[-1]), np.zeros(3))
        assert np.all(np.abs(err) <= 3.0 * np.array(b.sigma_rad)), b.sensor_id


def _hand_over(
    reg: Registration,
    k: int,
    s: int,
    key: int,
    spot: np.ndarray | None,
    clear: bool = True,
    kind: Evidence = Evidence.EARTH_FIXED,
) -> None:
    """Sensor ``k`` looks at second ``s``: the hot spot ``spot`` (m, Earth-fixed at s = 0)
    as detected by tentative track ``key`` (an unambiguous association if ``clear``), or
    nothing (None)."""
    pos = _sensors(2)[k]
    a = 7.292115146706979e-5 * s
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    t_ns = T0_NS + s * NS_PER_S + k * 1000
    if spot is None:
        frame = SensorFrame(f"sat-{k}", s, t_ns, pos, np.zeros(3))
        reg.correct(frame)
        reg.observe(frame, [], [], np.zeros(0, int), np.zeros((0, 9)))
        return
    p = rot @ spot
    u = (p - pos) / np.linalg.norm(p - pos)
    frame = SensorFrame(f"sat-{k}", s, t_ns, pos, np.zeros(3), u[None], np.array([2e-5]),
                        np.ones(1))  # fmt: skip
    state = np.zeros((1, 9))
    state[0, :3] = p
    reg.correct(frame)
    reg.observe(frame, [key], [kind], np.zeros(1, int), state, np.array([clear]))


@pytest.mark.parametrize("apart_m, windows", [(300.0, 1), (100e3, 0)])
def test_successive_tracks_of_one_hot_spot_fill_one_window(apart_m, windows):
    """Satellite 0 sees a hot spot through one tentative track, then satellite 1 through
    another: never two satellites at once, so per track there is no evidence; matched by
    their Earth-fixed position they are one site, whose window closes once both tracks
    are quiet. Two hot spots 100 km apart stay two sites (one satellite each: nothing)."""
    reg = Registration(FusionConfig())
    spot = 6.4e6 * np.array([1.0, 0.05, 0.02]) / np.linalg.norm([1.0, 0.05, 0.02])
    east = np.cross([0.0, 0.0, 1.0], spot / np.linalg.norm(spot))
    for s in range(15):
        _hand_over(reg, 0, s, 1, spot)
    for s in range(15, 30):
        _hand_over(reg, 1, s, 2, spot + apart_m * east / np.linalg.norm(east))
    assert reg.windows_total == 0  # still open: 60 s windows, tracks seen 2 s ago
    for s in range(30, 45):  # both tracks quiet for > 10 s: the window is solved
        _hand_over(reg, 0, s, 0, None)
    assert reg.windows_total == windows and reg.rejected_total == 0
    assert [b.windows for b in reg.estimates()] == [windows, windows]


@pytest.mark.parametrize("kind", [Evidence.EARTH_FIXED, Evidence.THRUSTING])
def test_an_ambiguous_look_is_left_out_and_in_boost_contests_the_track(kind):
    """Satellites 0 and 1 look in turn at one source through track 1; one look of
    satellite 1 was ambiguous. A hot spot's window goes on without that look and is solved;
    a boost track's open window is dropped and its looks stay out for a window length (6
    s), so nothing is solved before the track goes quiet."""
    reg = Registration(FusionConfig())
    spot = 6.4e6 * np.array([1.0, 0.05, 0.02]) / np.linalg.norm([1.0, 0.05, 0.02])
    for s in range(12):
        _hand_over(reg, s % 2, s, 1, spot, clear=(s != 3), kind=kind)
    for s in range(12, 30):  # quiet: an open window is solved
        _hand_over(reg, 0, s, 0, None)
    boost = kind == Evidence.THRUSTING
    assert reg.contested_total == int(boost)
    assert reg.windows_total == (0 if boost else 1) and reg.rejected_total == 0


def test_bias_scale_separates_unbiased_from_biased_sensors():
    """The bias scale (empirical Bayes: how large the true biases are against the prior)
    falls with evidence of no bias and stays near 1 with biases of the prior's size (here
    7.8 urad RMS of relative bias, the observable part), and the widening follows it."""
    b = np.array([[10, -10, 5], [-8, 6, -10], [5, 10, -6], [-10, -4, 8], [3, -12, 3]]) * 1e-6
    biased = _feed(Registration(FusionConfig()), dict(enumerate(b - b.mean(0))), 120, 20e-6)
    unbiased = _feed(Registration(FusionConfig()), {}, 120, 20e-6)
    assert unbiased.scale < 0.2  # measured 0.07
    assert biased.scale > 0.6  # measured 0.86
    frame = SensorFrame("sat-1", 1, T0_NS + 200 * NS_PER_S, _sensors()[1], np.zeros(3),
                        np.array([[-1.0, 0.0, 0.0]]), np.array([2e-5]), np.ones(1))  # fmt: skip
    widen = [reg.correct(frame).sigma[0] ** 2 - 4e-10 for reg in (unbiased, biased)]
    assert 0.0 < widen[0] < 0.5 * widen[1]


def _two_tracks_and_their_detections(
    apart_m: float, clutter_sigmas: float | None, seen: tuple[int, ...] = (0, 1)
):
    """Gating of two tracks (100 m position sigma, ~870 km from the sensor: ~115 urad
    across the line of sight, with 20 urad detections) ``apart_m`` apart across the line
    of sight, against a detection of each track in ``seen`` at its predicted position
    and, optionally, a clutter detection ``clutter_sigmas`` innovation sigmas off track 0
    (a 2-D distance, so d2 = clutter_sigmas^2)."""
    from tracklayer.fusion.association import gate, gate_threshold

    sensor = np.array([7.4e6, 0.0, 0.0])
    t0 = np.array([6.7e6, 5e5, 0.0])
    across = np.cross(t0 - sensor, [0.0, 0.0, 1.0])
    across /= np.linalg.norm(across)
    x = np.zeros((2, 9))
    x[0, :3], x[1, :3] = t0, t0 + apart_m * across
    P = np.tile(np.diag([1e4] * 3 + [10.0] * 3 + [1.0] * 3), (2, 1, 1))
    los = [(p - sensor) / np.linalg.norm(p - sensor) for p in x[seen, :3]]
    sigma = 20e-6
    if clutter_sigmas is not None:
        rho = np.linalg.norm(t0 - sensor)
        s_innov = math.sqrt(1e4 / rho**2 + sigma**2)  # rad, per axis of the tangent plane
        off = los[0] + clutter_sigmas * s_innov * np.array([0.0, 0.0, 1.0])
        los.append(off / np.linalg.norm(off))
    gates = np.full(2, gate_threshold(0.9999))  # 18.4: 4.3 innovation sigmas
    g = gate(x, P, sensor, np.array(los), np.full(len(los), sigma), gates)
    return g, gates, len(los)


@pytest.mark.parametrize(
    "apart_m, clutter, clear",
    [
        (20e3, None, [True, True]),  # far apart: each track gates its own detection only
        (200.0, None, [False, False]),  # a crowd: each gates both, either could be taken
        (20e3, 3.0, [False, True]),  # a false alarm inside track 0's gate
        (20e3, 5.0, [True, True]),  # ... outside it (d2 25 > 18.4), though the screen
        # (twice the gate) keeps the pair as a candidate
    ],
)
def test_only_unambiguous_looks_are_registration_evidence(apart_m, clutter, clear):
    """A look is evidence only if its track gated that one detection and the detection
    that one track: in a crowd a track can take another object's detection, an offset
    per sensor the estimator cannot tell from a pointing bias."""
    from tracklayer.fusion.tracker.evidence import unambiguous

    g, gates, n_det = _two_tracks_and_their_detections(apart_m, clutter)
    kinds = [Evidence.MOVING, Evidence.MOVING]
    pairs = (np.array([0, 1]), np.array([0, 1]))
    mask = unambiguous(g, gates, np.ones(2, bool), pairs, n_det, kinds)
    assert mask.tolist() == clear


@pytest.mark.parametrize(
    "kind, other_confirmed, clear",
    [
        (Evidence.MOVING, True, False),  # two confirmed tracks on one detection: a crowd
        (Evidence.MOVING, False, True),  # a new tentative duplicate of the same object
        (Evidence.EARTH_FIXED, True, True),  # two tracks of one hot spot (one site)
    ],
)
def test_a_shared_detection_is_ambiguous_only_between_held_tracks(kind, other_confirmed, clear):
    """Two tracks 50 m apart both gate the one detection; track 0 took it. It is evidence
    unless the other track is confirmed (or coasting) and the look is of a moving target."""
    from tracklayer.fusion.tracker.evidence import unambiguous

    g, gates, n_det = _two_tracks_and_their_detections(50.0, None, seen=(0,))
    assert n_det == 1 and g.track.tolist() == [0, 1]  # both gate the detection
    confirmed = np.array([True, other_confirmed])
    mask = unambiguous(g, gates, confirmed, (np.array([0]), np.array([0])), 1, [kind])
    assert mask.tolist() == [clear]


def test_too_little_data_keeps_zero_with_the_prior_sigma_and_frames_unchanged():
    cfg = FusionConfig()
    reg = Registration(cfg)
    frame = SensorFrame("sat-1", 1, T0_NS, _sensors(1)[0], np.zeros(3),
                        np.array([[-1.0, 0.0, 0.0]]), np.array([2e-5]), np.ones(1))  # fmt: skip
    assert reg.correct(frame) is frame  # no evidence: not applied
    (b,) = reg.estimates()
    assert b.angles_rad == (0.0, 0.0, 0.0) and b.windows == 0
    assert b.sigma_rad[0] == pytest.approx(cfg.registration_prior_sigma_rad)


def test_a_ballistic_tracks_looks_count_their_shared_bias_as_often_as_it_averages_them():
    """N looks sharing one bias error (variance a across the LOS) plus white noise s^2: the
    true variance of their mean is s^2 / N + a. A white-noise filter averaging N looks
    widened to s^2 + N a each reports exactly that; the fixed count k0 only while N <= k0
    (beyond it, k0 would report s^2 / N + a k0 / N: overconfident), and at most k1."""
    from tracklayer.fusion.registration_consider import widened

    s, a, k0, k1 = 20 * URAD, (3 * URAD) ** 2, 25.0, 400.0
    sigma = np.full(5, math.sqrt(s**2 + k0 * a))  # as correct() widened them (gate)
    looks = [0, 10, 25, 100, 1000]
    out = widened(sigma, np.full(5, a), looks, k0, k1)
    n = np.clip(np.array(looks, float), k0, k1)
    np.testing.assert_allclose(out**2, s**2 + n * a, rtol=1e-12)
    np.testing.assert_allclose(out[3] ** 2 / 100, s**2 / 100 + a, rtol=1e-12)  # the truth
    assert widened(sigma, None, looks, k0, k1) is sigma  # sensor not widened: as received
    assert widened(sigma, np.full(5, a), [0, 3, 25], k0, k1) is sigma  # early: unchanged
    assert widened(sigma, np.full(5, a), looks, k0, k0) is sigma  # the switch: as before


def test_the_looks_count_grows_only_as_far_as_biases_are_found():
    """registration_consider_looks_max counts a ballistic track's looks per sensor where the
    estimator finds biases (bias scale 1); a scene it finds unbiased keeps k0."""
    s, a = 2e-5, 1e-11
    reg = Registration(FusionConfig(registration_consider_looks_max=100.0))
    reg._across = (np.full(2, math.sqrt(s**2 + 25 * a)), np.full(2, a))
    reg.scale = 1.0
    np.testing.assert_allclose(reg.pair_sigma(np.arange(2), [400, 10]) ** 2,
                               [s**2 + 100 * a, s**2 + 25 * a], rtol=1e-12)  # fmt: skip
    reg.scale = 0.0
    np.testing.assert_allclose(reg.pair_sigma(np.arange(2), [400, 10]) ** 2,
                               [s**2 + 25 * a] * 2, rtol=1e-12)  # fmt: skip


def test_a_numerically_broken_update_is_rejected_counted_and_never_applied():
    reg = _feed(Registration(FusionConfig()), {}, 30, 5e-6)
    before = reg.estimates()
    windows = reg.windows_total
    info = np.eye(3) / (1e-6) ** 2  # a window seeing sensor 0 to 1 urad per axis
    nan = np.array([np.nan, 1.0, 1.0])
    assert not reg._apply(info, nan, 1.0, 4, np.array([0]), np.array([0]))  # never gathered
    assert reg.rejected_total == 1
    # a gathered update that would move a bias beyond 1 mrad: rejected when applied
    assert not reg._kalman(info, info @ np.full(3, 2e-3), np.arange(3), np.array([0]), 1)
    assert reg.rejected_total == 2 and reg.windows_total == windows
    assert reg.estimates() == before


def test_a_broken_hot_spot_window_is_neither_applied_nor_kept_in_its_site():
    """With sites kept across windows, a window with a broken look (not finite) is
    counted and skipped: the estimates and the site's equations stay as they were."""
    from tracklayer.fusion.registration_looks import Window

    reg = _feed(Registration(FusionConfig(registration_site_memory_s=3600.0)), {}, 140, 5e-6,
                turn_s=70)  # fmt: skip
    key = int(reg._sites.keys[0])
    site = reg._sites.normals[key]
    before, C, used = reg.estimates(), site.C.copy(), site.windows
    ref, rot = reg._sites.frame(key, np.arange(140.0, 146.0))
    pos = _sensors()[1]
    rows = []
    for i in range(6):
        u = rot[i] @ ref - pos
        rows.append((140.0 + i, 1, pos, u / np.linalg.norm(u), 5e-6))
    rows[3] = (143.0, 1, pos, np.full(3, np.nan), 5e-6)
    looks = (np.array(c) for c in zip(*rows, strict=True))
    w = Window(140.0, Evidence.EARTH_FIXED, 145.0, np.zeros(9), key, *looks)
    skipped = reg.outliers_total + reg.rejected_total
    reg._close(w)
    assert reg.outliers_total + reg.rejected_total == skipped + 1
    assert reg.estimates() == before
    assert reg._sites.normals[key].windows == used and np.array_equal(reg._sites.normals[key].C, C)


def test_site_equations_survive_a_checkpoint():
    """The fusion service's checkpoint (state_codec) carries each site's equations, so a
    restarted estimator goes on with them (same estimates, same equations)."""
    from tracklayer.services.fusion_service.state_codec import decode_state, encode_state

    cfg = FusionConfig(registration_site_memory_s=3600.0)
    reg = _feed(Registration(cfg), {2: np.array([8e-6, -6e-6, 5e-6])}, 200, 5e-6, turn_s=70)
    allowed = ("tracklayer.fusion",)
    back = decode_state(*encode_state(reg, allowed), allowed)
    assert reg._sites.normals and back.estimates() == reg.estimates()
    for key, site in reg._sites.normals.items():
        copy = back._sites.normals[key]
        assert np.array_equal(copy.C, site.C) and copy.windows == site.windows
        assert sorted(copy.B) == sorted(site.B)


def test_a_checkpoint_mid_window_goes_on_to_the_same_estimates():
    """A checkpoint (state_codec) taken while windows are open (their looks in columns)
    and others are closed but not yet solved: the restored estimator, fed the same frames,
    ends with the same estimates, bit for bit, as the one never stopped."""
    from tracklayer.services.fusion_service.state_codec import decode_state, encode_state

    bias = {2: np.array([8e-6, -6e-6, 5e-6])}
    cfg = FusionConfig(registration_window_s=1.0)  # 3 s hot-spot windows, 5 s updates
    reg = _feed(Registration(cfg), bias, 7, 5e-6)
    assert len(reg._open) > 0 and reg._closed  # mid-window, and windows awaiting the update
    allowed = ("tracklayer.fusion",)
    back = decode_state(*encode_state(reg, allowed), allowed)
    for r in (reg, back):
        _feed(r, bias, 40, 5e-6, start=7)
    assert reg.windows_total > 10 and back.estimates() == reg.estimates()


def test_estimates_are_deterministic():
    a = _feed(Registration(FusionConfig()), {1: np.full(3, 5e-6)}, 40, 5e-6).estimates()
    b = _feed(Registration(FusionConfig()), {1: np.full(3, 5e-6)}, 40, 5e-6).estimates()
    assert a == b


# ------------------------------------------------------------------ switches


def test_registration_switch_in_config_and_cli(tmp_path):
    assert FusionConfig().registration is True
    assert FusionConfig.from_mapping({"registration": False}).registration is False
    with pytest.raises(ValueError, match="registration"):
        FusionConfig.from_mapping({"registration": 1})
    from tracklayer.fusion.tracker import Tracker

    assert Tracker(config=FusionConfig(registration=False)).registration is None
    import argparse

    from tracklayer.services.cli.options import add_config_argument, config_from_args

    p = argparse.ArgumentParser()
    add_config_argument(p)
    assert config_from_args(p.parse_args(["--no-registration"])).registration is False
    assert config_from_args(p.parse_args([])).registration is True


#: /tracks digests with registration off. Until rows were predicted only when read
#: (issue 13, after 4da4a64) these were the digests from before issue 12 was merged
#: (tests/test_track_digests.py at 0e521b4), bit for bit: registration off was the
#: tracker from before it. Lazy prediction changes the rounding of every track that is
#: not seen in every frame, so both were re-recorded then (same figures: the
#: regression recordings' bounds and tests/test_metrics_digests.py's note). Both
#: re-recorded again for the compiled kernels (issue 13, stop 17, fusion/kernels.py):
#: rounding only, the same 142 and 360 reports (why in tests/test_track_digests.py).
#: single-icbm re-recorded again, on top of the kernels, for the impact prior (stop 17:
#: ln(beta) 1-sigma 0.7 -> 1.0, tests/test_track_digests.py's note): its impact ellipses
#: only; clutter predicts none.
#: Per floating-point platform (tests/float_platform.py; the AVX2 pair recorded at stop 25
#: from the same code: the same report counts, other last bits).
_BEFORE_REGISTRATION = {
    "x86_64-avx512": {
        ("clutter", 150.0): (
            142,
            "341c777f3906c73e43235993bb35dab098126468e356d4bc1fc05b34acce704e",
        ),
        ("single-icbm", 400.0): (
            360,
            "8a43a76f76ca1b7d22247dedc497c139bd9750d854eb200ca749d08315db0aea",
        ),
    },
    "x86_64-avx2": {
        ("clutter", 150.0): (
            142,
            "247364b289ad0339c549d41df2fea5c8e876745fe4cfd93edbf5eca4729a229e",
        ),
        ("single-icbm", 400.0): (
            360,
            "297efd77f4887e884961abea83815d31be005e7ad1d1967299b2716606b3673e",
        ),
    },
}
_CASES = [("clutter", 150.0), ("single-icbm", 400.0)]


@pytest.mark.slow
@pytest.mark.parametrize("case", _CASES)
def test_registration_off_reproduces_the_tracks_from_before_it(case, simulated_mcap, tmp_path):
    """Unbiased simulations are byte-identical to before the drift existed, and the
    tracker with registration off gives the pinned tracks, bit for bit."""
    from float_platform import float_platform, no_digests_message
    from test_track_digests import tracks_digest

    from tracklayer.services.cli import main

    recorded = _BEFORE_REGISTRATION.get(float_platform())
    if recorded is None:
        pytest.skip(
            no_digests_message(
                "registration-off", "`tracklayer track --no-registration` of the two cases"
            )
        )

    out = tmp_path / "off.mcap"
    rec = simulated_mcap(case[0], duration_s=case[1])
    assert main(["track", str(rec), "--out", str(out), "--no-registration"]) == 0
    assert tracks_digest(out) == recorded[case]
