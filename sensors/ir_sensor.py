"""Infrared staring-sensor model: visibility, detection, noise, clutter, hot spots.

Geometry (all TEME, metres):
- Occlusion: the Earth is the WGS-84 ellipsoid (handled as a sphere of the equatorial
  radius after stretching z by a/b). The segment satellite -> object must not touch it;
  when the closest point of the line to the Earth's centre lies strictly between the
  satellite and the object (a limb view) that point must clear the surface by the grazing
  height. Looking down at an object against the Earth is allowed.
- Angular noise: the true line of sight is rotated by a 2-D Gaussian offset (sigma per
  axis) in the tangent plane of the true LOS.
- Clutter field of regard: the Earth disc plus a limb band up to ``LIMB_BAND_M`` above the
  surface, i.e. the cone about nadir out to the ray tangent to the sphere of radius
  R_e + ``LIMB_BAND_M``. False alarms are uniform in solid angle over it.
- Detection probability: ``pd_boost`` while boosting, ``pd_midcourse`` in midcourse and in
  re-entry (a hot re-entry vehicle seen against the Earth is no easier than a cold one
  against space for a short-wave staring sensor; one number keeps the model honest),
  ``pd_glide`` for a glide vehicle gliding, and ``pd_boost`` for the hot spots (fires and
  glint are as bright as plumes).
- Intensity (relative brightness; 1 = a cold midcourse object at 1,000 km): boost
  ``Profile.brightness``, midcourse 1, re-entry 5, glide ``GLIDE_INTENSITY`` (DESIGN §3),
  times (1,000 km / range)^2, a per-object factor and a per-detection scintillation (both
  log-normal); clutter ~ Exp(1).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from tracklayer.fusion.constants import R_EARTH_EQ, R_EARTH_POLAR

from .scenario import SensorSpec

LIMB_BAND_M = 500e3  # m, clutter field of regard above the limb
_ON_SURFACE_M = 1.0  # m, a point on the surface (a hot spot) counts as above it
URAD = 1e-6
GLIDE_INTENSITY = 4.0  # relative intensity of an aero-heated glide body (DESIGN §3)
_Z_STRETCH = np.array([1.0, 1.0, R_EARTH_EQ / R_EARTH_POLAR])

# tags of the keyed random streams (the first element of the spawn key)
TAG_FRAME, TAG_DELIVERY, TAG_PHASE, TAG_BIAS, TAG_OBJECT, TAG_HOTSPOTS = 1, 2, 3, 4, 5, 6


def stable_hash(text: str) -> int:
    """A 63-bit hash of ``text`` that is the same in every process (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def keyed_rng(seed: int, tag: int, *keys: int) -> np.random.Generator:
    """A generator that depends only on (seed, tag, keys): e.g. (seed, frame, sensor, n)."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(tag, *keys)))
    )


@dataclass(frozen=True, slots=True)
class SensorParams:
    """The scenario's [sensor] table in SI units (s, rad, m)."""

    period_s: float
    random_phase: bool
    sigma_rad: float
    resolution_rad: float
    pd_boost: float
    pd_midcourse: float
    pd_reentry: float
    pd_glide: float
    clutter_per_frame: float
    hotspot_count: int
    grazing_m: float
    max_range_m: float
    latency_mean_s: float
    latency_max_s: float
    drop_probability: float
    bias_sigma_rad: float

    @classmethod
    def from_spec(cls, s: SensorSpec) -> SensorParams:
        return cls(
            period_s=1.0 / s.frame_rate_hz,
            random_phase=s.frame_phase == "random",
            sigma_rad=s.angular_sigma_urad * URAD,
            resolution_rad=s.resolution_urad * URAD,
            pd_boost=s.pd_boost,
            pd_midcourse=s.pd_midcourse,
            pd_reentry=s.pd_midcourse,
            pd_glide=s.pd_glide,
            clutter_per_frame=s.clutter_per_frame,
            hotspot_count=s.hotspot_count,
            grazing_m=s.grazing_height_km * 1e3,
            max_range_m=s.max_range_km * 1e3,
            latency_mean_s=s.latency_mean_s,
            latency_max_s=s.latency_max_s,
            drop_probability=s.drop_probability,
            bias_sigma_rad=s.bias_sigma_urad * URAD,
        )

    def pd_by_phase(self) -> np.ndarray:
        """Pd indexed by FlightPhase value (UNSPECIFIED, BOOST, MIDCOURSE, REENTRY, GLIDE)."""
        return np.array([0.0, self.pd_boost, self.pd_midcourse, self.pd_reentry, self.pd_glide])


def visible(sat: np.ndarray, obj: np.ndarray, grazing_m: float, max_range_m: float) -> np.ndarray:
    """Whether objects at ``obj`` (..., 3) are in view of satellites at ``sat`` (..., 3)
    (broadcast): within range, not behind the Earth, limb views clearing ``grazing_m``."""
    s = sat * _Z_STRETCH
    d = obj * _Z_STRETCH - s
    dd = np.einsum("...i,...i->...", d, d)
    # closest point of the line s + u d to the centre; u in (0, 1): it lies between them
    u = -np.einsum("...i,...i->...", s, d) / np.maximum(dd, 1e-9)
    closest = s + np.clip(u, 0.0, 1.0)[..., None] * d
    clear = np.linalg.norm(closest, axis=-1) - R_EARTH_EQ
    limb = (u > 0.0) & (u < 1.0)
    ok = np.where(limb, clear >= grazing_m, clear >= -_ON_SURFACE_M)
    rng = np.linalg.norm(obj - sat, axis=-1)
    return ok & (rng <= max_range_m)


# The simulator keeps its own _cross/tangent_basis on purpose (not fusion.measurement's):
# truth generation must not share the tracker's model (DESIGN §1).
def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (N, 3) arrays (np.cross is slow on small arrays)."""
    return np.stack(
        [
            a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
            a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
            a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0],
        ],
        axis=1,
    )


def tangent_basis(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (N, 3) spanning the plane perpendicular to unit vectors ``u`` (N, 3):
    e1 = z x u normalised (x x u near the poles), e2 = u x e1."""
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    polar = np.abs(z) >= 0.9
    zero = np.zeros_like(x)
    e1 = np.where(polar[:, None], np.stack([zero, -z, y], 1), np.stack([-y, x, zero], 1))
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, _cross(u, e1)


def perturb(u: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Rotate unit vectors ``u`` (N, 3) by tangent-plane angle offsets (N, 2) rad."""
    if u.shape[0] == 0:
        return u
    e1, e2 = tangent_basis(u)
    t = offsets[:, :1] * e1 + offsets[:, 1:2] * e2
    ang = np.linalg.norm(t, axis=1, keepdims=True)
    direction = np.divide(t, ang, out=np.zeros_like(t), where=ang > 0)
    return np.cos(ang) * u + np.sin(ang) * direction


def rotation_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation (3, 3) by |rotvec| rad about rotvec."""
    th = float(np.linalg.norm(rotvec))
    if th == 0.0:
        return np.eye(3)
    k = rotvec / th
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * kx + (1 - np.cos(th)) * kx @ kx


def regard_half_angle(sat_radius_m: np.ndarray) -> np.ndarray:
    """Half-angle (rad) about nadir of the clutter field of regard (Earth disc + limb band)."""
    ratio = np.minimum((R_EARTH_EQ + LIMB_BAND_M) / np.asarray(sat_radius_m, float), 1.0)
    return np.arcsin(ratio)


def cone_basis(axis: np.ndarray) -> np.ndarray:
    """Orthonormal frames (N, 3, 3), rows (axis, e1, e2), for unit ``axis`` vectors (N, 3)."""
    e1, e2 = tangent_basis(axis)
    return np.stack([axis, e1, e2], axis=1)


def cone_directions(basis: np.ndarray, half_angle: float, uv: np.ndarray) -> np.ndarray:
    """Unit vectors (n, 3) uniform in solid angle within ``half_angle`` of ``basis[0]``
    (``basis`` (3, 3) from :func:`cone_basis`), from uniforms ``uv`` (n, 2) in [0, 1)."""
    cos_t = 1.0 - uv[:, 0] * (1.0 - math.cos(half_angle))
    sin_t = np.sqrt(np.maximum(0.0, 1.0 - cos_t**2))
    phi = 2.0 * np.pi * uv[:, 1]
    return np.stack([cos_t, sin_t * np.cos(phi), sin_t * np.sin(phi)], axis=1) @ basis


def merge_by_resolution(los: np.ndarray, rng_m: np.ndarray, resolution_rad: float) -> np.ndarray:
    """Greedy merge of unresolved objects: indices (into ``los``) of the detections kept,
    each the nearest of its group (``los`` (N, 3) unit, ``rng_m`` (N,)); the rest are
    within ``resolution_rad`` of a nearer kept one. Returns ``labels`` (N,): the kept
    index each object is merged into."""
    n = los.shape[0]
    labels = np.arange(n)
    if resolution_rad <= 0.0 or n < 2:
        return labels
    order = np.argsort(rng_m, kind="stable")
    cos_res = np.cos(resolution_rad)
    kept: list[int] = []
    for i in order:
        if kept:
            c = los[kept] @ los[i]
            j = int(np.argmax(c))
            if c[j] >= cos_res:
                labels[i] = kept[j]
                continue
        kept.append(int(i))
    return labels
