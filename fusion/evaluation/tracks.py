"""Track statistics (no truth needed) and the per-second selection of live tracks.

Times are seconds since the grid's ``t0_ns`` in the outputs, ns in the report rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..domain import NS_PER_S, TrackStatus
from . import reports as col
from .measures import stat
from .reports import ReportTable
from .results import STATUS_NAMES, TrackSeries


def track_series(table: ReportTable, k: int) -> TrackSeries:
    """The series and figures of track index ``k`` of ``table``."""
    rows = table.rows_of(k)
    ti, tf, t_s = table.ints[rows], table.floats[rows], table.t_s[rows]
    status = ti[:, col.STATUS]
    life = float(t_s[-1] - t_s[0])
    upd = float(ti[-1, col.UPDATES] - ti[0, col.UPDATES])
    ns = ti[:, col.N_SENSORS]
    has_imp = np.flatnonzero(~np.isnan(tf[:, col.IMPACT][:, 0]))
    return TrackSeries(
        track_id=table.track_ids[k],
        t_s=t_s,
        latitude_deg=tf[:, col.LAT].copy(),
        longitude_deg=tf[:, col.LON].copy(),
        altitude_m=tf[:, col.ALT].copy(),
        status=status.copy(),
        impact_latitude_deg=tf[:, col.IMPACT][:, 0].copy(),
        impact_longitude_deg=tf[:, col.IMPACT][:, 1].copy(),
        confirmed=bool(np.any(status == TrackStatus.CONFIRMED)),
        last_impact=col.ellipse_at(tf, ti, has_imp[-1]) if has_imp.size else None,
        first_s=float(t_s[0]),
        last_s=float(t_s[-1]),
        n_reports=int(ti.shape[0]),
        update_rate_hz=upd / life if life > 0 else math.nan,
        sensors_per_update=float(np.mean(ns[ns > 0])) if np.any(ns > 0) else math.nan,
        updates=int(ti[-1, col.UPDATES]),
    )


def track_statistics(
    table: ReportTable, sensors_seen: int
) -> tuple[list[TrackSeries], dict[str, Any]]:
    """Every track's series and the ``tracks`` part of metrics.json."""
    series = [track_series(table, k) for k in range(len(table.track_ids))]
    ri = table.ints
    conf = [s for s in series if s.confirmed]
    life = np.array([s.lifetime_s for s in conf])
    rates = np.array([s.update_rate_hz for s in conf])
    rates = rates[np.isfinite(rates)]
    nsens = ri[:, col.N_SENSORS] if ri.size else np.zeros(0)
    gaps = np.concatenate([np.diff(s.t_s) for s in conf]) if conf else np.zeros(0)
    by_status = {
        STATUS_NAMES[s]: int(np.sum(ri[:, col.STATUS] == s)) if ri.size else 0
        for s in TrackStatus
        if s != TrackStatus.UNSPECIFIED
    }
    span = float((ri[:, col.TIME].max() - ri[:, col.TIME].min()) / NS_PER_S) if ri.size else 0.0
    stats = {
        "n_tracks": len(table.track_ids),
        "n_confirmed": len(conf),
        "n_reports": int(ri.shape[0]),
        "reports_by_status": by_status,
        "report_span_s": span,
        "sensors_reporting": sensors_seen,
        "confirmed_lifetime_median_s": stat(life, np.median),
        "confirmed_lifetime_max_s": stat(life, np.max),
        "confirmed_lifetime_total_s": float(np.sum(life)),
        "update_rate_median_hz": stat(rates, np.median),
        "report_interval_median_s": stat(gaps[gaps > 0], np.median),
        "sensors_per_update_mean": float(np.mean(nsens[nsens > 0]))
        if np.any(nsens > 0)
        else math.nan,
        "per_track": [s.figures() for s in conf],
    }
    return series, stats


def select_live(
    table: ReportTable, eval_ns: np.ndarray, max_age_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """(evaluation index, report index) of every selected track report, sorted by time.

    At each evaluation time a track is selected when its latest report at or before it
    is CONFIRMED or COASTING and at most ``max_age_ns`` (ns) old.
    """
    ks: list[np.ndarray] = []
    rs: list[np.ndarray] = []
    for k in range(len(table.bounds) - 1):
        a = int(table.bounds[k])
        rows = table.rows_of(k)
        st = table.ints[rows, col.STATUS]
        if not np.any(np.isin(st, col.LIVE)):
            continue
        t = table.ints[rows, col.TIME]
        lo = np.searchsorted(eval_ns, t[0])
        hi = np.searchsorted(eval_ns, t[-1] + max_age_ns, side="right")
        ev = eval_ns[lo:hi]
        j = np.searchsorted(t, ev, side="right") - 1
        ok = (j >= 0) & np.isin(st[np.maximum(j, 0)], col.LIVE)
        ok &= ev - t[np.maximum(j, 0)] <= max_age_ns
        ks.append(np.arange(lo, hi)[ok])
        rs.append(a + j[ok])
    if not ks:
        return np.zeros(0, int), np.zeros(0, int)
    k_all = np.concatenate(ks)
    r_all = np.concatenate(rs)
    o = np.argsort(k_all, kind="stable")
    return k_all[o], r_all[o]
