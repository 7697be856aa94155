"""Tracking metrics (DESIGN §7): the one implementation used by tests, the CLI and the demo.

Feed a :class:`MetricsAccumulator` with track reports, truth frames and
(SensorFrame, DetectionTruth) pairs in any order, then call ``finish()`` for an
:class:`EvaluationResult`. Inputs are kept in compact numpy arrays (one row per
report, truth sample or true detection), never as per-frame objects.

Definitions (all times are data times):

- Evaluation times: every whole second (Unix epoch) over the span of truth and reports.
- At each evaluation time t, every track whose latest report at or before t has status
  CONFIRMED or COASTING and a state time within ``max_report_age_s`` (2 s) of t is
  *selected*; its error is taken against truth interpolated (cubic Hermite from truth
  positions and velocities) to the report's own ``time``.
- Truth-to-track assignment per evaluation time by GOSPA (p = 2, c = 5 km, alpha = 2)
  over the objects in flight at t (truth span covers t; an object that ended less than a
  report age before t may still be matched but is not counted missed); pairs at distance
  >= c are no assignment. Localisation part: sum of d^p over assigned pairs (m^2); missed and
  false parts: c^p / alpha per unassigned object / track.
- Phase windows per object: boost before burnout (first truth sample not in BOOST);
  midcourse from burnout + 60 s until the object descends through 100 km (geodetic
  altitude, linear between samples); reentry after that descent, or from the highest
  point when it is below 100 km and the object descends afterwards (as the simulator);
  never for a truth that ends still climbing.
- Stereo visibility of an object at t: within [t - 2 s, t] two detections of it (per
  DetectionTruth) from different satellites whose lines of sight (frame sensor position
  -> truth position at the frame time) cross at >= 10 degrees (line angle, in [0, 90]).
- Completeness: share of (object, t) in stereo visibility with t >= first stereo time
  + 20 s that have an assigned track.
- False-track share: selected track-seconds assigned to no object / selected
  track-seconds. ID switch: an object's assigned track id changes to another id (gaps
  without assignment do not count by themselves). Track break: an object assigned at
  one evaluation time and not at the next while it is in stereo visibility.
- Impact: great-circle error of ``report.impact`` vs the end of the object's truth
  (extrapolated to the WGS-84 surface along its velocity), and whether the truth lies
  inside the reported 3-sigma ellipse (local east/north plane at the predicted point).
  Launch likewise against the start of the object's truth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .constants import ATMOSPHERE_TOP_M
from .domain import (
    NS_PER_S,
    DetectionTruth,
    FlightPhase,
    GroundEllipse,
    SensorFrame,
    TrackReport,
    TrackStatus,
    TruthFrame,
)
from .geodesy import (
    ecef_to_geodetic,
    enu_matrix,
    geodetic_to_ecef,
    great_circle_m,
    teme_to_ecef,
    teme_to_geodetic,
)

GOSPA_C_M = 5000.0
GOSPA_P = 2.0
GOSPA_ALPHA = 2.0
MAX_REPORT_AGE_S = 2.0
STEREO_WINDOW_S = 2.0
STEREO_MIN_ANGLE_DEG = 10.0
COMPLETENESS_GRACE_S = 20.0
MIDCOURSE_AFTER_BURNOUT_S = 60.0
IMPACT_AFTER_BURNOUT_S = 300.0
NEES_THRESHOLD = 22.5  # ~99.9 % point of chi-square with 6 degrees of freedom
FALSE_RUN_LIMIT_S = 10.0
_SURFACE_TOLERANCE_M = 1000.0  # truth end/start counts as impact/launch below this height
_PENDING_FRAMES_MAX = 4096  # frames awaiting their DetectionTruth (it follows immediately)
_PAIR_CHUNK = 2_000_000  # (selected report, object) distances computed per chunk
_GATE_MARGIN_M = 2000.0  # m: curvature of the path between truth samples, with room to spare

_PHASES = ("boost", "midcourse", "reentry", "all")
_STATUS_NAMES = {s: s.name.lower() for s in TrackStatus}


# --------------------------------------------------------------------------- maths


def hermite_interpolate(
    t: np.ndarray, pos: np.ndarray, vel: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cubic Hermite interpolation of a trajectory.

    ``t`` (N,) strictly increasing sample times (s), ``pos`` (N, 3) m, ``vel`` (N, 3) m/s,
    ``q`` (K,) query times (s). Returns position (K, 3) and velocity (K, 3); NaN for
    queries outside [t[0], t[-1]]. Exact for any cubic polynomial trajectory.
    """
    t = np.asarray(t, dtype=float)
    q = np.asarray(q, dtype=float).reshape(-1)
    out_p = np.full((q.size, 3), np.nan)
    out_v = np.full((q.size, 3), np.nan)
    if t.size == 0:
        return out_p, out_v
    inside = (q >= t[0]) & (q <= t[-1])
    if t.size == 1:
        out_p[inside] = pos[0]
        out_v[inside] = vel[0]
        return out_p, out_v
    qi = q[inside]
    i = np.clip(np.searchsorted(t, qi, side="right") - 1, 0, t.size - 2)
    h = (t[i + 1] - t[i])[:, None]
    s = ((qi - t[i]) / (t[i + 1] - t[i]))[:, None]
    s2, s3 = s * s, s * s * s
    p0, p1, v0, v1 = pos[i], pos[i + 1], vel[i], vel[i + 1]
    out_p[inside] = (
        (2 * s3 - 3 * s2 + 1) * p0
        + (s3 - 2 * s2 + s) * h * v0
        + (-2 * s3 + 3 * s2) * p1
        + (s3 - s2) * h * v1
    )
    out_v[inside] = (
        (6 * s2 - 6 * s) * p0 / h
        + (3 * s2 - 4 * s + 1) * v0
        + (-6 * s2 + 6 * s) * p1 / h
        + (3 * s2 - 2 * s) * v1
    )
    return out_p, out_v


@dataclass(frozen=True, slots=True)
class GospaResult:
    """GOSPA at one time. ``pairs``: (truth index, track index) assigned at distance < c."""

    distance_m: float
    localisation_m2: float  # sum of d^p over assigned pairs (p = 2: m^2)
    missed_m2: float  # c^p / alpha per missed object
    false_m2: float  # c^p / alpha per false track
    n_missed: int
    n_false: int
    pairs: tuple[tuple[int, int], ...]


