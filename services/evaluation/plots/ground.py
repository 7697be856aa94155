"""The map plot: truth and confirmed-track ground tracks on a lat/lon graticule, and
impact predictions relative to each object's true impact point with 3-sigma ellipses.

The map is equirectangular (geodetic latitude, unwrapped longitude, deg; no coastline
data ships with tracklayer and nothing is fetched); the impact panel is in km east and
north of the true impact point (local tangent plane, WGS-84).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from tracklayer.fusion.evaluation import (
    EvaluationResult,
    ObjectSeries,
    TrackSeries,
    ground_offset_en,
)

from .common import (
    MAX_LEGEND_OBJECTS,
    colour_cycle,
    ellipse_en,
    lat_text,
    legend_below,
    live,
    lon_text,
    object_tracks,
    ref_lon,
    save,
    segments,
    wrap_lon,
)


def _marker(ax: plt.Axes, latlon: tuple[float, float] | None, ref: float, m: str, c) -> None:
    """A truth launch ("^") or impact ("X") point, if there is one."""
    if latlon:
        ax.plot(wrap_lon(latlon[1], ref), latlon[0], m, color=c, mec="black", ms=10, zorder=5)


def _draw_truth(ax: plt.Axes, objs: list[ObjectSeries], colours: list, ref: float) -> list:
    """Truth ground tracks with launch and impact points; returns their (lat, lon)."""
    drawn = []
    for o, c in zip(objs, colours, strict=False):
        lon = wrap_lon(o.truth_longitude_deg, ref)
        ax.plot(lon, o.truth_latitude_deg, "-", color=c, lw=5.0, alpha=0.35, solid_capstyle="round")
        drawn.append((o.truth_latitude_deg, lon))
        _marker(ax, o.launch_latlon_deg, ref, "^", c)
        _marker(ax, o.impact_latlon_deg, ref, "X", c)
    return drawn


def _draw_tracks(
    ax: plt.Axes,
    result: EvaluationResult,
    tracks: list[TrackSeries],
    track_colours: list,
    ref: float,
    thin: bool,
) -> tuple[list, bool]:
    """Live stretches of confirmed tracks (red: on no object) and their final predicted
    impact; returns their (lat, lon) and whether a track on no object was drawn."""
    owner = object_tracks(result)
    drawn = []
    any_false = False
    for t, tc in zip(tracks, track_colours, strict=False):
        m = live(t)
        lon = wrap_lon(t.longitude_deg[m], ref)
        lat = t.latitude_deg[m]
        false = result.has_truth and t.track_id not in owner
        any_false |= false
        for sl in segments(t.t_s[m]):
            ax.plot(
                lon[sl],
                lat[sl],
                "-",
                color="red" if false else tc,
                lw=1.0 if thin and not false else 2.0,
            )
        drawn.append((lat, lon))
        e = t.last_impact
        if e is not None:
            ax.plot(
                wrap_lon(e.longitude_deg, ref),
                e.latitude_deg,
                "o",
                mfc="none",
                mec="black",
                ms=7,
                zorder=6,
            )
    return drawn, any_false


def _draw_turns(
    ax: plt.Axes, objs: list[ObjectSeries], tracks: list[TrackSeries], ref: float
) -> bool:
    """Turns of the glide (issue 11): the truth's turning stretches (from its lateral
    acceleration) drawn over its ground track, and the reports of the track(s) assigned
    to that object during those stretches; returns whether any turn was drawn."""
    owner = {t.track_id: t for t in tracks}
    any_turn = False
    for o in objs:
        if not o.truth_turn.any():
            continue
        any_turn = True
        lon = wrap_lon(o.truth_longitude_deg, ref)
        for sl in segments(o.truth_t_s[o.truth_turn]):
            t_in = o.truth_t_s[o.truth_turn][sl]
            m = (o.truth_t_s >= t_in[0]) & (o.truth_t_s <= t_in[-1])
            ax.plot(lon[m], o.truth_latitude_deg[m], "-", color="magenta", lw=3.0, zorder=4)
            for tid in dict.fromkeys(o.track_ids):
                t = owner.get(tid)
                if t is None:
                    continue
                k = (t.t_s >= t_in[0]) & (t.t_s <= t_in[-1])
                tlon = wrap_lon(t.longitude_deg[k], ref)
                ax.plot(tlon, t.latitude_deg[k], ".", color="black", ms=2.5, zorder=6)
    return any_turn


def _frame_map(ax: plt.Axes, drawn: list) -> None:
    """Limits around everything drawn, aspect for the mean latitude, graticule labels."""
    if drawn:
        la = np.concatenate([d[0] for d in drawn])
        lo = np.concatenate([d[1] for d in drawn])
        la, lo = la[np.isfinite(la)], lo[np.isfinite(lo)]
    else:
        la = lo = np.zeros(0)
    if la.size:
        pad_la = max(1.0, 0.08 * np.ptp(la))
        pad_lo = max(1.0, 0.08 * np.ptp(lo))
        ax.set_ylim(max(-90, la.min() - pad_la), min(90, la.max() + pad_la))
        ax.set_xlim(lo.min() - pad_lo, lo.max() + pad_lo)
        ax.set_aspect(1.0 / max(0.2, math.cos(math.radians(float(np.mean(la))))))
    ax.xaxis.set_major_formatter(FuncFormatter(lon_text))
    ax.yaxis.set_major_formatter(FuncFormatter(lat_text))
    ax.grid(True, color="0.8", lw=0.6)
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("geodetic latitude (deg)")
    ax.set_title("ground tracks (equirectangular; graticule only, no coastlines)", fontsize=10)


def _point_handle(marker: str, label: str) -> Line2D:
    return Line2D([], [], color="0.5", marker=marker, mec="black", ls="none", ms=9, label=label)


def _map_legend(
    ax: plt.Axes,
    objs: list,
    colours: list,
    tracks: list,
    track_colours: list,
    flags: tuple[bool, bool],
) -> None:
    """Legend under the map: truth marks, track kinds, and objects or tracks by colour;
    ``flags``: (a track on no object, a turn) was drawn."""
    any_false, any_turn = flags
    handles = []
    if objs:
        handles += [
            Line2D([], [], color="0.4", lw=5, alpha=0.4, label="truth ground track"),
            _point_handle("^", "launch (truth)"),
            _point_handle("X", "impact (truth)"),
        ]
    handles.append(Line2D([], [], color="black", lw=1, label="confirmed track"))
    if any_false:
        handles.append(Line2D([], [], color="red", lw=2, label="track on no object"))
    if any_turn:
        handles += [
            Line2D([], [], color="magenta", lw=3, label="truth turn (lateral accel > 2 m/s²)"),
            Line2D([], [], color="black", marker=".", ls="none", label="track reports in turn"),
        ]
    handles.append(
        Line2D(
            [], [], mec="black", mfc="none", marker="o", ls="none", label="final predicted impact"
        )
    )
    if objs and len(objs) <= MAX_LEGEND_OBJECTS:
        handles += [
            Line2D([], [], color=c, lw=5, alpha=0.5, label=o.object_id)
            for o, c in zip(objs, colours, strict=False)
        ]
    if not objs and len(tracks) <= MAX_LEGEND_OBJECTS:
        handles += [
            Line2D([], [], color=c, lw=2, label=t.track_id)
            for t, c in zip(tracks, track_colours, strict=False)
        ]
    legend_below(ax, handles, 4)


def plot_ground_tracks(result: EvaluationResult, path: Path, name: str) -> Path:
    """Map of truth and confirmed-track ground tracks; with truth, a second panel of the
    impact predictions relative to each object's true impact point, with 3-sigma ellipses."""
    objs = [o for o in result.object_series if o.truth_t_s.size]
    tracks = [t for t in result.track_series if t.confirmed]
    owner = object_tracks(result)
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
    ref = ref_lon(result)
    colours = colour_cycle(len(objs))
    drawn = _draw_truth(ax, objs, colours, ref)
    # with truth, tracks are thin black lines over their object's colour; without, one
    # colour per track
    track_colours = colour_cycle(len(tracks)) if not objs else ["black"] * len(tracks)
    more, any_false = _draw_tracks(ax, result, tracks, track_colours, ref, bool(objs))
    any_turn = _draw_turns(ax, objs, tracks, ref)
    _frame_map(ax, drawn + more)
    _map_legend(ax, objs, colours, tracks, track_colours, (any_false, any_turn))
    if with_miss:
        colour_of = {o.object_id: c for o, c in zip(objs, colours, strict=False)}
        _impact_miss(axes[0, 1], objs, colour_of, tracks, owner)
    return save(fig, path, name, "ground tracks and predicted impact points")


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
        m = np.isfinite(t.impact_latitude_deg) & live(t)
        if np.any(m):
            e, n = ground_offset_en(lat0, lon0, t.impact_latitude_deg[m], t.impact_longitude_deg[m])
            ax.plot(np.asarray(e) / 1e3, np.asarray(n) / 1e3, ".", color=c, ms=2.5, alpha=0.35)
        ie = t.last_impact
        if ie is not None:
            e, n = ground_offset_en(lat0, lon0, ie.latitude_deg, ie.longitude_deg)
            e, n = float(e) / 1e3, float(n) / 1e3
            poly = ellipse_en(ie.semi_major_m, ie.semi_minor_m, ie.orientation_deg) / 1e3
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
    legend_below(ax, handles, 2)
