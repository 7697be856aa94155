"""Impact-point prediction and launch-point estimation.

Impact: the ballistic state is propagated (point-mass + J2 gravity, exponential-
atmosphere drag below 100 km with an assumed ballistic coefficient) to the WGS-84
surface. The uncertainty comes from sigma points of the 6-D state plus ``ln(beta)``
(filterpy's ``JulierSigmaPoints``, kappa 0: 2n = 14 points per track, equal weights,
the zero-weight centre dropped), all tracks' points propagated together in one batched
RK4 (long steps in vacuum, short ones in the atmosphere, each point its own step
length). filterpy's ``unscented_transform`` of the surface points gives the predicted
point and its covariance, whose east/north part is the 1-sigma ground ellipse
(:func:`geodesy.ground_ellipse`).

Launch: for a track first seen while thrusting, a quadratic in time is fitted to its
earliest filtered positions (Earth-fixed frame, weighted by their variances) and
extrapolated back to the surface; the ellipse comes from the fit's covariance.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from . import geodesy, kernels
from .config import FusionConfig
from .constants import ATMOSPHERE_TOP_M
from .domain import GroundEllipse, seconds_to_ns
from .dynamics import drag, ellipsoid_height, gravity

_N_AUG = 7  # 6-D state + ln(beta)
_APPROACH_MARGIN_M = 20_000.0  # m above the atmosphere where the long steps end
_AIR_HEIGHT_PER_STEP_M = 10_000.0  # m of height per atmosphere_step_s in the air ...
_AIR_STEP_MAX_FACTOR = 20.0  # ... up to this many atmosphere_step_s per step
_AIR_CHECK_BELOW_M = 250_000.0  # m; above this no point reaches the air within one step
_SIGMA_JITTER = 1e-9  # added to the covariance diagonal (m^2 ...) so eigh stays stable
_LAUNCH_MIN_SAMPLES = 4  # samples a launch fit needs
_LAUNCH_QUADRATIC_SPAN_S = 4.0  # s; a shorter span is fitted by a line
_LAUNCH_GRID_STEP_S = 0.1  # s; back-extrapolation grid
_LAUNCH_LOWEST_MAX_M = 2_000.0  # m; a fit that never crosses the ground must come this low


def _accel(r: np.ndarray, v: np.ndarray, inv_beta: np.ndarray, air: bool) -> np.ndarray:
    return gravity(r) + drag(r, v, inv_beta) if air else gravity(r)


def propagate_to_surface(
    r: np.ndarray,
    v: np.ndarray,
    inv_beta: np.ndarray,
    max_flight_s: float,
    step_s: float = 20.0,
    atmosphere_step_s: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Propagate K ballistic objects (ECI ``r``, ``v``; drag with ``1/beta``) forward to the
    WGS-84 surface.

    Returns the surface crossing positions (K, 3) ECI, the flight times (K,) s and a mask
    of the objects that reached the surface within ``max_flight_s``.
    """
    limits = (ATMOSPHERE_TOP_M, _APPROACH_MARGIN_M, _AIR_HEIGHT_PER_STEP_M, _AIR_STEP_MAX_FACTOR)
    compiled = kernels.propagate_to_surface(
        r, v, inv_beta, max_flight_s, step_s, atmosphere_step_s, (*limits, _AIR_CHECK_BELOW_M)
    )
    if compiled is not None:
        return compiled
    r = np.array(r, float)
    v = np.array(v, float)
    k = r.shape[0]
    t = np.zeros(k)
    done = np.zeros(k, bool)
    hit_r = np.full((k, 3), np.nan)
    hit_t = np.full(k, np.nan)
    h = ellipsoid_height(r)
    done |= h <= 0.0
    hit_r[done] = r[done]
    hit_t[done] = 0.0
    while not np.all(done):
        live = ~done & (t < max_flight_s)
        if not np.any(live):
            break
        every = bool(live.all())  # the usual case: no gathering and scattering
        rl, vl, hl, ib = (
            (r, v, h, inv_beta) if every else (r[live], v[live], h[live], inv_beta[live])
        )
        dt = _step_lengths(rl, vl, hl, step_s, atmosphere_step_s)
        in_air = bool(np.min(hl) < _AIR_CHECK_BELOW_M)  # else no point reaches the air in a step
        rn, vn = _rk4_step(rl, vl, ib, dt, in_air)
        hn = ellipsoid_height(rn)
        crossed = hn <= 0.0
        if np.any(crossed):
            pos, f = _surface_crossing(rl, vl, hl, rn, vn, hn, dt, crossed)
            idx = np.flatnonzero(live)[crossed]
            hit_r[idx] = pos
            hit_t[idx] = t[idx] + f * dt[crossed]
            done[idx] = True
        if every:
            r, v, h = rn, vn, hn
            t += dt
            continue
        idx = np.flatnonzero(live)
        r[idx], v[idx], h[idx] = rn, vn, hn
        t[idx] += dt
    return hit_r, hit_t, done & np.isfinite(hit_t)


