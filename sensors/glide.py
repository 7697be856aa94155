"""Boost-glide truth (``missile = "hgv"``): depressed boost, pull-up, lifting glide, dive.

Integrated with ``scipy.integrate.solve_ivp`` in the *launch frame* (ECEF axes frozen at
lift-off; inertial), as :mod:`.missiles` does, whose booster, J2 gravity, WGS-84 altitude,
exponential atmosphere and impact event this module reuses.

- Boost: the glider's booster (:data:`.missile_profiles.GLIDERS`) flies the staged
  gravity turn of :mod:`.missiles` after a large pitch-over kick on a depressed
  trajectory: the flight tops out at 60 km after cut-off; the cut-off time sets the
  glide's energy.
- Glide (point mass): drag ``a_D = rho w^2 / (2 beta)`` against the air-relative velocity
  ``w = v - omega x r`` (the atmosphere turns with the Earth) and lift ``a_L`` normal to
  ``w``. Wings level, the lift lies in the vertical plane through ``w`` and the guidance
  holds an equilibrium glide: ``a_L = L/D_glide a_D - 2 zeta omega_p hdot``, clipped to
  ``[0, L/D_max a_D]``, where ``omega_p = sqrt((g - v_h^2 / r) / H)`` is the phugoid
  frequency (H the density scale height) and ``zeta = 0.7`` (a damped phugoid). The same
  law pulls the vehicle up out of its post-burnout coast. Banked (a scenario turn:
  positive turns right seen from above) the vehicle flies at its maximum L/D and the lift
  vector is rotated by the bank angle about ``w``.
- Dive: when the air-relative speed falls to ``dive_speed_mps`` the vehicle pushes over
  to the flight-path angle ``dive_gamma_deg`` (lift in the vertical plane, either sign,
  at most L/D_max a_D; bank ignored) and flies it into the ground.

The kick, cut-off time and azimuth are solved (damped Newton, :mod:`.aim`) so that the
flight tops out at ``BURNOUT_ALT_M`` after cut-off and the wings-level flight lands on the
aim point (ECEF, the Earth turning underneath). A flight with turns keeps that solution
and lands where the turns take it.
Truth phases: BOOST to cut-off, GLIDE to the dive, REENTRY in the dive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.integrate import OdeSolution, solve_ivp

from tracklayer.fusion.constants import GM_EARTH, OMEGA_EARTH
from tracklayer.fusion.domain import FlightPhase
from tracklayer.fusion.geodesy import geodetic_to_ecef, teme_to_ecef_matrix

from .aim import damped_newton
from .missile_profiles import GLIDERS, Glider, MissileError, check_reach
from .missiles import (
    DRAG_CEILING_M,
    RHO_SEA_LEVEL,
    SCALE_HEIGHT_M,
    Flight,
    _altitude,
    _bearing,
    _fly_boost,
    _impact_event,
    _miss,
    _to_ecef,
    altitude_m,
    gravity_j2,
)

PHUGOID_DAMPING = 0.7  # zeta of the glide guidance
DIVE_GAIN = 0.05  # 1/s, rate at which the dive steers the flight-path angle
BURNOUT_ALT_M = 60e3  # m, top of the flight after cut-off (a depressed boost)
AIM_TOLERANCE_M = 100.0  # m, the solver's aim (the contract is 1 km)
GLIDE_T_MAX_S = 4000.0  # s after burnout: a glide must have come down by then
_G_EFF_MIN = 0.5  # m/s^2, floor of g - v^2/r in the phugoid frequency (near orbital speed)
_RTOL = 1e-9
_ATOL = np.array([1e-3] * 3 + [1e-6] * 3)  # m, m/s
_GLIDE, _DIVE = 0, 1


class TurnError(MissileError):
    """A turn that cannot be flown; ``key`` names the scenario field (``turns[k].at_s``)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Turn:
    """A banked turn: from ``at_s`` s after launch for ``duration_s`` s at ``bank_rad``
    (positive turns right seen from above)."""

    at_s: float
    bank_rad: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s


