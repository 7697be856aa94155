"""The floating-point platform a test process computes on, for the bit-exact digests.

The same code and the same packages write different last bits on different CPUs: numpy
dispatches some float64 loops to code for the widest SIMD the CPU has (AVX-512 loops
for exp, log and friends where AVX2 hosts call libm), and OpenBLAS picks its kernels,
and with them its summation order, by CPU. So `tests/test_track_digests.py` and
`tests/test_metrics_digests.py` keep one set of digests per platform, named by
:func:`float_platform`. Seen here (stop 25): every digest recorded on the AVX-512 hosts
of stops 10-24 differed on an AVX2 host with the same wheels (numpy 2.4.6, scipy 1.17.1,
numba 0.68.1), while the tolerance checks (tests/test_kernel_tolerance.py,
tests/test_regression_recordings.py) passed on both.
"""

from __future__ import annotations

import platform


def float_platform() -> str:
    """``machine-level``: e.g. ``x86_64-avx512``, ``x86_64-avx2``, ``aarch64-other``."""
    from numpy._core._multiarray_umath import __cpu_features__ as features

    if any(features.get(name) for name in ("AVX512F", "AVX512_SKX", "X86_V4")):
        level = "avx512"
    elif features.get("AVX2") and features.get("FMA3"):
        level = "avx2"
    else:
        level = "other"
    return f"{platform.machine()}-{level}"


def no_digests_message(kind: str, how: str) -> str:
    """Why a digest test skips on a platform with no recorded set; ``how`` records one."""
    return (
        f"no {kind} digests recorded for floating-point platform {float_platform()!r} "
        f"(tests/float_platform.py); record them ({how}) from a commit whose digests "
        "pass on a recorded platform"
    )
