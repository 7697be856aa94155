"""When tracks are reported, what a report holds, and the impact and launch estimates.

Schedule: a track is first reported when confirmed (tentative tracks stay internal; the
first report assigns its number, ``<fusion_id>-<n>``, n from 1, never reused), then at
every status change and, while updated, at most once per ``report_interval_s`` of data
time; an ``uncertain`` (single-satellite boost) track is not reported until it recovers.
``flush`` reports every reported track with updates not reported yet.

A report carries the 6-D state (ECI m, m/s) and covariance, the geodetic position, the
flight phase, and the impact (ballistic and drag tracks, refreshed every
``impact_refresh_s`` for all due tracks in one batch: :func:`..impact.predict_impacts`)
and launch estimates (tracks first seen low in boost: :func:`..impact.estimate_launch`
over Earth-fixed samples taken four times a second during ``launch_fit_s``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import geodesy
from ..config import FusionConfig
from ..domain import NS_PER_S, FlightPhase, TrackReport, TrackStatus
from ..dynamics import POS, VEL
from ..impact import estimate_launch, predict_impacts
from .rows import StateRows
from .track import LaunchSample, Mode, Track

_LAUNCH_SAMPLE_SPACING_NS = NS_PER_S // 4  # ns; launch samples four times a second
_LAUNCH_MIN_SAMPLES = 8  # samples before a launch fit is tried
_LAUNCH_FINAL_MARGIN_S = 1.0  # s; a fit spanning launch_fit_s less this is final
_LAUNCH_REFIT_NS = 4 * NS_PER_S  # ns of samples between two provisional launch fits
# thrusting or lifting: a ballistic impact prediction would be off by 100s-1000s of km
_NO_IMPACT = (Mode.BOOST, Mode.GLIDE)
# a report's consider term: (position (3,) m, sensor bits) -> covariance (3, 3) m^2 or None
Consider = Callable[[np.ndarray, int], np.ndarray | None] | None


class ReportSchedule:
    """Reports of the tracks in ``rows`` (see the module docstring)."""

    def __init__(self, fusion_id: str, config: FusionConfig, rows: StateRows) -> None:
        self.fusion_id = fusion_id
        self.config = config
        self.rows = rows
        self._next_number = 1
        self._number_step = 1  # shards (issue 14): n = shard + 1 + S * i
        self._last_impact_tick: int | None = None

    def number_tracks(self, first: int, step: int) -> None:
        """Number the next tracks ``first``, ``first + step``, ... (sharded trackers)."""
        self._next_number, self._number_step = int(first), int(step)

    # ------------------------------------------------------------------ schedule
    def due(
        self, tracks: list[Track], touched: list[Track], t_ns: int, consider: Consider = None
    ) -> list[TrackReport]:
        """Reports due at data time ``t_ns`` (after refreshing the impact estimates;
        ``consider``: :meth:`make`'s).

        Only a track the frame updated or whose status changed (``touched``, repeats
        allowed) can be due: no other is looked at (``tracks``, all live tracks, serve
        the impact refresh)."""
        self._refresh_impacts(tracks, t_ns)
        interval = int(self.config.report_interval_s * NS_PER_S)
        confirmed = TrackStatus.CONFIRMED
        out: dict[int, Track] = {}  # the due tracks by key (a repeat is due alike)
        for trk in touched:
            rep = trk.report
            # Tentative tracks stay internal: a track is first reported when confirmed.
            if rep.number is None:
                if trk.status == confirmed:
                    out[trk.key] = trk
                continue
            due = trk.status_changed
            if not due and trk.updated_now and not trk.uncertain:
                last_ns = rep.last_ns
                due = last_ns is None or t_ns - last_ns >= interval
            if due:
                out[trk.key] = trk
        return self.make([out[key] for key in sorted(out)], t_ns, consider)  # creation order

    def flush(self, tracks: list[Track], t_ns: int, consider: Consider = None) -> list[TrackReport]:
        """Reports of every reported track whose latest state has not been reported."""
        due = [
            trk
            for trk in tracks
            if trk.report.number is not None
            and trk.report.last is not None
            and (trk.last_update_ns > trk.report.last.time_ns or trk.status_changed)
        ]
        return self.make(due, t_ns, consider)

    # ------------------------------------------------------------------ reports
    def make(self, trks: list[Track], t_ns: int, consider: Consider = None) -> list[TrackReport]:
        """Reports of ``trks`` at data time ``t_ns`` (geodetic conversion in one batch);
        ``consider(position, sensors)``: a position covariance (m^2) to add to the report
        of a track with ballistic looks from the tracker's sensor bits ``sensors``
        (:meth:`.registration.Registration.report_consider`; the state is not moved)."""
        if not trks:
            return []
        rows = np.array([t.row for t in trks])
        self.rows.sync(rows, t_ns)
        lat, lon, alt = geodesy.teme_to_geodetic(self.rows.x[rows, POS], t_ns / NS_PER_S)
        return [
            self._make_one(trk, t_ns, float(la), float(lo), float(al), consider)
            for trk, la, lo, al in zip(trks, lat, lon, alt, strict=True)
        ]

    def _make_one(
        self, trk: Track, t_ns: int, lat: float, lon: float, alt: float, consider: Consider = None
    ) -> TrackReport:
        """The next revision of ``trk``'s report (numbering it at its first report)."""
        rep_state = trk.report
        if rep_state.number is None:
            rep_state.number = self._next_number
            self._next_number += getattr(self, "_number_step", 1)  # 1 in older checkpoints
        row = trk.row
        x6 = self.rows.x[row, :6].copy()
        cov = self.rows.P[row, :6, :6].copy()
        if consider is not None and trk.ballistic_sensors:
            extra = consider(x6[:3], trk.ballistic_sensors)
            if extra is not None:
                cov[:3, :3] += extra
        phase = self._phase(trk, row)
        fit = trk.launch
        if (
            not trk.deleted
            and (trk.mode == Mode.BOOST or fit.estimate is None)
            and fit.enabled
            and not fit.final
            and len(fit.samples) >= _LAUNCH_MIN_SAMPLES
        ):  # tested here, not in the call: most reports have no fit due
            self._update_launch(trk)
        rep_state.revision += 1
        rep = TrackReport(
            track_id=f"{self.fusion_id}-{rep_state.number}",
            revision=rep_state.revision,
            status=trk.status,
            time_ns=t_ns,
            position=x6[:3],
            velocity=x6[3:6],
            covariance=cov,
            latitude_deg=lat,
            longitude_deg=lon,
            altitude_m=alt,
            phase=phase,
            impact=trk.impact if trk.mode not in _NO_IMPACT else None,
            launch=trk.launch.estimate,
            sensor_ids=tuple(sorted(rep_state.since)),
            update_count=trk.update_count,
        )
        rep_state.since.clear()
        trk.status_changed = False
        rep_state.last_ns = t_ns
        rep_state.last = rep
        return rep

    def _phase(self, trk: Track, row: int) -> FlightPhase:
        """Flight phase by mode; a drag track is in REENTRY while descending."""
        if trk.mode == Mode.BOOST:
            return FlightPhase.BOOST
        if trk.mode == Mode.GLIDE:
            return FlightPhase.GLIDE
        if trk.mode == Mode.DRAG:
            r, v = self.rows.x[row, POS], self.rows.x[row, VEL]
            return FlightPhase.REENTRY if float(r @ v) < 0.0 else FlightPhase.MIDCOURSE
        return FlightPhase.MIDCOURSE

    # ------------------------------------------------------------------ impact
    def _refresh_impacts(self, tracks: list[Track], t_ns: int) -> None:
        """Every ``impact_refresh_s``: new impact predictions of the confirmed and
        coasting tracks not in boost or glide (those have none)."""
        tick = t_ns // int(self.config.impact_refresh_s * NS_PER_S)
        if tick == self._last_impact_tick:
            return
        self._last_impact_tick = tick
        due = [
            t
            for t in tracks
            if t.mode not in _NO_IMPACT
            and t.status in (TrackStatus.CONFIRMED, TrackStatus.COASTING)
            and not t.deleted
        ]
        for t in tracks:
            if t.mode in _NO_IMPACT:
                t.impact = None
        if not due:
            return
        rows = np.array([t.row for t in due])
        self.rows.sync(rows, t_ns)
        res = predict_impacts(
            self.rows.x[rows, :6], self.rows.P[rows][:, :6, :6], t_ns / NS_PER_S, self.config
        )
        for trk, imp in zip(due, res, strict=True):
            trk.impact = imp

    # ------------------------------------------------------------------ launch
    def sample_launch(self, trk: Track, t_ns: int) -> None:
        """Keep the track's Earth-fixed position for the launch fit (at most four times a
        second, during the first ``launch_fit_s`` of the track)."""
        self.sample_launches([trk], t_ns)

    def sample_launches(self, tracks: list[Track], t_ns: int) -> None:
        """:meth:`sample_launch` of each of ``tracks`` (at data time ``t_ns``), the due
        samples converted to ECEF in one batch (the same floats as one by one)."""
        fit_s = self.config.launch_fit_s
        due = []
        for trk in tracks:
            fit = trk.launch
            if fit.final or (t_ns - trk.created_ns) / NS_PER_S > fit_s:
                continue
            samples = fit.samples
            if samples and (t_ns - samples[-1].time_ns) < _LAUNCH_SAMPLE_SPACING_NS:
                continue
            due.append(trk)
        if not due:
            return
        rows = [trk.row for trk in due]
        r_ecef = geodesy.teme_to_ecef_points(self.rows.x[rows, :3], t_ns / NS_PER_S)
        p = self.rows.P
        # trace(P_rr) / 3 summed in order: numpy's trace of three
        var = ((p[rows, 0, 0] + p[rows, 1, 1]) + p[rows, 2, 2]) / 3.0
        for trk, r_k, v_k in zip(due, r_ecef, var.tolist(), strict=True):
            trk.launch.samples.append(LaunchSample(t_ns, r_k.copy(), v_k))

    def _update_launch(self, trk: Track) -> None:
        """Refit the launch point from the samples; final once the fit window is covered
        or the track has left boost (the caller, :meth:`_make_one`, has checked that the
        fit is enabled, not final and has ``_LAUNCH_MIN_SAMPLES`` samples)."""
        fit = trk.launch
        samples = fit.samples
        span = (samples[-1].time_ns - samples[0].time_ns) / NS_PER_S
        last = span >= self.config.launch_fit_s - _LAUNCH_FINAL_MARGIN_S or trk.mode != Mode.BOOST
        if (
            not last
            and fit.fitted_ns is not None
            and samples[-1].time_ns - fit.fitted_ns < _LAUNCH_REFIT_NS
        ):
            return  # refits on a schedule of data time, not at every report
        fit.fitted_ns = samples[-1].time_ns
        t = np.array([s.time_ns for s in samples], dtype=np.int64)
        r = np.array([s.r_ecef for s in samples])
        var = np.array([s.var_m2 for s in samples])
        est = estimate_launch((t - t[0]) / NS_PER_S + t[0] / NS_PER_S, r, var)
        if est is not None:
            fit.estimate = est
        if last:
            fit.final = True
            samples.clear()