def _assign(dist: np.ndarray, c: float, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal GOSPA (alpha = 2) assignment on a distance matrix (rows x cols, inf allowed).

    Returns row and column indices of pairs at distance < c.
    """
    if dist.size == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    cost = np.minimum(dist, c) ** p
    rows, cols = linear_sum_assignment(cost)
    ok = dist[rows, cols] < c
    return rows[ok], cols[ok]


def gospa(
    truth_positions: np.ndarray,
    track_positions: np.ndarray,
    c: float = GOSPA_C_M,
    p: float = GOSPA_P,
    alpha: float = GOSPA_ALPHA,
) -> GospaResult:
    """GOSPA metric between truth positions (m, 3) and track positions (n, 3), metres.

    Only alpha = 2 is supported (the assignment form of Rahmathullah et al. 2017).
    """
    if alpha != 2.0:
        raise ValueError(f"alpha: only 2 is supported, got {alpha}")
    x = np.asarray(truth_positions, dtype=float).reshape(-1, 3)
    y = np.asarray(track_positions, dtype=float).reshape(-1, 3)
    dist = np.linalg.norm(x[:, None, :] - y[None, :, :], axis=2)
    rows, cols = _assign(dist, c, p)
    loc = float(np.sum(dist[rows, cols] ** p))
    n_missed = x.shape[0] - rows.size
    n_false = y.shape[0] - rows.size
    unit = c**p / alpha
    total = loc + unit * (n_missed + n_false)
    return GospaResult(
        distance_m=total ** (1.0 / p),
        localisation_m2=loc,
        missed_m2=unit * n_missed,
        false_m2=unit * n_false,
        n_missed=n_missed,
        n_false=n_false,
        pairs=tuple((int(r), int(k)) for r, k in zip(rows, cols, strict=True)),
    )


def line_angle_deg(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Angle (deg, [0, 90]) between the lines along direction vectors ``u1`` and ``u2`` (..., 3)."""
    a = np.asarray(u1, float)
    b = np.asarray(u2, float)
    c = np.abs(np.sum(a * b, axis=-1)) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(c, 0.0, 1.0)))


def nees(error: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Normalised estimation error squared e^T P^-1 e; errors (K, d), covariances (K, d, d)."""
    e = np.asarray(error, float)
    P = np.asarray(covariance, float)
    if e.shape[0] == 0:
        return np.zeros(0)
    try:
        sol = np.linalg.solve(P, e[..., None])[..., 0]
    except np.linalg.LinAlgError:
        sol = np.einsum("kij,kj->ki", np.linalg.pinv(P), e)
    return np.einsum("ki,ki->k", e, sol)


def inside_ellipse(
    east_m: np.ndarray,
    north_m: np.ndarray,
    semi_major_m: np.ndarray,
    semi_minor_m: np.ndarray,
    orientation_deg: np.ndarray,
    scale: float = 3.0,
) -> np.ndarray:
    """Whether offsets (east, north) from an ellipse centre lie inside ``scale`` x the ellipse.

    The ellipse's major axis points ``orientation_deg`` clockwise from north.
    """
    th = np.radians(np.asarray(orientation_deg, float))
    a = np.asarray(east_m) * np.sin(th) + np.asarray(north_m) * np.cos(th)  # along major
    b = np.asarray(east_m) * np.cos(th) - np.asarray(north_m) * np.sin(th)  # along minor
    big = np.maximum(scale * np.asarray(semi_major_m, float), 1e-9)
    small = np.maximum(scale * np.asarray(semi_minor_m, float), 1e-9)
    return (a / big) ** 2 + (b / small) ** 2 <= 1.0


def ground_offset_en(
    lat0_deg: np.ndarray, lon0_deg: np.ndarray, lat_deg: np.ndarray, lon_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """East and north offsets (m) of surface points from surface centres (all WGS-84, height 0),
    in the local east/north plane at each centre (arrays broadcast)."""
    la0 = np.radians(np.asarray(lat0_deg, float))
    lo0 = np.radians(np.asarray(lon0_deg, float))
    d = geodetic_to_ecef(lat_deg, lon_deg, 0.0) - geodetic_to_ecef(lat0_deg, lon0_deg, 0.0)
    east = -np.sin(lo0) * d[..., 0] + np.cos(lo0) * d[..., 1]
    north = (
        -np.sin(la0) * np.cos(lo0) * d[..., 0]
        - np.sin(la0) * np.sin(lo0) * d[..., 1]
        + np.cos(la0) * d[..., 2]
    )
    return east, north


# --------------------------------------------------------------------------- storage


class _Buffer:
    """Append-only 2-D numpy buffer with amortised doubling."""

    def __init__(self, width: int, dtype: Any = float) -> None:
        self._a = np.empty((256, width), dtype=dtype)
        self.n = 0

    def append(self, row: Any) -> None:
        if self.n == self._a.shape[0]:
            self._a = np.concatenate([self._a, np.empty_like(self._a)])
        self._a[self.n] = row
        self.n += 1

    def extend(self, rows: np.ndarray) -> None:
        k = rows.shape[0]
        while self.n + k > self._a.shape[0]:
            self._a = np.concatenate([self._a, np.empty_like(self._a)])
        self._a[self.n : self.n + k] = rows
        self.n += k

    def view(self) -> np.ndarray:
        return self._a[: self.n]


# Report float columns
_R_POS, _R_VEL, _R_COV = slice(0, 3), slice(3, 6), slice(6, 42)
_R_LAT, _R_LON, _R_ALT = 42, 43, 44
_R_IMP = slice(45, 50)  # lat, lon, semi-major, semi-minor, orientation (NaN if unset)
_R_LAU = slice(50, 55)
_R_WIDTH = 55
# Report int columns: time_ns, track index, revision, status, phase, n sensors, update count,
# impact time_ns (0 if unset)
_RI_T, _RI_TRACK, _RI_REV, _RI_STATUS, _RI_PHASE, _RI_NSENS, _RI_UPD, _RI_IMPT = range(8)


def _ellipse_row(e: GroundEllipse | None) -> list[float]:
    if e is None:
        return [math.nan] * 5
    return [e.latitude_deg, e.longitude_deg, e.semi_major_m, e.semi_minor_m, e.orientation_deg]


# --------------------------------------------------------------------------- results


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
    update_rate_hz: float
    sensors_per_update: float


@dataclass(slots=True)
class ObjectSeries:
    """One truth object's trajectory and its error series (times relative to ``t0_ns``)."""

    object_id: str
    truth_t_s: np.ndarray
    truth_latitude_deg: np.ndarray
    truth_longitude_deg: np.ndarray
    truth_altitude_m: np.ndarray
    burnout_s: float
    reentry_s: float  # descent through 100 km; inf if not within the truth
    launch_latlon_deg: tuple[float, float] | None
    impact_latlon_deg: tuple[float, float] | None
    first_stereo_s: float  # nan if never in stereo visibility
    first_assigned_s: float  # nan if never assigned
    # per evaluation time with an assigned track:
    eval_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    track_ids: list[str] = field(default_factory=list)
    position_error_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    velocity_error_mps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    position_sigma3_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    velocity_sigma3_mps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # impact predictions while assigned:
    impact_since_burnout_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    impact_error_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    impact_inside_3sigma: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    id_switches: int = 0
    completeness: float = math.nan
    midcourse_position_rmse_m: float = math.nan


@dataclass(slots=True)
class EvaluationResult:
    """Everything ``MetricsAccumulator.finish`` measured. ``summary``/``tracks``/``truth`` are
    JSON-ready dicts (units in key names); the series are numpy arrays for plots."""

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


def _stat(values: np.ndarray, fn: Any) -> float:
    return float(fn(values)) if values.size else math.nan


def _rmse(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(err * err, axis=1)))) if err.shape[0] else math.nan