def aero_accel(glider: Glider, s: Sequence[float], mode: int, bank: float) -> list[float]:
    """Lift + drag acceleration (m/s^2, launch frame) of the glider in state ``s`` (6,)
    (m, m/s, launch frame) flying ``mode`` (glide or dive) at ``bank`` rad."""
    x, y, z, vx, vy, vz = s
    h = _altitude(x, y, z)
    if h > DRAG_CEILING_M:
        return [0.0, 0.0, 0.0]
    wx, wy, wz = vx + OMEGA_EARTH * y, vy - OMEGA_EARTH * x, vz  # air-relative
    w = math.sqrt(wx * wx + wy * wy + wz * wz)
    ex, ey, ez = wx / w, wy / w, wz / w
    r = math.sqrt(x * x + y * y + z * z)
    ux, uy, uz = x / r, y / r, z / r
    a_d = 0.5 * RHO_SEA_LEVEL * math.exp(-max(h, 0.0) / SCALE_HEIGHT_M) * w * w
    a_d /= glider.booster.ballistic_coeff
    a_max = glider.lift_to_drag_max * a_d
    sg = ex * ux + ey * uy + ez * uz  # sine of the air-relative flight-path angle
    cg = math.sqrt(max(1.0 - sg * sg, 1e-12))
    hdot = (x * vx + y * vy + z * vz) / r
    g_eff = GM_EARTH / (r * r) - (vx * vx + vy * vy + vz * vz - hdot * hdot) / r
    if mode == _DIVE:
        turn = w * DIVE_GAIN * (math.radians(glider.dive_gamma_deg) - math.asin(sg))
        a_l, bank = min(max(turn + g_eff * cg, -a_max), a_max), 0.0
    elif bank == 0.0:
        omega_p = math.sqrt(max(g_eff, _G_EFF_MIN) / SCALE_HEIGHT_M)
        a_l = glider.lift_to_drag_glide * a_d - 2.0 * PHUGOID_DAMPING * omega_p * hdot
        a_l = min(max(a_l, 0.0), a_max)
    else:
        a_l = a_max
    # lift unit vector wings level: "up" less its part along w; right = e x l
    lx, ly, lz = (ux - sg * ex) / cg, (uy - sg * ey) / cg, (uz - sg * ez) / cg
    rx, ry, rz = ey * lz - ez * ly, ez * lx - ex * lz, ex * ly - ey * lx
    cb, sb = math.cos(bank), math.sin(bank)
    return [
        a_l * (cb * lx + sb * rx) - a_d * ex,
        a_l * (cb * ly + sb * ry) - a_d * ey,
        a_l * (cb * lz + sb * rz) - a_d * ez,
    ]


def _rhs(glider: Glider, mode: int, bank: float):
    def rhs(_t, s):
        gx, gy, gz = gravity_j2(s[0], s[1], s[2])
        ax, ay, az = aero_accel(glider, s, mode, bank)
        return [s[3], s[4], s[5], gx + ax, gy + ay, gz + az]

    return rhs


def _dive_event(glider: Glider):
    def event(_t, s):
        x, y = s[0], s[1]
        wx, wy = s[3] + OMEGA_EARTH * y, s[4] - OMEGA_EARTH * x
        return math.sqrt(wx * wx + wy * wy + s[5] * s[5]) - glider.dive_speed_mps

    event.terminal = True
    event.direction = -1
    return event


def _solve(rhs, t0, t1, y, events):
    sol = solve_ivp(rhs, (t0, t1), y, method="DOP853", rtol=_RTOL, atol=_ATOL,
                    dense_output=True, events=events)  # fmt: skip
    if not sol.success:
        raise MissileError(f"glide integration failed: {sol.message}")
    return sol


def _fly_glide(glider: Glider, t0: float, y0: np.ndarray, turns: Sequence[Turn]):
    """Glide from burnout (``t0`` s, state ``y0``) through the turns, then dive to impact.
    Returns (solutions, dive start s or inf, impact s, impact position (3,) m)."""
    t_end = t0 + GLIDE_T_MAX_S
    marks = sorted({t for tr in turns for t in (tr.at_s, tr.end_s) if t0 < t < t_end})
    edges = [t0, *marks, t_end]
    sols, y, dive_s = [], y0, math.inf
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        mid = 0.5 * (a + b)
        bank = next((tr.bank_rad for tr in turns if tr.at_s <= mid < tr.end_s), 0.0)
        sol = _solve(_rhs(glider, _GLIDE, bank), a, b, y, [_impact_event, _dive_event(glider)])
        sols.append(sol)
        y = sol.y[:, -1]
        if sol.t_events[0].size:  # came down while gliding
            return sols, dive_s, float(sol.t_events[0][0]), sol.y_events[0][0][:3]
        if sol.t_events[1].size:
            dive_s = float(sol.t_events[1][0])
            break
    else:
        raise MissileError(f"glide still aloft {GLIDE_T_MAX_S:.0f} s after burnout")
    sol = _solve(_rhs(glider, _DIVE, 0.0), dive_s, t_end, y, [_impact_event])
    sols.append(sol)
    if sol.t_events[0].size == 0:
        raise MissileError(f"dive still aloft {GLIDE_T_MAX_S:.0f} s after burnout")
    return sols, dive_s, float(sol.t_events[0][0]), sol.y_events[0][0][:3]


