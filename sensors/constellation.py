"""Satellite constellations propagated by SGP4 (positions and velocities in TEME).

A Walker-delta pattern i:T/P/F is built from mean elements with ``Satrec.sgp4init``
(WGS-72 constants, as SGP4 expects); a TLE file goes through the same propagator.
Satellite ids: ``sat-P-S`` (plane, slot, from 1) for Walker, the TLE name for TLE files.
"""

from __future__ import annotations

import math

import numpy as np
from sgp4.api import SGP4_ERRORS, WGS72, Satrec, SatrecArray
from sgp4.earth_gravity import wgs72

from tracklayer.fusion.constants import JD_UNIX_EPOCH, SECONDS_PER_DAY
from tracklayer.fusion.domain import MAX_SENSOR_ID_CHARS

_JD_SGP4_EPOCH = 2433281.5  # 1949 December 31 00:00 UT, SGP4's epoch origin


class ConstellationError(ValueError):
    """Bad constellation input (a TLE that does not parse, duplicate names, ...)."""


class Constellation:
    """Satellites in a fixed order (``ids``, as built) with their SGP4 records."""

    def __init__(self, ids: tuple[str, ...], satrecs: tuple[Satrec, ...]) -> None:
        self.ids = tuple(ids)
        self.satrecs = tuple(satrecs)
        self._array = SatrecArray(list(self.satrecs))

    def __len__(self) -> int:
        return len(self.ids)

    def propagate(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (S, N, 3) m and velocities (S, N, 3) m/s in TEME of every satellite
        at the common Unix times ``t_s`` (N,) s (one vectorised SGP4 call)."""
        jd, fr = _split_jd(np.atleast_1d(np.asarray(t_s, float)))
        err, r, v = self._array.sgp4(jd, fr)
        _check(err, self.ids)
        return r * 1e3, v * 1e3

    def propagate_each(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions and velocities (S, N, 3) with one row of times per satellite:
        ``t_s`` (S, N) Unix s (satellites look at different instants)."""
        t = np.asarray(t_s, float)
        if t.ndim != 2 or t.shape[0] != len(self.ids):
            raise ValueError(f"t_s: expected shape ({len(self.ids)}, N), got {t.shape}")
        if np.all(t == t[:1]):
            return self.propagate(t[0])
        r = np.empty((*t.shape, 3))
        v = np.empty((*t.shape, 3))
        for k, sat in enumerate(self.satrecs):
            jd, fr = _split_jd(t[k])
            err, rk, vk = sat.sgp4_array(jd, fr)
            _check(err[None, :], (self.ids[k],))
            r[k], v[k] = rk, vk
        return r * 1e3, v * 1e3


def _split_jd(t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unix seconds -> (Julian date of the UTC midnight before, fraction of the day).

    Split before converting: a single float Julian date (~2.46e6) resolves only ~40 us,
    ~0.3 m of LEO motion; the seconds of the day are exact in float64."""
    t = np.asarray(t_s, float)
    days = np.floor(t / SECONDS_PER_DAY)
    return days + JD_UNIX_EPOCH, (t - days * SECONDS_PER_DAY) / SECONDS_PER_DAY


def _check(err: np.ndarray, ids) -> None:
    if np.any(err):
        k = int(np.nonzero(np.any(err, axis=1))[0][0])
        code = int(err[k].max())
        why = SGP4_ERRORS.get(code, "unknown error")
        raise ConstellationError(f"{ids[k]}: SGP4 cannot propagate it (code {code}: {why})")


def walker_delta(
    epoch_s: float,
    altitude_m: float,
    inclination_rad: float,
    planes: int,
    per_plane: int,
    phasing: int,
) -> Constellation:
    """Walker-delta i:T/P/F with circular orbits at ``altitude_m`` above the WGS-72 radius.

    Plane p (0-based) has RAAN 2 pi p / P; slot s has mean anomaly
    2 pi s / S + 2 pi F p / T. Mean motion from Kepler's third law with WGS-72 mu
    (SGP4's Kozai mean motion; the J2 secular drift is SGP4's business).
    """
    total = planes * per_plane
    a_km = wgs72.radiusearthkm + altitude_m / 1e3
    n_rad_min = math.sqrt(wgs72.mu / a_km**3) * 60.0
    epoch_days = epoch_s / SECONDS_PER_DAY + (JD_UNIX_EPOCH - _JD_SGP4_EPOCH)
    ids, recs = [], []
    for p in range(planes):
        raan = 2 * math.pi * p / planes
        for s in range(per_plane):
            m = (2 * math.pi * s / per_plane + 2 * math.pi * phasing * p / total) % (2 * math.pi)
            sat = Satrec()
            sat.sgp4init(
                WGS72, "i", p * per_plane + s + 1, epoch_days,
                0.0, 0.0, 0.0, 0.0, 0.0,  # bstar, ndot, nddot, ecco, argpo
                inclination_rad, m, n_rad_min, raan,
            )  # fmt: skip
            ids.append(f"sat-{p + 1}-{s + 1}")
            recs.append(sat)
    return Constellation(tuple(ids), tuple(recs))


def parse_tle(text: str, source: str = "<tle>") -> Constellation:
    """Satellites from TLE text: three-line sets (name, line 1, line 2) or bare two-line
    sets (named by catalogue number). Raises ConstellationError naming the line."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    ids, recs = [], []
    i = 0
    while i < len(lines):
        name = None
        if not lines[i].startswith("1 "):
            name = lines[i].strip()
            if name.startswith("0 "):
                name = name[2:].strip()
            i += 1
        if i + 1 >= len(lines) or not (lines[i].startswith("1 ") and lines[i + 1].startswith("2 ")):
            raise ConstellationError(f"{source}: line {i + 1}: expected TLE lines '1 ...', '2 ...'")
        try:
            sat = Satrec.twoline2rv(lines[i], lines[i + 1], WGS72)
        except Exception as exc:  # sgp4 raises ValueError with its own wording
            raise ConstellationError(f"{source}: line {i + 1}: {exc}") from None
        name = name or str(sat.satnum)
        if "," in name or len(name) > MAX_SENSOR_ID_CHARS:
            raise ConstellationError(
                f"{source}: line {i}: satellite name {name[:60]!r} cannot be a sensor id "
                f"(no commas, at most {MAX_SENSOR_ID_CHARS} characters)"
            )
        if name in ids:
            raise ConstellationError(f"{source}: line {i + 1}: duplicate satellite name {name!r}")
        ids.append(name)
        recs.append(sat)
        i += 2
    if not recs:
        raise ConstellationError(f"{source}: no TLE sets found")
    return Constellation(tuple(ids), tuple(recs))
