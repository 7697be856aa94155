"""The compiled initiation loops behind :mod:`.kernels`: plain Python over arrays,
compiled by numba there (correct but slow if run uncompiled).

:func:`_meet` is :meth:`.initiation.InitiationBuffer._meeting` in one loop: the screen
of :func:`.initiation.screen_pairs` (pair by pair, with its slack) and, for each pair
it passes, the exact tests in the numpy code's floats (:func:`.initiation.closest_points`
with its dot products summed in the order numpy's ``einsum`` sums them, the tolerance,
the height band of :func:`.dynamics.ellipsoid_height`, :func:`.initiation.earth_blocks`):
only ``+ - * /`` and ``sqrt``, no reordered sum, so each passing pair's ranges and score
are numpy's bit for bit (tests/test_kernel_initiation.py). :func:`_add_rows` writes the
buffer's packed rows of one frame. :data:`HELPERS` are the functions the loops call
(compiled first). Units and frames as in :mod:`.initiation`."""

from __future__ import annotations

import math

import numpy as np

from .constants import R_EARTH_EQ, R_EARTH_POLAR

#: the functions the loops call: compiled (and bound in this module) before any loop
HELPERS = ("_height3", "_blocked")

# Entries of _meet's ``limits`` (m, except the sine): from the config and initiation.py.
MISS_SIGMAS, MAX_RANGE, SIN_MIN, MIN_ALT, MAX_ALT, BLOCK_DEPTH, AT_END = range(7)


def _height3(x: float, y: float, z: float) -> float:
    """dynamics.ellipsoid_height of one position (m); NaN at the centre (numpy's 0/0)."""
    rn = math.sqrt(x * x + y * y + z * z)
    if rn == 0.0:
        return np.nan
    s2 = (z / rn) * (z / rn)
    a, b = R_EARTH_EQ, R_EARTH_POLAR
    return rn - a * b / math.sqrt(b * b * (1.0 - s2) + a * a * s2)


def _blocked(
    ox: float, oy: float, oz: float, dx: float, dy: float, dz: float, t: float,
    depth: float, at_end: float,
) -> bool:  # fmt: skip
    """initiation.earth_blocks of one segment from ``o`` along unit ``d`` to range ``t``."""
    tc = -((ox * dx + oz * dz) + oy * dy)  # (einsum's order, see _meet)
    if tc < 0.0:  # np.clip(.., 0.0, None) (a NaN stays NaN)
        tc = 0.0
    if t < tc:  # np.minimum
        tc = t
    h = _height3(ox + tc * dx, oy + tc * dy, oz + tc * dz)
    return h < depth and tc < t - at_end


