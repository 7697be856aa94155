"""The one array type the compiled kernels take: writable, C-contiguous float64 or int64
(numba compiles and caches one signature per kernel and argument type, so every caller
converts to these first)."""

from __future__ import annotations

from typing import Any

import numpy as np


def f64(a: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``a`` as a writable C-contiguous float64 array (of ``shape``, broadcast, if given):
    always the one array type, so numba compiles and caches one signature per kernel (a
    read-only array, e.g. a scalar broadcast to one row, would be another)."""
    if plain(a, np.float64) and (shape is None or a.shape == shape):
        return a
    arr = np.asarray(a, dtype=np.float64)
    if shape is not None and arr.shape != shape:
        arr = np.broadcast_to(arr, shape)
    arr = np.ascontiguousarray(arr)
    return arr if arr.flags.writeable else arr.copy()


def i64(a: np.ndarray) -> np.ndarray:
    """``a`` as a writable C-contiguous int64 array (one array type, as :func:`f64`)."""
    return a if plain(a, np.int64) else np.array(a, dtype=np.int64, order="C")


def plain(a: Any, dtype: type) -> bool:
    """Whether ``a`` is a writable C-contiguous ``dtype`` array (kernels use it in place)."""
    f = a.flags if type(a) is np.ndarray and a.dtype == dtype else None
    return f is not None and f.c_contiguous and f.writeable
