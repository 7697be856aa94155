"""Per-object scoring: one object's errors, figures and share of the run's totals.

For each truth object, the reports assigned to it at each evaluation time (see
:mod:`.assignment`) are compared with the truth interpolated to each report's own time:
position (m) and velocity (m/s) errors in TEME per phase window, the 6-D NEES over the
midcourse, glide and turn windows, completeness and breaks in the glide,
impact and launch points (great-circle m, inside the reported 3-sigma ellipse), the
reported flight phase, and from stereo visibility: completeness (from 20 s after the
first stereo look), track breaks, ID switches and the detection delay (s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..domain import FlightPhase
from . import reports as col
from .assignment import Assignment
from .measures import ground_point_errors, nees, rmse, share
from .reports import ReportTable
from .results import ObjectSeries
from .settings import IMPACT_AFTER_BURNOUT_S
from .truth import TruthObject


@dataclass(slots=True)
class ObjectScore:
    """One object's series and figures (``series``) and what it adds to the run's totals:
    errors per phase window (m, m/s; rows of TEME vectors), midcourse NEES samples,
    impact errors (m) and inside-3-sigma flags from burnout + 300 s (None without an
    impact prediction or true impact), launch likewise over all assigned reports, the
    reported-phase agreement per judged report, and the completeness counts."""

    series: ObjectSeries
    position_error_by_phase: dict[str, np.ndarray]
    velocity_error_by_phase: dict[str, np.ndarray]
    nees_by_phase: dict[str, np.ndarray]  # "midcourse", "glide", "turn"
    impact_error_late_m: np.ndarray | None
    impact_inside_late: np.ndarray | None
    launch_error_m: np.ndarray | None
    launch_inside: np.ndarray | None
    phase_agreement: np.ndarray
    eligible: int  # (object, t) counted for completeness
    eligible_tracked: int  # of those, with an assigned track


@dataclass(slots=True)
class _Visibility:
    """One object's stereo-visibility figures: first stereo look (s since t0), the
    completeness counts and share, and the number of track breaks while in stereo."""

    first_stereo_s: float
    eligible: int
    eligible_tracked: int
    completeness: float
    breaks: int


def _visibility(
    in_stereo: np.ndarray, has_track: np.ndarray, eval_s: np.ndarray, grace_s: float
) -> _Visibility:
    """Completeness and breaks of one object from its stereo and assignment columns."""
    st = np.flatnonzero(in_stereo)
    first_stereo = float(eval_s[st[0]]) if st.size else math.nan
    elig = in_stereo.copy()
    if st.size:
        elig &= eval_s >= first_stereo + grace_s
    hit = elig & has_track
    # a break: assigned at the previous evaluation time, not now, while in stereo
    breaks = int(np.sum(has_track[:-1] & ~has_track[1:] & in_stereo[1:]))
    comp = float(hit.sum() / elig.sum()) if elig.sum() else math.nan
    return _Visibility(first_stereo, int(elig.sum()), int(hit.sum()), comp, breaks)


def _window_visibility(
    in_stereo: np.ndarray, has_track: np.ndarray, window: np.ndarray
) -> tuple[int, int, int]:
    """Stereo-visible evaluation times inside ``window`` (bool per time), those with an
    assigned track, and the track breaks there (the object lost its track while in
    stereo and in the window)."""
    elig = in_stereo & window
    breaks = int(np.sum(has_track[:-1] & ~has_track[1:] & elig[1:]))
    return int(elig.sum()), int((elig & has_track).sum()), breaks


def _glide_figures(
    ep: np.ndarray,
    ev: np.ndarray,
    masks: dict[str, np.ndarray],
    windows: dict[str, np.ndarray],
    in_stereo: np.ndarray,
    has_track: np.ndarray,
) -> dict[str, float | int]:
    """The glide and turn figures of one object (:class:`ObjectSeries` fields): RMSE of
    the position (m) and velocity (m/s) errors ``ep``/``ev`` of its assigned samples
    in the ``masks`` windows; completeness and breaks over the evaluation times in the
    ``windows`` (per evaluation time, as ``in_stereo`` and ``has_track``)."""
    g_elig, g_hit, g_breaks = _window_visibility(in_stereo, has_track, windows["glide"])
    _, _, t_breaks = _window_visibility(in_stereo, has_track, windows["turn"])
    return {
        "glide_position_rmse_m": rmse(ep[masks["glide"]]),
        "glide_velocity_rmse_mps": rmse(ev[masks["glide"]]),
        "turn_position_rmse_m": rmse(ep[masks["turn"]]),
        "turn_velocity_rmse_mps": rmse(ev[masks["turn"]]),
        "completeness_glide": g_hit / g_elig if g_elig else math.nan,
        "track_breaks_glide": g_breaks,
        "track_breaks_turn": t_breaks,
    }


def _ground_figures(
    table: ReportTable, rr: np.ndarray, tr: TruthObject, since_burnout_s: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """Impact (since burnout s, error m, inside flags) over the reports ``rr`` that carry
    a prediction, and launch (error m, inside flags) or None."""
    impact = (np.zeros(0), np.zeros(0), np.zeros(0, bool))
    imp = table.floats[rr, col.IMPACT]
    has_i = ~np.isnan(imp[:, 0])
    if tr.impact_latlon_deg is not None and np.any(has_i):
        err, inside = ground_point_errors(imp[has_i], tr.impact_latlon_deg)
        impact = (since_burnout_s[has_i], err, inside)
    launch = None
    lau = table.floats[rr, col.LAUNCH]
    has_l = ~np.isnan(lau[:, 0])
    if tr.launch_latlon_deg is not None and np.any(has_l):
        launch = ground_point_errors(lau[has_l], tr.launch_latlon_deg)
    return impact, launch


def score_object(
    o: int,
    tr: TruthObject,
    table: ReportTable,
    eval_s: np.ndarray,
    assignment: Assignment,
    in_stereo: np.ndarray,
    grace_s: float,
) -> ObjectScore:
    """Score object index ``o`` (which has truth samples); ``in_stereo`` its column of
    stereo visibility, ``grace_s`` (s) the completeness grace after the first stereo."""
    ks = np.flatnonzero(assignment.assigned[:, o] >= 0)
    rr = assignment.assigned[ks, o]
    tt = table.t_s[rr]
    tp, tv = tr.interpolate(tt)
    ep = table.floats[rr, col.POS] - tp
    ev = table.floats[rr, col.VEL] - tv
    masks = tr.phase_windows(tt)
    mm = masks["midcourse"]
    cov = table.floats[rr, col.COV].reshape(-1, 6, 6)
    sigma3 = 3.0 * np.sqrt(np.maximum(np.trace(cov[:, :3, :3], axis1=1, axis2=2), 0.0))
    sigma3v = 3.0 * np.sqrt(np.maximum(np.trace(cov[:, 3:, 3:], axis1=1, axis2=2), 0.0))
    (i_since, i_err, i_in), launch = _ground_figures(table, rr, tr, eval_s[ks] - tr.burnout_s)
    late = i_since >= IMPACT_AFTER_BURNOUT_S
    has_track = assignment.assigned[:, o] >= 0
    vis = _visibility(in_stereo, has_track, eval_s, grace_s)
    e6 = np.hstack([ep, ev])
    nees_by = {p: nees(e6[masks[p]], cov[masks[p]]) for p in ("midcourse", "glide", "turn")}
    tracks_o = table.ints[rr, col.TRACK]
    # reported flight phase against the truth phase at the report time
    rph = table.ints[rr, col.PHASE]
    judged = rph != FlightPhase.UNSPECIFIED
    agree = rph[judged] == tr.phase_at(tt)[judged]
    series = ObjectSeries(
        object_id=tr.object_id,
        truth_t_s=tr.t_s,
        truth_latitude_deg=tr.latitude_deg,
        truth_longitude_deg=tr.longitude_deg,
        truth_altitude_m=tr.altitude_m,
        truth_turn=tr.turn,
        burnout_s=tr.burnout_s,
        reentry_s=tr.reentry_s,
        launch_latlon_deg=tr.launch_latlon_deg,
        impact_latlon_deg=tr.impact_latlon_deg,
        first_stereo_s=vis.first_stereo_s,
        first_assigned_s=float(eval_s[ks[0]]) if ks.size else math.nan,
        eval_t_s=eval_s[ks],
        track_ids=[table.track_ids[int(i)] for i in tracks_o],
        position_error_m=np.linalg.norm(ep, axis=1),
        velocity_error_mps=np.linalg.norm(ev, axis=1),
        position_sigma3_m=sigma3,
        velocity_sigma3_mps=sigma3v,
        impact_since_burnout_s=i_since,
        impact_error_m=i_err,
        impact_inside_3sigma=i_in,
        id_switches=int(np.sum(tracks_o[1:] != tracks_o[:-1])),
        completeness=vis.completeness,
        midcourse_position_rmse_m=rmse(ep[mm]),
        midcourse_velocity_rmse_mps=rmse(ev[mm]),
        position_rmse_m=rmse(ep),
        track_breaks_in_stereo=vis.breaks,
        phase_agreement_share=share(agree),
        glide_nees=nees_by["glide"],
        **_glide_figures(ep, ev, masks, tr.phase_windows(eval_s), in_stereo, has_track),
    )
    with_impact = i_err.size > 0
    return ObjectScore(
        series=series,
        position_error_by_phase={p: ep[m] for p, m in masks.items()},
        velocity_error_by_phase={p: ev[m] for p, m in masks.items()},
        nees_by_phase=nees_by,
        impact_error_late_m=i_err[late] if with_impact else None,
        impact_inside_late=i_in[late] if with_impact else None,
        launch_error_m=None if launch is None else launch[0],
        launch_inside=None if launch is None else launch[1],
        phase_agreement=agree,
        eligible=vis.eligible,
        eligible_tracked=vis.eligible_tracked,
    )
