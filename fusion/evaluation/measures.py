"""The measures the evaluation is built from: pure functions of numpy arrays.

GOSPA (positions in metres, any common Cartesian frame), NEES, cubic Hermite
interpolation of a trajectory (seconds, metres, metres per second), the angle between
two lines of sight (deg), whether a ground offset lies inside a reported error ellipse
(east/north metres in the local tangent plane at the ellipse centre, WGS-84), ground
offsets between surface points, and the small statistics every figure uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..geodesy import geodetic_to_ecef, great_circle_m
from .settings import GOSPA_ALPHA, GOSPA_C_M, GOSPA_P


def hermite_interpolate(
    t: np.ndarray, pos: np.ndarray, vel: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cubic Hermite interpolation of a trajectory.

    ``t`` (N,) strictly increasing sample times (s), ``pos`` (N, 3) m, ``vel`` (N, 3) m/s,
    ``q`` (K,) query times (s). Returns position (K, 3) and velocity (K, 3); NaN for
    queries outside [t[0], t[-1]]. Exact for any cubic polynomial trajectory.
    """
    t = np.asarray(t, dtype=float)
    q = np.asarray(q, dtype=float).reshape(-1)
    out_p = np.full((q.size, 3), np.nan)
    out_v = np.full((q.size, 3), np.nan)
    if t.size == 0:
        return out_p, out_v
    inside = (q >= t[0]) & (q <= t[-1])
    if t.size == 1:
        out_p[inside] = pos[0]
        out_v[inside] = vel[0]
        return out_p, out_v
    qi = q[inside]
    i = np.clip(np.searchsorted(t, qi, side="right") - 1, 0, t.size - 2)
    h = (t[i + 1] - t[i])[:, None]
    s = ((qi - t[i]) / (t[i + 1] - t[i]))[:, None]
    s2, s3 = s * s, s * s * s
    p0, p1, v0, v1 = pos[i], pos[i + 1], vel[i], vel[i + 1]
    out_p[inside] = (
        (2 * s3 - 3 * s2 + 1) * p0
        + (s3 - 2 * s2 + s) * h * v0
        + (-2 * s3 + 3 * s2) * p1
        + (s3 - s2) * h * v1
    )
    out_v[inside] = (
        (6 * s2 - 6 * s) * p0 / h
        + (3 * s2 - 4 * s + 1) * v0
        + (-6 * s2 + 6 * s) * p1 / h
        + (3 * s2 - 2 * s) * v1
    )
    return out_p, out_v


@dataclass(frozen=True, slots=True)
class GospaResult:
    """GOSPA at one time. ``pairs``: (truth index, track index) assigned at distance < c."""

    distance_m: float
    localisation_m2: float  # sum of d^p over assigned pairs (p = 2: m^2)
    missed_m2: float  # c^p / alpha per missed object
    false_m2: float  # c^p / alpha per false track
    n_missed: int
    n_false: int
    pairs: tuple[tuple[int, int], ...]


def assign_gospa(dist: np.ndarray, c: float, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal GOSPA (alpha = 2) assignment on a distance matrix (rows x cols, inf allowed).

    Returns row and column indices of pairs at distance < c.
    """
    if dist.size == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    cost = np.minimum(dist, c) ** p
    rows, cols = linear_sum_assignment(cost)
    ok = dist[rows, cols] < c
    return rows[ok], cols[ok]


def gospa(
    truth_positions: np.ndarray,
    track_positions: np.ndarray,
    c: float = GOSPA_C_M,
    p: float = GOSPA_P,
    alpha: float = GOSPA_ALPHA,
) -> GospaResult:
    """GOSPA metric between truth positions (m, 3) and track positions (n, 3), metres.

    Only alpha = 2 is supported (the assignment form of Rahmathullah et al. 2017).
    """
    if alpha != 2.0:
        raise ValueError(f"alpha: only 2 is supported, got {alpha}")
    x = np.asarray(truth_positions, dtype=float).reshape(-1, 3)
    y = np.asarray(track_positions, dtype=float).reshape(-1, 3)
    dist = np.linalg.norm(x[:, None, :] - y[None, :, :], axis=2)
    rows, cols = assign_gospa(dist, c, p)
    loc = float(np.sum(dist[rows, cols] ** p))
    n_missed = x.shape[0] - rows.size
    n_false = y.shape[0] - rows.size
    unit = c**p / alpha
    return GospaResult(
        distance_m=gospa_distance(loc, n_missed, n_false, c, p, alpha),
        localisation_m2=loc,
        missed_m2=unit * n_missed,
        false_m2=unit * n_false,
        n_missed=n_missed,
        n_false=n_false,
        pairs=tuple((int(r), int(k)) for r, k in zip(rows, cols, strict=True)),
    )


def gospa_distance(
    localisation_m2: Any,
    n_missed: Any,
    n_false: Any,
    c: float,
    p: float,
    alpha: float = GOSPA_ALPHA,
) -> Any:
    """GOSPA (m) from its parts: localisation (sum of d^p, m^p) and the numbers of missed
    objects and false tracks, each costing c^p / alpha; scalars or arrays."""
    return (localisation_m2 + c**p / alpha * (n_missed + n_false)) ** (1.0 / p)


def line_angle_deg(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Angle (deg, [0, 90]) between the lines along direction vectors ``u1`` and ``u2`` (..., 3)."""
    a = np.asarray(u1, float)
    b = np.asarray(u2, float)
    c = np.abs(np.sum(a * b, axis=-1)) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(c, 0.0, 1.0)))


