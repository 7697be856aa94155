"""The sky-cell map of scale-out (issue 14): which shard owns a point of the globe.

Pure geometry, no I/O. The globe is cut into :data:`N_CELLS` = 48 cells of equal area:
four latitude bands of equal area (edges at -30, 0 and +30 degrees of geodetic
latitude, where sin(lat) is -1/2, 0, 1/2) times twelve longitude sectors of 30 degrees
from -180. A cell is half-open, ``[lat_lo, lat_hi) x [lon_lo, lon_hi)`` (the north pole
belongs to the top band, longitude 180 is -180), so every point has exactly one cell and
a point on an edge goes to the lower cell id.

The S shards of a deployment (1 <= S <= 12) group the cells by longitude sector,
interleaved: shard ``k`` owns the sectors ``s`` with ``s % S == k`` (pole to pole), so
neighbouring sectors belong to different shards and a raid launched from one region
spreads over several shards instead of loading one (with S = 4: 30-degree sectors
0, 4, 8 to shard 0, and so on). A shard's edges are meridians, so the distance from a
point to a shard's cells is a closed form (:meth:`ShardMap.distance_m`): the
great-circle distance to the nearest edge meridian, or to the nearer pole when no edge
is within 90 degrees of longitude.
Distances are on the mean-radius sphere (m); latitudes and longitudes are geodetic
degrees.

A **layout** replaces the interleaved sectors by S contiguous longitude wedges with
cut longitudes chosen for the load (:func:`balanced_cuts`: quantiles of a measured
load, each cut in the middle of a gap between loaded longitudes): shard ``k`` owns
``[cuts[k], cuts[k + 1])``, the last one wrapping to ``cuts[0] + 360``. The edges are
still meridians, so every distance below keeps its closed form. A layout is data the
deployment pins next to S (``fusion --layout``), never derived from a clock.

:meth:`ShardMap.rays_reach` tells which lines of sight can come within a distance of
a shard's wedges at a plausible target height (the shards' screen of initiation).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import geodesy
from .constants import R_EARTH_EQ, R_EARTH_MEAN, R_EARTH_POLAR

#: Longitude sectors and their width (deg).
N_SECTORS = 12
SECTOR_DEG = 360.0 / N_SECTORS
#: Latitude band edges (deg): equal-area bands.
BAND_EDGES_DEG = (-30.0, 0.0, 30.0)
N_CELLS = N_SECTORS * (len(BAND_EDGES_DEG) + 1)
#: Most shards the cell map can form (one longitude sector each).
MAX_SHARDS = N_SECTORS


def sector_of(lon_deg: ArrayLike) -> np.ndarray:
    """Longitude sector (0..11) of each longitude (deg, any range): half-open, 180 = -180."""
    lon = np.mod(np.asarray(lon_deg, float) + 180.0, 360.0)
    return np.minimum((lon // SECTOR_DEG).astype(int), N_SECTORS - 1)


def cell_of(lat_deg: ArrayLike, lon_deg: ArrayLike) -> np.ndarray:
    """Cell id (0..47) of each point: ``band * 12 + sector``, bands from the south."""
    band = np.searchsorted(BAND_EDGES_DEG, np.asarray(lat_deg, float), side="right")
    return band * N_SECTORS + sector_of(lon_deg)


class ShardMap:
    """The cells grouped into ``shards`` longitude wedges (see the module docstring)."""

    def __init__(self, shards: int, cuts: tuple[float, ...] | None = None) -> None:
        if not 1 <= int(shards) <= MAX_SHARDS:
            raise ValueError(f"shards: must be 1..{MAX_SHARDS}, got {shards}")
        self.shards = int(shards)
        self.cuts = None if not cuts else check_cuts(cuts, self.shards)
        if self.cuts is None:  # the interleaved 30-degree sectors
            starts = np.arange(N_SECTORS) * SECTOR_DEG - 180.0
            self._shard_of_sector = np.arange(N_SECTORS) % self.shards
        else:  # contiguous wedges: segment k = [cuts[k], cuts[k + 1]) belongs to shard k
            starts = np.array(self.cuts)
            self._shard_of_sector = np.arange(self.shards)
        self._starts = starts  # west edge (deg) of each segment, ascending from -180
        n = starts.size
        # each shard's edges: the segment edges (deg) with another shard on the other side
        self._edges: list[list[float]] = [[] for _ in range(self.shards)]
        for sec in range(n):
            east = (sec + 1) % n
            a, b = int(self._shard_of_sector[sec]), int(self._shard_of_sector[east])
            if a != b:
                lon = float(starts[east]) + (360.0 if east == 0 else 0.0)
                self._edges[a].append(lon)
                self._edges[b].append(lon)

    def _segment_of(self, lon_deg: ArrayLike) -> np.ndarray:
        """Segment (sector, or wedge of a layout) of each longitude (deg, any range)."""
        if self.cuts is None:
            return sector_of(lon_deg)
        lon = np.mod(np.asarray(lon_deg, float) + 180.0, 360.0) - 180.0
        return np.mod(np.searchsorted(self._starts, lon, side="right") - 1, self._starts.size)

    def shard_of_cell(self, cell: ArrayLike) -> np.ndarray:
        """Shard owning each cell id (the interleaved map only: a layout has no cells)."""
        if self.cuts is not None:
            raise ValueError("layout: a map with cuts has wedges, not the 48 cells")
        return self._shard_of_sector[np.asarray(cell, int) % N_SECTORS]

    def shard_of(self, lat_deg: ArrayLike, lon_deg: ArrayLike) -> np.ndarray:
        """Shard owning the cell of each point."""
        if self.cuts is None:
            return self.shard_of_cell(cell_of(lat_deg, lon_deg))
        lon = np.broadcast_arrays(np.asarray(lat_deg, float), np.asarray(lon_deg, float))[1]
        return self._shard_of_sector[self._segment_of(lon)]

    def shard_of_ecef(self, r_ecef: ArrayLike) -> np.ndarray:
        """Shard owning the cell of each ECEF point (m), shape (3,) or (N, 3).

        A shard is a set of longitude sectors pole to pole, and geodetic longitude is
        ``atan2(y, x)``: no latitude is needed, so this costs a few array operations
        where :func:`cell_of` after a geodetic conversion costs an iteration per point.
        Same result as ``shard_of(*ecef_to_geodetic(r)[:2])`` (the same longitude)."""
        r = np.asarray(r_ecef, float)
        lon = np.degrees(np.arctan2(r[..., 1], r[..., 0]))
        return self._shard_of_sector[self._segment_of((lon + 180.0) % 360.0 - 180.0)]

    def rays_reach(
        self,
        shard: int,
        origins: ArrayLike,
        dirs: ArrayLike,
        *,
        width_m: float,
        max_range_m: float,
        max_height_m: float,
        min_height_m: float,
        slack_rad: float = 0.0,
    ) -> np.ndarray:
        """Which rays ``origins + t dirs`` (ECEF, m and unit; (3,) or (N, 3) each) come
        within ``width_m`` of the wedges of ``shard`` at a point that could be a target:
        ``0 <= t <= max_range_m``, radius up to ``R_EQ + max_height_m + width_m``, before
        the ray first dips below ``R_POLAR + min(min_height_m - width_m, -50 km)`` (a point
        farther on is hidden by the Earth). Bool (N,); conservative (never False for a
        ray that does), and ``slack_rad`` widens every wedge by that angle more.

        Geometry: the part of the ray in that shell is a segment; its projection on the
        equatorial plane is a straight segment, whose longitude changes monotonically by
        less than 180 degrees, so the longitudes it spans are one interval; a point within
        ``width_m`` of it is within ``asin(width_m / d)`` of that interval, ``d`` the
        projected segment's distance from the polar axis (near the axis: every longitude).
        """
        o = np.atleast_2d(np.asarray(origins, float))
        u = np.atleast_2d(np.asarray(dirs, float))
        r_out = R_EARTH_EQ + max_height_m + width_m
        if self.shards == 1:
            return np.ones(u.shape[0], bool)
        if o.shape[0] == 1 and float(o[0] @ o[0]) < r_out**2:  # one sensor, in the band:
            if int(self.shard_of_ecef(o[0])) == shard:  # every ray starts in our wedges
                return np.ones(u.shape[0], bool)
        o = np.broadcast_to(o, u.shape)
        b = np.einsum("ij,ij->i", o, u)
        oo = np.einsum("ij,ij->i", o, o)
        r_in = R_EARTH_POLAR + min(min_height_m - width_m, -50e3)
        with np.errstate(invalid="ignore"):
            sq_out = np.sqrt(b * b - (oo - r_out**2))
            sq_in = np.sqrt(b * b - (oo - r_in**2))
        t_lo = np.maximum(0.0, -b - sq_out)
        t_hit = np.where(np.isfinite(sq_in) & (-b - sq_in > 0.0), -b - sq_in, np.inf)
        t_hi = np.minimum(np.minimum(max_range_m, -b + sq_out), t_hit)
        ok = np.isfinite(sq_out) & (t_hi >= t_lo)
        t_lo, t_hi = np.where(ok, t_lo, 0.0), np.where(ok, t_hi, 0.0)
        pa = (o + t_lo[:, None] * u)[:, :2]
        pb = (o + t_hi[:, None] * u)[:, :2]
        theta = np.arctan2(pa[:, 1], pa[:, 0])
        sweep = np.arctan2(pa[:, 0] * pb[:, 1] - pa[:, 1] * pb[:, 0], np.einsum("ij,ij->i", pa, pb))
        ab = pb - pa
        ab2 = np.einsum("ij,ij->i", ab, ab)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.clip(np.where(ab2 > 0, -np.einsum("ij,ij->i", pa, ab) / ab2, 0.0), 0.0, 1.0)
        d = np.linalg.norm(pa + s[:, None] * ab, axis=1)
        with np.errstate(divide="ignore"):
            half = np.where(d > width_m, np.arcsin(np.minimum(1.0, width_m / d)), np.pi)
        half = half + slack_rad
        lo = theta + np.minimum(sweep, 0.0) - half
        span = np.abs(sweep) + 2.0 * half
        hit = span >= 2.0 * np.pi
        n = self._starts.size
        for seg in np.flatnonzero(self._shard_of_sector == shard):
            a = np.radians(self._starts[seg])
            length = np.radians(np.mod(self._starts[(seg + 1) % n] - self._starts[seg], 360.0))
            length = 2.0 * np.pi if n == 1 or length == 0.0 else length
            hit |= (np.mod(a - lo, 2.0 * np.pi) <= span) | (np.mod(lo - a, 2.0 * np.pi) < length)
        return ok & hit

    def distance_m(self, shard: int, lat_deg: ArrayLike, lon_deg: ArrayLike) -> np.ndarray:
        """Great-circle distance (m) from each point to the cells of ``shard`` (0 inside;
        S = 1: 0 everywhere)."""
        lat = np.asarray(lat_deg, float)
        lon = np.asarray(lon_deg, float)
        if self.shards == 1:
            return np.zeros(np.broadcast(lat, lon).shape)
        inside = self.shard_of(lat, lon) == shard
        return np.where(inside, 0.0, self._to_edges_m(shard, lat, lon))

    def depth_m(self, shard: int, lat_deg: ArrayLike, lon_deg: ArrayLike) -> np.ndarray:
        """How far (m) each point lies inside the cells of ``shard``: its distance to the
        nearest cell of another shard (0 outside; S = 1: infinite everywhere)."""
        lat = np.asarray(lat_deg, float)
        lon = np.asarray(lon_deg, float)
        if self.shards == 1:
            return np.full(np.broadcast(lat, lon).shape, np.inf)
        inside = self.shard_of(lat, lon) == shard
        return np.where(inside, self._to_edges_m(shard, lat, lon), 0.0)

    def edges_deg(self, shard: int) -> list[float]:
        """Longitudes (deg) of the meridians between ``shard`` and other shards."""
        return list(self._edges[shard])

    def _to_edges_m(self, shard: int, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Distance (m) from each point to the nearest edge of ``shard``."""
        return np.min([_to_meridian_m(lat, lon, e) for e in self._edges[shard]], axis=0)


