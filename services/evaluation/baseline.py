"""Baseline comparison of evaluation figures (``tracklayer evaluate --baseline``).

A baseline is a JSON file::

    {
      "recording": "salvo-short.mcap",             # free text, optional
      "figures": {
        "truth.position_rmse_m.midcourse": {"value": 41.3, "better": "lower",
                                            "rel_tol": 0.25, "abs_tol": 5.0},
        "truth.completeness": {"value": 0.97, "better": "higher", "abs_tol": 0.02},
        "tracks.n_confirmed": {"value": 3, "better": "equal", "abs_tol": 0}
      }
    }

Keys are dotted paths into ``metrics.json``. ``better`` is ``lower``, ``higher`` or
``equal``; the tolerance is ``max(abs_tol, rel_tol * |value|)`` (both default 0). A
figure is WORSE when it moved the wrong way by more than the tolerance (for ``equal``:
differs by more), or when the current run lacks it (null).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Default figures of a new baseline: (key, better, rel_tol, abs_tol). Tolerances cover
# seed-to-seed scatter of short recordings, not real regressions.
DEFAULT_FIGURES: tuple[tuple[str, str, float, float], ...] = (
    ("truth.position_rmse_m.boost", "lower", 0.25, 50.0),
    ("truth.position_rmse_m.midcourse", "lower", 0.25, 5.0),
    ("truth.velocity_rmse_mps.midcourse", "lower", 0.25, 0.1),
    ("truth.gospa_mean_m", "lower", 0.25, 50.0),
    ("truth.completeness", "higher", 0.0, 0.02),
    ("truth.false_track_share", "lower", 0.0, 0.01),
    ("truth.id_switches", "lower", 0.0, 0.0),
    ("truth.detection_delay_max_s", "lower", 0.0, 3.0),
    ("truth.nees_midcourse_share_above", "lower", 0.0, 0.02),
    ("truth.impact_error_median_m", "lower", 0.25, 200.0),
    ("truth.launch_error_median_m", "lower", 0.25, 500.0),
    ("tracks.n_confirmed", "equal", 0.0, 0.0),
    ("tracks.confirmed_lifetime_median_s", "higher", 0.1, 5.0),
)
_BETTER = ("lower", "higher", "equal")


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """One baseline figure against this run: dotted ``key`` into metrics.json, the
    ``baseline`` value, the ``current`` one (None when missing), which way is ``better``,
    the ``tolerance`` (in the figure's unit) and the ``verdict``."""

    key: str
    baseline: float
    current: float | None
    better: str
    tolerance: float
    verdict: str  # "better", "same", "worse" (within tolerance), "WORSE" (beyond)


def lookup(metrics: dict[str, Any], key: str) -> float | None:
    """The number at a dotted ``key`` of a metrics dict; None if absent or null."""
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node) if math.isfinite(float(node)) else None


def load_baseline(path: Path) -> dict[str, dict[str, Any]]:
    """Read and check a baseline file; returns its ``figures`` mapping."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BaselineError(f"{path}: no such baseline file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: not JSON: {exc}") from None
    figs = data.get("figures") if isinstance(data, dict) else None
    if not isinstance(figs, dict) or not figs:
        raise BaselineError(f"{path}: figures: expected a non-empty object of figures")
    for key, spec in figs.items():
        if not isinstance(spec, dict):
            raise BaselineError(f"{path}: figures.{key}: expected an object")
        v = spec.get("value")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise BaselineError(f"{path}: figures.{key}.value: expected a number")
        if spec.get("better") not in _BETTER:
            raise BaselineError(f"{path}: figures.{key}.better: expected one of {list(_BETTER)}")
        for tol in ("rel_tol", "abs_tol"):
            t = spec.get(tol, 0.0)
            if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
                raise BaselineError(f"{path}: figures.{key}.{tol}: expected a number >= 0")
    return figs


def compare(metrics: dict[str, Any], figures: dict[str, dict[str, Any]]) -> list[Comparison]:
    """Compare current ``metrics`` (metrics.json form) with baseline ``figures``."""
    out = []
    for key, spec in figures.items():
        base = float(spec["value"])
        better = spec["better"]
        tol = max(float(spec.get("abs_tol", 0.0)), float(spec.get("rel_tol", 0.0)) * abs(base))
        cur = lookup(metrics, key)
        if cur is None:
            verdict = "WORSE"
        else:
            gain = {"lower": base - cur, "higher": cur - base, "equal": -abs(cur - base)}[better]
            if gain > 0:
                verdict = "better"
            elif gain == 0:
                verdict = "same"
            elif -gain <= tol:
                verdict = "worse"
            else:
                verdict = "WORSE"
        out.append(Comparison(key, base, cur, better, tol, verdict))
    return out


def make_baseline(metrics: dict[str, Any], recording: str) -> dict[str, Any]:
    """A baseline of the default figures that this run has, with default tolerances."""
    figs = {}
    for key, better, rel, ab in DEFAULT_FIGURES:
        v = lookup(metrics, key)
        if v is not None:
            figs[key] = {"value": v, "better": better, "rel_tol": rel, "abs_tol": ab}
    return {"recording": recording, "figures": figs}
