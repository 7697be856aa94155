"""The compiled loop behind :meth:`.registration.Registration.correct` (numba), with the
numpy code it stands in for as the fallback.

A frame's correction is a dozen numpy calls on a few rows (the cross product, the norm,
the 3-operand ``einsum``, the widening): ~1-3 us each of overhead whatever the size, for
~24,000 frames with detections on ``salvo``. Here it is one loop per frame, in numpy's
floats bit for bit (tests/test_registration.py checks it on random frames): the cross
product and ``los - theta x los`` as written; ``np.add.reduce`` of three squares over a
row sums them in order, ``((x x + y y) + z z)``; ``np.einsum("ni,ij,nj->n", c, pk, c)``
sums its nine products ``(c_i pk_ij) c_j`` in index order from zero; ``np.maximum``
keeps a NaN. Compiled at its first call (cached on disk like :mod:`.kernels`, whose
switch it follows: ``TRACKLAYER_JIT=0``, no numba, a JIT that fails: numpy).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import kernels
from .registration_consider import widened
from .registration_sites import _cross


def _correct_rows(
    los: np.ndarray,
    th: np.ndarray,
    pk: np.ndarray,
    sigma: np.ndarray,
    scalars: np.ndarray,
    c: np.ndarray,
    sigma_out: np.ndarray,
    across: np.ndarray,
) -> None:
    """Rows of :func:`correct_rows` (same arguments; ``scalars``: trace, drift, looks,
    applied 1/0), written into ``c`` (N, 3), ``sigma_out`` (N,) and ``across`` (N,)."""
    tr, drift, looks, applied = scalars[0], scalars[1], scalars[2], scalars[3] != 0.0
    t0, t1, t2 = th[0], th[1], th[2]
    for n in range(los.shape[0]):
        x, y, z = los[n, 0], los[n, 1], los[n, 2]
        if applied:
            x, y, z = x - (t1 * z - t2 * y), y - (t2 * x - t0 * z), z - (t0 * y - t1 * x)
            s = math.sqrt((x * x + y * y) + z * z)
            x, y, z = x / s, y / s, z / s
        c[n, 0], c[n, 1], c[n, 2] = x, y, z
        q = 0.0
        q += (x * pk[0, 0]) * x
        q += (x * pk[0, 1]) * y
        q += (x * pk[0, 2]) * z
        q += (y * pk[1, 0]) * x
        q += (y * pk[1, 1]) * y
        q += (y * pk[1, 2]) * z
        q += (z * pk[2, 0]) * x
        q += (z * pk[2, 1]) * y
        q += (z * pk[2, 2]) * z
        a = 0.5 * (tr - q) + drift
        if a < 0.0:  # np.maximum(a, 0.0): a NaN stays
            a = 0.0
        across[n] = a
        sigma_out[n] = math.sqrt(sigma[n] * sigma[n] + looks * a)


def correct_rows(
    los: np.ndarray,
    th: np.ndarray,
    pk: np.ndarray,
    tr: float,
    drift: float,
    sigma: np.ndarray,
    looks: float,
    applied: bool,
    compiled: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lines of sight ``los`` (N, 3) rotated back by ``th`` (3,) rad when ``applied``
    (renormalised; else ``los`` itself, or a copy from the compiled loop), the variance
    across each of them of the bias covariance ``pk`` (3, 3) rad^2 (trace ``tr``) plus the
    isotropic ``drift`` rad^2 (N,), and the sigmas ``sigma`` (N,) rad widened by ``looks``
    times it: ``(c, sigma, across)``; by the compiled loop when the kernels are on and
    ``compiled``, else by numpy (the same floats)."""
    fn = _kernel("correct_rows") if compiled else None
    if fn is None:
        if applied:
            c = los - _cross(th, los)
            c /= np.sqrt(np.add.reduce(c * c, axis=1))[:, None]  # np.linalg.norm's sum
        else:
            c = los
        across = np.maximum(0.5 * (tr - np.einsum("ni,ij,nj->n", c, pk, c)) + drift, 0.0)
        return c, np.sqrt(sigma**2 + looks * across), across
    c, sigma_out, across = _outputs(los.shape[0])
    scalars = np.array([tr, drift, looks, 1.0 if applied else 0.0])
    args = (kernels._f64(los), kernels._f64(th), kernels._f64(pk), kernels._f64(sigma))
    fn(*args, scalars, c, sigma_out, across)
    return c, sigma_out, across


def _write_looks(
    rows: np.ndarray,
    looks: np.ndarray,
    frame: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    t: np.ndarray,
    sensor: np.ndarray,
    pos: np.ndarray,
    los_out: np.ndarray,
    sigma_out: np.ndarray,
) -> None:
    """Look ``looks[r]`` of a frame (line of sight ``los`` (K, 3), sigma ``sigma`` (K,)
    rad) into row ``rows[r]`` of the flat columns ``t``, ``sensor``, ``pos`` (R, 3),
    ``los_out`` (R, 3), ``sigma_out``; ``frame``: the frame's data time s, sensor index
    and position (3,) m."""
    for r in range(rows.size):
        a, d = rows[r], looks[r]
        t[a], sensor[a] = frame[0], np.int64(frame[1])
        for k in range(3):
            pos[a, k], los_out[a, k] = frame[2 + k], los[d, k]
        sigma_out[a] = sigma[d]


