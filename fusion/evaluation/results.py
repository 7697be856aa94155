"""Result types of the evaluation: per-track and per-object series and the whole result.

Times are seconds since ``EvaluationResult.t0_ns`` (a whole Unix second); positions and
errors in metres, velocities in m/s, ground points geodetic WGS-84 (deg). The per-track
and per-object entries of metrics.json are made by :meth:`TrackSeries.figures` and
:meth:`ObjectSeries.figures` from the same numbers the plots draw: each figure has one
implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..domain import NS_PER_S, GroundEllipse, TrackStatus
from .measures import share, stat
from .settings import IMPACT_AFTER_BURNOUT_S, NEES_THRESHOLD

STATUS_NAMES = {s: s.name.lower() for s in TrackStatus}


def _empty(dtype: Any = float) -> Any:
    return field(default_factory=lambda: np.zeros(0, dtype))


@dataclass(slots=True)
class TrackSeries:
    """One track's reports for plotting (times in s relative to ``EvaluationResult.t0_ns``)."""

    track_id: str
    t_s: np.ndarray
    latitude_deg: np.ndarray
    longitude_deg: np.ndarray
    altitude_m: np.ndarray
    status: np.ndarray  # TrackStatus values
    impact_latitude_deg: np.ndarray  # per report, NaN while no impact prediction
    impact_longitude_deg: np.ndarray
    confirmed: bool
    last_impact: GroundEllipse | None  # latest impact prediction with its 1-sigma ellipse
    first_s: float
    last_s: float
    n_reports: int
    update_rate_hz: float  # filter updates per second of life; NaN for a single report
    sensors_per_update: float  # mean over reports with at least one sensor
    updates: int = 0  # the update count of the last report

    @property
    def lifetime_s(self) -> float:
        """Time (s) from the first report to the last."""
        return self.last_s - self.first_s

    def figures(self) -> dict[str, Any]:
        """The track's entry in ``tracks.per_track`` of metrics.json."""
        return {
            "track_id": self.track_id,
            "first_s": self.first_s,
            "last_s": self.last_s,
            "lifetime_s": self.lifetime_s,
            "reports": self.n_reports,
            "updates": self.updates,
            "update_rate_hz": self.update_rate_hz,
            "sensors_per_update_mean": self.sensors_per_update,
            "final_status": STATUS_NAMES[TrackStatus(int(self.status[-1]))],
        }


