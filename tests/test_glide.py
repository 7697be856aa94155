"""Boost-glide flights (sensors/glide.py) against physics, not against the code's output.

Accelerations are measured from the solved truth (central differences of its velocity)
less a point-mass + J2 gravity written here; density, speed of sound and the lift law
are those DESIGN §3 documents, evaluated here from the truth state. The turn is checked
against a separate fixed-step RK4 integration of the same vehicle written in this file.
One flight per case is solved per module (the aim solution is cached per process).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracklayer.fusion.constants import G0, GM_EARTH, J2, OMEGA_EARTH, R_EARTH_EQ
from tracklayer.fusion.domain import FlightPhase
from tracklayer.fusion.geodesy import ecef_to_geodetic, great_circle_m
from tracklayer.sensors.glide import solve_glide
from tracklayer.sensors.missile_profiles import GLIDERS

SITE = (50.0, 60.0)
TARGET = (70.0, 110.0)  # 3,397 km: the built-in scenario "glide"
TURNS = ((420.0, 50.0, 90.0), (700.0, -50.0, 90.0))
HGV = GLIDERS["hgv"]
BETA = HGV.booster.ballistic_coeff
OMEGA = np.array([0.0, 0.0, OMEGA_EARTH])
DT = 0.05  # s, central-difference step


# --------------------------------------------------------------------------- physics here


def gravity(r: np.ndarray) -> np.ndarray:
    """Point-mass + J2 acceleration (m/s^2) at positions (N, 3) m, z polar."""
    rn = np.linalg.norm(r, axis=-1, keepdims=True)
    zr2 = (r[..., 2:3] / rn) ** 2
    k = 1.5 * J2 * (R_EARTH_EQ / rn) ** 2
    scale = np.concatenate([1 + k * (1 - 5 * zr2)] * 2 + [1 + k * (3 - 5 * zr2)], axis=-1)
    return -GM_EARTH * r / rn**3 * scale


def potential(r: np.ndarray) -> np.ndarray:
    """Point-mass + J2 potential (J/kg) at positions (N, 3) m."""
    rn = np.linalg.norm(r, axis=-1)
    s2 = (r[..., 2] / rn) ** 2
    return -GM_EARTH / rn * (1 - J2 * (R_EARTH_EQ / rn) ** 2 * (3 * s2 - 1) / 2)


def height(r: np.ndarray) -> np.ndarray:
    """Height (m) above WGS-84 (rotation about the pole leaves it unchanged)."""
    return ecef_to_geodetic(r)[2]


def density(h: np.ndarray) -> np.ndarray:
    """DESIGN §3's exponential atmosphere (kg/m^3)."""
    return 1.225 * np.exp(-np.maximum(h, 0.0) / 7200.0)


def kinematics(traj, t: np.ndarray):
    """Position, velocity, non-gravitational acceleration (launch frame) at ``t`` s."""
    s = traj.state(t)
    a = (traj.state(t + DT)[:, 3:] - traj.state(t - DT)[:, 3:]) / (2 * DT)
    return s[:, :3], s[:, 3:], a - gravity(s[:, :3])


def frame(r: np.ndarray, v: np.ndarray):
    """Air-relative velocity w, its unit e, wings-level lift direction l, right = e x l."""
    w = v - np.cross(OMEGA, r)
    e = w / np.linalg.norm(w, axis=1, keepdims=True)
    up = r / np.linalg.norm(r, axis=1, keepdims=True)
    l = up - np.sum(up * e, axis=1, keepdims=True) * e
    l /= np.linalg.norm(l, axis=1, keepdims=True)
    return w, e, l, np.cross(e, l)


def to_ecef(r: np.ndarray, tau: float) -> np.ndarray:
    c, s = math.cos(OMEGA_EARTH * tau), math.sin(OMEGA_EARTH * tau)
    return np.array([c * r[0] + s * r[1], -s * r[0] + c * r[1], r[2]])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def straight():
    return solve_glide("hgv", SITE, TARGET)


@pytest.fixture(scope="module")
def turned():
    return solve_glide("hgv", SITE, TARGET, TURNS)


@pytest.fixture(scope="module")
def banked45():
    return solve_glide("hgv", SITE, TARGET, ((450.0, 45.0, 60.0),))


def equilibrium_times(traj) -> np.ndarray:
    """The settled glide: from 40% of the glide window to 20 s before the dive."""
    a = traj.burnout_s + 0.4 * (traj.reentry_s - traj.burnout_s)
    return np.arange(a, traj.reentry_s - 20.0, 5.0)


