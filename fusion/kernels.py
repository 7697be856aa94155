"""Compiled kernels for the tracker's per-row loops (numba), with numpy fallbacks.

The batched filter and gating functions of :mod:`.filters`, :mod:`.association` and
:mod:`.dynamics` are written over arrays with numpy; for the small matrices of one
track (9x9 covariances, 2x2 innovations) each numpy call costs ~1-3 us of overhead
whatever its size, so a predict of a few rows pays ~100 calls and a raid frame's
screen of 3,000 rows builds several (N, M) temporaries. Here the same formulas run
as one compiled loop per row (numba, ``@njit(cache=True)``; the loops are in the
``kernel_*`` modules): the short-step predict (also in place on the stacked rows), the
angular screen ``may_gate`` (also indexed over the stack), the gating of candidate pairs,
the Joseph-form update, the existence look's view test (``in_view``: numpy's decisions),
the threads' nearest neighbours (``two_nearest``: scipy's k-d tree floats, bit for bit),
the assignment (``assign_pairs``: scipy's LAPJVsp choices, ties included), the
initiation's pairing (``meet``: its screen and exact tests, numpy's floats bit for bit) and
the stream consensus's groups (``stream_groups``: the k-d tree's pairs, numpy's medians).

The kernels compute the same quantities as the numpy code they stand in for, with the
same formulas, but their sums run in a fixed in-order loop where numpy uses BLAS (``dgemm``
blocks its products its own way) or pairwise sums: results agree to rounding (relative
~1e-15 per operation), not bit for bit (``two_nearest``, ``assign_pairs``, ``meet`` and
``stream_groups``: exactly).
Digests of ``/tracks`` were recorded with the kernels on (DESIGN §9).

Compilation: lazily, at each kernel's first call, cached on disk by numba (``cache=True``:
in ``__pycache__`` here, or numba's user cache directory; ``NUMBA_CACHE_DIR`` overrides).
A fresh checkout compiles once (~10 s CPU; ``make venv`` runs :func:`warm`), later
processes load the cache (~0.25 s at the first frame, ~0.15 s to import numba).
``TRACKLAYER_JIT=0`` uses the numpy fallbacks; a machine where numba is missing or fails
to compile falls back by itself (one warning): the tracker never needs a working JIT.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import kernel_assign as _ka
from . import kernel_filters as _kf
from . import kernel_impact as _ki
from . import kernel_initiation as _kn
from . import kernel_pairs as _kp
from . import kernel_rows as _kr
from . import kernel_stream as _ks
from . import kernel_threads as _kt
from .kernel_arrays import f64 as _f64
from .kernel_arrays import i64 as _i64
from .kernel_arrays import plain as _plain

#: the modules whose loops the kernels call (each lists its helpers in ``HELPERS``)
LOOP_MODULES = (_kf, _ki, _kt, _ka, _kr, _kn, _ks, _kp)

#: environment variable: "0" turns the compiled kernels off (numpy fallbacks)
JIT_ENV = "TRACKLAYER_JIT"


# ------------------------------------------------------------------ compile or fall back
class _Kernel:
    """One kernel: compiled by numba at its first call (cached on disk), or None when
    the JIT is off or fails (then the caller uses its numpy code)."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.compiled: Callable[..., Any] | None = None
        self.failed = False


_KERNELS = {
    "predict_short": _Kernel(_kf._predict_short),
    "may_gate": _Kernel(_kr._may_gate),
    "may_gate_at": _Kernel(_kr._may_gate_at),
    "predict_at": _Kernel(_kr._predict_at),
    "gate": _Kernel(_kf._gate),
    "gate_pairs": _Kernel(_kf._gate_pairs),
    "update": _Kernel(_kf._update),
    "update_at": _Kernel(_kf._update_at),
    "meet": _Kernel(_kn._meet),
    "add_rows": _Kernel(_kn._add_rows),
    "in_view": _Kernel(_kf._in_view),
    "to_surface": _Kernel(_ki._to_surface),
    "launch_fit": _Kernel(_ki._launch_fit),
    "two_nearest": _Kernel(_kt._two_nearest),
    "assign_pairs": _Kernel(_ka._assign_pairs),
    "stream_groups": _Kernel(_ks._stream_groups),
    "near_pairs": _Kernel(_kp._near_pairs),
}
_numba: Any = None