def _flight(glider: Glider, site: np.ndarray, x: np.ndarray, turns: Sequence[Turn] = ()):
    """Boost with (kick rad, cut-off s, azimuth rad) = ``x``, then glide and dive:
    (boost solutions, burnout state, glide solutions, dive s, impact s, impact (3,) m)."""
    kick, cutoff, azimuth = map(float, x)
    boost, yb = _fly_boost(glider.booster, site, kick, azimuth, cutoff)
    glide, dive_s, t_imp, r_imp = _fly_glide(glider, cutoff, yb, turns)
    return boost, yb, glide, dive_s, t_imp, r_imp


def _residual(glider, site, target, x) -> np.ndarray:
    """Miss (km) of the wings-level flight with ``x`` = (kick, cut-off, azimuth): downrange,
    crossrange, and the top of the flight after burnout (burnout itself, or the top of
    the coast that follows) less ``BURNOUT_ALT_M``."""
    _, _, glide, _, t_imp, r_imp = _flight(glider, site, x)
    down, cross = _miss(site, target, _to_ecef(r_imp, t_imp))
    first = glide[0]  # burnout to the first turn or the dive: holds the top
    ts = np.linspace(first.t[0], min(first.t[-1], first.t[0] + 300.0), 601)
    top = float(altitude_m(first.sol(ts)[:3].T).max())
    return np.array([down / 1e3, cross / 1e3, (top - BURNOUT_ALT_M) / 1e3])


def _initial_cutoff(glider: Glider, site: np.ndarray, kick: float, azimuth: float,
                    range_m: float) -> float:  # fmt: skip
    """Burn time at which the inertial speed reaches what an equilibrium glide at
    L/D_glide needs to cover ``range_m`` less 10% (boost and dive) down to the dive
    speed: 1 - v0^2/vc^2 = (1 - vd^2/vc^2) exp(-2 s / (L/D r)) (spherical Earth)."""
    b = glider.booster
    r = float(np.linalg.norm(site)) + 40e3
    vc2 = GM_EARTH / r
    keep = (1.0 - glider.dive_speed_mps**2 / vc2) * math.exp(
        -2.0 * 0.9 * range_m / (glider.lift_to_drag_glide * r)
    )
    v_need = math.sqrt(vc2 * (1.0 - keep))
    boost, _ = _fly_boost(b, site, kick, azimuth, b.burn_s)
    for sol in boost:
        ts = np.linspace(sol.t[0], sol.t[-1], 200)
        hit = np.nonzero(np.linalg.norm(sol.sol(ts)[3:], axis=0) >= v_need)[0]
        if hit.size:
            return float(ts[hit[0]])
    return b.burn_s