def _to_meridian_m(lat_deg: np.ndarray, lon_deg: np.ndarray, lon0_deg: float) -> np.ndarray:
    """Great-circle distance (m) from points to the half meridian at ``lon0_deg`` (pole
    to pole): the perpendicular distance when the point is within 90 degrees of
    longitude of it, else the distance to the nearer pole."""
    lat = np.radians(lat_deg)
    dlon = np.radians(np.mod(lon_deg - lon0_deg + 180.0, 360.0) - 180.0)
    near = np.abs(dlon) <= np.pi / 2
    perp = np.arcsin(np.clip(np.cos(lat) * np.abs(np.sin(dlon)), 0.0, 1.0))
    pole = np.pi / 2 - np.abs(lat)
    return R_EARTH_MEAN * np.where(near, perp, pole)


def check_cuts(cuts: ArrayLike, shards: int) -> tuple[float, ...]:
    """A layout's cut longitudes (deg), checked: ``shards`` finite values in [-180, 180),
    strictly ascending. ValueError naming ``layout``."""
    c = tuple(float(x) for x in np.atleast_1d(np.asarray(cuts, float)))
    if len(c) != shards:
        raise ValueError(f"layout: {shards} shard(s) need {shards} cut longitudes, got {len(c)}")
    if not all(np.isfinite(c)) or min(c) < -180.0 or max(c) >= 180.0:
        raise ValueError(f"layout: cut longitudes must be in [-180, 180) degrees, got {c}")
    if any(b <= a for a, b in zip(c, c[1:], strict=False)):
        raise ValueError(f"layout: cut longitudes must be strictly ascending, got {c}")
    return c