@dataclass(slots=True)
class ObjectSeries:
    """One truth object's trajectory, its error series and its figures (times relative to
    ``t0_ns``; positions m, velocities m/s; inf/NaN where a time or figure does not exist).
    """

    object_id: str
    truth_t_s: np.ndarray
    truth_latitude_deg: np.ndarray
    truth_longitude_deg: np.ndarray
    truth_altitude_m: np.ndarray
    truth_turn: np.ndarray  # bool per truth sample: in a turn of the glide
    burnout_s: float
    reentry_s: float  # descent through 100 km; inf if not within the truth
    launch_latlon_deg: tuple[float, float] | None
    impact_latlon_deg: tuple[float, float] | None
    first_stereo_s: float  # nan if never in stereo visibility
    first_assigned_s: float  # nan if never assigned
    # per evaluation time with an assigned track:
    eval_t_s: np.ndarray = _empty()
    track_ids: list[str] = field(default_factory=list)
    position_error_m: np.ndarray = _empty()
    velocity_error_mps: np.ndarray = _empty()
    position_sigma3_m: np.ndarray = _empty()
    velocity_sigma3_mps: np.ndarray = _empty()
    # impact predictions while assigned:
    impact_since_burnout_s: np.ndarray = _empty()
    impact_error_m: np.ndarray = _empty()
    impact_inside_3sigma: np.ndarray = _empty(bool)
    id_switches: int = 0
    completeness: float = math.nan
    midcourse_position_rmse_m: float = math.nan
    midcourse_velocity_rmse_mps: float = math.nan
    position_rmse_m: float = math.nan  # over every assigned sample
    track_breaks_in_stereo: int = 0
    phase_agreement_share: float = math.nan
    # glide window (truth phase GLIDE) and its turns (issue 11):
    glide_position_rmse_m: float = math.nan
    glide_velocity_rmse_mps: float = math.nan
    turn_position_rmse_m: float = math.nan
    turn_velocity_rmse_mps: float = math.nan
    glide_nees: np.ndarray = _empty()  # 6-D NEES of the assigned glide samples
    completeness_glide: float = math.nan  # share of stereo-visible glide seconds tracked
    track_breaks_glide: int = 0
    track_breaks_turn: int = 0

    @property
    def detection_delay_s(self) -> float:
        """First stereo look to first assigned track (s); NaN if either never happened."""
        return self.first_assigned_s - self.first_stereo_s

    def figures(self) -> dict[str, Any]:
        """The object's entry in ``truth.per_object`` of metrics.json."""
        late = self.impact_since_burnout_s >= IMPACT_AFTER_BURNOUT_S
        err = self.impact_error_m
        return {
            "object_id": self.object_id,
            "truth_start_s": float(self.truth_t_s[0]),
            "truth_end_s": float(self.truth_t_s[-1]),
            "burnout_s": self.burnout_s,
            "reentry_s": self.reentry_s,
            "first_stereo_s": self.first_stereo_s,
            "first_track_s": self.first_assigned_s,
            "detection_delay_s": self.detection_delay_s,
            "track_ids": list(dict.fromkeys(self.track_ids)),
            "id_switches": self.id_switches,
            "track_breaks_in_stereo": self.track_breaks_in_stereo,
            "completeness": self.completeness,
            "position_rmse_midcourse_m": self.midcourse_position_rmse_m,
            "velocity_rmse_midcourse_mps": self.midcourse_velocity_rmse_mps,
            "position_rmse_all_m": self.position_rmse_m,
            "phase_agreement_share": self.phase_agreement_share,
            "impact_error_median_m": stat(err[late], np.median),
            "impact_error_final_m": float(err[-1]) if err.size else math.nan,
            "position_rmse_glide_m": self.glide_position_rmse_m,
            "velocity_rmse_glide_mps": self.glide_velocity_rmse_mps,
            "position_rmse_turn_m": self.turn_position_rmse_m,
            "velocity_rmse_turn_mps": self.turn_velocity_rmse_mps,
            "nees_glide_mean": stat(self.glide_nees, np.mean),
            "nees_glide_share_above": share(self.glide_nees > NEES_THRESHOLD),
            "completeness_glide": self.completeness_glide,
            "track_breaks_glide": self.track_breaks_glide,
            "track_breaks_turn": self.track_breaks_turn,
        }


@dataclass(slots=True)
class EvaluationResult:
    """Everything ``MetricsAccumulator.finish`` measured. ``tracks``/``truth`` are
    JSON-ready dicts (units in key names; ``truth`` is None without truth); the series
    are numpy arrays for plots, one entry per evaluation time (s since ``t0_ns``)."""

    has_truth: bool
    t0_ns: int
    tracks: dict[str, Any]
    truth: dict[str, Any] | None
    track_series: list[TrackSeries]
    object_series: list[ObjectSeries]
    eval_t_s: np.ndarray  # evaluation times (s since t0)
    gospa_m: np.ndarray
    gospa_localisation_m2: np.ndarray
    gospa_missed: np.ndarray  # number of missed objects
    gospa_false: np.ndarray  # number of false tracks
    objects_present: np.ndarray
    tracks_selected: np.ndarray

    @classmethod
    def tracks_only(
        cls,
        t0_ns: int,
        tracks: dict[str, Any],
        track_series: list[TrackSeries],
        eval_t_s: np.ndarray,
        tracks_selected: np.ndarray,
    ) -> EvaluationResult:
        """A result without truth: track statistics, no GOSPA or object series."""
        none = np.zeros(0, int)
        return cls(
            has_truth=False,
            t0_ns=t0_ns,
            tracks=tracks,
            truth=None,
            track_series=track_series,
            object_series=[],
            eval_t_s=eval_t_s,
            gospa_m=np.zeros(0),
            gospa_localisation_m2=np.zeros(0),
            gospa_missed=none,
            gospa_false=none,
            objects_present=none,
            tracks_selected=tracks_selected,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (no arrays)."""
        out: dict[str, Any] = {
            "schema": "tracklayer.metrics/1",
            "has_truth": self.has_truth,
            "t0_unix_s": self.t0_ns / NS_PER_S,
            "tracks": self.tracks,
        }
        if self.truth is not None:
            out["truth"] = self.truth
        return _jsonable(out)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    if isinstance(x, float | np.floating):
        v = float(x)
        return None if not math.isfinite(v) else v
    return x
