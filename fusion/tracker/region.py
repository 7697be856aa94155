"""A shard's region of the sky (issue 14): what a sharded tracker owns, and hand-overs.

With S > 1 shards every shard's tracker sees every frame (the whole journal) but
*owns* only the tracks whose sub-point lies in its cells (:mod:`..cells`); it reports
only those. The others it may hold as **ghosts**: copies kept up to date from the
frames like any track (so their detections never seed a duplicate) but never
reported. The rules, checked once per :data:`TICK_S` of data time on the tracks' latest
states (geodetic sub-point, :func:`..geodesy.teme_to_geodetic`):

* **initiation** only where the two-ray point lies in the shard's own cells; an
  unclaimed detection whose line of sight comes nowhere near the shard's cells (the
  initiation's miss tolerance and motion allowance wide, :meth:`Region.initiation_rays`)
  is not even paired or queued: its pairs could only start tracks elsewhere;
* **announce**: a confirmed owned track within ``announce_m`` of shard j's cells is
  sent to j as a ghost (again every :data:`REANNOUNCE_NS` of data time: a fresh copy);
* **transfer**: an owned track more than ``margin_m`` inside shard j's cells is handed
  to j. The decision is taken while applying frame ``p`` (frames counted in the order
  the tracker applies them, the same on every shard); the owner keeps reporting it up
  to frame ``p + K`` and exports it after that frame; the receiver imports it before
  applying frame ``p + K + 1`` (replacing its ghost) and reports it
  from then on, with the same track id and the next revision. The old owner keeps it
  as a ghost;
* a ghost farther than ``forget_m`` from the shard's cells is dropped silently.

Frame numbers are counted, never taken from a clock: which frames a hand-over spans is
a function of the applied frames only (DESIGN §6: the same whatever the arrival
interleaving), so the reports are
the same whatever runs the shards, and in what interleaving. Track numbers are
``shard + 1 + S * i`` (i = 0, 1, ...), so ids ``<fusion_id>-<n>`` never collide between
shards; with S = 1 this is today's numbering. The messages are :class:`Handover`
records (plain data: the exact float64 rows and the :class:`.track.Track` record).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .. import geodesy
from ..cells import ShardMap
from ..config import FusionConfig
from ..constants import OMEGA_EARTH
from ..domain import NS_PER_S, TrackStatus
from ..dynamics import POS
from ..initiation import Candidate
from .track import Track

if TYPE_CHECKING:
    from .tracker import Tracker

#: Seconds of data time between two ownership checks.
TICK_S = 1.0
#: Data time (ns) between two announces of one track to one shard (a fresh ghost copy).
REANNOUNCE_NS = 30 * NS_PER_S
#: Default hysteresis margin (m): a track is handed over this far inside a neighbour.
MARGIN_M = 100e3
#: Largest angular sigma (rad) assumed of an initiating detection's unknown partner by
#: the ray screen of initiation (5x the proliferated layer's 20 urad; a frame with larger
#: sigmas uses its own largest).
RAY_SCREEN_SIGMA_RAD = 100e-6

ANNOUNCE, TRANSFER, SCHEDULED = "announce", "transfer", "scheduled"


@dataclass
class Handover:
    """One hand-over message from shard ``source`` to shard ``target``.

    ``kind``: ANNOUNCE (a ghost copy, effective after frame ``effective``), SCHEDULED
    (a transfer decided at frame ``decided``, effective after frame ``effective``; its
    state follows) or TRANSFER (the state after frame ``effective``; ``track`` None if
    it ended before). ``gid`` =
    (origin shard, origin key) names the track across shards. Rows: ECI (m, m/s,
    m/s^2) at data time ``t_ns``."""

    kind: str
    source: int
    target: int
    gid: tuple[int, int]
    decided: int  # frame (count of applied frames) of the decision
    effective: int  # frame after which it takes effect
    track: Track | None = None
    x: np.ndarray | None = None  # (9,)
    P: np.ndarray | None = None  # (9, 9)
    t_ns: int = 0
    score: float = 0.0
    shadow: tuple[np.ndarray, np.ndarray, int] | None = None  # (x, P, t_ns) of its shadow
    sensors: tuple[str, ...] = ()  # the source's Tracker.sensor_names (track's bit order)

    @property
    def ident(self) -> tuple[str, int, int, tuple[int, int]]:
        """What makes a message unique (a resend after a restart is the same)."""
        return (self.kind, self.source, self.decided, self.gid)


@dataclass
class Region:
    """Shard ``shard`` of ``shards``; ``delay`` = K, frames between a hand-over's decision
    and its effect. Distances in m (see the module docstring)."""

    shard: int
    shards: int
    delay: int = 128
    margin_m: float = MARGIN_M
    layout: tuple[float, ...] = ()  # cut longitudes (deg, cells.ShardMap); () interleaved
    announce_m: float = 3 * MARGIN_M
    forget_m: float = 4 * MARGIN_M
    ghosts: set[int] = field(default_factory=set)  # local keys of tracks owned elsewhere
    gids: dict[int, tuple[int, int]] = field(default_factory=dict)  # imported key -> gid
    announced: dict[int, dict[int, int]] = field(default_factory=dict)  # key -> shard -> ns
    scheduled: dict[int, Handover] = field(default_factory=dict)  # key -> transfer out
    decisions: list[Handover] = field(default_factory=list)  # this frame's decisions
    pending: dict[tuple, Handover] = field(default_factory=dict)  # received, not applied
    outbox: list[Handover] = field(default_factory=list)  # to send
    frames: int = 0  # frames applied
    imported_before: int = 0  # the messages effective before this frame are applied
    # Called with m before frame m; returns once every message that may be due is in
    # (scale-out workers; transient: set around a batch, never in a checkpoint).
    waiter: Callable[[int], None] | None = None
    next_tick_ns: int | None = None
    handovers_in: int = 0
    handovers_out: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.shard < self.shards:
            raise ValueError(f"shard: must be 0..{self.shards - 1}, got {self.shard}")
        if self.delay < 1:
            raise ValueError(f"handover delay: must be >= 1 frame, got {self.delay}")
        self.map = ShardMap(self.shards, self.layout or None)

    # ------------------------------------------------------------ tracker hooks
    def attach(self, tracker: Tracker) -> None:
        """Number this shard's tracks ``shard + 1 + S * i``."""
        tracker.number_tracks(self.shard + 1, self.shards)

    def may_initiate(self, positions_eci: np.ndarray, t_ns: int) -> np.ndarray:
        """New tracks at ``positions_eci`` (m, ECI; (3,) or (N, 3)) at data time ``t_ns``:
        which lie in our cells (bool, one per point)? Only the longitude decides
        (:meth:`..cells.ShardMap.shard_of_ecef`)."""
        r_ecef = geodesy.teme_to_ecef(np.asarray(positions_eci, float), t_ns / NS_PER_S)
        return self.map.shard_of_ecef(r_ecef) == self.shard

    def initiation_rays(
        self, origin: np.ndarray, los: np.ndarray, sigma: np.ndarray, t_ns: int, cfg: FusionConfig
    ) -> np.ndarray:
        """Which of a frame's unclaimed detections (sensor ``origin`` (3,) m and unit
        ``los`` (M, 3), ECI at data time ``t_ns``; ``sigma`` (M,) rad) could be one ray of
        a pair whose point lies in our cells (bool (M,)). A pair's point lies within the
        pair's miss tolerance of both rays: at most ``init_miss_sigmas * max_range_m *
        (sigma + the partner's sigma, taken <= RAY_SCREEN_SIGMA_RAD or this frame's
        largest)`` plus ``init_max_speed_mps * init_window_s``; the Earth turns by
        ``OMEGA_EARTH * init_window_s`` between the two looks
        (:meth:`..cells.ShardMap.rays_reach`)."""
        if los.shape[0] == 0:
            return np.ones(0, bool)
        rot = geodesy.teme_to_ecef_matrix(t_ns / NS_PER_S)
        sig = np.abs(np.asarray(sigma, float))
        largest = float(np.max(sig, initial=0.0, where=np.isfinite(sig)))
        width = (
            cfg.init_miss_sigmas * cfg.max_range_m * (largest + max(RAY_SCREEN_SIGMA_RAD, largest))
            + cfg.init_max_speed_mps * cfg.init_window_s
        )
        return self.map.rays_reach(
            self.shard, rot @ np.asarray(origin, float), los @ rot.T,
            width_m=width, max_range_m=cfg.max_range_m,
            max_height_m=cfg.init_max_altitude_m, min_height_m=cfg.init_min_altitude_m,
            slack_rad=OMEGA_EARTH * cfg.init_window_s,
        )  # fmt: skip

    def initiable(self, t_ns: int) -> Callable[[np.ndarray], np.ndarray]:
        """:meth:`may_initiate` at data time ``t_ns`` (the initiation's screen of pairs)."""
        return functools.partial(self.may_initiate, t_ns=t_ns)

    def own(self, cands: list[tuple[int, Candidate]], t_ns: int) -> list[tuple[int, Candidate]]:
        """The initiation candidates whose exact points lie in our cells."""
        if not cands:
            return cands
        ours = self.may_initiate(np.array([c.position for _, c in cands]), t_ns)
        return [c for c, mine in zip(cands, ours, strict=True) if mine]

    def reportable(self, tracks: list[Track]) -> list[Track]:
        """``tracks`` less the ghosts."""
        return [t for t in tracks if t.key not in self.ghosts]

    def gid_of(self, trk: Track) -> tuple[int, int]:
        return self.gids.get(trk.key, (self.shard, trk.key))

    def step(self, tracker: Tracker, t_ns: int) -> None:
        """Ownership checks of every live track, once per tick of data time."""
        if self.next_tick_ns is not None and t_ns < self.next_tick_ns:
            return
        tick = int(TICK_S * NS_PER_S)
        self.next_tick_ns = (t_ns // tick + 1) * tick
        self._prune({t.key for t in tracker.tracks})  # deleted ones still live: reported
        tracks = [t for t in tracker.tracks if not t.deleted]
        if not tracks:
            return
        rows = tracker.rows
        pos = rows.x[[t.row for t in tracks]][:, POS]
        lat, lon, _ = geodesy.teme_to_geodetic(pos, t_ns / NS_PER_S)
        here = self.map.shard_of(lat, lon)
        dist = np.stack([self.map.distance_m(k, lat, lon) for k in range(self.shards)])
        for i, trk in enumerate(tracks):
            if trk.key in self.ghosts:
                if dist[self.shard, i] > self.forget_m:
                    tracker.drop_ghost(trk)
                continue
            if trk.key in self.scheduled:
                continue
            target = int(here[i])
            if target != self.shard and dist[self.shard, i] > self.margin_m:
                self._schedule(trk, target)
                continue
            if trk.status != TrackStatus.CONFIRMED:  # a tentative copy would expire there
                continue
            told = self.announced.setdefault(trk.key, {})
            for j in range(self.shards):
                if j == self.shard:
                    continue
                if dist[j, i] <= self.announce_m:
                    if t_ns - told.get(j, -REANNOUNCE_NS) >= REANNOUNCE_NS:
                        told[j] = t_ns
                        self.decisions.append(self._export(tracker, trk, ANNOUNCE, j))
                elif dist[j, i] > self.forget_m:
                    told.pop(j, None)

    # ------------------------------------------------------------ frame boundaries
    def before_frame(self, tracker: Tracker) -> None:
        """Frame ``m = frames + 1`` is about to be applied: wait (``waiter``) until every
        message that may be due holds, then apply those due, in a fixed order:
        (effective frame, source shard, kind, gid)."""
        m = self.frames + 1
        if self.waiter is not None:
            self.waiter(m)
        self.imported_before = m
        due = [h for h in self.pending.values() if h.effective < m]
        if not due:
            return
        due.sort(key=lambda h: (h.effective, h.source, h.kind, h.gid))
        for h in due:
            del self.pending[h.ident]
            if h.kind == SCHEDULED or h.track is None:
                continue
            self._adopt(tracker, h)

    def after_frame(self, tracker: Tracker) -> None:
        """Frame ``m`` applied (its reports made): stamp this frame's decisions with
        ``m`` (effective ``m + K``) and export the transfers effective at ``m``, the
        state after it, into :attr:`outbox`."""
        self.frames += 1
        m = self.frames
        for h in self.decisions:
            h.decided, h.effective = m, m + self.delay
            self.outbox.append(h)
        self.decisions = []
        due = [k for k, h in self.scheduled.items() if h.effective <= m]
        if not due:
            return
        by_key = {t.key: t for t in tracker.tracks}
        for key in due:
            h = self.scheduled.pop(key)
            trk = by_key.get(key)
            if trk is None or trk.deleted:
                self.outbox.append(_transfer(h, None))
                continue
            full = self._export(tracker, trk, TRANSFER, h.target)
            full.decided, full.effective = h.decided, h.effective
            self.outbox.append(full)
            self.ghosts.add(key)
            self.handovers_out += 1

    def take_outbox(self) -> list[Handover]:
        """The messages to send, in order (emptied)."""
        out, self.outbox = self.outbox, []
        return out

    def deliver(self, msgs: list[Handover]) -> None:
        """Messages received (those for other shards, duplicates and ones already
        applied are ignored)."""
        for h in msgs:
            if h.target != self.shard or h.effective < self.imported_before:
                continue
            self.pending.setdefault(h.ident, h)

    def needs(self, m: int) -> tuple[int, list[tuple[int, tuple[int, int]]]]:
        """Before frame ``m``: (the progress, in frames, every other shard must have
        reached, the (source, gid) of due transfers whose state has not arrived)."""
        have = {(h.source, h.gid, h.decided) for h in self.pending.values() if h.kind == TRANSFER}
        missing = [
            (h.source, h.gid)
            for h in self.pending.values()
            if h.kind == SCHEDULED and h.effective < m and (h.source, h.gid, h.decided) not in have
        ]
        return m - 1 - self.delay, missing

    # ------------------------------------------------------------ internals
    def _schedule(self, trk: Track, target: int) -> None:
        h = Handover(SCHEDULED, self.shard, target, self.gid_of(trk), 0, 0)
        self.scheduled[trk.key] = h
        self.decisions.append(h)

    def _export(self, tracker: Tracker, trk: Track, kind: str, target: int) -> Handover:
        rows = tracker.rows
        r = trk.row
        shadow = None
        if trk.shadow is not None:
            s = trk.shadow_row
            shadow = (rows.x[s].copy(), rows.P[s].copy(), int(rows.t_ns[s]))
        record = copy.deepcopy(trk)
        record.memory = rows.memory(r)  # the row's memories go with the record
        return Handover(
            kind, self.shard, target, self.gid_of(trk), 0, 0, record,
            rows.x[r].copy(), rows.P[r].copy(), int(rows.t_ns[r]), float(rows.score[r]), shadow,
            tracker.sensor_names,
        )  # fmt: skip

    def _adopt(self, tracker: Tracker, h: Handover) -> None:
        held = [t for t in tracker.tracks if self.gid_of(t) == h.gid and not t.deleted]
        if h.kind == ANNOUNCE and any(t.key not in self.ghosts for t in held):
            return  # ours already (a transfer overtook an older announce)
        for trk in held:  # the copy we hold, if any, gives way
            self.scheduled.pop(trk.key, None)
            tracker.remove_track(trk)
        trk = tracker.adopt_track(
            copy.deepcopy(h.track), h.x, h.P, h.t_ns, h.score, h.shadow, h.sensors
        )
        if h.gid != (self.shard, trk.key):
            self.gids[trk.key] = h.gid
        if h.kind == ANNOUNCE:
            self.ghosts.add(trk.key)
        else:
            self.handovers_in += 1

    def _prune(self, live: set[int]) -> None:
        for book in (self.gids, self.announced):
            for key in [k for k in book if k not in live]:
                del book[key]
        self.ghosts &= live


def _transfer(h: Handover, trk: Track | None) -> Handover:
    return Handover(TRANSFER, h.source, h.target, h.gid, h.decided, h.effective, trk)
