"""Walker-delta and TLE constellations through SGP4 (sensors/constellation.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracklayer.fusion.constants import GM_EARTH, R_EARTH_EQ
from tracklayer.sensors.constellation import ConstellationError, parse_tle, walker_delta

EPOCH_S = 1767225600.0  # 2026-01-01T00:00:00Z
ISS = """ISS (ZARYA)
1 25544U 98067A   26001.00000000  .00016717  00000-0  10270-3 0  9005
2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579 12345
"""


@pytest.fixture(scope="module")
def walker():
    return walker_delta(EPOCH_S, 1000e3, math.radians(80.0), 4, 7, 1)


def _elements(r, v):
    """Inclination, RAAN and argument of latitude (deg) of position/velocity rows."""
    h = np.cross(r, v)
    inc = np.degrees(np.arccos(h[:, 2] / np.linalg.norm(h, axis=1)))
    node = np.cross([0.0, 0.0, 1.0], h)
    raan = np.degrees(np.arctan2(node[:, 1], node[:, 0]))
    n_hat = node / np.linalg.norm(node, axis=1, keepdims=True)
    cos_u = np.sum(n_hat * r, axis=1) / np.linalg.norm(r, axis=1)
    u = np.degrees(np.arccos(np.clip(cos_u, -1, 1)))
    u = np.where(r[:, 2] < 0, 360.0 - u, u)
    return inc, raan, u


def test_walker_ids_are_plane_and_slot_from_one(walker):
    assert len(walker) == 28
    assert walker.ids[0] == "sat-1-1" and walker.ids[6] == "sat-1-7" and walker.ids[-1] == "sat-4-7"


def test_walker_orbits_are_circular_at_the_altitude_and_inclination(walker):
    r, v = walker.propagate(np.array([EPOCH_S]))
    r, v = r[:, 0], v[:, 0]
    alt = np.linalg.norm(r, axis=1) - R_EARTH_EQ
    # SGP4 mean elements: J2 short-period terms and Earth's flattening move the radius by km
    assert np.all(np.abs(alt - 1000e3) < 25e3)
    inc, _, _ = _elements(r, v)
    assert np.allclose(inc, 80.0, atol=0.1)  # short-period J2 wobble of the osculating value
    # circular-orbit speed at that radius
    assert np.allclose(np.linalg.norm(v, axis=1), np.sqrt(GM_EARTH / (R_EARTH_EQ + 1000e3)),
                       rtol=5e-3)  # fmt: skip


def test_walker_planes_and_slots_follow_the_delta_pattern(walker):
    r, v = walker.propagate(np.array([EPOCH_S]))
    _, raan, u = _elements(r[:, 0], v[:, 0])
    raan, u = raan.reshape(4, 7), u.reshape(4, 7)
    # planes 360/P = 90 deg apart in RAAN
    assert np.allclose(np.diff(raan[:, 0]) % 360.0, 90.0, atol=0.2)
    # slots 360/S apart in argument of latitude within a plane
    assert np.allclose(np.diff(u, axis=1) % 360.0, 360.0 / 7, atol=0.5)
    # the next plane is ahead by F * 360 / T
    assert (u[1, 0] - u[0, 0]) % 360.0 == pytest.approx(360.0 * 1 / 28, abs=0.5)


def test_walker_period_follows_keplers_third_law(walker):
    a = R_EARTH_EQ + 1000e3
    period = 2 * math.pi * math.sqrt(a**3 / GM_EARTH)
    r, v = walker.propagate(np.array([EPOCH_S, EPOCH_S + period]))
    _, _, u0 = _elements(r[:, 0], v[:, 0])
    _, _, u1 = _elements(r[:, 1], v[:, 1])
    # back to the same argument of latitude after one period (J2 drift: < 1 deg per orbit)
    d = (u1 - u0 + 180.0) % 360.0 - 180.0
    assert np.all(np.abs(d) < 1.0)


def test_per_satellite_times_agree_with_common_times(walker):
    t = EPOCH_S + np.arange(5.0)
    r_common, v_common = walker.propagate(t)
    times = np.tile(t, (28, 1))
    times[3] += 0.25  # one satellite looks a quarter second later: the general path
    r_each, v_each = walker.propagate_each(times)
    mask = np.ones(28, bool)
    mask[3] = False
    assert np.array_equal(r_each[mask], r_common[mask])
    r_late, _ = walker.propagate(t + 0.25)
    assert np.allclose(r_each[3], r_late[3], atol=1e-6)


def test_tle_satellite_is_named_and_flies_at_its_altitude():
    c = parse_tle(ISS)
    assert c.ids == ("ISS (ZARYA)",)
    r, _ = c.propagate(EPOCH_S + np.arange(0.0, 5600.0, 60.0))
    alt_km = (np.linalg.norm(r[0], axis=1) - R_EARTH_EQ) / 1e3
    # mean motion 15.50 rev/day: ~420 km, with the flattening's ~20 km swing
    assert 380 < alt_km.min() and alt_km.max() < 460


def test_tle_positions_equal_sgp4_called_with_an_exact_julian_date():
    from sgp4.api import WGS72, Satrec, jday

    lines = ISS.splitlines()
    sat = Satrec.twoline2rv(lines[1], lines[2], WGS72)
    jd, fr = jday(2026, 1, 1, 0, 20, 34.567)  # = EPOCH_S + 1234.567, split exactly
    _, r_ref, v_ref = sat.sgp4(jd, fr)
    r, v = parse_tle(ISS).propagate(np.array([EPOCH_S + 1234.567]))
    # same propagator: only the time's float64 resolution at 1.8e9 s (2.4e-7 s, ~2 mm of
    # LEO motion) may differ; a Julian date carried as one float would be off by ~0.3 m
    assert np.linalg.norm(r[0, 0] - np.array(r_ref) * 1e3) < 5e-3
    assert np.linalg.norm(v[0, 0] - np.array(v_ref) * 1e3) < 1e-5


def test_bad_tle_names_the_line():
    with pytest.raises(ConstellationError, match="line 2"):
        parse_tle("SAT\n1 25544U\nnot a line two\n", "x.tle")
    with pytest.raises(ConstellationError, match="duplicate"):
        parse_tle(ISS + ISS, "x.tle")


def test_tle_name_that_cannot_be_a_sensor_id_names_the_line():
    # sensor ids travel comma-separated in the recording metadata
    with pytest.raises(ConstellationError, match="x.tle: line 1: .*'ISS, ZARYA'.*commas"):
        parse_tle(ISS.replace("ISS (ZARYA)", "ISS, ZARYA"), "x.tle")
