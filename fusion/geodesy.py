"""The one coordinate-frame module (DESIGN §2): TEME, ECEF and WGS-84 geodetic.

ECI means TEME (the frame SGP4 outputs). ECEF = R3(GMST) @ TEME, with GMST
from ``sgp4.propagation.gstime`` (IAU-82, UT1 = UTC, polar motion ignored).
pymap3d is used only for ECEF <-> geodetic (WGS-84); never its ``eci2ecef``.

Times are seconds since the Unix epoch (UTC, float) unless a name says ``_ns``.
Positions in metres, velocities in m/s, geodetic angles in degrees.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pymap3d
from numpy.typing import ArrayLike
from sgp4.propagation import gstime

from .constants import JD_UNIX_EPOCH, OMEGA_EARTH, R_EARTH_MEAN, SECONDS_PER_DAY

_OMEGA_VEC = np.array([0.0, 0.0, OMEGA_EARTH])


def julian_date(t_s: ArrayLike) -> np.ndarray | float:
    """Julian date (UTC = UT1) of Unix time ``t_s`` (s)."""
    return np.asarray(t_s, dtype=float) / SECONDS_PER_DAY + JD_UNIX_EPOCH


def unix_from_jd(jd: float, fr: float = 0.0) -> float:
    """Unix time (s) of a split Julian date ``jd + fr``."""
    return ((jd - JD_UNIX_EPOCH) + fr) * SECONDS_PER_DAY


def gmst(t_s: ArrayLike) -> np.ndarray | float:
    """Greenwich mean sidereal angle (rad, [0, 2 pi)) at Unix time ``t_s`` (s); IAU-82."""
    t = np.asarray(t_s, dtype=float)
    if t.ndim == 0:
        return float(gstime(float(julian_date(t))))
    jd = julian_date(t).reshape(-1)
    return np.fromiter((gstime(float(j)) for j in jd), float, jd.size).reshape(t.shape)


def _rot3(theta: np.ndarray) -> np.ndarray:
    """R3(theta) matrices, shape (..., 3, 3): rotate the axes by theta about z."""
    c, s = np.cos(theta), np.sin(theta)
    out = np.zeros(np.shape(c) + (3, 3))
    out[..., 0, 0] = c
    out[..., 0, 1] = s
    out[..., 1, 0] = -s
    out[..., 1, 1] = c
    out[..., 2, 2] = 1.0
    return out


def teme_to_ecef_matrix(t_s: ArrayLike) -> np.ndarray:
    """Rotation matrix (3, 3) or (N, 3, 3) taking TEME vectors to ECEF at ``t_s``."""
    return _rot3(np.asarray(gmst(t_s)))


@lru_cache(maxsize=16)
def _matrix_at(t_s: float) -> np.ndarray:
    """:func:`teme_to_ecef_matrix` at one time (read only, cached: the tracker converts
    many positions of one frame time one at a time)."""
    m = teme_to_ecef_matrix(t_s)
    m.flags.writeable = False
    return m


def teme_to_ecef_points(r_teme: np.ndarray, t_s: float) -> np.ndarray:
    """TEME positions (K, 3) m at one time ``t_s`` -> ECEF (K, 3) m: the floats of
    :func:`teme_to_ecef` (its einsum sums each row's products from +0.0 in column order;
    tests/test_fusion_same_floats.py) in a few elementwise operations, for the
    tracker's launch samples of one frame time (einsum over a stack costs more)."""
    m = _matrix_at(float(t_s))
    r = np.asarray(r_teme, dtype=float)
    return ((0.0 + r[:, 0:1] * m[:, 0]) + r[:, 1:2] * m[:, 1]) + r[:, 2:3] * m[:, 2]


def _matrix(t_s: ArrayLike) -> np.ndarray:
    """TEME -> ECEF matrices at ``t_s`` (do not modify: one time comes from a cache)."""
    if np.ndim(t_s) == 0:
        return _matrix_at(float(t_s))
    return teme_to_ecef_matrix(t_s)