def nees(error: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Normalised estimation error squared e^T P^-1 e; errors (K, d), covariances (K, d, d)."""
    e = np.asarray(error, float)
    P = np.asarray(covariance, float)
    if e.shape[0] == 0:
        return np.zeros(0)
    try:
        sol = np.linalg.solve(P, e[..., None])[..., 0]
    except np.linalg.LinAlgError:
        sol = np.einsum("kij,kj->ki", np.linalg.pinv(P), e)
    return np.einsum("ki,ki->k", e, sol)


def inside_ellipse(
    east_m: np.ndarray,
    north_m: np.ndarray,
    semi_major_m: np.ndarray,
    semi_minor_m: np.ndarray,
    orientation_deg: np.ndarray,
    scale: float = 3.0,
) -> np.ndarray:
    """Whether offsets (east, north) from an ellipse centre lie inside ``scale`` x the ellipse.

    The ellipse's major axis points ``orientation_deg`` clockwise from north.
    """
    th = np.radians(np.asarray(orientation_deg, float))
    a = np.asarray(east_m) * np.sin(th) + np.asarray(north_m) * np.cos(th)  # along major
    b = np.asarray(east_m) * np.cos(th) - np.asarray(north_m) * np.sin(th)  # along minor
    big = np.maximum(scale * np.asarray(semi_major_m, float), 1e-9)
    small = np.maximum(scale * np.asarray(semi_minor_m, float), 1e-9)
    return (a / big) ** 2 + (b / small) ** 2 <= 1.0


def ground_offset_en(
    lat0_deg: np.ndarray, lon0_deg: np.ndarray, lat_deg: np.ndarray, lon_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """East and north offsets (m) of surface points from surface centres (all WGS-84, height 0),
    in the local east/north plane at each centre (arrays broadcast)."""
    la0 = np.radians(np.asarray(lat0_deg, float))
    lo0 = np.radians(np.asarray(lon0_deg, float))
    d = geodetic_to_ecef(lat_deg, lon_deg, 0.0) - geodetic_to_ecef(lat0_deg, lon0_deg, 0.0)
    east = -np.sin(lo0) * d[..., 0] + np.cos(lo0) * d[..., 1]
    north = (
        -np.sin(la0) * np.cos(lo0) * d[..., 0]
        - np.sin(la0) * np.sin(lo0) * d[..., 1]
        + np.cos(la0) * d[..., 2]
    )
    return east, north


def nearest_index(t: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Index of the sample of sorted times ``t`` nearest to each query time ``q``."""
    j = np.clip(np.searchsorted(t, q), 0, t.size - 1)
    j0 = np.maximum(j - 1, 0)
    return np.where(np.abs(t[j0] - q) < np.abs(t[j] - q), j0, j)


def stat(values: np.ndarray, fn: Callable[[np.ndarray], object]) -> float:
    """``fn(values)`` as a float; NaN for no values."""
    return float(fn(values)) if values.size else math.nan


def share(flags: np.ndarray) -> float:
    """Share of True among ``flags``; NaN for none."""
    return float(np.mean(flags)) if flags.size else math.nan


def rmse(err: np.ndarray) -> float:
    """Root mean square of the norms of error rows ``err`` (K, 3); NaN for K = 0."""
    return float(np.sqrt(np.mean(np.sum(err * err, axis=1)))) if err.shape[0] else math.nan


def ground_point_errors(
    ellipses: np.ndarray, point_latlon_deg: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Great-circle error (m) of predicted ground points against a true one, and whether
    the true point lies inside each prediction's 3-sigma ellipse.

    ``ellipses`` (K, 5): latitude deg, longitude deg, semi-major m, semi-minor m,
    orientation deg clockwise from north (1-sigma); ``point_latlon_deg`` WGS-84 (deg).
    """
    err = np.asarray(
        great_circle_m(ellipses[:, 0], ellipses[:, 1], point_latlon_deg[0], point_latlon_deg[1])
    )
    e, n = ground_offset_en(ellipses[:, 0], ellipses[:, 1], *point_latlon_deg)
    return err, inside_ellipse(e, n, ellipses[:, 2], ellipses[:, 3], ellipses[:, 4])