# --------------------------------------------------------------------------- tests


def test_phases_run_boost_glide_dive_and_boost_burns_out_between_50_and_100_km(straight):
    t = np.arange(0.0, straight.impact_s, 0.5)
    ph = straight.phase(t)
    change = t[1:][np.diff(ph) != 0]
    assert list(dict.fromkeys(ph)) == [FlightPhase.BOOST, FlightPhase.GLIDE, FlightPhase.REENTRY]
    assert change.tolist() == pytest.approx([straight.burnout_s, straight.reentry_s], abs=0.5)
    hb = height(straight.state([straight.burnout_s])[:, :3])[0]
    assert 50e3 <= hb <= 100e3
    assert height(straight.state(t)[:, :3]).max() < 100e3  # depressed: never in space


def test_equilibrium_glide_lift_balances_gravity_less_centrifugal(straight):
    t = equilibrium_times(straight)
    r, v, a = kinematics(straight, t)
    w, e, _, _ = frame(r, v)
    lift = a - np.sum(a * e, axis=1, keepdims=True) * e
    up = r / np.linalg.norm(r, axis=1, keepdims=True)
    rn = np.linalg.norm(r, axis=1)
    v_h2 = np.sum(v * v, axis=1) - np.sum(v * up, axis=1) ** 2
    g_less_centrifugal = -np.sum(gravity(r) * up, axis=1) - v_h2 / rn
    ratio = np.sum(lift * up, axis=1) / g_less_centrifugal
    assert np.all(np.abs(ratio - 1.0) < 0.10), (ratio.min(), ratio.max())
    h = height(r)
    mach = np.linalg.norm(w, axis=1) / 300.0  # speed of sound 295-330 m/s at 30-70 km
    assert 30e3 <= h.min() and h.max() <= 70e3
    assert 5.0 <= mach.min() and mach.max() <= 20.0
    drag = -np.sum(a * e, axis=1)
    ld = np.linalg.norm(lift, axis=1) / drag
    assert np.all((ld >= 2.0) & (ld <= 3.5)), (ld.min(), ld.max())


def test_drag_deceleration_is_half_rho_v_squared_over_beta(straight):
    t = np.arange(straight.burnout_s + 5.0, straight.impact_s - 2.0, 7.0)
    r, v, a = kinematics(straight, t)
    w, e, _, _ = frame(r, v)
    drag = -np.sum(a * e, axis=1)
    expected = 0.5 * density(height(r)) * np.sum(w * w, axis=1) / BETA
    inside = height(r) < 110e3  # no air above 120 km
    assert inside.sum() > 50
    np.testing.assert_allclose(drag[inside], expected[inside], rtol=0.01)


def test_45_deg_bank_gives_the_lateral_acceleration_of_the_tilted_lift(banked45):
    t = np.arange(455.0, 505.0, 2.0)  # inside the turn (450-510 s), edges left out
    r, v, a = kinematics(banked45, t)
    w, _, l, right = frame(r, v)
    lift_max = HGV.lift_to_drag_max * 0.5 * density(height(r)) * np.sum(w * w, axis=1) / BETA
    lateral = np.sum(a * right, axis=1)
    vertical = np.sum(a * l, axis=1)
    s45 = math.sin(math.radians(45.0))
    np.testing.assert_allclose(lateral, lift_max * s45, rtol=0.02)
    np.testing.assert_allclose(vertical, lift_max * s45, rtol=0.02)
    assert lateral.min() > 5.0  # m/s^2: positive bank turns right, by several m/s^2


def test_energy_only_decreases_after_burnout(turned):
    # energy in the Earth-fixed frame (the air's): lift does no work there, drag only takes
    t = np.arange(turned.burnout_s + 0.5, turned.impact_s, 1.0)
    s = turned.state(t)
    r, v = s[:, :3], s[:, 3:]
    w = v - np.cross(OMEGA, r)
    rot = 0.5 * np.sum(np.cross(OMEGA, r) ** 2, axis=1)
    energy = 0.5 * np.sum(w * w, axis=1) + potential(r) - rot
    assert np.all(np.diff(energy) < 0.0)


@pytest.mark.parametrize("which", ["straight", "turned"])
def test_peak_load_stays_below_10_g(which, request):
    traj = request.getfixturevalue(which)
    t = np.arange(0.2, traj.impact_s - 0.2, 0.5)
    _, _, a = kinematics(traj, t)
    load = np.linalg.norm(a, axis=1) / G0
    assert load.max() < 10.0


