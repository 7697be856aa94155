"""Ballistic-missile truth: multi-stage boost, gravity turn, J2 + drag flight to impact.

Every flight is integrated with ``scipy.integrate.solve_ivp`` in the *launch frame*:
the ECEF axes frozen at the launch instant (an inertial frame; z = TEME z). A launch at
time t0 is that solution rotated by R3(GMST(t0))^T into TEME, so one solved trajectory
serves every launch from the same site to the same aim point (the problem is invariant
under rotation about the polar axis: J2 gravity and a co-rotating atmosphere).

Forces: point mass + J2 gravity (WGS-84), thrust of the burning stage (constant mass
flow, specific impulse, burn time), exponential-atmosphere drag below 120 km against
the co-rotating air (the stack's m/CdA while boosting, the profile's re-entry-vehicle
ballistic coefficient after burnout). Guidance: vertical rise, a pitch-over of angle
``kick`` towards the launch azimuth, then a zero-angle-of-attack gravity turn (thrust
along the air-relative velocity) until the burn is cut off. The kick, cut-off time and
azimuth are solved (Newton on finite differences) so that the impact lands on the aim
point (the Earth turning underneath: aim in ECEF) with the burnout flight-path angle of
the minimum-energy ellipse, gamma = (pi - Psi) / 4 for the inertial range angle Psi.

The missile classes (stages, profiles, reach) are :mod:`.missile_profiles`. This module
shares no motion-model code with the tracker (``fusion/``); it uses only
``fusion.constants`` and ``fusion.geodesy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.integrate import OdeSolution, solve_ivp

from tracklayer.fusion.constants import (
    ATMOSPHERE_TOP_M,
    GM_EARTH,
    J2,
    OMEGA_EARTH,
    R_EARTH_EQ,
    R_EARTH_POLAR,
)
from tracklayer.fusion.domain import FlightPhase
from tracklayer.fusion.geodesy import (
    ecef_to_geodetic,
    enu_matrix,
    geodetic_to_ecef,
    great_circle_m,
    teme_to_ecef_matrix,
)

# The profiles live in .missile_profiles; their names stay importable from here.
from .aim import damped_newton
from .missile_profiles import PROFILES, MissileError, Profile, Stage, check_reach  # noqa: F401

RHO_SEA_LEVEL = 1.225  # kg/m^3
SCALE_HEIGHT_M = 7200.0  # m, exponential atmosphere
DRAG_CEILING_M = 120_000.0  # m, no drag above this altitude
AIM_TOLERANCE_M = 100.0  # m, the solver's aim (the contract is 10 km)
DEPRESSION = 0.80  # burnout flight-path angle / the minimum-energy one
BLEND_S = 15.0  # s over which the attitude turns from the pitch programme to the velocity

_RTOL = 1e-10
_ATOL = np.array([1e-4] * 3 + [1e-7] * 3)  # m, m/s
_A2 = R_EARTH_EQ**2
_B2 = R_EARTH_POLAR**2


# --------------------------------------------------------------------------- forces


def _altitude(x: float, y: float, z: float) -> float:
    """Height (m) above WGS-84 along the radius: exact on the surface, ~m error aloft."""
    rho2 = x * x + y * y
    r2 = rho2 + z * z
    # radius of the ellipsoid in the direction of (x, y, z)
    re = math.sqrt(r2 / (rho2 / _A2 + z * z / _B2))
    return math.sqrt(r2) - re


def altitude_m(r: np.ndarray) -> np.ndarray:
    """Vectorised :func:`_altitude` for positions (..., 3) m in an Earth-centred frame."""
    r = np.asarray(r, float)
    rho2 = r[..., 0] ** 2 + r[..., 1] ** 2
    z2 = r[..., 2] ** 2
    r2 = rho2 + z2
    return np.sqrt(r2) - np.sqrt(r2 / (rho2 / _A2 + z2 / _B2))


def gravity_j2(x: float, y: float, z: float, j2: float = J2) -> tuple[float, float, float]:
    """Point-mass + J2 acceleration (m/s^2) at (x, y, z) m, z along the polar axis."""
    r2 = x * x + y * y + z * z
    r = math.sqrt(r2)
    k = -GM_EARTH / (r2 * r)
    f = 1.5 * j2 * _A2 / r2
    zz = 5.0 * z * z / r2
    cxy = k * (1.0 + f * (1.0 - zz))
    cz = k * (1.0 + f * (3.0 - zz))
    return cxy * x, cxy * y, cz * z


def _drag(x, y, z, vx, vy, vz, beta):
    """Drag acceleration (m/s^2) against the co-rotating atmosphere; beta = m / (Cd A)."""
    h = _altitude(x, y, z)
    if h > DRAG_CEILING_M:
        return 0.0, 0.0, 0.0
    wx, wy = vx + OMEGA_EARTH * y, vy - OMEGA_EARTH * x  # v - omega x r
    v = math.sqrt(wx * wx + wy * wy + vz * vz)
    k = -0.5 * RHO_SEA_LEVEL * math.exp(-max(h, 0.0) / SCALE_HEIGHT_M) * v / beta
    return k * wx, k * wy, k * vz


def _ballistic_rhs(beta: float | None, j2: float = J2):
    def rhs(_t, s):
        x, y, z, vx, vy, vz = s
        gx, gy, gz = gravity_j2(x, y, z, j2)
        if beta is None:
            return [vx, vy, vz, gx, gy, gz]
        dx, dy, dz = _drag(x, y, z, vx, vy, vz, beta)
        return [vx, vy, vz, gx + dx, gy + dy, gz + dz]

    return rhs


def propagate_ballistic(
    state: np.ndarray,
    t_eval: np.ndarray,
    ballistic_coeff: float | None = None,
    j2: float = J2,
) -> np.ndarray:
    """Unpowered flight of ``state`` (6,) (m, m/s, an inertial Earth-centred frame with z
    polar) to the times ``t_eval`` (N,) s from 0: states (N, 6). ``ballistic_coeff``
    None: vacuum; ``j2`` 0: point mass. No impact event (the truth flights have one)."""
    t_eval = np.asarray(t_eval, float)
    sol = solve_ivp(_ballistic_rhs(ballistic_coeff, j2), (0.0, float(t_eval[-1])),
                    np.asarray(state, float), method="DOP853", rtol=_RTOL, atol=_ATOL,
                    t_eval=t_eval)  # fmt: skip
    if not sol.success:
        raise MissileError(f"ballistic integration failed: {sol.message}")
    return sol.y.T


# --------------------------------------------------------------------------- flight


@dataclass(slots=True)
class Trajectory:
    """One solved flight in the launch frame; ``tau`` = seconds since launch."""

    profile: str
    solution: OdeSolution  # state (6,) in the launch frame
    burnout_s: float
    apogee_s: float
    reentry_s: float
    impact_s: float
    apogee_alt_m: float
    burnout_speed: float  # m/s, inertial
    impact_ecef: np.ndarray  # (3,) m, on WGS-84
    aim_error_m: float
    kick_rad: float
    azimuth_rad: float

    def state(self, tau: np.ndarray) -> np.ndarray:
        """States (N, 6) (m, m/s, launch frame) at ``tau`` (N,) s, clipped to the flight."""
        t = np.clip(np.asarray(tau, float).reshape(-1), 0.0, self.impact_s)
        return self.solution(t).T

    def phase(self, tau: np.ndarray) -> np.ndarray:
        """FlightPhase values (N,) at ``tau`` (N,) s."""
        t = np.asarray(tau, float)
        out = np.full(t.shape, int(FlightPhase.MIDCOURSE), dtype=np.int64)
        out[t < self.burnout_s] = int(FlightPhase.BOOST)
        out[t >= self.reentry_s] = int(FlightPhase.REENTRY)
        return out


def _guidance(site_ecef: np.ndarray, azimuth: float) -> tuple[np.ndarray, np.ndarray]:
    """Geodetic up at the site and the horizontal towards ``azimuth`` (unit vectors, launch
    frame)."""
    lat, lon, _ = ecef_to_geodetic(site_ecef)
    east, north, up = enu_matrix(float(lat), float(lon))
    horiz = math.cos(azimuth) * north + math.sin(azimuth) * east
    return up, horiz


def _boost_segments(profile: Profile, cutoff_s: float) -> list[tuple[float, float, int]]:
    """(start, end, stage index) pieces of the burn up to ``cutoff_s``, split at guidance
    switches (end of vertical rise, end of kick) and staging."""
    t_pk = profile.vertical_s + profile.kick_s
    marks = {0.0, profile.vertical_s, t_pk, t_pk + BLEND_S}
    t = 0.0
    for s in profile.stages:
        t += s.burn_s
        marks.add(t)
    marks = sorted(m for m in marks if m < cutoff_s) + [cutoff_s]
    out = []
    for a, b in zip(marks[:-1], marks[1:], strict=True):
        mid, acc, idx = 0.5 * (a + b), 0.0, 0
        for i, s in enumerate(profile.stages):
            if mid < acc + s.burn_s:
                idx = i
                break
            acc += s.burn_s
        out.append((a, b, idx))
    return out


def _stage_mass(profile: Profile, idx: int) -> tuple[float, float]:
    """(mass at ignition of stage ``idx``, start time of that stage)."""
    m = profile.payload_kg + sum(s.propellant_kg + s.dry_kg for s in profile.stages[idx:])
    return m, sum(s.burn_s for s in profile.stages[:idx])


def _fly_boost(profile: Profile, site_ecef, kick, azimuth, cutoff_s):
    """Integrate the burn from lift-off to ``cutoff_s``; returns (solutions, state at cut-off)."""
    up, horiz = _guidance(site_ecef, azimuth)
    r0 = np.asarray(site_ecef, float)
    v0 = np.cross([0.0, 0.0, OMEGA_EARTH], r0)  # the launch pad turns with the Earth
    y = np.concatenate([r0, v0])
    sols = []
    t_v, t_k = profile.vertical_s, profile.kick_s
    for a, b, idx in _boost_segments(profile, cutoff_s):
        stage = profile.stages[idx]
        m_ign, t_ign = _stage_mass(profile, idx)
        mdot, thrust, cda = stage.mass_flow, stage.thrust_n, profile.body_cda_m2
        mode = sum(b > m + 1e-9 for m in (t_v, t_v + t_k, t_v + t_k + BLEND_S))
        kick_dir = math.cos(kick) * up + math.sin(kick) * horiz

        def rhs(
            t, s, mode=mode, m_ign=m_ign, t_ign=t_ign, mdot=mdot, thrust=thrust, cda=cda,
            kick_dir=kick_dir,
        ):  # fmt: skip
            x, yy, z, vx, vy, vz = s
            m = m_ign - mdot * (t - t_ign)
            gx, gy, gz = gravity_j2(x, yy, z)
            dx, dy, dz = _drag(x, yy, z, vx, vy, vz, m / cda)
            if mode == 0:  # vertical rise
                ux, uy, uz = up
            elif mode == 1:  # pitch programme: tilt towards the azimuth at a constant rate
                f = kick * (t - t_v) / t_k
                c, sn = math.cos(f), math.sin(f)
                ux, uy, uz = c * up + sn * horiz
            else:  # gravity turn along the air-relative velocity (blended in over BLEND_S)
                wx, wy = vx + OMEGA_EARTH * yy, vy - OMEGA_EARTH * x
                w = math.sqrt(wx * wx + wy * wy + vz * vz)
                ux, uy, uz = wx / w, wy / w, vz / w
                if mode == 2:
                    f = (t - t_v - t_k) / BLEND_S
                    ux, uy, uz = (1 - f) * kick_dir + f * np.array([ux, uy, uz])
                    n = math.sqrt(ux * ux + uy * uy + uz * uz)
                    ux, uy, uz = ux / n, uy / n, uz / n
            a_t = thrust / m
            return [vx, vy, vz, gx + dx + a_t * ux, gy + dy + a_t * uy, gz + dz + a_t * uz]

        sol = solve_ivp(rhs, (a, b), y, method="DOP853", rtol=_RTOL, atol=_ATOL, dense_output=True)
        if not sol.success:
            raise MissileError(f"boost integration failed: {sol.message}")
        sols.append(sol)
        y = sol.y[:, -1]
    return sols, y


def _impact_event(_t, s):
    return _altitude(s[0], s[1], s[2])


_impact_event.terminal = True
_impact_event.direction = -1


def _fly_ballistic(profile: Profile, t0: float, y0: np.ndarray, t_max: float = 7200.0):
    sol = solve_ivp(
        _ballistic_rhs(profile.ballistic_coeff),
        (t0, t0 + t_max),
        y0,
        method="DOP853",
        rtol=_RTOL,
        atol=_ATOL,
        dense_output=True,
        events=_impact_event,
    )
    if not sol.success or sol.t_events[0].size == 0:
        raise MissileError(f"{profile.name}: flight did not come down within {t_max:.0f} s")
    return sol


def _to_ecef(r_launch: np.ndarray, tau: float) -> np.ndarray:
    """Launch-frame position -> ECEF at ``tau`` s after launch (Earth turned by omega tau)."""
    a = OMEGA_EARTH * tau
    c, s = math.cos(a), math.sin(a)
    x, y, z = r_launch
    return np.array([c * x + s * y, -s * x + c * y, z])


def _unit(v):
    return v / np.linalg.norm(v)


def _miss(site_ecef, target_ecef, impact_ecef) -> tuple[float, float]:
    """(downrange, crossrange) miss (m) of an impact point, on the sphere through the aim."""
    s, t, i = _unit(site_ecef), _unit(target_ecef), _unit(impact_ecef)
    n = _unit(np.cross(s, t))
    r = np.linalg.norm(target_ecef)
    cross = r * math.asin(float(np.clip(i @ n, -1, 1)))
    ip = i - (i @ n) * n
    ang_i = math.atan2(float(np.cross(s, ip) @ n), float(s @ ip))
    ang_t = math.atan2(float(np.cross(s, t) @ n), float(s @ t))
    return r * (ang_i - ang_t), cross


def _flight(profile, site_ecef, kick, cutoff, azimuth):
    boost, yb = _fly_boost(profile, site_ecef, kick, azimuth, cutoff)
    ball = _fly_ballistic(profile, cutoff, yb)
    t_imp = float(ball.t_events[0][0])
    r_imp = ball.y_events[0][0][:3]
    return boost, yb, ball, t_imp, r_imp


def _residual(profile, site_ecef, target_ecef, x):
    kick, cutoff, azimuth = x
    _, yb, _, t_imp, r_imp = _flight(profile, site_ecef, kick, cutoff, azimuth)
    down, cross = _miss(site_ecef, target_ecef, _to_ecef(r_imp, t_imp))
    rb, vb = yb[:3], yb[3:]
    gamma = math.asin(float(rb @ vb) / (np.linalg.norm(rb) * np.linalg.norm(vb)))
    psi = math.acos(float(np.clip(_unit(rb) @ _unit(r_imp), -1, 1)))
    gamma_opt = DEPRESSION * (math.pi - psi) / 4.0
    return np.array([down / 1e3, cross / 1e3, math.degrees(gamma - gamma_opt)])


def _initial_cutoff(profile, site_ecef, kick, azimuth, range_m):
    """Burn time at which the inertial speed reaches the minimum-energy speed for the range
    (spherical Earth), clipped to the burn."""
    boost, _ = _fly_boost(profile, site_ecef, kick, azimuth, profile.burn_s)
    psi = range_m / float(np.linalg.norm(site_ecef))
    r = float(np.linalg.norm(site_ecef)) + 100e3
    v_need = math.sqrt(GM_EARTH / r * 2 * math.sin(psi / 2) / (1 + math.sin(psi / 2)))
    for sol in boost:
        ts = np.linspace(sol.t[0], sol.t[-1], 200)
        v = np.linalg.norm(sol.sol(ts)[3:], axis=0)
        hit = np.nonzero(v >= v_need)[0]
        if hit.size:
            return float(ts[hit[0]])
    return profile.burn_s


def _bearing(site_ecef, target_ecef) -> float:
    """Initial great-circle azimuth (rad, clockwise from north) site -> target."""
    lat, lon, _ = ecef_to_geodetic(site_ecef)
    e, n, _u = enu_matrix(float(lat), float(lon))
    d = _unit(target_ecef) - _unit(site_ecef)
    return math.atan2(float(d @ e), float(d @ n))


def _aim(profile: Profile, site: np.ndarray, target: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Damped Newton on finite differences for (kick rad, cut-off s, azimuth rad) from
    ``x`` until the miss (:func:`_residual`) is within the aim tolerance (30 steps at most;
    the caller checks the miss of the result)."""
    steps = np.array([1e-4, 1e-2, 1e-5])
    lo = np.array([math.radians(5.0), profile.vertical_s + profile.kick_s + 1.0, -np.inf])
    hi = np.array([math.radians(85.0), profile.burn_s, np.inf])

    def converged(f: np.ndarray) -> bool:
        return bool(np.all(np.abs(f[:2]) * 1e3 < AIM_TOLERANCE_M) and abs(f[2]) < 0.05)

    return damped_newton(
        lambda xx: _residual(profile, site, target, xx), x, steps, lo, hi, converged, 30
    )