def _step_lengths(
    r: np.ndarray, v: np.ndarray, h: np.ndarray, step_s: float, atmosphere_step_s: float
) -> np.ndarray:
    """Step (s) of each object (ECI ``r``, ``v``; ellipsoid height ``h`` m): long steps in
    vacuum, shortened to arrive near the top of the atmosphere; in the air about one step
    per 20 km of height (drag matters in the last ~40 km)."""
    top = ATMOSPHERE_TOP_M
    vr = np.einsum("ki,ki->k", r, v) / np.linalg.norm(r, axis=1)
    descent = np.maximum(-vr, 1.0)
    air = np.clip(
        h / _AIR_HEIGHT_PER_STEP_M, atmosphere_step_s, _AIR_STEP_MAX_FACTOR * atmosphere_step_s
    )
    return np.where(
        h > top + _APPROACH_MARGIN_M,
        np.where(vr >= 0.0, step_s, np.clip((h - top) / descent, air, step_s)),
        air,
    )


def _rk4_step(
    r: np.ndarray, v: np.ndarray, inv_beta: np.ndarray, dt: np.ndarray, in_air: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One classical RK4 step of ``dt`` (K,) s from ECI ``r`` m, ``v`` m/s (gravity with
    J2; drag with ``1/beta`` when ``in_air``): the new (r, v)."""
    d = dt[:, None]
    a1 = _accel(r, v, inv_beta, in_air)
    r2, v2 = r + 0.5 * d * v, v + 0.5 * d * a1
    a2 = _accel(r2, v2, inv_beta, in_air)
    r3, v3 = r + 0.5 * d * v2, v + 0.5 * d * a2
    a3 = _accel(r3, v3, inv_beta, in_air)
    r4, v4 = r + d * v3, v + d * a3
    a4 = _accel(r4, v4, inv_beta, in_air)
    rn = r + d / 6.0 * (v + 2.0 * (v2 + v3) + v4)
    vn = v + d / 6.0 * (a1 + 2.0 * (a2 + a3) + a4)
    return rn, vn


def _surface_crossing(
    r: np.ndarray,
    v: np.ndarray,
    h: np.ndarray,
    rn: np.ndarray,
    vn: np.ndarray,
    hn: np.ndarray,
    dt: np.ndarray,
    crossed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Where and when within the step the ``crossed`` objects met the surface: ECI
    positions (K', 3) m and fractions (K',) of their step, the height linear in time
    within the step, the position a cubic Hermite between (r, v) and (rn, vn)."""
    f = h[crossed] / (h[crossed] - hn[crossed])
    dd = dt[crossed][:, None]
    ff = f[:, None]
    h00 = 2 * ff**3 - 3 * ff**2 + 1
    h10 = ff**3 - 2 * ff**2 + ff
    h01 = -2 * ff**3 + 3 * ff**2
    h11 = ff**3 - ff**2
    pos = h00 * r[crossed] + h10 * dd * v[crossed] + h01 * rn[crossed] + h11 * dd * vn[crossed]
    return pos, f


def _eig_sqrt(M: np.ndarray) -> np.ndarray:
    """Square root ``U`` of a symmetric PSD matrix with ``U^T U = M``, rows along its
    eigenvectors (better conditioned than Cholesky for a nearly singular covariance;
    filterpy's ``sqrt_method`` contract: sigma points are ``x +- U[k]``)."""
    w, vec = np.linalg.eigh(M)
    return (vec * np.sqrt(np.clip(w, 0.0, None))[None, :]).T


# Julier's symmetric set with kappa = 0: 2n points x +- rows of sqrt(n P), weights
# 1/(2n); the central point (weight 0) is dropped, as it adds nothing to the transform.
@lru_cache(maxsize=1)
def _unscented() -> tuple:
    """filterpy's sigma points (Julier, kappa 0), their weights without the centre's,
    and its ``unscented_transform``: imported at the first impact prediction, not at
    start (filterpy's import pulls in ``scipy.stats``: ~0.5 s of CPU)."""
    from filterpy.kalman import JulierSigmaPoints, unscented_transform

    julier = JulierSigmaPoints(_N_AUG, kappa=0.0, sqrt_method=_eig_sqrt)
    return julier, julier.Wm[1:], julier.Wc[1:], unscented_transform


def _sigma_points(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Symmetric sigma points (T, 2n, n) of T Gaussians (filterpy ``JulierSigmaPoints``,
    kappa 0, without the zero-weight centre), matching each mean and covariance."""
    n = mean.shape[-1]
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2)) + _SIGMA_JITTER * np.eye(n)
    julier = _unscented()[0]
    return np.stack([julier.sigma_points(m, c)[1:] for m, c in zip(mean, cov, strict=True)])


def _ellipse_from_points(r_ecef: np.ndarray, t_s: np.ndarray) -> GroundEllipse:
    """Ground ellipse of the surface points of one track's sigma points (ECEF ``r_ecef``
    (2n, 3) m, times ``t_s`` (2n,) s): filterpy's ``unscented_transform`` gives their
    mean and 3-D covariance, projected on the local east/north plane."""
    _, wm, wc, unscented_transform = _unscented()
    mean_r, cov_r = unscented_transform(r_ecef, wm, wc)
    lat0, lon0, _ = geodesy.ecef_to_geodetic_point(mean_r)
    en = geodesy.enu_matrix(float(lat0), float(lon0))[:2]
    return _ground_ellipse(float(lat0), float(lon0), float(np.mean(t_s)), en @ cov_r @ en.T)


def _ground_ellipse(
    lat_deg: float, lon_deg: float, t_s: float, cov_en: np.ndarray
) -> GroundEllipse:
    """GroundEllipse centred at (``lat_deg``, ``lon_deg``) at time ``t_s`` (s) with the
    1-sigma ellipse of the east/north covariance ``cov_en`` (2, 2) m^2."""
    major, minor, orient = geodesy.ground_ellipse(cov_en)
    return GroundEllipse(
        latitude_deg=lat_deg,
        longitude_deg=lon_deg,
        time_ns=seconds_to_ns(t_s),
        semi_major_m=major,
        semi_minor_m=minor,
        orientation_deg=orient,
    )


def predict_impacts(
    x6: np.ndarray, P6: np.ndarray, t_s: float, config: FusionConfig
) -> list[GroundEllipse | None]:
    """Impact predictions for T ballistic tracks (states (T, 6), covariances (T, 6, 6),
    ECI at time ``t_s``); ``None`` where no sigma point reaches the ground in time."""
    T = x6.shape[0]
    if T == 0:
        return []
    mean = np.hstack([x6, np.full((T, 1), np.log(config.impact_ballistic_coefficient))])
    cov = np.zeros((T, _N_AUG, _N_AUG))
    cov[:, :6, :6] = P6
    cov[:, 6, 6] = config.impact_ballistic_coefficient_log_sigma**2
    pts = _sigma_points(mean, cov).reshape(-1, _N_AUG)
    hit_r, hit_t, ok = propagate_to_surface(
        pts[:, :3],
        pts[:, 3:6],
        np.exp(-pts[:, 6]),
        config.impact_max_flight_s,
        config.impact_step_s,
        config.impact_atmosphere_step_s,
    )
    k = 2 * _N_AUG
    out: list[GroundEllipse | None] = []
    ok = ok.reshape(T, k)
    t_abs = t_s + hit_t
    good = ok.all(axis=1)
    r_ecef = np.full_like(hit_r, np.nan)
    sel = np.repeat(good, k)
    if np.any(sel):
        r_ecef[sel] = geodesy.teme_to_ecef(hit_r[sel], t_abs[sel])
    r_ecef = r_ecef.reshape(T, k, 3)
    t_abs = t_abs.reshape(T, k)
    for i in range(T):
        if not good[i]:
            out.append(None)
            continue
        out.append(_ellipse_from_points(r_ecef[i], t_abs[i]))
    return out


_GRID_FIRST_CHUNK = 64  # grid points of the first look for the ground (then doubled)


def _heights_to_ground(
    pos: Callable[[np.ndarray], np.ndarray], grid: np.ndarray
) -> tuple[np.ndarray, int | None]:
    """Heights (m) of ``pos(grid)`` up to the first at or below the ground, and that
    index (None: none on the whole grid, then every height). In growing chunks from
    the start: a launch seen low is found in the first few seconds back, not after 3,000
    points. Each chunk's heights are the same floats as the whole grid's (row by row the
    same products; tests/test_fusion_same_floats.py)."""
    h = np.empty(grid.size)
    start, size = 0, _GRID_FIRST_CHUNK
    while start < grid.size:
        stop = min(grid.size, start + size)
        h[start:stop] = ellipsoid_height(pos(grid[start:stop]))
        below = np.flatnonzero(h[start:stop] <= 0.0)
        if below.size:
            return h[:stop], start + int(below[0])
        start, size = stop, 2 * size
    return h, None


def estimate_launch(
    t_s: np.ndarray, r_ecef: np.ndarray, var_m2: np.ndarray, max_back_s: float = 300.0
) -> GroundEllipse | None:
    """Launch point from early boost positions: samples at ``t_s`` (K,) s, Earth-fixed
    positions ``r_ecef`` (K, 3) m with variances ``var_m2`` (K,) m^2 per axis.

    Fits ``r(t) = c0 + c1 tau + c2 tau^2`` (tau from the first sample) by weighted least
    squares and returns the surface crossing at or before the first sample, with the
    1-sigma ellipse of the fitted point; ``None`` with too few samples or no crossing.
    """
    if t_s.size < _LAUNCH_MIN_SAMPLES:
        return None
    tau = t_s - t_s[0]
    span = tau[-1]
    if span <= 0.0:
        return None
    order = 2 if span >= _LAUNCH_QUADRATIC_SPAN_S else 1
    w = 1.0 / np.asarray(var_m2, float)
    grid = _launch_grid(max_back_s)
    compiled = kernels.launch_fit(tau, r_ecef, w, order, grid, _LAUNCH_LOWEST_MAX_M)
    if compiled is not None:
        found, (px, py, pz, var, tl) = compiled
        return _launch_ellipse(np.array([px, py, pz]), var, float(t_s[0] + tl)) if found else None
    A = np.vander(tau, order + 1, increasing=True)  # (K, order+1)
    AtW = A.T * w
    N = AtW @ A
    Ninv = np.linalg.inv(N)
    coef = Ninv @ (AtW @ r_ecef)  # (order+1, 3)
    resid = r_ecef - A @ coef
    dof = max(1, tau.size - (order + 1))
    scale = max(1.0, float(np.sum(w[:, None] * resid**2) / (3 * dof)))

    def pos(tt: np.ndarray) -> np.ndarray:
        return np.vander(np.atleast_1d(tt), order + 1, increasing=True) @ coef

    h, j = _heights_to_ground(pos, grid)
    if h[0] <= 0.0:
        tl = 0.0
    elif j is not None:
        f = h[j - 1] / (h[j - 1] - h[j])
        tl = grid[j - 1] + f * (grid[j] - grid[j - 1])
    else:
        # A climb from rest touches the ground at its lowest point: take that if it is low.
        j = int(np.argmin(h))
        if h[j] > _LAUNCH_LOWEST_MAX_M:
            return None
        tl = grid[j]
    p = pos(np.array([tl]))[0]
    a = np.vander(np.array([tl]), order + 1, increasing=True)[0]
    var = float(a @ Ninv @ a) * scale
    return _launch_ellipse(p, var, float(t_s[0] + tl))


@lru_cache(maxsize=4)
def _launch_grid(max_back_s: float) -> np.ndarray:
    """The back-extrapolation grid (s, 0 and below) of :func:`estimate_launch`."""
    return -np.arange(0.0, max_back_s + _LAUNCH_GRID_STEP_S, _LAUNCH_GRID_STEP_S)


def _launch_ellipse(p: np.ndarray, var: float, t_s: float) -> GroundEllipse:
    """The launch ellipse at ECEF point ``p`` (m) with variance ``var`` (m^2 per axis)."""
    lat, lon, _ = geodesy.ecef_to_geodetic_point(p)
    enu = geodesy.enu_matrix(float(lat), float(lon))
    cov_en = var * enu[:2] @ enu[:2].T
    return _ground_ellipse(float(lat), float(lon), t_s, cov_en)
