"""Stream consensus: the boost tracks of one pad stream share its velocity field.

Objects launched from one pad seconds apart fly one path with one thrust profile, so
at one place of the path every object has (nearly) the same velocity and acceleration:
the stream's field is stationary. A track in the stream's crowd gates several objects
per look (their spacing, 0.5 s of flight, is below its along-path uncertainty), and the
nearest neighbour hands it whichever lies nearest its prediction, so a track whose
velocity is wrong is confirmed by the detections it takes: it slides along the stream,
an object every second or two, and each object it passes is an identity switch (DESIGN
§6: on the dense case most switches; in the crowd looks the tracks' velocities were
-19% to +6% off their objects' (quartiles), 5% of them 80% off, their filters claiming
5%).

So at every life-cycle tick each confirmed (or coasting) BOOST track with at least
``stream_min_group - 1`` such tracks near it takes their velocities, each taken back
(or forward) to this track's place along its own flight (``v - a dt``, ``dt`` the
neighbour's flight time from here: kept within ``WINDOW_S``, searched within
``RADIUS_M``), and their median (per axis, with the accelerations) is a pseudo-
measurement of its velocity and acceleration: noise the median's (1.4826 MAD over the
group's size, pi/2) plus what separates neighbours of one stream
(``VELOCITY_SIGMA_MPS``, ``ACCEL_SIGMA_MPS2``). A track that fails that test
(chi-square, 6 dof, p 0.999) *and is slower along the path than the median* gets one
Kalman update with it; every other track is left as it is. Only laggards are pulled:
a track is born at rest with a wide velocity prior, and in a stream the velocities a
sensor framing once a second cannot tell from the truth are the aliases ``v (1 - k/2)``
(the track one spacing further back each second), so a wrong majority of a group is a
slow one. Pulling both ways spread such an alias to the whole group on one seed of
five (CLEAR-MOT 15.1 -> 43.0), pulling only up removed it (5.3).
Sparse scenes never have three confirmed boost tracks this close: untouched.
Stateless: nothing is kept between ticks.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .. import kernels
from ..config import FusionConfig
from ..domain import TrackStatus
from ..dynamics import POS
from .rows import StateRows
from .track import Mode, Track

RADIUS_M = 10_000.0  # m: neighbours are searched this far, and kept if ...
WINDOW_S = 2.0  # s: ... their flight time from here along their velocity is within this
VELOCITY_SIGMA_MPS = 50.0  # m/s: neighbours of one stream differ so much in velocity ...
ACCEL_SIGMA_MPS2 = 5.0  # m/s^2: ... and in acceleration (2 s of a boost's thrust change)
_CHI2_OUTLIER = 22.46  # chi-square 6 dof, p = 0.999: a track this far from its group is pulled
_MAD_SIGMA = 1.4826  # sigma of a normal distribution per unit of median absolute deviation
_MEDIAN_EFF = np.pi / 2.0  # variance of a median over n: (pi / 2) sigma^2 / n
_KA = slice(3, 9)  # velocity and acceleration in the state
_HELD = (TrackStatus.CONFIRMED, TrackStatus.COASTING)
_EYE6 = np.eye(6)
_EYE9 = np.eye(9)
_FLOOR = np.repeat([VELOCITY_SIGMA_MPS**2, ACCEL_SIGMA_MPS2**2], 3)  # (6,) m^2/s^2, m^2/s^4


def stream_members(tracks: list[Track]) -> list[int]:
    """Indices of ``tracks`` that take part: live BOOST tracks, confirmed or coasting."""
    return [
        i
        for i, t in enumerate(tracks)
        if t.mode == Mode.BOOST and t.status in _HELD and not t.deleted
    ]


def pull_to_streams(
    rows: StateRows, tracks: list[Track], track_rows: np.ndarray, config: FusionConfig
) -> int:
    """Pull the boost tracks whose velocity and acceleration disagree with their
    stream's (module docstring) towards the group's median, in place in ``rows``
    (predicted to the tick). ``track_rows`` (N,): the rows of ``tracks``. Returns how
    many tracks were pulled."""
    n_min = config.stream_min_group
    if n_min <= 1 or len(tracks) < n_min:
        return 0
    members = stream_members(tracks)
    if len(members) < n_min:
        return 0
    r = track_rows[members]
    groups = _groups(rows.x[r], n_min)
    if groups is None:
        return 0
    crowd, size, z, mad = groups
    var = _FLOOR + _MEDIAN_EFF * (_MAD_SIGMA * mad) ** 2 / size[:, None]
    return _pull(rows, r[crowd], z, var)


def _groups(
    x: np.ndarray, n_min: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The stream groups of the tracks of states ``x`` (N, 9): each track's neighbours
    within ``RADIUS_M`` whose flight time to it (along their own velocity) is within
    ``WINDOW_S``, and the track itself. For each track whose group has at least ``n_min``
    members, in order: its index (C,), its group's size (C,), and per column of the
    members' velocities (taken back to here by ``a dt``) and accelerations the median
    and the median absolute deviation (C, 6) each; None when no group is that large.
    Compiled (:func:`..kernels.stream_groups`: neighbour search and medians in one loop)
    or numpy (:func:`_groups_numpy`), the same floats."""
    out = kernels.stream_groups(x, RADIUS_M, WINDOW_S, n_min)
    if out is None:
        out = _groups_numpy(x, n_min)
    return out if out is not None and out[0].size else None


