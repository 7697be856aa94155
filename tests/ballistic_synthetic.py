"""A small synthetic angle-only world for tracker tests, independent of the simulator.

Truth: a ballistic object integrated by ``scipy.integrate.solve_ivp`` (DOP853, point mass
+ J2 written here from the potential, not taken from ``fusion.dynamics``). Sensors: a few
satellites on circular orbits (closed form), each looking once a second at its own phase;
every look is a frame, with the object's LOS rotated by Gaussian noise in its tangent
plane when the object is in view (no Earth blocking), plus optional uniform clutter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from tracklayer.fusion.constants import GM_EARTH, J2, R_EARTH_EQ
from tracklayer.fusion.domain import NS_PER_S, SensorFrame

EPOCH_NS = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z


def j2_accel(r: np.ndarray) -> np.ndarray:
    """Point-mass + J2 acceleration (m/s^2), from the gradient of the J2 potential."""
    x, y, z = r
    rn = np.linalg.norm(r)
    k = 1.5 * J2 * (R_EARTH_EQ / rn) ** 2
    s = 5.0 * z * z / (rn * rn)
    c = -GM_EARTH / rn**3
    return np.array(
        [c * x * (1 + k * (1 - s)), c * y * (1 + k * (1 - s)), c * z * (1 + k * (3 - s))]
    )


@dataclass
class Truth:
    """Dense ballistic truth: ``state(t)`` -> (6,) at seconds after the epoch."""

    sol: object
    t_end: float

    def state(self, t_s: float) -> np.ndarray:
        return self.sol.sol(t_s)


def ballistic_truth(r0: np.ndarray, v0: np.ndarray, duration_s: float, t0_s: float = 0.0) -> Truth:
    def f(_t, y):
        return np.concatenate([y[3:], j2_accel(y[:3])])

    sol = solve_ivp(
        f,
        (t0_s, t0_s + duration_s),
        np.concatenate([r0, v0]),
        method="DOP853",
        rtol=1e-11,
        atol=1e-4,
        dense_output=True,
    )
    return Truth(sol, t0_s + duration_s)


def midcourse_object() -> tuple[np.ndarray, np.ndarray]:
    """An ICBM-like midcourse state: ~700 km up, 6.6 km/s, climbing gently."""
    r0 = np.array([4.2e6, 1.0e6, 5.3e6])
    r0 *= (R_EARTH_EQ + 700e3) / np.linalg.norm(r0)
    east = np.cross([0.0, 0.0, 1.0], r0)
    east /= np.linalg.norm(east)
    up = r0 / np.linalg.norm(r0)
    v0 = 6600.0 * (0.97 * east + 0.2 * up)
    return r0, v0


def satellites(n: int = 4, altitude_m: float = 1.0e6) -> list[tuple[np.ndarray, np.ndarray]]:
    """(position, velocity) functions' parameters: circular orbits whose ground tracks pass
    near the midcourse object's region (planes spread in longitude of the node)."""
    r_obj, _ = midcourse_object()
    centre = r_obj / np.linalg.norm(r_obj)
    out = []
    for k in range(n):
        ang = 2.0 * np.pi * k / n
        # a plane containing a point 25 deg away from the object's direction
        t = np.cross(centre, [0.0, 0.0, 1.0])
        t /= np.linalg.norm(t)
        b = np.cross(centre, t)
        off = np.cos(ang) * t + np.sin(ang) * b
        p = np.cos(np.radians(25)) * centre + np.sin(np.radians(25)) * off
        normal = np.cross(p, off)
        normal /= np.linalg.norm(normal)
        out.append((p * (R_EARTH_EQ + altitude_m), normal))
    return out


def sat_state(sat: tuple[np.ndarray, np.ndarray], t_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Circular-orbit position and velocity of a satellite at ``t_s``."""
    p0, normal = sat
    a = np.linalg.norm(p0)
    n = np.sqrt(GM_EARTH / a**3)
    u = p0 / a
    w = np.cross(normal, u)
    c, s = np.cos(n * t_s), np.sin(n * t_s)
    return a * (c * u + s * w), a * n * (-s * u + c * w)


def frames(
    truths: list[Truth],
    duration_s: float,
    n_sats: int = 4,
    sigma: float = 20e-6,
    seed: int = 0,
    clutter_per_frame: float = 0.0,
    detect_until_s: float | None = None,
    static_points: list[np.ndarray] = (),
) -> list[SensorFrame]:
    """Frames of all satellites, sorted in application order, over ``duration_s``.

    ``static_points``: ECI positions at t=0 of Earth-fixed sources (they turn with the
    Earth). Objects are seen until ``detect_until_s`` (then the frames are heartbeats).
    """
    from tracklayer.fusion.constants import OMEGA_EARTH

    rng = np.random.default_rng(seed)
    sats = satellites(n_sats)
    out = []
    for k, sat in enumerate(sats):
        phase = k / n_sats
        for i in range(int(duration_s)):
            t = i + phase
            pos, vel = sat_state(sat, t)
            los, sig, inten = [], [], []
            sources = []
            if detect_until_s is None or t <= detect_until_s:
                sources = [tr.state(t)[:3] for tr in truths if t <= tr.t_end]
            for p in static_points:
                c, s = np.cos(OMEGA_EARTH * t), np.sin(OMEGA_EARTH * t)
                sources.append(np.array([c * p[0] - s * p[1], s * p[0] + c * p[1], p[2]]))
            for r in sources:
                u = (r - pos) / np.linalg.norm(r - pos)
                e1 = np.cross(u, [0.0, 0.0, 1.0])
                e1 /= np.linalg.norm(e1)
                e2 = np.cross(u, e1)
                m = u + sigma * (rng.normal() * e1 + rng.normal() * e2)
                los.append(m / np.linalg.norm(m))
                sig.append(sigma)
                inten.append((1.0e6 / np.linalg.norm(r - pos)) ** 2)  # a cold body
            for _ in range(rng.poisson(clutter_per_frame)):
                d = -pos / np.linalg.norm(pos) + 0.5 * rng.normal(size=3)
                los.append(d / np.linalg.norm(d))
                sig.append(sigma)
                inten.append(rng.exponential())
            n = len(los)
            out.append(
                SensorFrame(
                    sensor_id=f"sat-{k + 1}",
                    sequence=i,
                    time_ns=EPOCH_NS + int(round(t * NS_PER_S)),
                    position=pos,
                    velocity=vel,
                    los=np.array(los).reshape(n, 3),
                    sigma=np.array(sig),
                    intensity=np.array(inten),
                )
            )
    out.sort(key=lambda f: f.order_key)
    return out