def _meet(
    origin: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    live: np.ndarray,
    t_s: float,
    own_code: float,
    speed: float,
    extra: float,
    slack: float,
    slack_m: float,
    limits: np.ndarray,
    mi: np.ndarray,
    bi: np.ndarray,
    t1o: np.ndarray,
    t2o: np.ndarray,
    score: np.ndarray,
) -> int:
    """The pairs of new rays ``origin + t los[m]`` (``sigma`` (M,) rad) and the buffer's
    packed rows ``live`` (B, 13) at ``t_s`` s that pass the screen (bound ``far`` as
    InitiationBuffer._meeting forms it from ``speed`` m/s, ``extra`` m, ``slack``,
    ``slack_m``; rows of ``own_code`` or newer than ``t_s`` pass nothing) and every
    exact test (``limits``: the entries named above): their (new, waiting) indices,
    ranges ``t1``, ``t2`` (m) and miss / tolerance into the outputs, in row-major order;
    returns their number."""
    sx, sy, sz = origin[0], origin[1], origin[2]
    miss_sigmas, max_range, sin_min = limits[MISS_SIGMAS], limits[MAX_RANGE], limits[SIN_MIN]
    min_alt, max_alt = limits[MIN_ALT], limits[MAX_ALT]
    depth, at_end = limits[BLOCK_DEPTH], limits[AT_END]
    count = 0
    for m in range(los.shape[0]):
        lx, ly, lz = los[m, 0], los[m, 1], los[m, 2]
        cx = sy * lz - sz * ly  # origin x los: the new ray's moment (the screen's)
        cy = sz * lx - sx * lz
        cz = sx * ly - sy * lx
        for b in range(live.shape[0]):
            t_b = live[b, 0]
            if live[b, 1] == own_code or t_b > t_s:
                continue
            far = (live[b, 3] + speed * (t_s - t_b) + extra) * slack + slack_m
            v = cx * live[b, 7] + cy * live[b, 8] + cz * live[b, 9]
            v += lx * live[b, 10] + ly * live[b, 11] + lz * live[b, 12]
            if not abs(v) <= 2.0 * far:
                continue
            # closest_points(origin, los[m], s2, u2), numpy's floats
            s2x, s2y, s2z = live[b, 4], live[b, 5], live[b, 6]
            ux, uy, uz = live[b, 7], live[b, 8], live[b, 9]
            wx, wy, wz = sx - s2x, sy - s2y, sz - s2z
            # einsum "...i,...i->..." sums three terms as (0 + 2) + 1 (numpy 2's
            # unrolled loop; tests/test_kernel_initiation.py holds it to that)
            bb = (lx * ux + lz * uz) + ly * uy
            d = (lx * wx + lz * wz) + ly * wy
            e = (ux * wx + uz * wz) + uy * wy
            den = 1.0 - bb * bb
            if den == 0.0:  # parallel: t is not finite, no range test passes
                continue
            t1 = (bb * e - d) / den
            t2 = (e - bb * d) / den
            mx = (sx + t1 * lx) - (s2x + t2 * ux)
            my = (sy + t1 * ly) - (s2y + t2 * uy)
            mz = (sz + t1 * lz) - (s2z + t2 * uz)
            miss = math.sqrt(mx * mx + my * my + mz * mz)
            sin_a = math.sqrt(den) if den > 0.0 else (0.0 if den <= 0.0 else den)
            g1 = sigma[m] * t1
            g2 = live[b, 2] * t2
            tol = miss_sigmas * math.sqrt(g1 * g1 + g2 * g2) + speed * (t_s - t_b)
            if not (t1 > 0.0 and t2 > 0.0 and t1 < max_range and t2 < max_range):
                continue
            if not (sin_a >= sin_min and miss <= tol):
                continue
            h = _height3(sx + t1 * lx, sy + t1 * ly, sz + t1 * lz)
            if not (h >= min_alt and h <= max_alt):
                continue
            if _blocked(sx, sy, sz, lx, ly, lz, t1, depth, at_end):
                continue
            if _blocked(s2x, s2y, s2z, ux, uy, uz, t2, depth, at_end):
                continue
            mi[count] = m
            bi[count] = b
            t1o[count] = t1
            t2o[count] = t2
            score[count] = miss / tol if tol != 0.0 else np.nan  # (miss <= tol: 0 / 0)
            count += 1
    return count


def _add_rows(
    rows: np.ndarray,
    start: int,
    t_s: float,
    code: float,
    origin: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    reach_per_sigma: float,
) -> int:
    """InitiationBuffer.add's packed rows of ``los`` (M, 3), ``sigma`` (M,) into ``rows``
    from row ``start``: time, sensor code, sigma, reach, origin, LOS and the moment
    ``origin x LOS`` (the screen's; its rounding is the screen's slack's business);
    returns M (a kernel that returns None did not run)."""
    sx, sy, sz = origin[0], origin[1], origin[2]
    for m in range(los.shape[0]):
        r = rows[start + m]
        lx, ly, lz = los[m, 0], los[m, 1], los[m, 2]
        r[0] = t_s
        r[1] = code
        r[2] = sigma[m]
        r[3] = reach_per_sigma * abs(sigma[m])
        r[4], r[5], r[6] = sx, sy, sz
        r[7], r[8], r[9] = lx, ly, lz
        r[10] = sy * lz - sz * ly
        r[11] = sz * lx - sx * lz
        r[12] = sx * ly - sy * lx
    return los.shape[0]
