""":class:`MetricsAccumulator`: feed reports, truth and detection truth, then ``finish()``.

Inputs are kept in compact numpy arrays (one row per report, truth sample or true
detection), never as per-frame objects; positions TEME (m), times ns since the Unix
epoch. ``finish()`` runs the evaluation: grid, track statistics, selection, GOSPA
assignment, stereo visibility, per-object scoring and the summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..domain import DetectionTruth, SensorFrame, TrackReport, TruthFrame
from . import reports as col
from .assignment import assign
from .reports import Buffer, EvaluationGrid, ReportTable
from .results import EvaluationResult, TrackSeries
from .scoring import score_object
from .settings import EvaluationSettings
from .summary import summarise
from .tracks import select_live, track_statistics
from .truth import TruthObject
from .visibility import stereo_visibility

_PENDING_FRAMES_MAX = 4096  # frames awaiting their DetectionTruth (it follows immediately)


class MetricsAccumulator:
    """Collects reports, truth and detection truth (any order) and computes DESIGN §7 metrics.

    Keyword options are the fields of
    :class:`~tracklayer.fusion.evaluation.settings.EvaluationSettings` (GOSPA c in m and p,
    report age s, stereo window s and angle deg, completeness grace s, NEES threshold).
    """

    def __init__(self, **options: Any) -> None:
        self.settings = EvaluationSettings(**options)
        self._rep_f = Buffer(col.FLOAT_WIDTH)
        self._rep_i = Buffer(col.INT_WIDTH, np.int64)
        self._track_index: dict[str, int] = {}
        self._sensors_seen: set[str] = set()
        self._obj_index: dict[str, int] = {}
        self._truth: list[tuple[Buffer, Buffer]] = []  # per object: (time_ns + phase, pos/vel)
        self._det_i = Buffer(3, np.int64)  # time_ns, object index, sensor index
        self._det_f = Buffer(3)  # sensor position, m TEME
        self._sensor_index: dict[str, int] = {}
        self._pending: dict[tuple[str, int], tuple[int, np.ndarray]] = {}

    # ---- feeding

    def add_report(self, r: TrackReport) -> None:
        """One track report, as emitted."""
        ti = self._track_index.setdefault(r.track_id, len(self._track_index))
        floats, ints = col.report_rows(r, ti)
        self._rep_f.append(floats)
        self._rep_i.append(ints)
        self._sensors_seen.update(r.sensor_ids)

    def add_reports(self, reports: Iterable[TrackReport]) -> None:
        """Several track reports."""
        for r in reports:
            self.add_report(r)

    def _object(self, object_id: str) -> int:
        k = self._obj_index.get(object_id)
        if k is None:
            k = self._obj_index[object_id] = len(self._obj_index)
            self._truth.append((Buffer(2, np.int64), Buffer(6)))
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

    def _truth_objects(self, t0_ns: int) -> list[TruthObject]:
        """Every object in index order (objects without truth samples included)."""
        out = []
        for oid, k in self._obj_index.items():
            ti, tf = self._truth[k]
            if ti.n == 0:
                out.append(TruthObject.without_samples(oid))
            else:
                out.append(TruthObject.from_samples(oid, ti.view(), tf.view(), t0_ns))
        return out

    def finish(self) -> EvaluationResult:
        """Compute every metric from what was fed."""
        ri = self._rep_i.view()
        has_truth = any(b[0].n > 0 for b in self._truth)
        times = [ri[:, col.TIME]] if ri.shape[0] else []
        times += [ti.view()[:, 0] for ti, _ in self._truth if ti.n]
        grid = EvaluationGrid.spanning(times)
        table = ReportTable.sorted_from(ri, self._rep_f.view(), list(self._track_index), grid.t0_ns)
        track_series, track_stats = track_statistics(table, len(self._sensors_seen))
        selected = select_live(table, grid.eval_ns, self.settings.max_age_ns)
        if not has_truth:
            n_sel = np.bincount(selected[0], minlength=grid.size) if grid.size else np.zeros(0, int)
            return EvaluationResult.tracks_only(
                grid.t0_ns, track_stats, track_series, grid.eval_s, n_sel
            )
        return self._evaluate_truth(grid, table, selected, track_series, track_stats)

    def _evaluate_truth(
        self,
        grid: EvaluationGrid,
        table: ReportTable,
        selected: tuple[np.ndarray, np.ndarray],
        track_series: list[TrackSeries],
        track_stats: dict[str, Any],
    ) -> EvaluationResult:
        st = self.settings
        truth = self._truth_objects(grid.t0_ns)
        a = assign(table, truth, grid.eval_s, selected, st)
        stereo = stereo_visibility(
            self._det_i.view(),
            self._det_f.view(),
            truth,
            grid.eval_s,
            grid.t0_ns,
            st.stereo_window_s,
            st.stereo_cos,
        )
        scores = [
            score_object(o, tr, table, grid.eval_s, a, stereo[:, o], st.completeness_grace_s)
            for o, tr in enumerate(truth)
            if tr.n_samples
        ]
        truth_stats = summarise(scores, len(scores), grid.eval_s, a, table, st.nees_threshold)
        return EvaluationResult(
            has_truth=True,
            t0_ns=grid.t0_ns,
            tracks=track_stats,
            truth=truth_stats,
            track_series=track_series,
            object_series=sorted((s.series for s in scores), key=lambda x: x.object_id),
            eval_t_s=grid.eval_s,
            gospa_m=a.gospa_m,
            gospa_localisation_m2=a.localisation_m2,
            gospa_missed=a.n_missed,
            gospa_false=a.n_false,
            objects_present=a.present.sum(axis=1),
            tracks_selected=a.n_selected,
        )


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
