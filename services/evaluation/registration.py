"""Sensor registration in ``tracklayer evaluate``: the estimates of ``/sensor_bias``
against the true biases of the ``sensor_bias`` metadata (DESIGN §5), as a table and a
plot over time. Scoring is :mod:`tracklayer.fusion.evaluation.registration`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracklayer.fusion.evaluation.registration import (
    BiasTruth,
    RegistrationScore,
    score_registration,
)
from tracklayer.fusion.registration import SensorBias
from tracklayer.services.errors import UserError
from tracklayer.services.wire.recording import TOPIC_SENSOR_BIAS, RecordingReader

SCORE_AFTER_S = 600.0  # s from the epoch: the "after 10 minutes" figures


@dataclass(slots=True)
class BiasEvaluation:
    """Estimates over time, the truth (None without it) and the scores at
    ``SCORE_AFTER_S`` and at the end (None when no sensor had evidence)."""

    estimates: list[SensorBias] = field(default_factory=list)
    truth: BiasTruth | None = None
    epoch_ns: int = 0
    at_10_min: RegistrationScore | None = None
    final: RegistrationScore | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``registration`` part of metrics.json."""
        return {
            "sensors": len({b.sensor_id for b in self.estimates}),
            "after_600_s": self.at_10_min.to_dict() if self.at_10_min else None,
            "final": self.final.to_dict() if self.final else None,
        }


def read_biases(path: Path, meta: dict[str, str]) -> BiasEvaluation | None:
    """The registration estimates of a recording scored against its truth; None when the
    recording has no ``/sensor_bias`` (registration off, or a live recording)."""
    reader = RecordingReader(path)
    if not reader.has_topic(TOPIC_SENSOR_BIAS):
        return None
    ev = BiasEvaluation([obj for _, _, obj in reader.messages([TOPIC_SENSOR_BIAS])])
    if "sensor_bias" not in meta or "epoch" not in meta:
        return ev
    try:
        ev.truth = BiasTruth.from_table(json.loads(meta["sensor_bias"]))
        ev.epoch_ns = int(meta["epoch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: metadata sensor_bias: {exc}") from None
    ev.at_10_min = score_registration(ev.truth, ev.estimates, ev.epoch_ns, SCORE_AFTER_S)
    ev.final = score_registration(ev.truth, ev.estimates, ev.epoch_ns)
    return ev


def format_biases(ev: BiasEvaluation) -> str:
    """Per sensor: true and estimated bias with 1-sigma (urad, x y z ECI) at the end, then
    the summary figures at 10 minutes and at the end."""
    if ev.truth is None:
        return _format_untruthed(ev.estimates)
    if ev.final is None:
        return "registration: no sensor has evidence (estimates zero, prior sigma)"
    lines = [
        "registration (urad, rotation vector x y z in ECI; latest estimate):",
        f"  {'sensor':<10} {'windows':>7}  {'true':^20}  {'estimate':^20}  {'1-sigma':^17}",
    ]
    for s in ev.final.sensors:
        tr = " ".join(f"{v:6.1f}" for v in s.true_urad)
        es = " ".join(f"{v:6.1f}" for v in s.estimate_urad)
        sg = " ".join(f"{v:5.1f}" for v in s.sigma_urad)
        lines.append(f"  {s.sensor_id:<10} {s.windows:>7}  {tr}  {es}  {sg}")
    for label, sc in (("after 10 min", ev.at_10_min), ("at the end", ev.final)):
        if sc is None:
            continue
        lines.append(
            f"  {label}: {len(sc.sensors)} sensors, true RMS {sc.rms_true_urad:.1f}, "
            f"error RMS {sc.rms_error_urad:.1f} (observable axes, "
            f"{100 * sc.observable_share:.0f} %: {sc.rms_observable_error_urad:.1f}, sigma "
            f"{sc.rms_observable_sigma_urad:.1f}; without the "
            f"common rotation: {sc.rms_relative_error_urad:.1f}), "
            f"within 3 sigma {100 * sc.within_3sigma:.0f} %"
        )
    return "\n".join(lines)


def _format_untruthed(estimates: list[SensorBias]) -> str:
    """Without true biases in the file: each sensor's latest estimate that has evidence
    (urad, ECI x y z, with 1-sigma), so an estimate on a sensor meant to be unbiased shows."""
    latest: dict[str, SensorBias] = {}
    for b in estimates:
        latest[b.sensor_id] = b
    seen = [b for _, b in sorted(latest.items()) if b.windows > 0]
    if not seen:
        return "registration: no sensor has evidence (estimates zero, prior sigma)"
    lines = [
        "registration (no true biases in this recording; urad, rotation vector x y z in ECI;"
        " latest estimate):",
        f"  {'sensor':<10} {'windows':>7}  {'estimate':^20}  {'1-sigma':^17}",
    ]
    for b in seen:
        es = " ".join(f"{1e6 * v:6.1f}" for v in b.angles_rad)
        sg = " ".join(f"{1e6 * v:5.1f}" for v in b.sigma_rad)
        lines.append(f"  {b.sensor_id:<10} {b.windows:>7}  {es}  {sg}")
    return "\n".join(lines)
