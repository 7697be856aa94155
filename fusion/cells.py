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
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .constants import R_EARTH_MEAN

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

    def __init__(self, shards: int) -> None:
        if not 1 <= int(shards) <= MAX_SHARDS:
            raise ValueError(f"shards: must be 1..{MAX_SHARDS}, got {shards}")
        self.shards = int(shards)
        sectors = np.arange(N_SECTORS)
        self._shard_of_sector = sectors % self.shards
        # each shard's edges: the sector edges (deg) with another shard on the other side
        self._edges: list[list[float]] = [[] for _ in range(self.shards)]
        for sec in sectors:
            east = (sec + 1) % N_SECTORS
            a, b = int(self._shard_of_sector[sec]), int(self._shard_of_sector[east])
            if a != b:
                lon = (sec + 1) * SECTOR_DEG - 180.0
                self._edges[a].append(lon)
                self._edges[b].append(lon)

    def shard_of_cell(self, cell: ArrayLike) -> np.ndarray:
        """Shard owning each cell id."""
        return self._shard_of_sector[np.asarray(cell, int) % N_SECTORS]

    def shard_of(self, lat_deg: ArrayLike, lon_deg: ArrayLike) -> np.ndarray:
        """Shard owning the cell of each point."""
        return self.shard_of_cell(cell_of(lat_deg, lon_deg))

    def shard_of_ecef(self, r_ecef: ArrayLike) -> np.ndarray:
        """Shard owning the cell of each ECEF point (m), shape (3,) or (N, 3).

        A shard is a set of longitude sectors pole to pole, and geodetic longitude is
        ``atan2(y, x)``: no latitude is needed, so this costs a few array operations
        where :func:`cell_of` after a geodetic conversion costs an iteration per point.
        Same result as ``shard_of(*ecef_to_geodetic(r)[:2])`` (the same longitude)."""
        r = np.asarray(r_ecef, float)
        lon = np.degrees(np.arctan2(r[..., 1], r[..., 0]))
        return self._shard_of_sector[sector_of((lon + 180.0) % 360.0 - 180.0)]

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