def test_wings_level_flight_lands_within_1_km_of_the_target(straight):
    r = straight.state([straight.impact_s])[0, :3]
    lat, lon, h = ecef_to_geodetic(to_ecef(r, straight.impact_s))
    assert abs(float(h)) < 50.0
    assert great_circle_m(float(lat), float(lon), *TARGET) < 1e3


# --------------------------------------------------------------------------- independent


def _aero(r, v, mode, bank):
    """DESIGN §3's glide vehicle: drag against the turning air, lift by the glide law
    (wings level), at max L/D banked, or steering the dive; m/s^2."""
    w, e, l, right = (x[0] for x in frame(r[None], v[None]))
    wn = float(np.linalg.norm(w))
    h = float(height(r))
    if h > 120e3:
        return np.zeros(3)
    a_d = 0.5 * float(density(h)) * wn * wn / BETA
    a_max = HGV.lift_to_drag_max * a_d
    rn = float(np.linalg.norm(r))
    hdot = float(r @ v) / rn
    g_eff = GM_EARTH / rn**2 - (float(v @ v) - hdot**2) / rn
    if mode == "dive":
        gamma = math.asin(float(e @ r) / rn)
        cmd = wn * 0.05 * (math.radians(HGV.dive_gamma_deg) - gamma) + g_eff * math.cos(gamma)
        a_l, bank = float(np.clip(cmd, -a_max, a_max)), 0.0
    elif bank == 0.0:
        omega_p = math.sqrt(max(g_eff, 0.5) / 7200.0)
        a_l = float(np.clip(HGV.lift_to_drag_glide * a_d - 1.4 * omega_p * hdot, 0.0, a_max))
    else:
        a_l = a_max
    return a_l * (math.cos(bank) * l + math.sin(bank) * right) - a_d * e


def fly_rk4(t0: float, s0: np.ndarray, turns, dt: float = 1.0):
    """RK4 from ``t0`` to the ground: (impact time s, impact position m, launch frame).
    The dive starts when the air speed falls to the dive speed (found within the step)."""

    def deriv(t, s, mode):
        bank = next((math.radians(b) for a, b, d in turns if a <= t < a + d), 0.0)
        if mode == "dive":
            bank = 0.0
        acc = gravity(s[None, :3])[0] + _aero(s[:3], s[3:], mode, bank)
        return np.concatenate([s[3:], acc])

    def step(t, s, h, mode):
        k1 = deriv(t, s, mode)
        k2 = deriv(t + h / 2, s + h / 2 * k1, mode)
        k3 = deriv(t + h / 2, s + h / 2 * k2, mode)
        k4 = deriv(t + h, s + h * k3, mode)
        return s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    def air_speed(s):
        return float(np.linalg.norm(s[3:] - np.cross(OMEGA, s[:3]))) - HGV.dive_speed_mps

    t, s, mode = t0, np.asarray(s0, float), "glide"
    while True:
        n = step(t, s, dt, mode)
        if mode == "glide" and air_speed(n) <= 0.0:
            f = air_speed(s) / (air_speed(s) - air_speed(n))  # the crossing within the step
            s, t, mode = step(t, s, f * dt, mode), t + f * dt, "dive"
            continue
        if float(height(n[:3])) <= 0.0:
            h0, h1 = float(height(s[:3])), float(height(n[:3]))
            f = h0 / (h0 - h1)
            return t + f * dt, step(t, s, f * dt, mode)[:3]
        t, s = t + dt, n


def test_turn_displaces_the_impact_as_an_independent_integration_predicts(straight, turned):
    tb = straight.burnout_s
    sb = straight.state([tb])[0]
    t_a, r_a = fly_rk4(tb, sb, ())
    t_b, r_b = fly_rk4(tb, sb, TURNS)
    predicted = to_ecef(r_b, t_b) - to_ecef(r_a, t_a)
    simulated = turned.impact_ecef - straight.impact_ecef
    assert np.linalg.norm(simulated) > 100e3  # the turns move the impact far off the aim
    assert np.linalg.norm(simulated - predicted) < 0.01 * np.linalg.norm(predicted) + 500.0
    # and the independent straight flight lands where the simulated one does
    assert np.linalg.norm(to_ecef(r_a, t_a) - straight.impact_ecef) < 1e3