def parse_cuts(text: str, shards: int) -> tuple[float, ...]:
    """``"LON,LON,..."`` (deg) as checked cuts (:func:`check_cuts`); ValueError naming
    ``layout``."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"layout: expected longitudes (deg) and commas, got {text!r}") from None
    return check_cuts(values, shards)


def sub_point_lon_deg(positions_teme: ArrayLike, t_s: ArrayLike) -> np.ndarray:
    """Geodetic longitude (deg) of each TEME position (m, (N, 3)) at its time (s, (N,)):
    where a measured load (track reports) lies, for :func:`balanced_cuts`."""
    ecef = geodesy.teme_to_ecef(np.asarray(positions_teme, float), np.asarray(t_s, float))
    return np.degrees(np.arctan2(ecef[..., 1], ecef[..., 0]))


def balanced_cuts(
    lon_deg: ArrayLike, weights: ArrayLike | None, shards: int, resolution_deg: float = 0.1
) -> tuple[float, ...]:
    """Cut longitudes (deg) that split a measured load into ``shards`` contiguous wedges
    of nearly equal load: ``lon_deg`` the sub-point longitudes of the load's samples
    (e.g. track reports), ``weights`` their load (None: 1 each).

    Deterministic: the samples are binned at ``resolution_deg``. For each loaded bin as
    the first of a wedge, walking east, the other cuts go at the bin boundaries where the
    cumulated load comes nearest to ``j / shards`` of the total; of these, the cuts whose
    largest wedge is lightest win (ties: the first such bin from -180). Every cut lies in
    the middle of the empty stretch between two loaded bins.
    """
    if shards == 1:
        return (-180.0,)
    lon = np.mod(np.asarray(lon_deg, float) + 180.0, 360.0)
    w = np.ones(lon.size) if weights is None else np.asarray(weights, float)
    if lon.size == 0 or not np.all(np.isfinite(lon)) or np.sum(w) <= 0:
        raise ValueError("layout: the measured load is empty or not finite")
    nbins = int(round(360.0 / resolution_deg))
    load = np.bincount(np.minimum((lon / resolution_deg).astype(int), nbins - 1), w, nbins)
    full = np.flatnonzero(load > 0)
    if full.size < shards:
        raise ValueError(f"layout: too few loaded longitudes for {shards} shards")
    best: tuple[float, list[int]] | None = None
    for start in range(full.size):
        cum = np.cumsum(load[np.roll(full, -start)])
        ends, k = [], -1  # wedge j ends after loaded bin ends[j] (indices into the walk)
        for j in range(1, shards):
            k = max(k + 1, int(np.argmin(np.abs(cum[:-1] - cum[-1] * j / shards))))
            k = min(k, full.size - 1 - (shards - j))  # leave a bin for each later wedge
            ends.append(k)
        largest = float(np.max(np.diff(np.concatenate([[0.0], cum[ends], [cum[-1]]]))))
        if best is None or largest < best[0]:
            best = (largest, [(start + e) % full.size for e in [*ends, full.size - 1]])
    assert best is not None
    cuts = []
    for e in best[1]:  # a cut after loaded bin full[e], before the next loaded one
        lo, hi = full[e], full[(e + 1) % full.size]
        cuts.append(_gap_middle(lo, int((hi - lo) % nbins) or nbins, nbins))
    deg = sorted(round(float(np.mod(c * resolution_deg, 360.0)) - 180.0, 6) for c in cuts)
    return check_cuts(deg, shards)


def _gap_middle(bin_lo: int, gap: int, nbins: int) -> float:
    """The middle (in bins) of the empty stretch after loaded bin ``bin_lo`` up to the
    next loaded bin ``gap`` bins on, wrapped to [0, nbins)."""
    return float(np.mod(bin_lo + 1 + (gap - 1) / 2.0, nbins))