# --------------------------------------------------------------------------- accumulator


class MetricsAccumulator:
    """Collects reports, truth and detection truth (any order) and computes DESIGN §7 metrics."""

    def __init__(
        self,
        *,
        gospa_c_m: float = GOSPA_C_M,
        gospa_p: float = GOSPA_P,
        max_report_age_s: float = MAX_REPORT_AGE_S,
        stereo_window_s: float = STEREO_WINDOW_S,
        stereo_min_angle_deg: float = STEREO_MIN_ANGLE_DEG,
        completeness_grace_s: float = COMPLETENESS_GRACE_S,
        nees_threshold: float = NEES_THRESHOLD,
    ) -> None:
        self.c = gospa_c_m
        self.p = gospa_p
        self.max_age_ns = int(max_report_age_s * NS_PER_S)
        self.stereo_window_s = stereo_window_s
        self.stereo_cos = math.cos(math.radians(stereo_min_angle_deg))
        self.grace_s = completeness_grace_s
        self.nees_threshold = nees_threshold
        self._rep_f = _Buffer(_R_WIDTH)
        self._rep_i = _Buffer(8, np.int64)
        self._track_index: dict[str, int] = {}
        self._sensors_seen: set[str] = set()
        self._obj_index: dict[str, int] = {}
        self._truth: list[tuple[_Buffer, _Buffer]] = []  # per object: (time_ns + phase, pos/vel)
        self._det_i = _Buffer(3, np.int64)  # time_ns, object index, sensor index
        self._det_f = _Buffer(3)  # sensor position, m TEME
        self._sensor_index: dict[str, int] = {}
        self._pending: dict[tuple[str, int], tuple[int, np.ndarray]] = {}

    # ---- feeding

    def add_report(self, r: TrackReport) -> None:
        """One track report, as emitted."""
        ti = self._track_index.setdefault(r.track_id, len(self._track_index))
        row = np.empty(_R_WIDTH)
        row[_R_POS] = r.position
        row[_R_VEL] = r.velocity
        row[_R_COV] = r.covariance.reshape(-1)
        row[_R_LAT], row[_R_LON], row[_R_ALT] = r.latitude_deg, r.longitude_deg, r.altitude_m
        row[_R_IMP] = _ellipse_row(r.impact)
        row[_R_LAU] = _ellipse_row(r.launch)
        self._rep_f.append(row)
        self._rep_i.append(
            (
                r.time_ns,
                ti,
                r.revision,
                int(r.status),
                int(r.phase),
                len(r.sensor_ids),
                r.update_count,
                0 if r.impact is None else r.impact.time_ns,
            )
        )
        self._sensors_seen.update(r.sensor_ids)

    def add_reports(self, reports: Iterable[TrackReport]) -> None:
        for r in reports:
            self.add_report(r)

    def _object(self, object_id: str) -> int:
        k = self._obj_index.get(object_id)
        if k is None:
            k = self._obj_index[object_id] = len(self._obj_index)
            self._truth.append((_Buffer(2, np.int64), _Buffer(6)))
        return k

    def add_truth(self, frame: TruthFrame) -> None:
        """One truth frame: every object in flight at ``frame.time_ns``."""
        for s in frame.objects:
            ti, tf = self._truth[self._object(s.object_id)]
            ti.append((frame.time_ns, int(s.phase)))
            row = np.empty(6)
            row[:3] = s.position
            row[3:] = s.velocity
            tf.append(row)

    def add_frame(self, frame: SensorFrame) -> None:
        """A sensor frame whose DetectionTruth will follow (``add_detection_truth``)."""
        if frame.n_detections == 0:
            return
        if len(self._pending) >= _PENDING_FRAMES_MAX:
            self._pending.pop(next(iter(self._pending)))
        self._pending[(frame.sensor_id, frame.sequence)] = (frame.time_ns, frame.position.copy())

    def add_detection_truth(self, dt: DetectionTruth) -> None:
        """The DetectionTruth of a frame given earlier to ``add_frame`` (else ignored)."""
        got = self._pending.pop((dt.sensor_id, dt.sequence), None)
        if got is not None:
            self._add_detections(dt.sensor_id, got[0], got[1], dt.object_ids)

    def add_frame_truth(self, frame: SensorFrame, dt: DetectionTruth) -> None:
        """A sensor frame with its DetectionTruth."""
        if len(dt.object_ids) != frame.n_detections:
            raise ValueError(
                f"object_ids: DetectionTruth of {dt.sensor_id}/{dt.sequence} names "
                f"{len(dt.object_ids)} detections, the frame has {frame.n_detections}"
            )
        self._add_detections(frame.sensor_id, frame.time_ns, frame.position, dt.object_ids)

    def _add_detections(
        self, sensor_id: str, time_ns: int, position: np.ndarray, object_ids: Iterable[str]
    ) -> None:
        objs = [self._object(o) for o in dict.fromkeys(o for o in object_ids if o)]
        if not objs:  # clutter only: nothing to keep
            return
        si = self._sensor_index.setdefault(sensor_id, len(self._sensor_index))
        rows = np.empty((len(objs), 3), dtype=np.int64)
        rows[:, 0], rows[:, 1], rows[:, 2] = time_ns, objs, si
        self._det_i.extend(rows)
        self._det_f.extend(np.broadcast_to(position, (len(objs), 3)))

    # ---- results

    def finish(self) -> EvaluationResult:
        """Compute every metric from what was fed."""
        rf, ri = self._rep_f.view(), self._rep_i.view()
        has_truth = any(b[0].n > 0 for b in self._truth)
        times = [ri[:, _RI_T]] if ri.shape[0] else []
        for ti, _ in self._truth:
            if ti.n:
                times.append(ti.view()[:, 0])
        if times:
            all_t = np.concatenate(times)
            t0_ns = -(-int(all_t.min()) // NS_PER_S) * NS_PER_S
            t_end_ns = int(all_t.max())
        else:
            t0_ns = t_end_ns = 0
        n_eval = max(0, (t_end_ns - t0_ns) // NS_PER_S + 1) if times else 0
        eval_ns = t0_ns + NS_PER_S * np.arange(n_eval, dtype=np.int64)

        # reports sorted per track by (time, revision)
        order = np.lexsort((ri[:, _RI_REV], ri[:, _RI_T], ri[:, _RI_TRACK])) if ri.size else []
        ri = ri[order]
        rf = rf[order]
        track_ids = list(self._track_index)
        bounds = np.searchsorted(ri[:, _RI_TRACK], np.arange(len(track_ids) + 1))
        track_series, track_stats = self._track_statistics(ri, rf, bounds, track_ids, t0_ns)

        sel_k, sel_r = self._select(ri, bounds, eval_ns)
        empty = np.zeros(0)
        if not has_truth:
            n_sel = np.bincount(sel_k, minlength=n_eval) if n_eval else np.zeros(0, int)
            return EvaluationResult(
                has_truth=False,
                t0_ns=t0_ns,
                tracks=track_stats,
                truth=None,
                track_series=track_series,
                object_series=[],
                eval_t_s=(eval_ns - t0_ns) / NS_PER_S,
                gospa_m=empty,
                gospa_localisation_m2=empty,
                gospa_missed=np.zeros(0, int),
                gospa_false=np.zeros(0, int),
                objects_present=np.zeros(0, int),
                tracks_selected=n_sel,
            )
        return self._evaluate_truth(
            ri, rf, sel_k, sel_r, eval_ns, t0_ns, track_ids, track_series, track_stats
        )

    # ---- helpers of finish

    def _track_statistics(
        self,
        ri: np.ndarray,
        rf: np.ndarray,
        bounds: np.ndarray,
        track_ids: list[str],
        t0_ns: int,
    ) -> tuple[list[TrackSeries], dict[str, Any]]:
        series: list[TrackSeries] = []
        per_track: list[dict[str, Any]] = []
        for k, tid in enumerate(track_ids):
            a, b = bounds[k], bounds[k + 1]
            ti, tf = ri[a:b], rf[a:b]
            t_s = (ti[:, _RI_T] - t0_ns) / NS_PER_S
            status = ti[:, _RI_STATUS]
            confirmed = bool(np.any(status == TrackStatus.CONFIRMED))
            life = float(t_s[-1] - t_s[0])
            upd = float(ti[-1, _RI_UPD] - ti[0, _RI_UPD])
            rate = upd / life if life > 0 else math.nan
            ns = ti[:, _RI_NSENS]
            spu = float(np.mean(ns[ns > 0])) if np.any(ns > 0) else math.nan
            has_imp = np.flatnonzero(~np.isnan(tf[:, _R_IMP][:, 0]))
            last_imp = None
            if has_imp.size:
                j = has_imp[-1]
                v = tf[j, _R_IMP]
                last_imp = GroundEllipse(
                    float(v[0]),
                    float(v[1]),
                    int(ti[j, _RI_IMPT]),
                    float(v[2]),
                    float(v[3]),
                    float(v[4]),
                )
            series.append(
                TrackSeries(
                    track_id=tid,
                    t_s=t_s,
                    latitude_deg=tf[:, _R_LAT].copy(),
                    longitude_deg=tf[:, _R_LON].copy(),
                    altitude_m=tf[:, _R_ALT].copy(),
                    status=status.copy(),
                    impact_latitude_deg=tf[:, _R_IMP][:, 0].copy(),
                    impact_longitude_deg=tf[:, _R_IMP][:, 1].copy(),
                    confirmed=confirmed,
                    last_impact=last_imp,
                    first_s=float(t_s[0]),
                    last_s=float(t_s[-1]),
                    n_reports=int(b - a),
                    update_rate_hz=rate,
                    sensors_per_update=spu,
                )
            )
            if confirmed:
                per_track.append(
                    {
                        "track_id": tid,
                        "first_s": float(t_s[0]),
                        "last_s": float(t_s[-1]),
                        "lifetime_s": life,
                        "reports": int(b - a),
                        "updates": int(ti[-1, _RI_UPD]),
                        "update_rate_hz": rate,
                        "sensors_per_update_mean": spu,
                        "final_status": _STATUS_NAMES[TrackStatus(int(status[-1]))],
                    }
                )
        conf = [s for s in series if s.confirmed]
        life = np.array([s.last_s - s.first_s for s in conf])
        rates = np.array([s.update_rate_hz for s in conf])
        rates = rates[np.isfinite(rates)]
        nsens = ri[:, _RI_NSENS] if ri.size else np.zeros(0)
        gaps = np.concatenate([np.diff(s.t_s) for s in conf]) if conf else np.zeros(0)
        by_status = {
            _STATUS_NAMES[s]: int(np.sum(ri[:, _RI_STATUS] == s)) if ri.size else 0
            for s in TrackStatus
            if s != TrackStatus.UNSPECIFIED
        }
        span = float((ri[:, _RI_T].max() - ri[:, _RI_T].min()) / NS_PER_S) if ri.size else 0.0
        stats = {
            "n_tracks": len(track_ids),
            "n_confirmed": len(conf),
            "n_reports": int(ri.shape[0]),
            "reports_by_status": by_status,
            "report_span_s": span,
            "sensors_reporting": len(self._sensors_seen),
            "confirmed_lifetime_median_s": _stat(life, np.median),
            "confirmed_lifetime_max_s": _stat(life, np.max),
            "confirmed_lifetime_total_s": float(np.sum(life)),
            "update_rate_median_hz": _stat(rates, np.median),
            "report_interval_median_s": _stat(gaps[gaps > 0], np.median),
            "sensors_per_update_mean": float(np.mean(nsens[nsens > 0]))
            if np.any(nsens > 0)
            else math.nan,
            "per_track": per_track,
        }
        return series, stats

    def _select(
        self, ri: np.ndarray, bounds: np.ndarray, eval_ns: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(evaluation index, report index) of every selected track report, sorted by time."""
        ks: list[np.ndarray] = []
        rs: list[np.ndarray] = []
        live = (TrackStatus.CONFIRMED, TrackStatus.COASTING)
        for k in range(len(bounds) - 1):
            a, b = bounds[k], bounds[k + 1]
            st = ri[a:b, _RI_STATUS]
            if not np.any(np.isin(st, live)):
                continue
            t = ri[a:b, _RI_T]
            lo = np.searchsorted(eval_ns, t[0])
            hi = np.searchsorted(eval_ns, t[-1] + self.max_age_ns, side="right")
            ev = eval_ns[lo:hi]
            j = np.searchsorted(t, ev, side="right") - 1
            ok = (j >= 0) & np.isin(st[np.maximum(j, 0)], live)
            ok &= ev - t[np.maximum(j, 0)] <= self.max_age_ns
            ks.append(np.arange(lo, hi)[ok])
            rs.append(a + j[ok])
        if not ks:
            return np.zeros(0, int), np.zeros(0, int)
        k_all = np.concatenate(ks)
        r_all = np.concatenate(rs)
        o = np.argsort(k_all, kind="stable")
        return k_all[o], r_all[o]

    def _truth_arrays(self, t0_ns: int) -> list[dict[str, Any]]:
        """Per object: sorted unique samples (s since t0), pos, vel, phase, geodetic, windows."""
        out = []
        for oid, k in self._obj_index.items():
            ti_b, tf_b = self._truth[k]
            if ti_b.n == 0:
                out.append({"id": oid, "n": 0})
                continue
            ti, tf = ti_b.view(), tf_b.view()
            o = np.argsort(ti[:, 0], kind="stable")
            ti, tf = ti[o], tf[o]
            keep = np.concatenate([[True], np.diff(ti[:, 0]) > 0])
            ti, tf = ti[keep], tf[keep]
            t_abs = ti[:, 0] / NS_PER_S
            t = (ti[:, 0] - t0_ns) / NS_PER_S
            lat, lon, alt = teme_to_geodetic(tf[:, :3], t_abs)
            phase = ti[:, 1]
            nb = np.flatnonzero(phase != FlightPhase.BOOST)
            burnout = float(t[nb[0]]) if nb.size else float(t[-1])
            reentry = _reentry_start(t, alt)
            out.append(
                {
                    "id": oid,
                    "n": t.size,
                    "t": t,
                    "pos": tf[:, :3],
                    "vel": tf[:, 3:],
                    "vmax": float(np.linalg.norm(tf[:, 3:], axis=1).max()),
                    "phase": phase,
                    "lat": np.asarray(lat),
                    "lon": np.asarray(lon),
                    "alt": np.asarray(alt),
                    "burnout": burnout,
                    "reentry": reentry,
                    "launch": _surface_point(tf[0, :3], tf[0, 3:], t_abs[0], backwards=True),
                    "impact": _surface_point(tf[-1, :3], tf[-1, 3:], t_abs[-1]),
                }
            )
        return out

    def _stereo(self, truth: list[dict[str, Any]], eval_s: np.ndarray, t0_ns: int) -> np.ndarray:
        """Boolean (n_eval, n_obj): object in stereo visibility at each evaluation time."""
        n_eval, n_obj = eval_s.size, len(truth)
        diff = np.zeros((n_eval + 1, n_obj), dtype=np.int64)
        di, df = self._det_i.view(), self._det_f.view()
        if di.shape[0] == 0 or n_eval == 0:
            return np.zeros((n_eval, n_obj), bool)
        for o, tr in enumerate(truth):
            if tr["n"] == 0:
                continue
            m = di[:, 1] == o
            if not np.any(m):
                continue
            t = (di[m, 0] - t0_ns) / NS_PER_S
            srt = np.argsort(t, kind="stable")
            t, sens, spos = t[srt], di[m, 2][srt], df[m][srt]
            tpos, _ = hermite_interpolate(tr["t"], tr["pos"], tr["vel"], t)
            u = tpos - spos
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            good = np.isfinite(u[:, 0])
            lo_list, hi_list = [], []
            for lag in range(1, t.size):
                dtm = t[lag:] - t[:-lag]
                within = dtm <= self.stereo_window_s
                if not np.any(within):
                    break
                ok = within & (sens[lag:] != sens[:-lag]) & good[lag:] & good[:-lag]
                ok &= np.abs(np.sum(u[lag:] * u[:-lag], axis=1)) <= self.stereo_cos
                # both detections within [t - window, t]  <=>  t in [later, earlier + window]
                lo_list.append(t[lag:][ok])
                hi_list.append(t[:-lag][ok] + self.stereo_window_s)
            if not lo_list:
                continue
            lo = np.concatenate(lo_list)
            hi = np.concatenate(hi_list)
            klo = np.searchsorted(eval_s, lo - 1e-9, side="left")
            khi = np.searchsorted(eval_s, hi + 1e-9, side="right")
            use = khi > klo
            np.add.at(diff[:, o], klo[use], 1)
            np.add.at(diff[:, o], khi[use], -1)
        return np.cumsum(diff, axis=0)[:n_eval] > 0

    def _evaluate_truth(
        self,
        ri: np.ndarray,
        rf: np.ndarray,
        sel_k: np.ndarray,
        sel_r: np.ndarray,
        eval_ns: np.ndarray,
        t0_ns: int,
        track_ids: list[str],
        track_series: list[TrackSeries],
        track_stats: dict[str, Any],
    ) -> EvaluationResult:
        truth = self._truth_arrays(t0_ns)
        n_obj = len(truth)
        eval_s = (eval_ns - t0_ns) / NS_PER_S
        n_eval = eval_s.size
        rep_t = (ri[:, _RI_T] - t0_ns) / NS_PER_S
        first = np.array([tr["t"][0] if tr["n"] else np.inf for tr in truth])
        last = np.array([tr["t"][-1] if tr["n"] else -np.inf for tr in truth])
        present = (eval_s[:, None] >= first[None, :]) & (eval_s[:, None] <= last[None, :])
        # an object that ended (impact) less than a report age ago may still be matched by a
        # report of its last seconds, but is not counted missed
        age_s = self.max_age_ns / NS_PER_S
        cand = present | ((eval_s[:, None] > last[None, :]) & (eval_s[:, None] <= last + age_s))

        # ---- GOSPA assignment per evaluation time, in chunks of evaluation times
        gospa_loc = np.zeros(n_eval)
        n_missed = present.sum(axis=1).astype(int)
        n_sel = np.bincount(sel_k, minlength=n_eval) if sel_k.size else np.zeros(n_eval, int)
        n_false = n_sel.copy()
        assigned = np.full((n_eval, n_obj), -1, dtype=np.int64)  # report index
        sel_assigned = np.zeros(sel_k.size, bool)
        kb = np.searchsorted(sel_k, np.arange(n_eval + 1))
        per_chunk = max(1, _PAIR_CHUNK // max(1, n_obj))
        s0 = 0
        while s0 < sel_k.size:
            s1 = min(sel_k.size, s0 + per_chunk)
            s1 = kb[min(n_eval, sel_k[s1 - 1] + 1)]  # end on a whole evaluation time
            dist = np.full((s1 - s0, n_obj), np.inf)
            rr = sel_r[s0:s1]
            for o, tr in enumerate(truth):
                if tr["n"] == 0:
                    continue
                idx = np.flatnonzero(cand[sel_k[s0:s1], o])
                if idx.size == 0:
                    continue
                # coarse gate on the nearest truth sample: a pair farther than c plus the
                # distance the object can cover to the report time cannot be assigned
                tq = rep_t[rr[idx]]
                near = _nearest(tr["t"], tq)
                dc = np.linalg.norm(rf[rr[idx], _R_POS] - tr["pos"][near], axis=1)
                reach = tr["vmax"] * np.abs(tq - tr["t"][near]) + _GATE_MARGIN_M
                idx = idx[dc <= self.c + reach]
                if idx.size == 0:
                    continue
                tp, _ = hermite_interpolate(tr["t"], tr["pos"], tr["vel"], rep_t[rr[idx]])
                d = np.linalg.norm(rf[rr[idx], _R_POS] - tp, axis=1)
                dist[idx, o] = np.where(np.isfinite(d), d, np.inf)
            for k in range(sel_k[s0], sel_k[s1 - 1] + 1):
                a, b = kb[k] - s0, kb[k + 1] - s0
                cols = np.flatnonzero(cand[k])
                if b <= a or cols.size == 0:
                    continue
                dm = dist[a:b][:, cols]
                rows, cc = _assign(dm, self.c, self.p)
                gospa_loc[k] = float(np.sum(dm[rows, cc] ** self.p))
                n_missed[k] -= int(np.sum(present[k, cols[cc]]))
                n_false[k] -= rows.size
                assigned[k, cols[cc]] = sel_r[s0 + a + rows]
                sel_assigned[s0 + a + rows] = True
            s0 = s1
        unit = self.c**self.p / GOSPA_ALPHA
        gospa_m = (gospa_loc + unit * (n_missed + n_false)) ** (1.0 / self.p)

        stereo = self._stereo(truth, eval_s, t0_ns)
        return self._summarise(
            truth,
            ri,
            rf,
            rep_t,
            eval_s,
            eval_ns,
            t0_ns,
            present,
            assigned,
            stereo,
            sel_k,
            sel_r,
            sel_assigned,
            track_ids,
            track_series,
            track_stats,
            gospa_m,
            gospa_loc,
            n_missed,
            n_false,
            n_sel,
        )

    def _summarise(
        self,
        truth: list[dict[str, Any]],
        ri: np.ndarray,
        rf: np.ndarray,
        rep_t: np.ndarray,
        eval_s: np.ndarray,
        eval_ns: np.ndarray,
        t0_ns: int,
        present: np.ndarray,
        assigned: np.ndarray,
        stereo: np.ndarray,
        sel_k: np.ndarray,
        sel_r: np.ndarray,
        sel_assigned: np.ndarray,
        track_ids: list[str],
        track_series: list[TrackSeries],
        track_stats: dict[str, Any],
        gospa_m: np.ndarray,
        gospa_loc: np.ndarray,
        n_missed: np.ndarray,
        n_false: np.ndarray,
        n_sel: np.ndarray,
    ) -> EvaluationResult:
        phase_err: dict[str, list[np.ndarray]] = {p: [] for p in _PHASES}
        phase_verr: dict[str, list[np.ndarray]] = {p: [] for p in _PHASES}
        nees_mid: list[np.ndarray] = []
        imp_err: list[np.ndarray] = []
        imp_in: list[np.ndarray] = []
        lau_err: list[np.ndarray] = []
        lau_in: list[np.ndarray] = []
        phase_agree: list[np.ndarray] = []
        objects: list[ObjectSeries] = []
        per_object: list[dict[str, Any]] = []
        elig_total = elig_hit = 0
        switches_total = 0
        breaks_total = 0
        delays: list[float] = []
        never_tracked: list[str] = []
        for o, tr in enumerate(truth):
            if tr["n"] == 0:
                continue
            ks = np.flatnonzero(assigned[:, o] >= 0)
            rr = assigned[ks, o]
            tp, tv = hermite_interpolate(tr["t"], tr["pos"], tr["vel"], rep_t[rr])
            ep = rf[rr, _R_POS] - tp
            ev = rf[rr, _R_VEL] - tv
            tt = rep_t[rr]
            bo, re = tr["burnout"], tr["reentry"]
            masks = {
                "boost": tt < bo,
                "midcourse": (tt >= bo + MIDCOURSE_AFTER_BURNOUT_S) & (tt < re),
                "reentry": tt >= re,
                "all": np.ones(tt.size, bool),
            }
            for p, m in masks.items():
                phase_err[p].append(ep[m])
                phase_verr[p].append(ev[m])
            cov = rf[rr, _R_COV].reshape(-1, 6, 6)
            mm = masks["midcourse"]
            nees_mid.append(nees(np.hstack([ep[mm], ev[mm]]), cov[mm]))
            sigma3 = 3.0 * np.sqrt(np.maximum(np.trace(cov[:, :3, :3], axis1=1, axis2=2), 0.0))
            sigma3v = 3.0 * np.sqrt(np.maximum(np.trace(cov[:, 3:, 3:], axis1=1, axis2=2), 0.0))

            # impact and launch
            imp = rf[rr, _R_IMP]
            has_i = ~np.isnan(imp[:, 0])
            since = eval_s[ks] - bo
            i_err = np.zeros(0)
            i_in = np.zeros(0, bool)
            i_since = np.zeros(0)
            if tr["impact"] is not None and np.any(has_i):
                il = imp[has_i]
                i_err = np.asarray(
                    great_circle_m(il[:, 0], il[:, 1], tr["impact"][0], tr["impact"][1])
                )
                e, n = ground_offset_en(il[:, 0], il[:, 1], *tr["impact"])
                i_in = inside_ellipse(e, n, il[:, 2], il[:, 3], il[:, 4])
                i_since = since[has_i]
                late = i_since >= IMPACT_AFTER_BURNOUT_S
                imp_err.append(i_err[late])
                imp_in.append(i_in[late])
            lau = rf[rr, _R_LAU]
            has_l = ~np.isnan(lau[:, 0])
            if tr["launch"] is not None and np.any(has_l):
                ll = lau[has_l]
                lau_err.append(
                    np.asarray(great_circle_m(ll[:, 0], ll[:, 1], tr["launch"][0], tr["launch"][1]))
                )
                e, n = ground_offset_en(ll[:, 0], ll[:, 1], *tr["launch"])
                lau_in.append(inside_ellipse(e, n, ll[:, 2], ll[:, 3], ll[:, 4]))

            # stereo, completeness, switches, delay
            st = np.flatnonzero(stereo[:, o])
            first_stereo = float(eval_s[st[0]]) if st.size else math.nan
            elig = stereo[:, o].copy()
            if st.size:
                elig &= eval_s >= first_stereo + self.grace_s
            hit = elig & (assigned[:, o] >= 0)
            elig_total += int(elig.sum())
            elig_hit += int(hit.sum())
            # a break: assigned at the previous evaluation time, not now, while in stereo
            has = assigned[:, o] >= 0
            breaks = int(np.sum(has[:-1] & ~has[1:] & stereo[1:, o]))
            breaks_total += breaks
            tracks_o = ri[rr, _RI_TRACK]
            switches = int(np.sum(tracks_o[1:] != tracks_o[:-1]))
            switches_total += switches
            first_assigned = float(eval_s[ks[0]]) if ks.size else math.nan
            delay = first_assigned - first_stereo
            if math.isfinite(delay):
                delays.append(delay)
            if not ks.size:
                never_tracked.append(tr["id"])
            mid_rmse = _rmse(ep[mm])
            # reported flight phase against the truth phase at the report time
            rph = ri[rr, _RI_PHASE]
            tph = tr["phase"][np.maximum(np.searchsorted(tr["t"], tt, side="right") - 1, 0)]
            judged = rph != FlightPhase.UNSPECIFIED
            agree = rph[judged] == tph[judged]
            phase_agree.append(agree)
            comp = float(hit.sum() / elig.sum()) if elig.sum() else math.nan
            objects.append(
                ObjectSeries(
                    object_id=tr["id"],
                    truth_t_s=tr["t"],
                    truth_latitude_deg=tr["lat"],
                    truth_longitude_deg=tr["lon"],
                    truth_altitude_m=tr["alt"],
                    burnout_s=bo,
                    reentry_s=re,
                    launch_latlon_deg=tr["launch"],
                    impact_latlon_deg=tr["impact"],
                    first_stereo_s=first_stereo,
                    first_assigned_s=first_assigned,
                    eval_t_s=eval_s[ks],
                    track_ids=[track_ids[int(i)] for i in tracks_o],
                    position_error_m=np.linalg.norm(ep, axis=1),
                    velocity_error_mps=np.linalg.norm(ev, axis=1),
                    position_sigma3_m=sigma3,
                    velocity_sigma3_mps=sigma3v,
                    impact_since_burnout_s=i_since,
                    impact_error_m=i_err,
                    impact_inside_3sigma=i_in,
                    id_switches=switches,
                    completeness=comp,
                    midcourse_position_rmse_m=mid_rmse,
                )
            )
            late_i = i_since >= IMPACT_AFTER_BURNOUT_S
            per_object.append(
                {
                    "object_id": tr["id"],
                    "truth_start_s": float(tr["t"][0]),
                    "truth_end_s": float(tr["t"][-1]),
                    "burnout_s": bo,
                    "reentry_s": re,
                    "first_stereo_s": first_stereo,
                    "first_track_s": first_assigned,
                    "detection_delay_s": delay,
                    "track_ids": list(dict.fromkeys(track_ids[int(i)] for i in tracks_o)),
                    "id_switches": switches,
                    "track_breaks_in_stereo": breaks,
                    "completeness": comp,
                    "position_rmse_midcourse_m": mid_rmse,
                    "velocity_rmse_midcourse_mps": _rmse(ev[mm]),
                    "position_rmse_all_m": _rmse(ep),
                    "phase_agreement_share": float(np.mean(agree)) if agree.size else math.nan,
                    "impact_error_median_m": _stat(i_err[late_i], np.median),
                    "impact_error_final_m": float(i_err[-1]) if i_err.size else math.nan,
                }
            )

        objects.sort(key=lambda x: x.object_id)
        per_object.sort(key=lambda x: x["object_id"])

        def cat(xs: list[np.ndarray], width: int | None = None) -> np.ndarray:
            if xs:
                return np.concatenate(xs)
            return np.zeros((0, width)) if width else np.zeros(0)

        pos_rmse = {p: _rmse(cat(phase_err[p], 3)) for p in _PHASES}
        vel_rmse = {p: _rmse(cat(phase_verr[p], 3)) for p in _PHASES}
        samples = {p: int(cat(phase_err[p], 3).shape[0]) for p in _PHASES}
        nv = cat(nees_mid)
        ie, ii = cat(imp_err), cat(imp_in).astype(bool)
        le, li = cat(lau_err), cat(lau_in).astype(bool)
        pa = cat(phase_agree).astype(bool)

        # false tracks: selected track-seconds assigned to nothing, longest unassigned run
        sel_track = ri[sel_r, _RI_TRACK] if sel_r.size else np.zeros(0, int)
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
        object_minutes = float(present.sum()) / 60.0
        d = np.array(delays)
        truth_stats = {
            "n_objects": sum(1 for tr in truth if tr["n"]),
            "evaluation_times": int(eval_s.size),
            "object_time_s": float(present.sum()),
            "gospa_mean_m": _stat(gospa_m, np.mean),
            "gospa_median_m": _stat(gospa_m, np.median),
            "gospa_max_m": _stat(gospa_m, np.max),
            "gospa_localisation_mean_m2": _stat(gospa_loc, np.mean),
            "gospa_missed_mean": _stat(n_missed, np.mean),
            "gospa_false_mean": _stat(n_false, np.mean),
            "position_rmse_m": pos_rmse,
            "velocity_rmse_mps": vel_rmse,
            "rmse_samples": samples,
            "nees_midcourse_mean": _stat(nv, np.mean),
            "nees_midcourse_share_above": float(np.mean(nv > self.nees_threshold))
            if nv.size
            else math.nan,
            "nees_threshold": self.nees_threshold,
            "nees_samples": int(nv.size),
            "completeness": elig_hit / elig_total if elig_total else math.nan,
            "completeness_samples": elig_total,
            "confirmed_track_time_s": float(track_seconds),
            "false_track_time_s": float(false_seconds),
            "false_track_share": false_seconds / track_seconds if track_seconds else math.nan,
            "false_run_max_s": max_run,
            "tracks_unassigned_over_10s": long_false,
            "id_switches": switches_total,
            "track_breaks_in_stereo": breaks_total,
            "id_switches_per_10_object_minutes": switches_total / object_minutes * 10.0
            if object_minutes
            else math.nan,
            "detection_delay_median_s": _stat(d, np.median),
            "detection_delay_max_s": _stat(d, np.max),
            "objects_never_tracked": never_tracked,
            "impact_error_median_m": _stat(ie, np.median),
            "impact_error_p95_m": _stat(ie, lambda x: np.percentile(x, 95)),
            "impact_inside_3sigma_share": float(np.mean(ii)) if ii.size else math.nan,
            "impact_samples": int(ie.size),
            "launch_error_median_m": _stat(le, np.median),
            "launch_inside_3sigma_share": float(np.mean(li)) if li.size else math.nan,
            "launch_samples": int(le.size),
            "phase_agreement_share": float(np.mean(pa)) if pa.size else math.nan,
            "per_object": per_object,
        }
        return EvaluationResult(
            has_truth=True,
            t0_ns=t0_ns,
            tracks=track_stats,
            truth=truth_stats,
            track_series=track_series,
            object_series=objects,
            eval_t_s=eval_s,
            gospa_m=gospa_m,
            gospa_localisation_m2=gospa_loc,
            gospa_missed=n_missed,
            gospa_false=n_false,
            objects_present=present.sum(axis=1),
            tracks_selected=n_sel,
        )


def _nearest(t: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Index of the sample of sorted times ``t`` nearest to each query time ``q``."""
    j = np.clip(np.searchsorted(t, q), 0, t.size - 1)
    j0 = np.maximum(j - 1, 0)
    return np.where(np.abs(t[j0] - q) < np.abs(t[j] - q), j0, j)


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


def _reentry_start(t: np.ndarray, alt: np.ndarray) -> float:
    """Time (s) reentry begins: the first descent through 100 km (DESIGN §3).

    An object whose highest point stays below 100 km re-enters at that point, as in the
    simulator, provided it is descending afterwards (the highest sample is not the last);
    a truth ending while still climbing, or still above 100 km, never re-enters (inf).
    """
    if alt.size == 0:
        return math.inf
    top = int(np.argmax(alt))
    if alt[top] < ATMOSPHERE_TOP_M:
        return float(t[top]) if top < alt.size - 1 else math.inf
    down = _descent_time(t, alt, ATMOSPHERE_TOP_M)
    return math.inf if down is None else down


def _descent_time(t: np.ndarray, alt: np.ndarray, level: float) -> float | None:
    """Time (s) the trajectory descends through ``level`` (m) after its highest point."""
    if alt.size < 2 or alt.max() < level:
        return None
    top = int(np.argmax(alt))
    below = np.flatnonzero(alt[top:] < level)
    if below.size == 0:
        return None
    j = top + int(below[0])
    a0, a1 = alt[j - 1], alt[j]
    return float(t[j - 1] + (t[j] - t[j - 1]) * (a0 - level) / (a0 - a1))


def _surface_point(
    r_teme: np.ndarray, v_teme: np.ndarray, t_s: float, backwards: bool = False
) -> tuple[float, float] | None:
    """Latitude/longitude (deg) where a state near the WGS-84 surface meets it.

    Extrapolates linearly along the Earth-fixed velocity (against it when ``backwards``,
    for a launch point). None when the state is higher than ``_SURFACE_TOLERANCE_M``
    (the flight did not end/start within the truth).
    """
    r_e, v_e = teme_to_ecef(r_teme, t_s, v_teme)
    lat, lon, alt = ecef_to_geodetic(r_e)
    alt = float(alt)
    if alt > _SURFACE_TOLERANCE_M:
        return None
    if backwards:
        v_e = -v_e
    v_up = float(enu_matrix(float(lat), float(lon))[2] @ v_e)
    if alt > 0.0 and v_up < -1e-3:
        lat, lon, _ = ecef_to_geodetic(r_e + v_e * (alt / -v_up))
    return float(lat), float(lon)


def evaluate(
    reports: Iterable[TrackReport],
    truth: Iterable[TruthFrame] = (),
    frames_with_detection_truth: Iterable[tuple[SensorFrame, DetectionTruth]] = (),
    **options: Any,
) -> EvaluationResult:
    """One-call form of :class:`MetricsAccumulator` (options: its keyword arguments)."""
    acc = MetricsAccumulator(**options)
    acc.add_reports(reports)
    for tf in truth:
        acc.add_truth(tf)
    for frame, dt in frames_with_detection_truth:
        acc.add_frame_truth(frame, dt)
    return acc.finish()


Metrics = EvaluationResult  # the name in the helpers' interface notes