@lru_cache(maxsize=64)
def solve_trajectory(
    profile_name: str, site_deg: tuple[float, float], target_deg: tuple[float, float]
) -> Trajectory:
    """Solve and integrate one flight from ``site_deg`` to ``target_deg`` (lat, lon degrees).

    Cached per (profile, site, target) for the life of the process: solving takes a few
    dozen integrations, sampling a solved flight is cheap.
    """
    check_reach(profile_name, site_deg, target_deg)
    profile = PROFILES[profile_name]
    site = geodetic_to_ecef(site_deg[0], site_deg[1], 0.0)
    target = geodetic_to_ecef(target_deg[0], target_deg[1], 0.0)
    range_m = float(great_circle_m(site_deg[0], site_deg[1], target_deg[0], target_deg[1]))
    az = _bearing(site, target)
    kick = profile.kick_guess_rad
    cut = _initial_cutoff(profile, site, kick, az, range_m)
    kick, cut, az = _aim(profile, site, target, np.array([kick, cut, az]))
    boost, yb, ball, t_imp, r_imp = _flight(profile, site, kick, cut, az)
    impact_ecef = _to_ecef(r_imp, t_imp)
    miss = float(np.hypot(*_miss(site, target, impact_ecef)))
    if miss > 10e3:
        raise MissileError(
            f"{profile_name}: no trajectory to ({target_deg[0]}, {target_deg[1]}) found "
            f"(best miss {miss / 1e3:.1f} km)"
        )
    ts = [boost[0].sol.ts[0]]
    interps = []
    for s in [*boost, ball]:
        ts.extend(s.sol.ts[1:])
        interps.extend(s.sol.interpolants)
    solution = OdeSolution(np.asarray(ts), interps)
    # apogee and re-entry from the dense solution of the ballistic arc
    tb = np.linspace(cut, t_imp, max(200, int((t_imp - cut) / 2)))
    states = ball.sol(tb)
    alt = altitude_m(states[:3].T)
    k = int(np.argmax(alt))
    apogee_s = _refine_max(ball.sol, tb, k)
    apogee_alt = float(altitude_m(ball.sol(apogee_s)[:3]))
    reentry_s = _reentry_time(ball.sol, apogee_s, t_imp, apogee_alt)
    return Trajectory(
        profile=profile_name,
        solution=solution,
        burnout_s=float(cut),
        apogee_s=float(apogee_s),
        reentry_s=float(reentry_s),
        impact_s=t_imp,
        apogee_alt_m=apogee_alt,
        burnout_speed=float(np.linalg.norm(yb[3:])),
        impact_ecef=impact_ecef,
        aim_error_m=miss,
        kick_rad=float(kick),
        azimuth_rad=float(az),
    )