def write_looks(
    rows: list[int],
    looks: list[int],
    frame: tuple[float, int, np.ndarray, np.ndarray, np.ndarray],
    columns: tuple[np.ndarray, ...],
) -> None:
    """A frame's looks ``looks`` into the rows ``rows`` of the flat ``columns`` (data time
    s (R,), sensor index (R,), position (R, 3) m, line of sight (R, 3), sigma (R,) rad;
    :class:`.registration_looks.OpenWindows`): ``frame`` = (data time s, sensor index,
    position (3,) m, its looks' lines of sight (K, 3) and sigmas (K,) rad). Copies: the
    same values by the compiled loop or by numpy."""
    t_s, sensor, pos, los, sigma = frame
    fn = _kernel("write_looks")
    if fn is None:
        j, i = np.array(rows), np.array(looks)
        t, s, p, m, sg = columns
        t[j], s[j], p[j], m[j], sg[j] = t_s, sensor, pos, los[i], sigma[i]
        return
    head = np.array([t_s, sensor, pos[0], pos[1], pos[2]])
    j, i = np.array(rows, np.int64), np.array(looks, np.int64)
    fn(j, i, head, kernels._f64(los), kernels._f64(sigma), *columns)


def _widened(
    sigma: np.ndarray,
    across: np.ndarray,
    det: np.ndarray,
    looks: np.ndarray,
    k0: float,
    k1: float,
    out: np.ndarray,
) -> None:
    """:func:`.registration_consider.widened` of detections ``det`` of a frame (sigmas
    ``sigma``, variances across ``across``) into ``out``: ``np.maximum`` then
    ``np.minimum`` as numpy decides them (a NaN kept), then the same sum."""
    for r in range(det.size):
        d, m = det[r], looks[r]
        if not (m >= k0 or m != m):
            m = k0
        if not (m <= k1 or m != m):
            m = k1
        s = sigma[d]
        out[r] = math.sqrt(s * s + (m - k0) * across[d])


def widened_rows(
    sigma: np.ndarray,
    across: np.ndarray | None,
    det: np.ndarray,
    looks: list[int],
    k0: float,
    k1: float,
) -> np.ndarray:
    """:func:`.registration_consider.widened` of the detections ``det`` (sigmas
    ``sigma[det]``, variances across ``across[det]``), by a compiled loop when the kernels
    are on (the same floats)."""
    fn = None if across is None or k1 <= k0 else _kernel("widened")
    if fn is None or max(looks, default=0) <= k0:
        return widened(sigma[det], None if across is None else across[det], looks, k0, k1)
    out = np.empty(det.size)
    fn(
        kernels._f64(sigma),
        kernels._f64(across),
        kernels._i64(det),
        np.array(looks, float),
        float(k0),
        float(k1),
        out,
    )
    return out


_LOOPS = {"correct_rows": _correct_rows, "write_looks": _write_looks, "widened": _widened}
_compiled: dict[str, Callable[..., Any] | None] = {}  # by name; None: failed


def warm() -> bool:
    """Compile (or load from numba's cache) every loop here now (``make venv`` runs it, as
    :func:`.kernels.warm`); whether they are in use."""
    return all(_kernel(name) is not None for name in _LOOPS)


def _kernel(name: str) -> Callable[..., Any] | None:
    """The compiled loop ``name`` (compiled and tried at its first call), or None: the
    kernels are off, or its compilation failed (one warning)."""
    if not kernels.enabled():
        return None
    if name in _compiled:
        return _compiled[name]
    try:
        import numba

        fn = numba.njit(cache=True, nogil=True)(_LOOPS[name])
        _try(name, fn)
    except Exception as exc:  # noqa: BLE001 - a broken JIT must not stop the tracker
        warnings.warn(f"numba kernel {name} unavailable ({exc}); using numpy", stacklevel=2)
        fn = None
    _compiled[name] = fn
    return fn


def _try(name: str, fn: Callable[..., Any]) -> None:
    """Call the compiled loop ``name`` once on one row (compiles it, or loads its cache)."""
    one, row = np.ones(1), np.zeros(1, np.int64)
    if name == "correct_rows":
        fn(np.ones((1, 3)), np.zeros(3), np.eye(3), one, np.zeros(4), *_outputs(1))
    elif name == "widened":
        fn(one, one, row, one, 1.0, 2.0, np.empty(1))
    else:
        cols = (np.zeros(1), np.zeros(1, np.int64), np.zeros((1, 3)), np.zeros((1, 3)), one)
        fn(row, row, np.zeros(5), np.ones((1, 3)), one, *cols)


def _outputs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty outputs of :func:`_correct_rows` for ``n`` rows."""
    return np.empty((n, 3)), np.empty(n), np.empty(n)