def _aim(glider: Glider, site: np.ndarray, target: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(kick rad, cut-off s, azimuth rad) from ``x`` by damped Newton until the miss is
    within the aim tolerance and the burnout altitude within 100 m of ``BURNOUT_ALT_M``
    (25 steps at most; the caller checks the result)."""
    b = glider.booster
    steps = np.array([1e-4, 1e-2, 1e-5])
    lo = np.array([math.radians(5.0), b.vertical_s + b.kick_s + 1.0, -np.inf])
    hi = np.array([math.radians(89.0), b.burn_s, np.inf])

    def converged(f: np.ndarray) -> bool:
        return bool(np.all(np.abs(f * 1e3) < AIM_TOLERANCE_M))

    return damped_newton(
        lambda xx: _residual(glider, site, target, xx), x, steps, lo, hi, converged, 25
    )


@dataclass(slots=True)
class GlideTrajectory:
    """One boost-glide flight in the launch frame; ``tau`` = seconds since launch.
    ``reentry_s`` is the start of the dive; ``aim_error_m`` the wings-level miss."""

    profile: str
    solution: OdeSolution  # state (6,) in the launch frame
    burnout_s: float
    reentry_s: float
    impact_s: float
    burnout_speed: float  # m/s, inertial
    impact_ecef: np.ndarray  # (3,) m, on WGS-84
    aim_error_m: float
    azimuth_rad: float
    turns: tuple[Turn, ...]

    def state(self, tau: np.ndarray) -> np.ndarray:
        """States (N, 6) (m, m/s, launch frame) at ``tau`` (N,) s, clipped to the flight."""
        t = np.clip(np.asarray(tau, float).reshape(-1), 0.0, self.impact_s)
        return self.solution(t).T

    def phase(self, tau: np.ndarray) -> np.ndarray:
        """FlightPhase values (N,) at ``tau`` (N,) s: BOOST, GLIDE, then REENTRY (dive)."""
        t = np.asarray(tau, float)
        out = np.full(t.shape, int(FlightPhase.GLIDE), dtype=np.int64)
        out[t < self.burnout_s] = int(FlightPhase.BOOST)
        out[t >= self.reentry_s] = int(FlightPhase.REENTRY)
        return out


@lru_cache(maxsize=64)
def _aim_solution(
    missile: str, site_deg: tuple[float, float], target_deg: tuple[float, float]
) -> tuple[tuple[float, float, float], float]:
    """((kick rad, cut-off s, azimuth rad), miss m) of the wings-level flight onto
    ``target_deg``; MissileError when the aim point cannot be reached within 1 km."""
    range_m = check_reach(missile, site_deg, target_deg)
    glider = GLIDERS[missile]
    site = geodetic_to_ecef(site_deg[0], site_deg[1], 0.0)
    target = geodetic_to_ecef(target_deg[0], target_deg[1], 0.0)
    az = _bearing(site, target)
    kick = glider.booster.kick_guess_rad
    cut = _initial_cutoff(glider, site, kick, az, range_m)
    x = _aim(glider, site, target, np.array([kick, cut, az]))
    miss = float(np.hypot(*_residual(glider, site, target, x)[:2])) * 1e3
    if miss > 1e3:
        raise MissileError(
            f"{missile}: no glide to ({target_deg[0]}, {target_deg[1]}) found "
            f"(best miss {miss / 1e3:.1f} km)"
        )
    return (float(x[0]), float(x[1]), float(x[2])), miss


def _check_turns(turns: Sequence[Turn], burnout_s: float, dive_s: float) -> None:
    """TurnError unless every turn starts in the glide, [burnout, dive) (the dive or,
    for a vehicle that comes down gliding, its impact)."""
    for k, tr in enumerate(turns):
        if not burnout_s <= tr.at_s < dive_s:
            raise TurnError(
                f"turns[{k}].at_s",
                f"the turn must start while the vehicle glides, {burnout_s:.0f}-{dive_s:.0f} "
                f"s after launch (burnout to dive), got {tr.at_s:g}",
            )


@lru_cache(maxsize=64)
def solve_glide(
    missile: str,
    site_deg: tuple[float, float],
    target_deg: tuple[float, float],
    turns: tuple[tuple[float, float, float], ...] = (),
) -> GlideTrajectory:
    """Solve the wings-level flight from ``site_deg`` onto ``target_deg`` (lat, lon deg),
    then fly it with ``turns`` ((at s after launch, bank deg, duration s), in time order,
    not overlapping). Cached per arguments for the life of the process."""
    glider = GLIDERS[missile]
    x, miss = _aim_solution(missile, site_deg, target_deg)
    _kick, cutoff, az = x
    tr = tuple(Turn(float(a), math.radians(b), float(d)) for a, b, d in turns)
    site = geodetic_to_ecef(site_deg[0], site_deg[1], 0.0)
    boost, yb, glide, dive_s, t_imp, r_imp = _flight(glider, site, np.array(x), tr)
    _check_turns(tr, cutoff, min(dive_s, t_imp))
    ts = [boost[0].sol.ts[0]]
    interps = []
    for s in [*boost, *glide]:
        ts.extend(s.sol.ts[1:])
        interps.extend(s.sol.interpolants)
    return GlideTrajectory(
        profile=missile,
        solution=OdeSolution(np.asarray(ts), interps),
        burnout_s=cutoff,
        reentry_s=min(dive_s, t_imp),
        impact_s=t_imp,
        burnout_speed=float(np.linalg.norm(yb[3:])),
        impact_ecef=_to_ecef(r_imp, t_imp),
        aim_error_m=miss,
        azimuth_rad=az,
        turns=tr,
    )


def make_glide_flight(
    object_id: str,
    missile: str,
    site_deg: tuple[float, float],
    target_deg: tuple[float, float],
    launch_s: float,
    turns: Sequence[tuple[float, float, float]] = (),
) -> Flight:
    """A boost-glide vehicle launched at Unix time ``launch_s`` from ``site_deg`` towards
    ``target_deg`` flying ``turns`` ((at s after launch, bank deg, duration s))."""
    traj = solve_glide(
        missile,
        tuple(map(float, site_deg)),
        tuple(map(float, target_deg)),
        tuple(tuple(map(float, t)) for t in turns),
    )
    return Flight(object_id, float(launch_s), traj, teme_to_ecef_matrix(launch_s).T)