def _refine_max(sol, tb, k) -> float:
    from scipy.optimize import minimize_scalar

    a, b = tb[max(k - 1, 0)], tb[min(k + 1, tb.size - 1)]
    res = minimize_scalar(
        lambda t: -float(altitude_m(sol(t)[:3])),
        bounds=(a, b),
        method="bounded",
        options={"xatol": 1e-3},
    )
    return float(res.x)


def _reentry_time(sol, apogee_s, impact_s, apogee_alt) -> float:
    """First time after apogee below ``ATMOSPHERE_TOP_M`` (apogee itself if it is lower)."""
    from scipy.optimize import brentq

    if apogee_alt <= ATMOSPHERE_TOP_M:
        return apogee_s
    return float(
        brentq(
            lambda t: float(altitude_m(sol(t)[:3])) - ATMOSPHERE_TOP_M,
            apogee_s,
            impact_s,
            xtol=1e-6,
        )
    )


@dataclass(frozen=True, slots=True)
class Flight:
    """One missile in the scenario: a solved trajectory placed at its launch time."""

    object_id: str
    launch_s: float  # Unix seconds
    trajectory: Trajectory  # or a glide.GlideTrajectory (same state, phase, impact_s)
    to_teme: np.ndarray  # (3, 3) launch frame -> TEME

    @property
    def impact_time_s(self) -> float:
        return self.launch_s + self.trajectory.impact_s

    def state_teme(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position (N, 3) m and velocity (N, 3) m/s in TEME at Unix times ``t_s`` (N,)."""
        st = self.trajectory.state(np.asarray(t_s, float) - self.launch_s)
        return st[:, :3] @ self.to_teme.T, st[:, 3:] @ self.to_teme.T

    def phase(self, t_s: np.ndarray) -> np.ndarray:
        return self.trajectory.phase(np.asarray(t_s, float) - self.launch_s)


def make_flight(
    object_id: str,
    profile: str,
    site_deg: tuple[float, float],
    target_deg: tuple[float, float],
    launch_s: float,
) -> Flight:
    """A missile launched at Unix time ``launch_s`` from ``site_deg`` towards ``target_deg``."""
    traj = solve_trajectory(profile, tuple(map(float, site_deg)), tuple(map(float, target_deg)))
    return Flight(object_id, float(launch_s), traj, teme_to_ecef_matrix(launch_s).T)
