"""Frame validation: the REJECTED rules of DESIGN §4, applied before any state changes.

:func:`validate_frame` raises ``ValueError("<field>: <why>")`` naming the wire field
(``sensor_id``, ``sensor_position_eci``, ``detections[3].line_of_sight_eci``, ...),
so the fusion service can put the message straight into ``FrameAck.reason``.
Checks over detections are vectorised (one numpy pass per column, however many
detections a frame carries); only the index of the first bad detection is reported.
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np

from .domain import NS_PER_S, SensorFrame

#: |  |u| - 1  | above this rejects a line of sight (unit vector, dimensionless).
LOS_NORM_TOLERANCE = 1e-6
#: angular_sigma must lie in (0, MAX_ANGULAR_SIGMA_RAD]: 10 mrad is already a
#: very coarse IR sensor; anything larger is almost surely microradians sent as radians.
MAX_ANGULAR_SIGMA_RAD = 1e-2
#: A frame more than this after its sensor's latest received time is rejected (ns;
#: the orderer says what counts as received: DESIGN §6, the long-outage rule).
MAX_TIME_JUMP_NS = 600 * NS_PER_S
_UINT64_MAX = 2**64 - 1
_FEW_DETECTIONS = 16  # up to this many, the Python-float check first


def _first(mask: np.ndarray) -> int:
    """Index of the first True in a boolean vector."""
    return int(np.argmax(mask))


def _finite(v: np.ndarray) -> bool:
    """Every element of ``v`` is finite (a 3-vector read as Python floats)."""
    if v.shape == (3,):
        x, y, z = v.tolist()
        return math.isfinite(x) and math.isfinite(y) and math.isfinite(z)
    return bool(np.isfinite(v).all())


def _plainly_valid(los: np.ndarray, sigma: np.ndarray) -> bool:
    """True when a few detections (at most :data:`_FEW_DETECTIONS`) are valid beyond
    doubt, checked in Python floats (numpy's per-call cost dominates a sparse frame):
    finite, ``| |u| - 1 |`` under half the tolerance (so numpy's rounding, ~1e-16,
    cannot decide otherwise), sigma in range. False sends the frame to the vectorised
    checks, which decide and name the first bad detection."""
    if los.shape[0] > _FEW_DETECTIONS:
        return False
    tol = 0.5 * LOS_NORM_TOLERANCE
    for (x, y, z), s in zip(los.tolist(), sigma.tolist(), strict=True):
        if not (0.0 < s <= MAX_ANGULAR_SIGMA_RAD):
            return False
        norm = math.sqrt(x * x + y * y + z * z)  # NaN or inf: not below tol
        if not abs(norm - 1.0) < tol:
            return False
    return True


def validate_frame(
    frame: SensorFrame,
    latest_accepted_ns: int | None = None,
    allowed: frozenset[str] | None = None,
) -> None:
    """Raise ``ValueError("<field>: <why>")`` if ``frame`` breaks a rule of DESIGN §4.

    ``latest_accepted_ns``: the sensor's latest received time (ns since the Unix epoch;
    :meth:`~.ordering.FrameOrderer.received_ns`), or None before its first accepted
    frame; a frame more than 600 s after it is rejected (a clock jump). ``allowed``:
    the allow-list of sensor ids (``--sensors``), or None for any sensor. Returns None
    when the frame is valid. The check looks at the frame and these two arguments
    only, so its outcome never depends on other sensors' streams.
    """
    sensor_id = frame.sensor_id
    if not isinstance(sensor_id, str) or not sensor_id:
        raise ValueError("sensor_id: empty")
    if allowed is not None and sensor_id not in allowed:
        raise ValueError(f"sensor_id: {sensor_id!r} is not on the allow-list (--sensors)")
    seq = frame.sequence
    if type(seq) is int:  # the common case, without the ABC check's cost
        if not 0 <= seq <= _UINT64_MAX:
            raise ValueError(f"sequence: {seq!r} is not an unsigned 64-bit integer")
    elif not isinstance(seq, Integral) or isinstance(seq, bool) or not 0 <= seq <= _UINT64_MAX:
        raise ValueError(f"sequence: {seq!r} is not an unsigned 64-bit integer")
    t = frame.time_ns
    if type(t) is not int and (not isinstance(t, Integral) or isinstance(t, bool)):
        # Integer ns is the only representation inside; a float here may be NaN/inf.
        if isinstance(t, float) and not math.isfinite(t):
            raise ValueError(f"time: not finite ({t!r})")
        raise ValueError(f"time: {t!r} is not an integer number of nanoseconds")
    if not _finite(frame.position):
        raise ValueError(f"sensor_position_eci: not finite ({frame.position.tolist()})")
    if not _finite(frame.velocity):
        raise ValueError(f"sensor_velocity_eci: not finite ({frame.velocity.tolist()})")

    los = frame.los
    if los.shape[0] and not _plainly_valid(los, frame.sigma):
        if not np.isfinite(los).all():  # (one reduction; the row only to name it)
            i = _first(~np.isfinite(los).all(axis=1))
            raise ValueError(f"detections[{i}].line_of_sight_eci: not finite ({los[i].tolist()})")
        norm_err = np.abs(np.sqrt(np.einsum("ij,ij->i", los, los)) - 1.0)
        bad = norm_err > LOS_NORM_TOLERANCE
        if bad.any():
            i = _first(bad)
            raise ValueError(
                f"detections[{i}].line_of_sight_eci: not a unit vector "
                f"(| |u| - 1 | = {norm_err[i]:.3g} > {LOS_NORM_TOLERANCE:g})"
            )
        sigma = frame.sigma
        # NaN fails both comparisons, so it lands here as "outside" too.
        bad = ~((sigma > 0.0) & (sigma <= MAX_ANGULAR_SIGMA_RAD))
        if bad.any():
            i = _first(bad)
            s = float(sigma[i])
            hint = (
                "; looks like microradians sent as radians"
                if s > MAX_ANGULAR_SIGMA_RAD and math.isfinite(s)
                else ""
            )
            raise ValueError(
                f"detections[{i}].angular_sigma: {s!r} rad is outside "
                f"(0, {MAX_ANGULAR_SIGMA_RAD:g}] rad{hint}"
            )

    if latest_accepted_ns is not None and t - latest_accepted_ns > MAX_TIME_JUMP_NS:
        raise ValueError(
            f"time: {(t - latest_accepted_ns) / NS_PER_S:.3f} s after sensor "
            f"{sensor_id!r}'s latest frame (more than "
            f"{MAX_TIME_JUMP_NS // NS_PER_S} s)"
        )
