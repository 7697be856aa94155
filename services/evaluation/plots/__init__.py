"""Evaluation plots (matplotlib, Agg backend) from an :class:`EvaluationResult`.

Writes PNGs a person can read at a glance: ground tracks with predicted impact
ellipses (:mod:`.ground`), altitude against time, GOSPA with its parts and a track
timeline (:mod:`.timelines`), position error against the filter's 3-sigma and
impact-point error since burnout (:mod:`.errors`, with truth). Shared styling and
geometry in :mod:`.common`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before any module of this package imports pyplot

from tracklayer.fusion.evaluation import EvaluationResult  # noqa: E402

from .errors import plot_impact_error, plot_position_error  # noqa: E402
from .ground import plot_ground_tracks  # noqa: E402
from .timelines import plot_altitude, plot_gospa, plot_track_timeline  # noqa: E402

__all__ = [
    "plot_altitude",
    "plot_gospa",
    "plot_ground_tracks",
    "plot_impact_error",
    "plot_position_error",
    "plot_track_timeline",
    "write_plots",
]


def write_plots(result: EvaluationResult, out_dir: Path, name: str) -> list[Path]:
    """Write every plot that the result supports into ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        plot_ground_tracks(result, out_dir / "ground_tracks.png", name),
        plot_altitude(result, out_dir / "altitude.png", name),
    ]
    if result.has_truth:
        paths.append(plot_position_error(result, out_dir / "position_error.png", name))
        paths.append(plot_gospa(result, out_dir / "gospa.png", name))
        if any(o.impact_error_m.size for o in result.object_series):
            paths.append(plot_impact_error(result, out_dir / "impact_error.png", name))
    paths.append(plot_track_timeline(result, out_dir / "track_timeline.png", name))
    return paths
