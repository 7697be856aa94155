"""Evaluation plots (matplotlib, Agg backend) from a :class:`EvaluationResult`.

Writes PNGs a person can read at a glance: ground tracks with predicted impact
ellipses, altitude against time, position error against the filter's 3-sigma, GOSPA
with its parts, impact-point error since burnout (with truth), and a track timeline
(always). The map is an equirectangular lat/lon graticule (no coastline data ships
with tracklayer and nothing is fetched); longitudes are unwrapped around the scene so
that a flight across the antimeridian stays continuous.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from tracklayer.fusion.domain import NS_PER_S, TrackStatus  # noqa: E402
from tracklayer.fusion.evaluation import (  # noqa: E402
    IMPACT_AFTER_BURNOUT_S,
    EvaluationResult,
    ObjectSeries,
    TrackSeries,
    ground_offset_en,
)

_DPI = 110
_LIVE = (int(TrackStatus.CONFIRMED), int(TrackStatus.COASTING))
_MAX_LEGEND_OBJECTS = 8
_MAX_TIMELINE_TRACKS = 60


def _colours(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _t0_text(result: EvaluationResult) -> str:
    return datetime.fromtimestamp(result.t0_ns / NS_PER_S, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _time_label(result: EvaluationResult) -> str:
    return f"time since {_t0_text(result)} (s)"


def _wrap(lon: np.ndarray, ref: float) -> np.ndarray:
    """Longitudes (deg) mapped into [ref - 180, ref + 180): continuous around the scene."""
    return ref + (np.asarray(lon, float) - ref + 180.0) % 360.0 - 180.0


def _lon_text(x: float, _pos: object = None) -> str:
    v = (x + 180.0) % 360.0 - 180.0
    if abs(v) < 1e-9 or abs(abs(v) - 180.0) < 1e-9:
        return f"{abs(v):.0f}°"
    return f"{abs(v):g}°{'E' if v > 0 else 'W'}"


def _lat_text(y: float, _pos: object = None) -> str:
    return f"{abs(y):g}°{'N' if y > 0 else 'S' if y < 0 else ''}"


def _ellipse_en(smaj: float, smin: float, orient_deg: float, scale: float = 3.0) -> np.ndarray:
    """(K, 2) east/north points (m) of a ``scale``-sigma ellipse around the origin."""
    th = math.radians(orient_deg)
    major = np.array([math.sin(th), math.cos(th)])
    minor = np.array([math.cos(th), -math.sin(th)])
    phi = np.linspace(0.0, 2 * math.pi, 121)[:, None]
    return scale * (smaj * np.cos(phi) * major + smin * np.sin(phi) * minor)


def _title(fig: plt.Figure, name: str, what: str) -> None:
    fig.suptitle(f"{name}: {what}", fontsize=12, fontweight="bold")


def _ref_lon(result: EvaluationResult) -> float:
    for o in result.object_series:
        if o.truth_longitude_deg.size:
            return float(o.truth_longitude_deg[0])
    for t in result.track_series:
        if t.confirmed:
            return float(t.longitude_deg[0])
    return 0.0


def _live(t: TrackSeries) -> np.ndarray:
    return np.isin(t.status, _LIVE)


# ------------------------------------------------------------------ ground tracks


def _segments(t: np.ndarray, gap_s: float = 10.0) -> list[slice]:
    """Slices of ``t`` without a gap longer than ``gap_s`` (so lines break at gaps)."""
    cut = np.flatnonzero(np.diff(t) > gap_s) + 1
    edges = [0, *cut.tolist(), t.size]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _object_tracks(result: EvaluationResult) -> dict[str, str]:
    """Track id -> the object it was last assigned to (tracks never assigned are absent)."""
    out: dict[str, str] = {}
    for o in result.object_series:
        for tid in o.track_ids:
            out[tid] = o.object_id
    return out


def plot_ground_tracks(result: EvaluationResult, path: Path, name: str) -> Path:
    """Map of truth and confirmed-track ground tracks; with truth, a second panel of the
    impact predictions relative to each object's true impact point, with 3-sigma ellipses."""
    objs = [o for o in result.object_series if o.truth_t_s.size]
    tracks = [t for t in result.track_series if t.confirmed]
    owner = _object_tracks(result)
    with_miss = any(o.impact_latlon_deg for o in objs) and any(
        t.last_impact is not None and t.track_id in owner for t in tracks
    )
    fig, axes = plt.subplots(
        1,
        2 if with_miss else 1,
        figsize=(16 if with_miss else 11, 7),
        squeeze=False,
        width_ratios=[1.6, 1] if with_miss else None,
    )
    ax = axes[0, 0]
    ref = _ref_lon(result)
    colours = _colours(len(objs))
    colour_of = {o.object_id: c for o, c in zip(objs, colours, strict=False)}
    lats: list[np.ndarray] = []
    lons: list[np.ndarray] = []
    for o, c in zip(objs, colours, strict=False):
        lon = _wrap(o.truth_longitude_deg, ref)
        ax.plot(lon, o.truth_latitude_deg, "-", color=c, lw=5.0, alpha=0.35, solid_capstyle="round")
        lats.append(o.truth_latitude_deg)
        lons.append(lon)
        if o.launch_latlon_deg:
            ax.plot(
                _wrap(o.launch_latlon_deg[1], ref),
                o.launch_latlon_deg[0],
                "^",
                color=c,
                mec="black",
                ms=10,
                zorder=5,
            )
        if o.impact_latlon_deg:
            ax.plot(
                _wrap(o.impact_latlon_deg[1], ref),
                o.impact_latlon_deg[0],
                "X",
                color=c,
                mec="black",
                ms=10,
                zorder=5,
            )
    any_false = False
    # with truth, tracks are thin black lines over their object's colour; without, one
    # colour per track
    track_colours = _colours(len(tracks)) if not objs else ["black"] * len(tracks)
    for t, tc in zip(tracks, track_colours, strict=False):
        m = _live(t)
        lon = _wrap(t.longitude_deg[m], ref)
        lat = t.latitude_deg[m]
        false = result.has_truth and t.track_id not in owner
        any_false |= false
        for sl in _segments(t.t_s[m]):
            ax.plot(
                lon[sl],
                lat[sl],
                "-",
                color="red" if false else tc,
                lw=1.0 if objs and not false else 2.0,
            )
        lats.append(lat)
        lons.append(lon)
        e = t.last_impact
        if e is not None:
            ax.plot(
                _wrap(e.longitude_deg, ref),
                e.latitude_deg,
                "o",
                mfc="none",
                mec="black",
                ms=7,
                zorder=6,
            )
    if lats:
        la = np.concatenate(lats)
        lo = np.concatenate(lons)
        la, lo = la[np.isfinite(la)], lo[np.isfinite(lo)]
    else:
        la = lo = np.zeros(0)
    if la.size:
        pad_la = max(1.0, 0.08 * np.ptp(la))
        pad_lo = max(1.0, 0.08 * np.ptp(lo))
        ax.set_ylim(max(-90, la.min() - pad_la), min(90, la.max() + pad_la))
        ax.set_xlim(lo.min() - pad_lo, lo.max() + pad_lo)
        ax.set_aspect(1.0 / max(0.2, math.cos(math.radians(float(np.mean(la))))))
    ax.xaxis.set_major_formatter(FuncFormatter(_lon_text))
    ax.yaxis.set_major_formatter(FuncFormatter(_lat_text))
    ax.grid(True, color="0.8", lw=0.6)
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("geodetic latitude (deg)")
    ax.set_title("ground tracks (equirectangular; graticule only, no coastlines)", fontsize=10)
    handles = []
    if objs:
        handles += [
            Line2D([], [], color="0.4", lw=5, alpha=0.4, label="truth ground track"),
            Line2D(
                [],
                [],
                color="0.5",
                marker="^",
                mec="black",
                ls="none",
                ms=9,
                label="launch (truth)",
            ),
            Line2D(
                [],
                [],
                color="0.5",
                marker="X",
                mec="black",
                ls="none",
                ms=9,
                label="impact (truth)",
            ),
        ]
    handles.append(Line2D([], [], color="black", lw=1, label="confirmed track"))
    if any_false:
        handles.append(Line2D([], [], color="red", lw=2, label="track on no object"))
    handles.append(
        Line2D(
            [], [], mec="black", mfc="none", marker="o", ls="none", label="final predicted impact"
        )
    )
    if objs and len(objs) <= _MAX_LEGEND_OBJECTS:
        handles += [
            Line2D([], [], color=c, lw=5, alpha=0.5, label=o.object_id)
            for o, c in zip(objs, colours, strict=False)
        ]
    if not objs and len(tracks) <= _MAX_LEGEND_OBJECTS:
        handles += [
            Line2D([], [], color=c, lw=2, label=t.track_id)
            for t, c in zip(tracks, track_colours, strict=False)
        ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    if with_miss:
        _impact_miss(axes[0, 1], objs, colour_of, tracks, owner)
    _title(fig, name, "ground tracks and predicted impact points")
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _impact_miss(
    ax: plt.Axes,
    objs: list[ObjectSeries],
    colour_of: dict,
    tracks: list[TrackSeries],
    owner: dict[str, str],
) -> None:
    """Impact predictions as offsets (km east/north) from their object's true impact point:
    the trail of predictions over time and the final one with its 3-sigma ellipse."""
    truth = {o.object_id: o.impact_latlon_deg for o in objs if o.impact_latlon_deg}
    extent = 2.0  # km, at least
    for t in tracks:
        oid = owner.get(t.track_id)
        if oid not in truth:
            continue
        lat0, lon0 = truth[oid]
        c = colour_of[oid]
        m = np.isfinite(t.impact_latitude_deg) & _live(t)
        if np.any(m):
            e, n = ground_offset_en(lat0, lon0, t.impact_latitude_deg[m], t.impact_longitude_deg[m])
            ax.plot(np.asarray(e) / 1e3, np.asarray(n) / 1e3, ".", color=c, ms=2.5, alpha=0.35)
        ie = t.last_impact
        if ie is not None:
            e, n = ground_offset_en(lat0, lon0, ie.latitude_deg, ie.longitude_deg)
            e, n = float(e) / 1e3, float(n) / 1e3
            poly = _ellipse_en(ie.semi_major_m, ie.semi_minor_m, ie.orientation_deg) / 1e3
            ax.plot(e + poly[:, 0], n + poly[:, 1], "-", color=c, lw=1.6)
            ax.plot(e, n, "o", color=c, mec="black", ms=6, zorder=5)
            extent = max(extent, abs(e) + np.abs(poly).max(), abs(n) + np.abs(poly).max())
    ax.plot(0, 0, "X", color="white", mec="black", ms=13, mew=1.5, zorder=6)
    lim = 1.15 * extent
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal", adjustable="box")
    ax.grid(True, color="0.85", lw=0.6)
    ax.axhline(0, color="0.7", lw=0.6)
    ax.axvline(0, color="0.7", lw=0.6)
    ax.set_xlabel("east of the true impact point (km)")
    ax.set_ylabel("north of the true impact point (km)")
    ax.set_title("impact predictions relative to each object's true impact", fontsize=10)
    handles = [
        Line2D(
            [], [], color="white", marker="X", mec="black", ls="none", ms=11, label="true impact"
        ),
        Line2D(
            [], [], color="0.4", marker=".", ls="none", alpha=0.5, label="predictions over time"
        ),
        Line2D(
            [],
            [],
            color="0.4",
            marker="o",
            mec="black",
            lw=1.6,
            label="final prediction, 3-sigma ellipse",
        ),
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=2,
        fontsize=8,
        frameon=False,
    )


# ------------------------------------------------------------------ altitude


def plot_altitude(result: EvaluationResult, path: Path, name: str) -> Path:
    """Altitude (km) against time: truth lines with phase marks, confirmed track reports."""
    fig, ax = plt.subplots(figsize=(11, 5.5))
    objs = [o for o in result.object_series if o.truth_t_s.size]
    colours = _colours(len(objs))
    for o, c in zip(objs, colours, strict=False):
        ax.plot(o.truth_t_s, o.truth_altitude_m / 1e3, "-", color=c, lw=2.2, alpha=0.5)
        if len(objs) <= _MAX_LEGEND_OBJECTS:
            for tb, lab in ((o.burnout_s, "burnout"), (o.reentry_s, "reentry")):
                if math.isfinite(tb):
                    y = float(np.interp(tb, o.truth_t_s, o.truth_altitude_m)) / 1e3
                    ax.plot(tb, y, "|", color=c, ms=14, mew=2)
                    ax.annotate(
                        lab, (tb, y), textcoords="offset points", xytext=(4, 6), fontsize=7, color=c
                    )
    owner = _object_tracks(result)
    any_false = False
    for t in result.track_series:
        if not t.confirmed:
            continue
        m = _live(t)
        false = result.has_truth and t.track_id not in owner
        any_false |= false
        ax.plot(t.t_s[m], t.altitude_m[m] / 1e3, ".", color="red" if false else "black", ms=1.8)
    handles = []
    if any_false:
        handles.append(
            Line2D([], [], color="red", marker=".", ls="none", label="track on no object")
        )
    if objs:
        handles.append(Line2D([], [], color="0.4", lw=2.2, alpha=0.6, label="truth"))
    handles.append(
        Line2D([], [], color="black", marker=".", ls="none", label="confirmed track reports")
    )
    if objs and len(objs) <= _MAX_LEGEND_OBJECTS:
        handles += [
            Line2D([], [], color=c, lw=2, label=o.object_id)
            for o, c in zip(objs, colours, strict=False)
        ]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.axhline(100.0, color="0.6", lw=0.8, ls=":")
    ax.text(ax.get_xlim()[0], 100.0, " 100 km", va="bottom", fontsize=7, color="0.4")
    ax.set_xlabel(_time_label(result))
    ax.set_ylabel("altitude above WGS-84 (km)")
    ax.grid(True, color="0.88")
    _title(fig, name, "altitude of truth and tracks")
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


# ------------------------------------------------------------------ errors


def _shade_phases(ax: plt.Axes, o: ObjectSeries) -> None:
    if math.isfinite(o.burnout_s):
        ax.axvspan(o.truth_t_s[0], o.burnout_s, color="orange", alpha=0.08, lw=0)
        mid_end = o.reentry_s if math.isfinite(o.reentry_s) else o.truth_t_s[-1]
        ax.axvspan(o.burnout_s + 60.0, mid_end, color="tab:blue", alpha=0.06, lw=0)
        if math.isfinite(o.reentry_s):
            ax.axvspan(o.reentry_s, o.truth_t_s[-1], color="tab:red", alpha=0.06, lw=0)


def plot_position_error(result: EvaluationResult, path: Path, name: str) -> Path:
    """Position and velocity error of the assigned track against time, with the filter's
    3-sigma (3 sqrt(trace P_pos)); log scale."""
    fig, (ax, axv) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    objs = [o for o in result.object_series if o.eval_t_s.size]
    many = len(objs) > _MAX_LEGEND_OBJECTS
    if many:
        _errors_many(ax, axv, objs, result.eval_t_s)
    colours = _colours(len(objs))
    for o, c in zip(objs, colours, strict=False):
        if not many:
            ax.semilogy(
                o.eval_t_s,
                np.maximum(o.position_error_m, 1e-1),
                ".",
                color=c,
                ms=2.5,
                label=o.object_id,
            )
            ax.semilogy(o.eval_t_s, o.position_sigma3_m, "-", color=c, lw=0.9, alpha=0.8)
            axv.semilogy(o.eval_t_s, np.maximum(o.velocity_error_mps, 1e-3), ".", color=c, ms=2.5)
            axv.semilogy(o.eval_t_s, o.velocity_sigma3_mps, "-", color=c, lw=0.9, alpha=0.8)
        sw = np.flatnonzero(np.array(o.track_ids[1:]) != np.array(o.track_ids[:-1])) + 1
        for k in sw:
            for a in (ax, axv):
                a.axvline(o.eval_t_s[k], color="0.3" if many else c, ls="--", lw=0.8)
            if not many:
                ax.annotate(
                    f"ID switch to {o.track_ids[k]}",
                    (o.eval_t_s[k], 0.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, 4),
                    textcoords="offset points",
                    fontsize=7,
                    color=c,
                )
    if len(objs) == 1:
        _shade_phases(ax, objs[0])
        _shade_phases(axv, objs[0])
    handles, _ = ax.get_legend_handles_labels()
    if many:
        handles += [
            Line2D([], [], color="0.6", marker=".", ls="none", label="|error|, every object"),
            Line2D([], [], color="black", lw=1.4, label="RMS over objects"),
            Line2D([], [], color="tab:red", lw=1.2, label="median filter 3-sigma"),
        ]
    else:
        handles += [
            Line2D([], [], color="0.3", marker=".", ls="none", label="|error| of assigned track"),
            Line2D([], [], color="0.3", lw=1, label="filter 3-sigma: 3 sqrt(trace P)"),
        ]
    if any(len(set(o.track_ids)) > 1 for o in objs):
        handles.append(Line2D([], [], color="0.3", ls="--", lw=0.8, label="ID switch"))
    if len(objs) == 1:
        from matplotlib.patches import Patch

        handles += [
            Patch(color="orange", alpha=0.25, label="boost"),
            Patch(color="tab:blue", alpha=0.2, label="midcourse window"),
            Patch(color="tab:red", alpha=0.2, label="reentry"),
        ]
    ax.legend(handles=handles, loc="upper right", fontsize=8, ncol=2)
    tr = result.truth or {}
    rm = tr.get("position_rmse_m", {})
    vm = tr.get("velocity_rmse_mps", {})
    ax.set_title(
        "position error; RMSE boost {} / midcourse {} / reentry {}".format(
            *(_fmt(rm.get(p), "m") for p in ("boost", "midcourse", "reentry"))
        ),
        fontsize=10,
    )
    axv.set_title(
        "velocity error; RMSE boost {} / midcourse {} / reentry {}".format(
            *(_fmt(vm.get(p), "m/s") for p in ("boost", "midcourse", "reentry"))
        ),
        fontsize=10,
    )
    ax.set_ylabel("position error (m)")
    axv.set_ylabel("velocity error (m/s)")
    axv.set_xlabel(_time_label(result))
    for a in (ax, axv):
        a.grid(True, which="both", color="0.9")
    _title(fig, name, "track error against truth")
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _errors_many(ax: plt.Axes, axv: plt.Axes, objs: list[ObjectSeries], grid: np.ndarray) -> None:
    """Errors of many objects: all samples as grey dots, RMS over objects and the median
    filter 3-sigma per evaluation time as lines."""
    n = grid.size
    sums = np.zeros((4, n))
    cnt = np.zeros(n)
    sig_p = [[] for _ in range(n)]
    sig_v = [[] for _ in range(n)]
    for o in objs:
        ax.semilogy(o.eval_t_s, np.maximum(o.position_error_m, 1e-1), ".", color="0.6", ms=1.5)
        axv.semilogy(o.eval_t_s, np.maximum(o.velocity_error_mps, 1e-3), ".", color="0.6", ms=1.5)
        k = np.searchsorted(grid, o.eval_t_s)
        np.add.at(sums[0], k, o.position_error_m**2)
        np.add.at(sums[1], k, o.velocity_error_mps**2)
        np.add.at(cnt, k, 1)
        for kk, sp, sv in zip(k, o.position_sigma3_m, o.velocity_sigma3_mps, strict=True):
            sig_p[kk].append(sp)
            sig_v[kk].append(sv)
    ok = cnt > 0
    med_p = np.array([np.median(x) if x else np.nan for x in sig_p])
    med_v = np.array([np.median(x) if x else np.nan for x in sig_v])
    ax.semilogy(grid[ok], np.sqrt(sums[0, ok] / cnt[ok]), "-", color="black", lw=1.4)
    axv.semilogy(grid[ok], np.sqrt(sums[1, ok] / cnt[ok]), "-", color="black", lw=1.4)
    ax.semilogy(grid, med_p, "-", color="tab:red", lw=1.2)
    axv.semilogy(grid, med_v, "-", color="tab:red", lw=1.2)


def _fmt(v: float | None, unit: str) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    if unit == "m" and v >= 1000:
        return f"{v / 1e3:.2f} km"
    return f"{v:.3g} {unit}"


def plot_gospa(result: EvaluationResult, path: Path, name: str) -> Path:
    """GOSPA (m, log scale) and its localisation part against time; missed and false counts."""
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, height_ratios=[3, 2])
    t = result.eval_t_s
    floor = 1.0  # m: zero GOSPA drawn at the bottom of the log axis
    empty = (result.objects_present == 0) & (result.gospa_false == 0)  # nothing to score
    ax.semilogy(
        t,
        np.where(empty, np.nan, np.maximum(result.gospa_m, floor)),
        "-",
        color="black",
        lw=1.2,
        label="GOSPA (p=2, c=5 km, alpha=2)",
    )
    ax.semilogy(
        t,
        np.where(result.gospa_localisation_m2 > 0, np.sqrt(result.gospa_localisation_m2), np.nan),
        "-",
        color="tab:green",
        lw=1.0,
        label="localisation part (sqrt of sum d^2 over assigned pairs)",
    )
    ax.axhline(5000.0 / math.sqrt(2.0), color="tab:red", ls=":", lw=0.8)
    ax.text(
        t[0] if t.size else 0,
        5000.0 / math.sqrt(2.0),
        "one missed or false (3.54 km)",
        va="bottom",
        fontsize=7,
        color="tab:red",
    )
    ax.set_ylabel("GOSPA (m)")
    ax.grid(True, color="0.9")
    ax.legend(loc="upper right", fontsize=8)
    tr = result.truth or {}
    ax.set_title(
        f"mean GOSPA {_fmt(tr.get('gospa_mean_m'), 'm')}; each missed object or false "
        "track adds c^2/2 = (3.54 km)^2",
        fontsize=10,
    )
    axc.step(
        t, result.objects_present, where="post", color="0.5", lw=1.2, label="objects in flight"
    )
    axc.step(
        t, result.gospa_missed, where="post", color="tab:orange", lw=1.2, label="missed objects"
    )
    axc.step(t, result.gospa_false, where="post", color="tab:red", lw=1.2, label="false tracks")
    axc.set_ylabel("count")
    axc.set_xlabel(_time_label(result))
    axc.grid(True, color="0.9")
    axc.legend(loc="upper right", fontsize=8)
    axc.yaxis.get_major_locator().set_params(integer=True)
    _title(fig, name, "GOSPA against time")
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_impact_error(result: EvaluationResult, path: Path, name: str) -> Path:
    """Impact-point error (km) against time since burnout; filled = truth inside 3-sigma."""
    fig, ax = plt.subplots(figsize=(11, 5))
    objs = [o for o in result.object_series if o.impact_error_m.size]
    colours = _colours(len(objs))
    for o, c in zip(objs, colours, strict=False):
        x = o.impact_since_burnout_s
        y = np.maximum(o.impact_error_m, 1.0) / 1e3
        ins = o.impact_inside_3sigma
        lab = o.object_id if len(objs) <= _MAX_LEGEND_OBJECTS else None
        ax.semilogy(x, y, "-", color=c, lw=0.6, alpha=0.6, label=lab)
        ax.semilogy(x[ins], y[ins], "o", color=c, ms=2.5)
        ax.semilogy(x[~ins], y[~ins], "o", mfc="none", mec=c, ms=3)
    ax.axvline(IMPACT_AFTER_BURNOUT_S, color="0.5", ls="--", lw=0.8)
    ax.text(
        IMPACT_AFTER_BURNOUT_S,
        ax.get_ylim()[1],
        " summary from burnout + 300 s",
        va="top",
        fontsize=8,
        color="0.35",
    )
    tr = result.truth or {}
    share = tr.get("impact_inside_3sigma_share")
    ax.set_title(
        "median {}, 95th percentile {}, truth inside 3-sigma {}".format(
            _fmt(tr.get("impact_error_median_m"), "m"),
            _fmt(tr.get("impact_error_p95_m"), "m"),
            "n/a" if share is None or not math.isfinite(share) else f"{100 * share:.0f} %",
        ),
        fontsize=10,
    )
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D(
            [], [], color="0.3", marker="o", ls="none", ms=4, label="truth inside 3-sigma ellipse"
        ),
        Line2D([], [], mec="0.3", mfc="none", marker="o", ls="none", ms=4, label="truth outside"),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    ax.set_xlabel("time since burnout (s)")
    ax.set_ylabel("great-circle impact error (km)")
    ax.grid(True, which="both", color="0.9")
    _title(fig, name, "predicted impact point against the simulated impact")
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_track_timeline(result: EvaluationResult, path: Path, name: str) -> Path:
    """One bar per confirmed track over its life, coloured by status; truth spans beside."""
    tracks = [t for t in result.track_series if t.confirmed][:_MAX_TIMELINE_TRACKS]
    objs = [o for o in result.object_series if o.truth_t_s.size]
    rows = len(tracks) + len(objs)
    fig, ax = plt.subplots(figsize=(11, min(12, max(3.0, 1.8 + 0.28 * rows))))
    colour = {
        int(TrackStatus.TENTATIVE): "0.75",
        int(TrackStatus.CONFIRMED): "tab:green",
        int(TrackStatus.COASTING): "tab:orange",
        int(TrackStatus.DELETED): "tab:red",
    }
    owners: dict[str, list[str]] = {}  # track id -> objects it was assigned to
    for o in objs:
        for tid in dict.fromkeys(o.track_ids):
            owners.setdefault(tid, []).append(o.object_id)
    labels = []
    y = 0
    for o in objs:
        ax.plot([o.truth_t_s[0], o.truth_t_s[-1]], [y, y], "-", color="0.3", lw=5, alpha=0.5)
        labels.append(f"truth {o.object_id}")
        y += 1
    for t in tracks:
        ts = np.append(t.t_s, t.t_s[-1])
        for k in range(t.t_s.size):
            ax.plot(
                [ts[k], ts[k + 1]],
                [y, y],
                "-",
                color=colour.get(int(t.status[k]), "0.5"),
                lw=5,
                solid_capstyle="butt",
            )
        on = owners.get(t.track_id)
        labels.append(f"{t.track_id} → {', '.join(on)}" if on else t.track_id)
        y += 1
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(_time_label(result))
    ax.grid(True, axis="x", color="0.9")
    handles = [
        Line2D([], [], color=c, lw=5, label=TrackStatus(s).name.lower()) for s, c in colour.items()
    ]
    if objs:
        handles.insert(0, Line2D([], [], color="0.3", lw=5, alpha=0.5, label="truth in flight"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    st = result.tracks
    more = "" if len(tracks) == st["n_confirmed"] else f" (first {len(tracks)} shown)"
    ax.set_title(f"{st['n_tracks']} tracks, {st['n_confirmed']} confirmed{more}", fontsize=10)
    _title(fig, name, "track timeline (status per report interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


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