def enabled() -> bool:
    """Whether compiled kernels are in use: numba importable and not turned off by
    ``TRACKLAYER_JIT=0`` (read once) or :func:`set_enabled`. Imports numba at the first
    call (~0.15 s)."""
    global _numba
    if _numba is None:
        if os.environ.get(JIT_ENV, "1").strip() == "0":
            _numba = False
        else:
            try:
                import numba
            except Exception as exc:  # noqa: BLE001 - any failure to import means no JIT
                warnings.warn(f"numba unavailable ({exc}); using numpy kernels", stacklevel=2)
                _numba = False
            else:
                _numba = numba
    return _numba is not False


def set_enabled(flag: bool) -> None:
    """Turn the compiled kernels on (if numba imports) or off, for this process."""
    global _numba
    _numba = None
    if flag:
        os.environ.pop(JIT_ENV, None)
    else:
        os.environ[JIT_ENV] = "0"
    enabled()


def _compiled(name: str) -> Callable[..., Any] | None:
    """The compiled kernel ``name`` or None (JIT off or failed)."""
    k = _KERNELS[name]
    if k.compiled is not None:
        return k.compiled
    if k.failed or not enabled():
        return None
    try:
        # the loops' globals must name compiled functions
        for module in LOOP_MODULES:
            for helper in module.HELPERS:
                if not hasattr(getattr(module, helper), "py_func"):
                    fn = getattr(module, helper)
                    setattr(module, helper, _numba.njit(cache=True, nogil=True)(fn))
        k.compiled = _numba.njit(cache=True, nogil=True)(k.fn)
    except Exception as exc:  # noqa: BLE001 - a broken JIT must not stop the tracker
        warnings.warn(f"numba kernel {name} unavailable ({exc}); using numpy", stacklevel=2)
        k.failed = True
        return None
    return k.compiled


def _call(name: str, *args: Any) -> Any:
    """Run kernel ``name``; a failure of its first compilation marks it failed and
    raises :class:`_NoKernel` so the caller falls back to numpy."""
    fn = _KERNELS[name].compiled  # (once compiled: one lookup per call)
    if fn is None and (fn := _compiled(name)) is None:
        raise _NoKernel(name)
    try:
        return fn(*args)
    except Exception as exc:
        if _is_compile_error(exc):
            warnings.warn(
                f"numba kernel {name} failed to compile ({exc}); using numpy", stacklevel=3
            )
            _KERNELS[name].failed = True
            _KERNELS[name].compiled = None
            raise _NoKernel(name) from exc
        raise


def _is_compile_error(exc: Exception) -> bool:
    errors = getattr(getattr(_numba, "core", None), "errors", None)
    base = getattr(errors, "NumbaError", None)
    return base is not None and isinstance(exc, base) or type(exc).__module__.startswith("llvmlite")


class _NoKernel(Exception):
    """The compiled kernel is not available; use the numpy code."""


def _run(name: str, *args: Any) -> Any:
    """:func:`_call`, or None when the kernel is not available."""
    try:
        return _call(name, *args)
    except _NoKernel:
        return None


_NO_ADJUST = np.zeros(0)  # assign_pairs without the threads' adjustments


