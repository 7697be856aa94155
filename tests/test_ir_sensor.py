"""IR sensor geometry and noise primitives against independent geometry (sensors/ir_sensor.py)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from tracklayer.fusion.constants import R_EARTH_EQ, R_EARTH_POLAR
from tracklayer.sensors.ir_sensor import (
    cone_basis,
    cone_directions,
    keyed_rng,
    merge_by_resolution,
    perturb,
    regard_half_angle,
    stable_hash,
    visible,
)

R = R_EARTH_EQ  # the equatorial plane cuts the WGS-84 ellipsoid in a circle of this radius
SAT = np.array([R + 1000e3, 0.0, 0.0])
GRAZING = 50e3
MAX_RANGE = 6000e3


def _limb_pair(tangent_height_m: float) -> tuple[np.ndarray, np.ndarray]:
    """A satellite and a target on one line (equatorial plane) whose closest approach to the
    Earth's centre, between them, is ``tangent_height_m`` above the surface."""
    y = R + tangent_height_m
    xs = math.sqrt((R + 1000e3) ** 2 - y**2)
    xt = math.sqrt((R + 1200e3) ** 2 - y**2)
    return np.array([xs, y, 0.0]), np.array([-xt, y, 0.0])


def test_target_behind_the_earth_is_never_visible():
    target = np.array([-(R + 1500e3), 0.0, 0.0])
    assert not visible(SAT, target, GRAZING, 1e9)
    assert not visible(SAT, target, 0.0, 1e9)


def test_target_above_the_limb_with_enough_grazing_height_is_visible():
    sat, target = _limb_pair(80e3)
    rng = np.linalg.norm(target - sat)
    assert visible(sat, target, GRAZING, rng + 1.0)


def test_limb_view_below_the_grazing_height_is_not_visible():
    sat, target = _limb_pair(30e3)  # clears the surface, but through the thick atmosphere
    assert not visible(sat, target, GRAZING, 1e9)
    assert visible(sat, target, 20e3, 1e9)  # a lower grazing height lets it through


def test_limb_clearance_over_the_pole_is_measured_from_the_flattened_surface():
    # a line of sight grazing the North pole 30 km up: the WGS-84 surface there is 21 km
    # below the equatorial radius, so a sphere of radius R would see only 8.6 km of
    # clearance and wrongly hide the target behind a 20 km grazing height
    z = R_EARTH_POLAR + 30e3
    sat = np.array([-math.sqrt((R + 1000e3) ** 2 - z**2), 0.0, z])
    target = np.array([math.sqrt((R + 1200e3) ** 2 - z**2), 0.0, z])
    assert visible(sat, target, 20e3, 1e9)
    assert not visible(sat, target, 40e3, 1e9)


def test_low_target_seen_against_the_earth_from_above_is_visible():
    # a boosting missile 20 km up, 300 km from the sub-satellite point: the view is downward,
    # the grazing height (for limb views) does not apply
    a = 300e3 / R
    target = (R + 20e3) * np.array([math.cos(a), math.sin(a), 0.0])
    assert visible(SAT, target, GRAZING, MAX_RANGE)


def test_target_beyond_max_range_is_not_visible():
    target = np.array([R + 1000e3, 6100e3, 0.0])
    assert not visible(SAT, target, GRAZING, MAX_RANGE)
    assert visible(SAT, target, GRAZING, 6200e3)


def test_visibility_broadcasts_over_objects_and_satellites():
    targets = np.stack([np.array([-(R + 1500e3), 0, 0]), np.array([R + 1200e3, 1e5, 0])])
    sats = np.stack([SAT, SAT])
    out = visible(sats[None, :, :], targets[:, None, :], GRAZING, MAX_RANGE)
    assert out.shape == (2, 2)
    assert not out[0].any() and out[1].all()


def test_perturbation_turns_the_los_by_the_offset_within_the_tangent_plane():
    rng = np.random.default_rng(5)
    u = rng.normal(size=(500, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    off = rng.normal(scale=30e-6, size=(500, 2))
    v = perturb(u, off)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-15)
    angle = np.arccos(np.clip(np.sum(u * v, axis=1), -1, 1))
    # rotation by |offset|: float64 arccos near 1 resolves ~1e-8 rad
    assert np.allclose(angle, np.linalg.norm(off, axis=1), atol=2e-8)


def test_clutter_directions_fill_the_cone_uniformly_in_solid_angle():
    axis = np.array([0.0, 0.0, -1.0])
    half = float(regard_half_angle(R + 1000e3))
    # Earth disc (59.8 deg at 1,000 km) plus a 500 km limb band
    assert math.degrees(half) == pytest.approx(68.8, abs=0.2)
    basis = cone_basis(axis[None, :])[0]
    d = cone_directions(basis, half, np.random.default_rng(1).random((20000, 2)))
    cos_t = d @ axis
    assert cos_t.min() >= math.cos(half) - 1e-12
    # uniform in solid angle <=> cos(theta) uniform on [cos(half), 1]
    ks = stats.kstest(cos_t, stats.uniform(math.cos(half), 1 - math.cos(half)).cdf)
    assert ks.pvalue > 1e-3


def test_objects_closer_than_the_resolution_merge_into_the_nearer():
    u = np.array([[1.0, 0.0, 0.0], [1.0, 5e-6, 0.0], [1.0, 1e-3, 0.0]])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    labels = merge_by_resolution(u, np.array([2000e3, 1500e3, 1800e3]), 10e-6)
    # 0 and 1 are 5 urad apart: merged into the nearer (1); 2 is 1 mrad away: alone
    assert labels.tolist() == [1, 1, 2]
    assert merge_by_resolution(u, np.ones(3), 0.0).tolist() == [0, 1, 2]


def test_stable_hash_is_the_same_in_another_process():
    # Python's hash() is salted per process (PYTHONHASHSEED); the keyed streams must not be
    code = "from tracklayer.sensors.ir_sensor import stable_hash; print(stable_hash('sat-1-1'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert int(out.stdout) == stable_hash("sat-1-1")
    assert stable_hash("sat-1-1") != stable_hash("sat-1-2")


def test_keyed_streams_depend_only_on_their_keys():
    a = keyed_rng(7, 1, 42, 3).random(4)
    assert np.array_equal(a, keyed_rng(7, 1, 42, 3).random(4))
    assert not np.array_equal(a, keyed_rng(7, 1, 42, 4).random(4))
    assert not np.array_equal(a, keyed_rng(8, 1, 42, 3).random(4))
