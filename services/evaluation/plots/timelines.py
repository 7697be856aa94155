"""Plots against time of the whole run: altitude of truth and tracks (km above WGS-84),
GOSPA (m) with its parts and counts, and the track timeline coloured by status.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from tracklayer.fusion.domain import TrackStatus
from tracklayer.fusion.evaluation import GOSPA_C_M, EvaluationResult

from .common import (
    MAX_LEGEND_OBJECTS,
    MAX_TIMELINE_TRACKS,
    colour_cycle,
    fmt,
    live,
    object_tracks,
    save,
    time_label,
)


def plot_altitude(result: EvaluationResult, path: Path, name: str) -> Path:
    """Altitude (km) against time: truth lines with phase marks, confirmed track reports."""
    fig, ax = plt.subplots(figsize=(11, 5.5))
    objs = [o for o in result.object_series if o.truth_t_s.size]
    colours = colour_cycle(len(objs))
    for o, c in zip(objs, colours, strict=False):
        ax.plot(o.truth_t_s, o.truth_altitude_m / 1e3, "-", color=c, lw=2.2, alpha=0.5)
        if len(objs) <= MAX_LEGEND_OBJECTS:
            for tb, lab in ((o.burnout_s, "burnout"), (o.reentry_s, "reentry")):
                if math.isfinite(tb):
                    y = float(np.interp(tb, o.truth_t_s, o.truth_altitude_m)) / 1e3
                    ax.plot(tb, y, "|", color=c, ms=14, mew=2)
                    ax.annotate(
                        lab, (tb, y), textcoords="offset points", xytext=(4, 6), fontsize=7, color=c
                    )
    owner = object_tracks(result)
    any_false = False
    for t in result.track_series:
        if not t.confirmed:
            continue
        m = live(t)
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
    if objs and len(objs) <= MAX_LEGEND_OBJECTS:
        handles += [
            Line2D([], [], color=c, lw=2, label=o.object_id)
            for o, c in zip(objs, colours, strict=False)
        ]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.axhline(100.0, color="0.6", lw=0.8, ls=":")
    ax.text(ax.get_xlim()[0], 100.0, " 100 km", va="bottom", fontsize=7, color="0.4")
    ax.set_xlabel(time_label(result))
    ax.set_ylabel("altitude above WGS-84 (km)")
    ax.grid(True, color="0.88")
    return save(fig, path, name, "altitude of truth and tracks")


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
    ax.axhline(GOSPA_C_M / math.sqrt(2.0), color="tab:red", ls=":", lw=0.8)
    ax.text(
        t[0] if t.size else 0,
        GOSPA_C_M / math.sqrt(2.0),
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
        f"mean GOSPA {fmt(tr.get('gospa_mean_m'), 'm')}; each missed object or false "
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
    axc.set_xlabel(time_label(result))
    axc.grid(True, color="0.9")
    axc.legend(loc="upper right", fontsize=8)
    axc.yaxis.get_major_locator().set_params(integer=True)
    return save(fig, path, name, "GOSPA against time")


def plot_track_timeline(result: EvaluationResult, path: Path, name: str) -> Path:
    """One bar per confirmed track over its life, coloured by status; truth spans beside."""
    tracks = [t for t in result.track_series if t.confirmed][:MAX_TIMELINE_TRACKS]
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
    ax.set_xlabel(time_label(result))
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
    return save(fig, path, name, "track timeline (status per report interval)")
