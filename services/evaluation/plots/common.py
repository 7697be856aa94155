"""Shared pieces of the evaluation plots: colours, axis labels, the lat/lon graticule
text, the 3-sigma ellipse outline and saving a figure.

Longitudes are unwrapped around the scene (deg, continuous across the antimeridian);
ellipse outlines are east/north offsets (m) in the local tangent plane at the centre,
the major axis ``orientation_deg`` clockwise from north. Times on the axes are seconds
since ``EvaluationResult.t0_ns``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from tracklayer.fusion.domain import NS_PER_S, TrackStatus
from tracklayer.fusion.evaluation import EvaluationResult, TrackSeries

DPI = 110
LIVE = (int(TrackStatus.CONFIRMED), int(TrackStatus.COASTING))
MAX_LEGEND_OBJECTS = 8
MAX_TIMELINE_TRACKS = 60


def colour_cycle(n: int) -> list:
    """``n`` distinct line colours (at least one)."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _t0_text(result: EvaluationResult) -> str:
    return datetime.fromtimestamp(result.t0_ns / NS_PER_S, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def time_label(result: EvaluationResult) -> str:
    """The x-axis label of plots against time."""
    return f"time since {_t0_text(result)} (s)"


def wrap_lon(lon: np.ndarray, ref: float) -> np.ndarray:
    """Longitudes (deg) mapped into [ref - 180, ref + 180): continuous around the scene."""
    return ref + (np.asarray(lon, float) - ref + 180.0) % 360.0 - 180.0


def lon_text(x: float, _pos: object = None) -> str:
    """Axis text of an unwrapped longitude (deg): 170°W, 0°, 100°E."""
    v = (x + 180.0) % 360.0 - 180.0
    if abs(v) < 1e-9 or abs(abs(v) - 180.0) < 1e-9:
        return f"{abs(v):.0f}°"
    return f"{abs(v):g}°{'E' if v > 0 else 'W'}"


def lat_text(y: float, _pos: object = None) -> str:
    """Axis text of a latitude (deg): 40°N."""
    return f"{abs(y):g}°{'N' if y > 0 else 'S' if y < 0 else ''}"


def ellipse_en(smaj: float, smin: float, orient_deg: float, scale: float = 3.0) -> np.ndarray:
    """(K, 2) east/north points (m) of a ``scale``-sigma ellipse around the origin."""
    th = math.radians(orient_deg)
    major = np.array([math.sin(th), math.cos(th)])
    minor = np.array([math.cos(th), -math.sin(th)])
    phi = np.linspace(0.0, 2 * math.pi, 121)[:, None]
    return scale * (smaj * np.cos(phi) * major + smin * np.sin(phi) * minor)


def save(fig: plt.Figure, path: Path, name: str, what: str) -> Path:
    """Title the figure "name: what", lay it out, write it to ``path`` and close it."""
    fig.suptitle(f"{name}: {what}", fontsize=12, fontweight="bold")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def legend_below(ax: plt.Axes, handles: list, ncol: int) -> None:
    """A frameless legend centred under the axes."""
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=ncol,
        fontsize=8,
        frameon=False,
    )


def live(t: TrackSeries) -> np.ndarray:
    """Mask of the track's reports that are CONFIRMED or COASTING."""
    return np.isin(t.status, LIVE)


def object_tracks(result: EvaluationResult) -> dict[str, str]:
    """Track id -> the object it was last assigned to (tracks never assigned are absent)."""
    out: dict[str, str] = {}
    for o in result.object_series:
        for tid in o.track_ids:
            out[tid] = o.object_id
    return out


def fmt(v: float | None, unit: str) -> str:
    """A figure for a plot title: 3 significant digits, km from 1,000 m, n/a if none."""
    if v is None or not math.isfinite(v):
        return "n/a"
    if unit == "m" and v >= 1000:
        return f"{v / 1e3:.2f} km"
    return f"{v:.3g} {unit}"


def ref_lon(result: EvaluationResult) -> float:
    """Longitude (deg) the map is centred on: the first truth sample, else the first
    confirmed track's first report, else 0."""
    for o in result.object_series:
        if o.truth_longitude_deg.size:
            return float(o.truth_longitude_deg[0])
    for t in result.track_series:
        if t.confirmed:
            return float(t.longitude_deg[0])
    return 0.0


def segments(t: np.ndarray, gap_s: float = 10.0) -> list[slice]:
    """Slices of ``t`` without a gap longer than ``gap_s`` (so lines break at gaps)."""
    cut = np.flatnonzero(np.diff(t) > gap_s) + 1
    edges = [0, *cut.tolist(), t.size]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
