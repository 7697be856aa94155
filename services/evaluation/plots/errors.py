"""Error plots against truth: position and velocity error of the assigned track with
the filter's 3-sigma (m, m/s; log scale) and impact-point error (great-circle km)
against time since burnout.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tracklayer.fusion.evaluation import (
    IMPACT_AFTER_BURNOUT_S,
    MIDCOURSE_AFTER_BURNOUT_S,
    EvaluationResult,
    ObjectSeries,
)

from .common import MAX_LEGEND_OBJECTS, colour_cycle, fmt, save, time_label


def _shade_phases(ax: plt.Axes, o: ObjectSeries) -> None:
    if math.isfinite(o.burnout_s):
        ax.axvspan(o.truth_t_s[0], o.burnout_s, color="orange", alpha=0.08, lw=0)
        mid_end = o.reentry_s if math.isfinite(o.reentry_s) else o.truth_t_s[-1]
        ax.axvspan(
            o.burnout_s + MIDCOURSE_AFTER_BURNOUT_S, mid_end, color="tab:blue", alpha=0.06, lw=0
        )
        if math.isfinite(o.reentry_s):
            ax.axvspan(o.reentry_s, o.truth_t_s[-1], color="tab:red", alpha=0.06, lw=0)


def plot_position_error(result: EvaluationResult, path: Path, name: str) -> Path:
    """Position and velocity error of the assigned track against time, with the filter's
    3-sigma (3 sqrt(trace P_pos)); log scale."""
    fig, (ax, axv) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    objs = [o for o in result.object_series if o.eval_t_s.size]
    many = len(objs) > MAX_LEGEND_OBJECTS
    if many:
        _errors_many(ax, axv, objs, result.eval_t_s)
    colours = colour_cycle(len(objs))
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
    _error_legend(ax, objs, many)
    _error_titles(ax, axv, result)
    return save(fig, path, name, "track error against truth")


def _error_legend(ax: plt.Axes, objs: list[ObjectSeries], many: bool) -> None:
    """Legend of the position-error panel: objects, error and 3-sigma kinds, switches, phases."""
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
        handles += [
            Patch(color="orange", alpha=0.25, label="boost"),
            Patch(color="tab:blue", alpha=0.2, label="midcourse window"),
            Patch(color="tab:red", alpha=0.2, label="reentry"),
        ]
    ax.legend(handles=handles, loc="upper right", fontsize=8, ncol=2)


def _error_titles(ax: plt.Axes, axv: plt.Axes, result: EvaluationResult) -> None:
    """Panel titles with the RMSE per phase, axis labels and grids."""
    tr = result.truth or {}
    rm = tr.get("position_rmse_m", {})
    vm = tr.get("velocity_rmse_mps", {})
    phases = ["boost", "midcourse", "reentry"]
    if tr.get("rmse_samples", {}).get("glide"):
        phases += ["glide", "turn"]  # truth phase GLIDE and its turns (issue 11)
    ax.set_title(
        "position error; RMSE " + " / ".join(f"{p} {fmt(rm.get(p), 'm')}" for p in phases),
        fontsize=10,
    )
    axv.set_title(
        "velocity error; RMSE " + " / ".join(f"{p} {fmt(vm.get(p), 'm/s')}" for p in phases),
        fontsize=10,
    )
    ax.set_ylabel("position error (m)")
    axv.set_ylabel("velocity error (m/s)")
    axv.set_xlabel(time_label(result))
    for a in (ax, axv):
        a.grid(True, which="both", color="0.9")


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


def plot_impact_error(result: EvaluationResult, path: Path, name: str) -> Path:
    """Impact-point error (km) against time since burnout; filled = truth inside 3-sigma."""
    fig, ax = plt.subplots(figsize=(11, 5))
    objs = [o for o in result.object_series if o.impact_error_m.size]
    colours = colour_cycle(len(objs))
    for o, c in zip(objs, colours, strict=False):
        x = o.impact_since_burnout_s
        y = np.maximum(o.impact_error_m, 1.0) / 1e3
        ins = o.impact_inside_3sigma
        lab = o.object_id if len(objs) <= MAX_LEGEND_OBJECTS else None
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
            fmt(tr.get("impact_error_median_m"), "m"),
            fmt(tr.get("impact_error_p95_m"), "m"),
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
    return save(fig, path, name, "predicted impact point against the simulated impact")
