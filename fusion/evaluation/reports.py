"""Track reports held as compact numpy rows, and the per-second evaluation grid.

One row per report: a float row (position m and velocity m/s in TEME, the 6x6
covariance in m and m/s, geodetic latitude/longitude deg and altitude m, the impact and
launch ellipses as lat/lon deg, semi-axes m and orientation deg clockwise from north,
NaN when unset) and an int row (time ns, track index, revision, status, phase, number
of sensors, update count, impact time ns). :class:`ReportTable` is the same rows sorted
per track by (time, revision), with times in seconds since the grid's ``t0_ns``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..domain import NS_PER_S, GroundEllipse, TrackReport, TrackStatus

# Report float columns
POS, VEL, COV = slice(0, 3), slice(3, 6), slice(6, 42)
LAT, LON, ALT = 42, 43, 44
IMPACT = slice(45, 50)  # lat, lon, semi-major, semi-minor, orientation (NaN if unset)
LAUNCH = slice(50, 55)
FLOAT_WIDTH = 55
# Report int columns: time_ns, track index, revision, status, phase, n sensors, update count,
# impact time_ns (0 if unset)
TIME, TRACK, REVISION, STATUS, PHASE, N_SENSORS, UPDATES, IMPACT_TIME = range(8)
INT_WIDTH = 8
LIVE = (TrackStatus.CONFIRMED, TrackStatus.COASTING)  # statuses a selected report has


class Buffer:
    """Append-only 2-D numpy buffer with amortised doubling."""

    def __init__(self, width: int, dtype: Any = float) -> None:
        self._a = np.empty((256, width), dtype=dtype)
        self.n = 0

    def append(self, row: Any) -> None:
        """Add one row."""
        if self.n == self._a.shape[0]:
            self._a = np.concatenate([self._a, np.empty_like(self._a)])
        self._a[self.n] = row
        self.n += 1

    def extend(self, rows: np.ndarray) -> None:
        """Add rows (K, width)."""
        k = rows.shape[0]
        while self.n + k > self._a.shape[0]:
            self._a = np.concatenate([self._a, np.empty_like(self._a)])
        self._a[self.n : self.n + k] = rows
        self.n += k

    def view(self) -> np.ndarray:
        """The rows added so far (a view, not a copy)."""
        return self._a[: self.n]


def _ellipse_row(e: GroundEllipse | None) -> list[float]:
    if e is None:
        return [math.nan] * 5
    return [e.latitude_deg, e.longitude_deg, e.semi_major_m, e.semi_minor_m, e.orientation_deg]


def report_rows(r: TrackReport, track_index: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """The float row and the int row of one report."""
    row = np.empty(FLOAT_WIDTH)
    row[POS] = r.position
    row[VEL] = r.velocity
    row[COV] = r.covariance.reshape(-1)
    row[LAT], row[LON], row[ALT] = r.latitude_deg, r.longitude_deg, r.altitude_m
    row[IMPACT] = _ellipse_row(r.impact)
    row[LAUNCH] = _ellipse_row(r.launch)
    ints = (
        r.time_ns,
        track_index,
        r.revision,
        int(r.status),
        int(r.phase),
        len(r.sensor_ids),
        r.update_count,
        0 if r.impact is None else r.impact.time_ns,
    )
    return row, ints


def ellipse_at(floats: np.ndarray, ints: np.ndarray, j: int) -> GroundEllipse:
    """The impact ellipse of report row ``j`` (which has one)."""
    v = floats[j, IMPACT]
    return GroundEllipse(
        float(v[0]), float(v[1]), int(ints[j, IMPACT_TIME]), float(v[2]), float(v[3]), float(v[4])
    )


@dataclass(frozen=True, slots=True)
class EvaluationGrid:
    """Evaluation times: every whole second (Unix epoch) over the span of truth and reports.

    ``t0_ns`` is the first of them (ns since the epoch), ``eval_ns`` all of them (ns) and
    ``eval_s`` the same in seconds since ``t0_ns``.
    """

    t0_ns: int
    eval_ns: np.ndarray
    eval_s: np.ndarray

    @classmethod
    def spanning(cls, times_ns: list[np.ndarray]) -> EvaluationGrid:
        """The grid over every time (ns) in ``times_ns``; empty when there is none."""
        if times_ns:
            all_t = np.concatenate(times_ns)
            t0_ns = -(-int(all_t.min()) // NS_PER_S) * NS_PER_S
            t_end_ns = int(all_t.max())
        else:
            t0_ns = t_end_ns = 0
        n_eval = max(0, (t_end_ns - t0_ns) // NS_PER_S + 1) if times_ns else 0
        eval_ns = t0_ns + NS_PER_S * np.arange(n_eval, dtype=np.int64)
        return cls(t0_ns, eval_ns, (eval_ns - t0_ns) / NS_PER_S)

    @property
    def size(self) -> int:
        """Number of evaluation times."""
        return int(self.eval_ns.size)


@dataclass(frozen=True, slots=True)
class ReportTable:
    """Every report, sorted per track by (time, revision).

    ``ints``/``floats`` are the rows (column layout above), ``bounds[k]:bounds[k + 1]``
    the rows of track ``track_ids[k]``, ``t_s`` each report's time in s since ``t0_ns``.
    """

    ints: np.ndarray
    floats: np.ndarray
    bounds: np.ndarray
    track_ids: list[str]
    t_s: np.ndarray

    @classmethod
    def sorted_from(
        cls, ints: np.ndarray, floats: np.ndarray, track_ids: list[str], t0_ns: int
    ) -> ReportTable:
        """Sort the rows as fed into the table."""
        order = np.lexsort((ints[:, REVISION], ints[:, TIME], ints[:, TRACK])) if ints.size else []
        ints = ints[order]
        floats = floats[order]
        bounds = np.searchsorted(ints[:, TRACK], np.arange(len(track_ids) + 1))
        return cls(ints, floats, bounds, track_ids, (ints[:, TIME] - t0_ns) / NS_PER_S)

    def rows_of(self, k: int) -> slice:
        """The rows of track index ``k``."""
        return slice(int(self.bounds[k]), int(self.bounds[k + 1]))