# ------------------------------------------------------------------ public entry points
def predict_short(
    x: np.ndarray,
    P: np.ndarray,
    dt: np.ndarray | float,
    inv_tau: np.ndarray | float,
    accel_psd: np.ndarray | float,
    jerk_psd: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Compiled short-step predict (filters.predict for ``|dt| <= max_step``) of
    states ``x`` (N, 9) and covariances ``P`` (N, 9, 9) over ``dt`` s (scalar or (N,));
    None when the kernels are off (the caller runs numpy)."""
    if not enabled():
        return None
    n = x.shape[0]
    xo = np.empty((n, 9))
    Po = np.empty((n, 9, 9))
    args = (_f64(x), _f64(P), _f64(dt, (n,)), _f64(inv_tau, (n,)), _f64(accel_psd, (n,)))
    try:
        _call("predict_short", *args, _f64(jerk_psd, (n,)), xo, Po)
    except _NoKernel:
        return None
    return xo, Po


def may_gate(
    x: np.ndarray,
    var: np.ndarray,
    dt: np.ndarray,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
    first_only: bool = False,
) -> tuple[bool, np.ndarray] | None:
    """Compiled association.may_gate (``var`` (N, 9): the diagonals of P): (any row
    kept, which rows (N,) bool; with ``first_only`` only up to the first kept row);
    None when the kernels are off."""
    if not enabled():
        return None
    n = x.shape[0]
    out = np.zeros(n, bool)
    if n == 0 or los.shape[0] == 0:
        return False, out
    s = np.asarray(sigma, float)
    s2_max = float((s * s).max())  # (s ** 2's floats; the method skips np.max's wrapper)
    args = (_f64(x), _f64(var), _f64(dt, (n,)), _f64(sensor_position), _f64(los), s2_max)
    if (found := _run("may_gate", *args, _f64(gates, (n,)), bool(first_only), out)) is None:
        return None
    return bool(found), out


def may_gate_at(
    x: np.ndarray,
    P: np.ndarray,
    t_ns: np.ndarray,
    rows: np.ndarray,
    frame_ns: int,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
) -> np.ndarray | None:
    """Compiled association.may_gate_at (the stack's rows read in place): the positions
    in ``rows`` of the rows kept; None when the kernels are off."""
    if not (enabled() and _plain(x, float) and _plain(P, float)):
        return None
    n = rows.shape[0]
    out = np.empty(n, np.int64)
    if n == 0 or los.shape[0] == 0:
        return out[:0]
    args = (x, P, _i64(t_ns), _i64(rows), int(frame_ns), _f64(sensor_position), _f64(los))
    args += (_f64(sigma),)  # (its largest square, as may_gate's, in the loop)
    count = _run("may_gate_at", *args, _f64(gates, (n,)), out)
    return None if count is None else out[:count]


def predict_at(
    x: np.ndarray,
    P: np.ndarray,
    t_ns: np.ndarray,
    rows: np.ndarray,
    to_ns: int,
    noise: tuple[np.ndarray, np.ndarray, np.ndarray],
    max_step: float,
) -> int | None:
    """Compiled in-place predict (:func:`.kernel_rows._predict_at`; ``noise``: the (N,)
    Singer rates and PSDs): rows moved; None when off or a step exceeds ``max_step``."""
    if not (enabled() and _plain(x, float) and _plain(P, float) and _plain(t_ns, np.int64)):
        return None
    inv_tau, qa, qj = (_f64(a, (x.shape[0],)) for a in noise)
    args = (x, P, t_ns, _i64(rows), int(to_ns), inv_tau, qa, qj, float(max_step))
    count = _run("predict_at", *args)
    return None if count is None or count < 0 else count


def gate(
    x: np.ndarray,
    P: np.ndarray,
    sensor_position: np.ndarray,
    los: np.ndarray,
    sigma: np.ndarray,
    gates: np.ndarray,
) -> tuple[np.ndarray, ...] | None:
    """Compiled association.gate: (track, det, d2, logdet, residual, hpos, rho, u) of
    the candidate pairs (the fields of association.Gating); None when the kernels are
    off."""
    if not enabled():
        return None
    n, m = x.shape[0], los.shape[0]
    x, P, spos, los = _f64(x), _f64(P), _f64(sensor_position), _f64(los)
    s2 = _f64(np.asarray(sigma, float) ** 2)
    g = _f64(gates, (n,))
    u, rho, basis = np.empty((n, 3)), np.empty(n), np.empty((n, 2, 3))
    hpos, A, c_min = np.empty((n, 2, 3)), np.empty((n, 2, 2)), np.empty(n)
    try:
        count = _call("gate", x, P, spos, los, s2, g, u, rho, basis, hpos, A, c_min)
        ti, mi = np.empty(count, np.int64), np.empty(count, np.int64)
        y, d2, logdet = np.empty((count, 2)), np.empty(count), np.empty(count)
        if m:
            _call("gate_pairs", x, P, spos, los, s2, u, basis, A, c_min, ti, mi, y, d2, logdet)
    except _NoKernel:
        return None
    return ti, mi, d2, logdet, y, hpos, rho, u


def update(
    x: np.ndarray, P: np.ndarray, y: np.ndarray, Hpos: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Compiled filters.update (Joseph form): (x, P, NIS); None when the kernels are
    off."""
    if not enabled():
        return None
    n = x.shape[0]
    xo, Po, nis = np.empty((n, 9)), np.empty((n, 9, 9)), np.empty(n)
    args = (_f64(x), _f64(P), _f64(y), _f64(Hpos), _f64(sigma, (n,)))
    try:
        _call("update", *args, xo, Po, nis)
    except _NoKernel:
        return None
    return xo, Po, nis


def update_at(x: np.ndarray, P: np.ndarray, rows: np.ndarray, y: np.ndarray,
              H: np.ndarray, sigma: np.ndarray) -> np.ndarray | None:  # fmt: skip
    """Compiled filters.update of the stack's rows ``rows`` in place (its floats): the
    NIS; None when the kernels are off (nothing changed)."""
    if not (enabled() and _plain(x, np.float64) and _plain(P, np.float64)):
        return None
    nis = np.empty(rows.shape[0])
    args = (x, P, _i64(rows), _f64(y), _f64(H), _f64(sigma, (rows.shape[0],)), nis)
    return None if _run("update_at", *args) is None else nis


def meet(origin: np.ndarray, los: np.ndarray, sigma: np.ndarray, live: np.ndarray,
         t_s: float, screen: tuple[float, ...], limits: np.ndarray,
         ) -> tuple[np.ndarray, ...] | None:  # fmt: skip
    """Compiled InitiationBuffer._meeting (:func:`.kernel_initiation._meet`; ``screen``:
    own code, speed, extra, slack, slack_m of its bound): the pairs' (new, waiting)
    indices, ranges t1, t2 (m) and scores; None when the kernels are off."""
    if not enabled():
        return None
    size = los.shape[0] * live.shape[0]
    (mi, bi), (t1, t2, score) = np.empty((2, size), np.int64), np.empty((3, size))
    args = (_f64(origin), _f64(los), _f64(sigma), _f64(live), float(t_s), *screen, limits)
    if (count := _run("meet", *args, mi, bi, t1, t2, score)) is None:
        return None
    return mi[:count], bi[:count], t1[:count], t2[:count], score[:count]


def add_rows(rows: np.ndarray, start: int, t_s: float, code: int, origin: np.ndarray,
             los: np.ndarray, sigma: np.ndarray, reach_per_sigma: float) -> bool:  # fmt: skip
    """Compiled InitiationBuffer.add's rows (:func:`.kernel_initiation._add_rows`) from
    row ``start``; False when the kernels are off."""
    if not (enabled() and _plain(rows, np.float64)):
        return False
    args = (rows, int(start), float(t_s), float(code), _f64(origin), _f64(los), _f64(sigma))
    return _run("add_rows", *args, float(reach_per_sigma)) is not None


def in_view(
    sensor_position: np.ndarray,
    positions: np.ndarray,
    limit: float,
    floor: float,
    axes: tuple[float, float],
    margins: tuple[float, float, float],
) -> np.ndarray | None:
    """Compiled view test of the existence look (tracker.existence, the Python-float
    arithmetic of its few-row path) of ``positions`` (N, 3) m from ``sensor_position``:
    bool (N,); None when the kernels are off or a value lies within ``margins`` of a
    limit (then the numpy path decides, so the answer is always numpy's)."""
    if not enabled():
        return None
    out = np.zeros(positions.shape[0], bool)
    args = (_f64(sensor_position), _f64(positions), float(limit), float(floor))
    if (done := _run("in_view", *args, _f64(axes), _f64(margins), out)) is None:
        return None
    return out if done else None


def propagate_to_surface(
    r: np.ndarray,
    v: np.ndarray,
    inv_beta: np.ndarray,
    max_flight_s: float,
    step_s: float,
    atmosphere_step_s: float,
    limits: tuple[float, float, float, float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Compiled impact.propagate_to_surface of K objects (ECI ``r`` m, ``v`` m/s, drag
    ``1/beta`` m^2/kg): surface positions (K, 3) ECI m, flight times (K,) s, landed
    mask; ``limits`` its step constants (see :func:`_to_surface`). None when the
    kernels are off."""
    if not enabled():
        return None
    k = np.shape(r)[0]
    hit_r, hit_t = np.full((k, 3), np.nan), np.full(k, np.nan)
    args = (_f64(r), _f64(v), _f64(inv_beta, (k,)), float(max_flight_s), float(step_s))
    try:
        _call("to_surface", *args, float(atmosphere_step_s), _f64(limits), hit_r, hit_t)
    except _NoKernel:
        return None
    return hit_r, hit_t, np.isfinite(hit_t)


def launch_fit(
    tau: np.ndarray,
    r_ecef: np.ndarray,
    w: np.ndarray,
    order: int,
    grid: np.ndarray,
    lowest_max_m: float,
) -> tuple[bool, np.ndarray] | None:
    """Compiled fit and ground search of impact.estimate_launch (see :func:`_launch_fit`):
    (found, (x, y, z m ECEF, variance m^2, time s on ``tau``)); None when the kernels
    are off."""
    if not enabled():
        return None
    out = np.empty(5)
    args = (_f64(tau), _f64(r_ecef), _f64(w), int(order), _f64(grid), float(lowest_max_m))
    if (found := _run("launch_fit", *args, out)) is None:
        return None
    return bool(found), out


def two_nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Compiled ``cKDTree(b).query(a, k=2)`` of unit vectors ``a`` (N, 3) among ``b``
    (M, 3), in the tree's floats (:mod:`.kernel_threads`): squared chords to the nearest
    and second nearest and the nearest's index, ``(d1, j1, d2)``; None when the kernels
    are off."""
    if not enabled():
        return None
    n = a.shape[0]
    d1, j1, d2 = np.empty(n), np.empty(n, np.int64), np.empty(n)
    try:
        _call("two_nearest", _f64(a), _f64(b), d1, j1, d2)
    except _NoKernel:
        return None
    return d1, j1, d2


def assign_pairs(
    track: np.ndarray,
    det: np.ndarray,
    d2: np.ndarray,
    logdet: np.ndarray,
    gates: np.ndarray,
    adjust: np.ndarray | None,
) -> np.ndarray | None:
    """Compiled association.assign_pairs (:mod:`.kernel_assign`): the chosen pairs by track;
    None when the kernels are off or a weight is left to scipy (not finite)."""
    if not enabled():
        return None
    out = np.empty(track.shape[0], np.int64)
    extra = _NO_ADJUST if adjust is None else _f64(adjust)
    args = (_i64(track), _i64(det), _f64(d2), _f64(logdet), _f64(gates), extra)
    count = _run("assign_pairs", *args, out)
    return None if count is None or count < 0 else out[:count]


def stream_groups(
    x: np.ndarray, radius: float, window: float, n_min: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Compiled stream groups (:mod:`.kernel_stream`) of the states ``x`` (N, 9): the
    tracks with at least ``n_min`` neighbours (itself included) within ``radius`` m and
    ``window`` s of flight, their group sizes, medians and median deviations (C, 6);
    None when the kernels are off or a value is not finite (the numpy code decides)."""
    if not enabled():
        return None
    n = x.shape[0]
    crowd, size, med, mad = (np.empty(n, np.int64), np.empty(n, np.int64),
                             np.empty((n, 6)), np.empty((n, 6)))  # fmt: skip
    args = (_f64(x), float(radius), float(window), int(n_min))
    count = _run("stream_groups", *args, crowd, size, med, mad)
    if count is None or count < 0:
        return None
    return crowd[:count], size[:count], med[:count], mad[:count]


def near_pairs(pos: np.ndarray, radius: float, trace: Any = None, chi2: float = 0.0) -> Any:
    """Compiled near pairs (:mod:`.kernel_pairs`: int64 ``(i, j)``, row-major) of finite ``pos``
    (N, 3) m, with ``trace`` (N,) m^2 and ``chi2`` the merge's screen; None if kernels are off."""
    tr, k = (np.zeros(pos.shape[0]), 0.0) if trace is None else (trace, float(chi2))
    return _run("near_pairs", _f64(pos), float(radius), _f64(tr), k) if enabled() else None


def warm() -> bool:
    """Compile (or load from numba's cache) every kernel now, on tiny inputs: ``make
    venv`` runs it once, so a fresh checkout's test workers and services do not each
    compile them at their first frame (~10 s CPU for all). Returns whether the kernels
    are in use (the example calls: :mod:`.kernel_warmup`)."""
    from .kernel_warmup import warm_every_kernel

    return enabled() and warm_every_kernel()
