"""The ``truth`` part of metrics.json: the run's figures over every object and time.

GOSPA (m) statistics over evaluation times; position (m) and velocity (m/s) RMSE per
phase window over every assigned sample; midcourse NEES; completeness; false tracks
(selected track-seconds assigned to no object, the longest such run in s); ID switches
and track breaks; detection delay (s); impact and launch errors (great-circle m) and
the share of truths inside the reported 3-sigma ellipse; reported-phase agreement.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import reports as col
from .assignment import Assignment
from .measures import rmse, share, stat
from .reports import ReportTable
from .scoring import ObjectScore
from .settings import FALSE_RUN_LIMIT_S, PHASES


def _cat(xs: list[np.ndarray | None], width: int | None = None) -> np.ndarray:
    """The arrays of ``xs`` that exist, concatenated (an empty array for none)."""
    got = [x for x in xs if x is not None]
    if got:
        return np.concatenate(got)
    return np.zeros((0, width)) if width else np.zeros(0)


def _longest_false_run(k: np.ndarray, assigned: np.ndarray) -> int:
    """Longest run of consecutive evaluation indices ``k`` (sorted) with ``assigned`` False."""
    best = run = 0
    prev = None
    for kk, a in zip(k.tolist(), assigned.tolist(), strict=True):
        if a:
            run = 0
        else:
            run = run + 1 if (prev is not None and kk == prev + 1 and run > 0) else 1
            best = max(best, run)
        prev = kk
    return best


def false_track_figures(table: ReportTable, a: Assignment) -> dict[str, Any]:
    """Selected track-seconds on no object, the longest such run (s) of one track and the
    number of tracks with a run over 10 s."""
    sel_k, sel_r, sel_assigned = a.sel_k, a.sel_r, a.sel_assigned
    sel_track = table.ints[sel_r, col.TRACK] if sel_r.size else np.zeros(0, int)
    max_run = 0.0
    long_false = 0
    if sel_r.size:
        o = np.lexsort((sel_k, sel_track))
        tk, kk, aa = sel_track[o], sel_k[o], sel_assigned[o]
        for tix in np.unique(tk):
            m = tk == tix
            run = _longest_false_run(kk[m], aa[m])
            max_run = max(max_run, float(run))
            long_false += int(run > FALSE_RUN_LIMIT_S)
    track_seconds = int(sel_k.size)
    false_seconds = int(np.sum(~sel_assigned))
    return {
        "confirmed_track_time_s": float(track_seconds),
        "false_track_time_s": float(false_seconds),
        "false_track_share": false_seconds / track_seconds if track_seconds else math.nan,
        "false_run_max_s": max_run,
        "tracks_unassigned_over_10s": long_false,
    }


def _mean_finite(values: list[float]) -> float:
    """Mean of the finite values (NaN if none): a per-object share averaged."""
    v = np.array([x for x in values if math.isfinite(x)])
    return float(v.mean()) if v.size else math.nan


def _error_figures(scores: list[ObjectScore], nees_threshold: float) -> dict[str, Any]:
    pos = {p: _cat([s.position_error_by_phase[p] for s in scores], 3) for p in PHASES}
    vel = {p: _cat([s.velocity_error_by_phase[p] for s in scores], 3) for p in PHASES}
    nv = _cat([s.nees_by_phase["midcourse"] for s in scores])
    glide = {}
    for p in ("glide", "turn"):
        ng = _cat([s.nees_by_phase[p] for s in scores])
        glide[f"nees_{p}_mean"] = stat(ng, np.mean)
        glide[f"nees_{p}_share_above"] = share(ng > nees_threshold)
        glide[f"nees_{p}_samples"] = int(ng.size)
    return {
        **glide,
        "position_rmse_m": {p: rmse(pos[p]) for p in PHASES},
        "velocity_rmse_mps": {p: rmse(vel[p]) for p in PHASES},
        "rmse_samples": {p: int(pos[p].shape[0]) for p in PHASES},
        "nees_midcourse_mean": stat(nv, np.mean),
        "nees_midcourse_share_above": share(nv > nees_threshold),
        "nees_threshold": nees_threshold,
        "nees_samples": int(nv.size),
    }


def _ground_figures(scores: list[ObjectScore]) -> dict[str, Any]:
    ie = _cat([s.impact_error_late_m for s in scores])
    ii = _cat([s.impact_inside_late for s in scores]).astype(bool)
    le = _cat([s.launch_error_m for s in scores])
    li = _cat([s.launch_inside for s in scores]).astype(bool)
    return {
        "impact_error_median_m": stat(ie, np.median),
        "impact_error_p95_m": stat(ie, lambda x: np.percentile(x, 95)),
        "impact_inside_3sigma_share": share(ii),
        "impact_samples": int(ie.size),
        "launch_error_median_m": stat(le, np.median),
        "launch_inside_3sigma_share": share(li),
        "launch_samples": int(le.size),
    }


def summarise(
    scores: list[ObjectScore],
    n_objects: int,
    eval_s: np.ndarray,
    a: Assignment,
    table: ReportTable,
    nees_threshold: float,
) -> dict[str, Any]:
    """The ``truth`` dict; ``scores`` in object order (the order of every sum)."""
    series = [s.series for s in scores]
    elig_total = sum(s.eligible for s in scores)
    elig_hit = sum(s.eligible_tracked for s in scores)
    switches = sum(s.id_switches for s in series)
    held = int(a.clear_mot_switches.sum())
    object_minutes = float(a.present.sum()) / 60.0
    d = np.array([s.detection_delay_s for s in series if math.isfinite(s.detection_delay_s)])
    pa = _cat([s.phase_agreement for s in scores]).astype(bool)
    return {
        "n_objects": n_objects,
        "evaluation_times": int(eval_s.size),
        "object_time_s": float(a.present.sum()),
        "gospa_mean_m": stat(a.gospa_m, np.mean),
        "gospa_median_m": stat(a.gospa_m, np.median),
        "gospa_max_m": stat(a.gospa_m, np.max),
        "gospa_localisation_mean_m2": stat(a.localisation_m2, np.mean),
        "gospa_missed_mean": stat(a.n_missed, np.mean),
        "gospa_false_mean": stat(a.n_false, np.mean),
        **_error_figures(scores, nees_threshold),
        "completeness": elig_hit / elig_total if elig_total else math.nan,
        "completeness_samples": elig_total,
        **false_track_figures(table, a),
        "id_switches": switches,
        "track_breaks_in_stereo": sum(s.track_breaks_in_stereo for s in series),
        "track_breaks_glide": sum(s.track_breaks_glide for s in series),
        "track_breaks_turn": sum(s.track_breaks_turn for s in series),
        "completeness_glide": _mean_finite([s.completeness_glide for s in series]),
        "id_switches_per_10_object_minutes": switches / object_minutes * 10.0
        if object_minutes
        else math.nan,
        "id_switches_clear_mot": held,
        "id_switches_clear_mot_per_10_object_minutes": held / object_minutes * 10.0
        if object_minutes
        else math.nan,
        "id_switches_clear_mot_slides": int(a.clear_mot_slides.sum()),
        "detection_delay_median_s": stat(d, np.median),
        "detection_delay_max_s": stat(d, np.max),
        "objects_never_tracked": [s.object_id for s in series if not s.eval_t_s.size],
        **_ground_figures(scores),
        "phase_agreement_share": share(pa),
        "per_object": [s.figures() for s in sorted(series, key=lambda x: x.object_id)],
    }