def _groups_numpy(
    x: np.ndarray, n_min: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`_groups` with scipy's k-d tree and numpy (grouped sorts)."""
    pos = x[:, POS]
    near = cKDTree(pos).query_pairs(RADIUS_M, output_type="ndarray")
    if near.shape[0] < n_min - 1:
        return None
    n = x.shape[0]
    # every (track, neighbour) pair both ways and each track with itself
    ti = np.concatenate([near[:, 0], near[:, 1], np.arange(n)])
    nj = np.concatenate([near[:, 1], near[:, 0], np.arange(n)])
    va = x[:, _KA]
    # each neighbour's velocity when it was (or will be) where the track is now: the
    # stream's field is stationary (dt: its time of flight from there along its velocity)
    v = va[nj, :3]
    with np.errstate(invalid="ignore", divide="ignore"):
        dt = _dot3(pos[ti] - pos[nj], v) / _dot3(v, v)
    ok = np.abs(dt) <= WINDOW_S
    ti, nj, dt = ti[ok], nj[ok], dt[ok]
    size = np.bincount(ti, minlength=n)
    crowd = size >= n_min
    if not crowd.any():
        return None
    ok = crowd[ti]
    ti, nj, dt = ti[ok], nj[ok], dt[ok]
    vals = va[nj]
    vals[:, :3] += vals[:, 3:] * dt[:, None]
    # groups numbered among the crowd tracks only
    z, mad = _grouped_median((np.cumsum(crowd) - 1)[ti], vals, int(np.count_nonzero(crowd)))
    return np.flatnonzero(crowd), size[crowd], z, mad


def _dot3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of ``a`` and ``b`` (K, 3), summed ``(a0 b0 + a2 b2) + a1 b1``:
    the order ``np.einsum("ij,ij->i", a, b)`` sums three columns in here (its two-lane
    loop, then the last column into the first lane), written out so that the compiled
    loop (:mod:`..kernel_stream`) can sum in the same order on any build."""
    return (a[:, 0] * b[:, 0] + a[:, 2] * b[:, 2]) + a[:, 1] * b[:, 1]


def _grouped_median(group: np.ndarray, vals: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group 0..n-1 (``group`` (K,) of each row of ``vals`` (K, C)): the median of
    each column and its median absolute deviation, (n, C) each (every group non-empty)."""
    med = _medians(group, vals, n)
    return med, _medians(group, np.abs(vals - med[group]), n)


def _medians(group: np.ndarray, vals: np.ndarray, n: int) -> np.ndarray:
    """Per group, the median of each column of ``vals``: the groups' rows laid out in an
    (n, largest group, C) array padded with +inf, sorted along the group axis at once."""
    size = np.bincount(group, minlength=n)
    order = np.argsort(group, kind="stable")
    g = group[order]
    slot = np.arange(g.size) - (np.cumsum(size) - size)[g]
    pad = np.full((n, max(int(size.max()), 1), vals.shape[1]), np.inf)
    pad[g, slot] = vals[order]
    pad.sort(axis=1)
    at = np.arange(n)
    size = np.maximum(size, 1)
    return 0.5 * (pad[at, (size - 1) // 2] + pad[at, size // 2])


def _pull(rows: StateRows, idx: np.ndarray, z: np.ndarray, var: np.ndarray) -> int:
    """Kalman update of the rows ``idx`` whose velocity and acceleration fail the test
    against the pseudo-measurement ``z`` (K, 6) with variances ``var`` (K, 6)."""
    x, P = rows.x[idx], rows.P[idx]
    S = P[:, _KA, _KA] + var[:, :, None] * _EYE6
    e = z - x[:, _KA]
    try:
        Sinv = np.linalg.inv(S)
    except np.linalg.LinAlgError:
        return 0
    d2 = np.einsum("ki,kij,kj->k", e, Sinv, e)
    # pulled: far from the stream and slower along it (a lagging alias; module docstring)
    out = np.flatnonzero((d2 > _CHI2_OUTLIER) & (np.einsum("ki,ki->k", e[:, :3], z[:, :3]) > 0))
    if out.size == 0:
        return 0
    x, P, e, Sinv, var = x[out], P[out], e[out], Sinv[out], var[out]
    K = P[:, :, _KA] @ Sinv  # (n, 9, 6)
    x = x + np.einsum("kij,kj->ki", K, e)
    IKH = np.repeat(_EYE9[None], out.size, axis=0)
    IKH[:, :, _KA] -= K
    P = IKH @ P @ np.swapaxes(IKH, -1, -2) + (K * var[:, None, :]) @ np.swapaxes(K, -1, -2)
    rows.x[idx[out]] = x
    rows.P[idx[out]] = 0.5 * (P + np.swapaxes(P, -1, -2))
    return int(out.size)
