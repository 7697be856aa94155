"""Missile classes: rocket stages, published-scale profiles and each profile's reach.

Masses in kg, specific impulse and times in s, ranges (great-circle launch to aim
point) in m, ballistic coefficients in kg/m^2. The flight model that flies them is
:mod:`.missiles`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tracklayer.fusion.constants import G0
from tracklayer.fusion.geodesy import great_circle_m


class MissileError(ValueError):
    """A flight that cannot be flown (target outside the profile's reach, no solution)."""


@dataclass(frozen=True, slots=True)
class Stage:
    """One rocket stage: propellant and dry mass (kg), vacuum-ish Isp (s), burn time (s)."""

    propellant_kg: float
    dry_kg: float
    isp_s: float
    burn_s: float

    @property
    def mass_flow(self) -> float:
        """kg/s."""
        return self.propellant_kg / self.burn_s

    @property
    def thrust_n(self) -> float:
        return self.mass_flow * self.isp_s * G0


@dataclass(frozen=True, slots=True)
class Profile:
    """A missile class. Ranges are great-circle launch-to-aim distances (m)."""

    name: str
    stages: tuple[Stage, ...]
    payload_kg: float  # post-boost vehicle + re-entry vehicle(s)
    ballistic_coeff: float  # kg/m^2, m / (Cd A) of the re-entry vehicle
    body_cda_m2: float  # m^2, Cd * A of the boosting stack
    min_range_m: float
    max_range_m: float
    vertical_s: float  # s of vertical rise before the pitch-over
    kick_s: float  # s over which the thrust tilts by the kick angle
    kick_guess_rad: float  # starting point of the kick solve
    brightness: float  # relative IR intensity of the burning stack at 1,000 km

    @property
    def burn_s(self) -> float:
        return sum(s.burn_s for s in self.stages)


# Published-scale profiles (solid-propellant classes; masses tuned so that burnout
# speed, boost time and apogee fall in the published ranges, see tests/test_missiles.py).
PROFILES: dict[str, Profile] = {
    "icbm": Profile(
        "icbm",
        (
            Stage(20_500.0, 2_300.0, 275.0, 62.0),
            Stage(8_500.0, 900.0, 295.0, 75.0),
            Stage(3_300.0, 350.0, 300.0, 115.0),
        ),
        payload_kg=500.0,
        ballistic_coeff=50_000.0,
        body_cda_m2=1.4,
        min_range_m=5_500e3,
        max_range_m=13_000e3,
        vertical_s=10.0,
        kick_s=40.0,
        kick_guess_rad=math.radians(65.0),
        brightness=1000.0,
    ),
    "irbm": Profile(
        "irbm",
        (Stage(11_000.0, 1_100.0, 275.0, 70.0), Stage(5_000.0, 400.0, 295.0, 175.0)),
        payload_kg=400.0,
        ballistic_coeff=20_000.0,
        body_cda_m2=1.0,
        min_range_m=3_000e3,
        max_range_m=5_500e3,
        vertical_s=8.0,
        kick_s=45.0,
        kick_guess_rad=math.radians(55.0),
        brightness=600.0,
    ),
    "mrbm": Profile(
        "mrbm",
        (Stage(8_500.0, 900.0, 265.0, 65.0), Stage(2_800.0, 300.0, 285.0, 100.0)),
        payload_kg=600.0,
        ballistic_coeff=10_000.0,
        body_cda_m2=0.8,
        min_range_m=1_000e3,
        max_range_m=3_000e3,
        vertical_s=6.0,
        kick_s=40.0,
        kick_guess_rad=math.radians(50.0),
        brightness=400.0,
    ),
    "srbm": Profile(
        "srbm",
        (Stage(3_900.0, 800.0, 245.0, 60.0), Stage(900.0, 200.0, 265.0, 35.0)),
        payload_kg=600.0,
        ballistic_coeff=5_000.0,
        body_cda_m2=0.35,
        min_range_m=150e3,
        max_range_m=1_000e3,
        vertical_s=4.0,
        kick_s=25.0,
        kick_guess_rad=math.radians(45.0),
        brightness=200.0,
    ),
}


@dataclass(frozen=True, slots=True)
class Glider:
    """A boost-glide vehicle (flown by :mod:`.glide`): its booster (``booster.payload_kg``
    is the glider, ``booster.ballistic_coeff`` its m / (Cd A) in kg/m^2, the reach is the
    booster's) and its glide aerodynamics and guidance."""

    booster: Profile
    lift_to_drag_max: float  # L/D at the best angle of attack (flown in turns and dives)
    lift_to_drag_glide: float  # L/D the glide guidance aims at (a margin below the max)
    dive_speed_mps: float  # m/s air-relative: the glide ends and the dive begins here
    dive_gamma_deg: float  # flight-path angle (deg, negative) the dive steers to


# A boost-glide vehicle on an ICBM-class booster, cut off early for short ranges: glider
# 1,200 kg, m / (Cd A) 10,000 kg/m^2 (issue 11's 5,000-15,000 band), L/D 2.6 in the glide
# and 3.2 at most (the 2-3.5). The kick is large: the booster flies a depressed
# trajectory and burns out below 100 km (DESIGN §3).
GLIDERS: dict[str, Glider] = {
    "hgv": Glider(
        Profile(
            "hgv",
            PROFILES["icbm"].stages,
            payload_kg=1_200.0,
            ballistic_coeff=10_000.0,
            body_cda_m2=1.6,
            min_range_m=1_500e3,
            max_range_m=8_000e3,
            vertical_s=8.0,
            kick_s=40.0,
            kick_guess_rad=math.radians(76.0),
            brightness=800.0,
        ),
        lift_to_drag_max=3.2,
        lift_to_drag_glide=2.6,
        dive_speed_mps=2_200.0,
        dive_gamma_deg=-45.0,
    ),
}

MISSILES: tuple[str, ...] = (*PROFILES, *GLIDERS)


def booster_of(missile: str) -> Profile:
    """The rocket :class:`Profile` of ``missile`` (a glider's booster)."""
    return GLIDERS[missile].booster if missile in GLIDERS else PROFILES[missile]


def check_reach(
    profile: str, site_deg: tuple[float, float], target_deg: tuple[float, float]
) -> float:
    """Great-circle distance (m) launch -> aim point; MissileError outside the reach."""
    if profile not in MISSILES:
        raise MissileError(f"unknown missile {profile!r}; allowed: {', '.join(MISSILES)}")
    p = booster_of(profile)
    d = float(great_circle_m(site_deg[0], site_deg[1], target_deg[0], target_deg[1]))
    if not p.min_range_m <= d <= p.max_range_m:
        raise MissileError(
            f"target {d / 1e3:.0f} km from the site is outside the {profile} reach "
            f"{p.min_range_m / 1e3:.0f}-{p.max_range_m / 1e3:.0f} km"
        )
    return d
