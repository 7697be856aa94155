"""Pointing-bias estimates against truth over time: one small panel per sensor with
evidence, the estimate of each ECI axis (solid, 3-sigma band) and its truth (dashed), urad.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from tracklayer.fusion.domain import NS_PER_S
from tracklayer.services.evaluation.registration import BiasEvaluation

from .common import save

AXES = (("x", "tab:blue"), ("y", "tab:orange"), ("z", "tab:green"))
MAX_PANELS = 32


def plot_biases(ev: BiasEvaluation, path: Path, name: str) -> Path | None:
    """Write the plot of a :class:`~tracklayer.services.evaluation.registration.
    BiasEvaluation`; None when no sensor has evidence."""
    series: dict[str, list] = {}
    for b in ev.estimates:
        series.setdefault(b.sensor_id, []).append(b)
    ids = [s for s in sorted(series) if series[s][-1].windows > 0][:MAX_PANELS]
    if not ids:
        return None
    cols = min(4, len(ids))
    rows = math.ceil(len(ids) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows + 0.8),
                             sharex=True, squeeze=False)  # fmt: skip
    for ax, sid in zip(axes.ravel(), ids, strict=False):
        bs = series[sid]
        t = np.array([(b.time_ns - ev.epoch_ns) / NS_PER_S for b in bs])
        est = np.array([b.angles_rad for b in bs]) * 1e6
        sig = np.array([b.sigma_rad for b in bs]) * 1e6
        for i, (axis, colour) in enumerate(AXES):
            ax.plot(t, est[:, i], color=colour, lw=1.2, label=f"{axis} estimate")
            ax.fill_between(t, est[:, i] - 3 * sig[:, i], est[:, i] + 3 * sig[:, i],
                            color=colour, alpha=0.12, lw=0)  # fmt: skip
            if ev.truth is not None and sid in ev.truth.urad:
                tt = np.array([ev.truth.at(sid, x)[i] for x in t])
                ax.plot(t, tt, color=colour, lw=1.0, ls="--", label=f"{axis} true")
        ax.set_title(f"{sid} ({bs[-1].windows} windows)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(ids) :]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=6, ncol=2, loc="upper left")
    fig.supxlabel("time since the epoch (s)", fontsize=9)
    fig.supylabel("pointing bias (urad, ECI rotation vector)", fontsize=9)
    what = "solid: estimate with 3-sigma band, dashed: truth" if ev.truth else "estimates"
    return save(fig, path, name, f"sensor pointing bias ({what})")