def teme_to_ecef(
    r_teme: ArrayLike, t_s: ArrayLike, v_teme: ArrayLike | None = None
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """TEME position (m) [and velocity, m/s] -> ECEF, for one time or one time per row.

    ``r_teme`` (3,) or (N, 3); ``t_s`` scalar or (N,). Velocities include the
    Earth-rotation term ``v_ecef = R v_teme - omega x r_ecef``.
    """
    m = _matrix(t_s)
    r = np.einsum("...ij,...j->...i", m, np.asarray(r_teme, dtype=float))
    if v_teme is None:
        return r
    v = np.einsum("...ij,...j->...i", m, np.asarray(v_teme, dtype=float))
    return r, v - np.cross(_OMEGA_VEC, r)


def ecef_to_teme(
    r_ecef: ArrayLike, t_s: ArrayLike, v_ecef: ArrayLike | None = None
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """ECEF position (m) [and velocity, m/s] -> TEME; the inverse of :func:`teme_to_ecef`."""
    m = np.swapaxes(_matrix(t_s), -1, -2)
    r_e = np.asarray(r_ecef, dtype=float)
    r = np.einsum("...ij,...j->...i", m, r_e)
    if v_ecef is None:
        return r
    v_inertial_ecef = np.asarray(v_ecef, dtype=float) + np.cross(_OMEGA_VEC, r_e)
    return r, np.einsum("...ij,...j->...i", m, v_inertial_ecef)


def ecef_to_geodetic(r_ecef: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF (m), shape (3,) or (N, 3) -> geodetic latitude (deg), longitude (deg, [-180, 180)),
    height above WGS-84 (m)."""
    r = np.asarray(r_ecef, dtype=float)
    lat, lon, alt = pymap3d.ecef2geodetic(r[..., 0], r[..., 1], r[..., 2])
    lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
    return np.asarray(lat), lon, np.asarray(alt)


_WGS84_A, _WGS84_B = 6378137.0, 6356752.31424518  # m, pymap3d's WGS-84 semi-axes
_POLE_LIM = np.pi / 2 - float(np.finfo(float).eps)  # rad, pymap3d's float32 patch


def ecef_to_geodetic_point(r_ecef: np.ndarray) -> tuple[float, float, float]:
    """One ECEF position (3,) m -> geodetic latitude, longitude (deg, [-180, 180)) and
    height (m): :func:`ecef_to_geodetic`'s floats (pymap3d's ``ecef2geodetic``, You 2000,
    its operations in its order: Python float arithmetic where it does elementwise
    arithmetic, numpy's own ``hypot``, ``arctan``, ``sin``, ... where it calls them;
    tests/test_fusion_same_floats.py) at ~7 us instead of ~100 (pymap3d's overhead on a
    single point). Points pymap3d treats apart (on the axis, at the centre, not finite)
    go to :func:`ecef_to_geodetic` itself."""
    x, y, z = (float(c) for c in r_ecef)
    if not abs(x) + abs(y) + abs(z) < np.inf:  # not finite
        lat, lon, alt = ecef_to_geodetic(np.array([x, y, z]))
        return float(lat), float(lon), float(alt)
    a, b = _WGS84_A, _WGS84_B
    e = float(np.sqrt(a**2 - b**2))
    r = float(np.sqrt((x * x + y * y) + z * z))
    q = r**2 - e**2
    u = float(np.sqrt(0.5 * q + 0.5 * float(np.hypot(q, 2 * e * z))))
    hxy = float(np.hypot(x, y))
    if not (u > 1e-8 and hxy > 1e-8):  # pymap3d's isclose(., 0): its own branch
        lat, lon, alt = ecef_to_geodetic(np.array([x, y, z]))
        return float(lat), float(lon), float(alt)
    hue = float(np.hypot(u, e))
    b0 = float(np.arctan(hue / u * z / hxy))
    c0 = float(np.cos(b0))
    beta = b0 + ((b * u - a * hue + e**2) * float(np.sin(b0))) / (a * hue * 1 / c0 - e**2 * c0)
    lat = float(np.arctan(a / b * float(np.tan(beta))))
    cos_beta = float(np.cos(beta))
    if beta >= _POLE_LIM or beta <= -_POLE_LIM:
        lat = np.pi / 2 if beta >= _POLE_LIM else -np.pi / 2
        cos_beta = 0.0
    alt = float(np.hypot(z - b * float(np.sin(beta)), hxy - a * cos_beta))
    if x * x / a**2 + y * y / a**2 + z * z / b**2 < 1:  # inside the ellipsoid
        alt = -alt
    lon = float((np.degrees(np.arctan2(y, x)) + 180.0) % 360.0 - 180.0)
    return float(np.degrees(lat)), lon, alt


def geodetic_to_ecef(lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike = 0.0) -> np.ndarray:
    """Geodetic (deg, deg, m above WGS-84) -> ECEF (m), shape (..., 3)."""
    x, y, z = pymap3d.geodetic2ecef(
        np.asarray(lat_deg, float), np.asarray(lon_deg, float), np.asarray(alt_m, float)
    )
    return np.stack([np.asarray(x), np.asarray(y), np.asarray(z)], axis=-1)


def teme_to_geodetic(
    r_teme: ArrayLike, t_s: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TEME position (m) at ``t_s`` -> geodetic latitude, longitude (deg), height (m)."""
    return ecef_to_geodetic(teme_to_ecef(r_teme, t_s))


def geodetic_to_teme(
    lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike, t_s: ArrayLike
) -> np.ndarray:
    """Geodetic point (deg, deg, m) at ``t_s`` -> TEME position (m)."""
    return ecef_to_teme(geodetic_to_ecef(lat_deg, lon_deg, alt_m), t_s)


def enu_matrix(lat_deg: float, lon_deg: float) -> np.ndarray:
    """Rows are the local east, north, up unit vectors (in ECEF) at a geodetic point."""
    la, lo = np.radians(lat_deg), np.radians(lon_deg)
    sl, cl, so, co = np.sin(la), np.cos(la), np.sin(lo), np.cos(lo)
    return np.array([[-so, co, 0.0], [-sl * co, -sl * so, cl], [cl * co, cl * so, sl]])


def great_circle_m(
    lat1_deg: ArrayLike, lon1_deg: ArrayLike, lat2_deg: ArrayLike, lon2_deg: ArrayLike
) -> np.ndarray | float:
    """Great-circle distance (m) on the mean-radius sphere (haversine)."""
    p1, p2 = np.radians(lat1_deg), np.radians(lat2_deg)
    dl = np.radians(np.asarray(lon2_deg) - np.asarray(lon1_deg))
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2.0 * R_EARTH_MEAN * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def ground_ellipse(cov_en: np.ndarray) -> tuple[float, float, float]:
    """1-sigma ellipse of a 2x2 east/north covariance (m^2) -> (semi-major m, semi-minor m,
    orientation of the major axis in degrees clockwise from north, [0, 180))."""
    c = 0.5 * (np.asarray(cov_en, float) + np.asarray(cov_en, float).T)
    w, v = np.linalg.eigh(c)
    w = np.clip(w, 0.0, None)
    major = v[:, 1]  # (east, north) components of the larger eigenvector
    az = np.degrees(np.arctan2(major[0], major[1])) % 180.0
    return float(np.sqrt(w[1])), float(np.sqrt(w[0])), float(az)
