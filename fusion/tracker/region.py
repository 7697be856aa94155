"""A shard's region of the sky (issue 14): what a sharded tracker owns, and hand-overs.

With S > 1 shards every shard's tracker sees every frame (the whole journal) but
*owns* only the tracks whose sub-point lies in its cells (:mod:`..cells`); it reports
only those. The others it may hold as **ghosts**: copies kept up to date from the
frames like any track (so their detections never seed a duplicate) but never
reported. The rules, checked once per :data:`TICK_S` of data time on the tracks' latest
states (geodetic sub-point, :func:`..geodesy.teme_to_geodetic`):

* **initiation** only where the two-ray point lies in the shard's own cells;
* **announce**: an owned track within ``announce_m`` of shard j's cells is sent to j
  as a ghost (once; again after it went farther than ``forget_m``);
* **transfer**: an owned track more than ``margin_m`` inside shard j's cells is handed
  to j. The decision is taken while applying journal event ``p``; the owner keeps
  reporting it up to event ``p + K`` and exports it after that event; the receiver
  imports it before applying event ``p + K + 1`` (replacing its ghost) and reports it
  from then on, with the same track id and the next revision. The old owner keeps it
  as a ghost;
* a ghost farther than ``forget_m`` from the shard's cells is dropped silently.

Event numbers come from the caller (:meth:`Region.after_event`), never from time:
which events a hand-over spans is a function of the journal only, so the reports are
the same whatever runs the shards, and in what interleaving. Track numbers are
``shard + 1 + S * i`` (i = 0, 1, ...), so ids ``<fusion_id>-<n>`` never collide between
shards; with S = 1 this is today's numbering. The messages are :class:`Handover`
records (plain data: the exact float64 rows and the :class:`.track.Track` record).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .. import geodesy
from ..cells import ShardMap
from ..domain import NS_PER_S
from ..dynamics import POS
from .track import Track

if TYPE_CHECKING:
    from .tracker import Tracker

#: Seconds of data time between two ownership checks.
TICK_S = 1.0
#: Default hysteresis margin (m): a track is handed over this far inside a neighbour.
MARGIN_M = 100e3

ANNOUNCE, TRANSFER, SCHEDULED = "announce", "transfer", "scheduled"


@dataclass
class Handover:
    """One hand-over message from shard ``source`` to shard ``target``.

    ``kind``: ANNOUNCE (a ghost copy), SCHEDULED (a transfer decided at event
    ``decided_seq``, effective at ``effective_seq``; its state follows) or TRANSFER
    (the state after ``effective_seq``; ``track`` None if it ended before). ``gid`` =
    (origin shard, origin key) names the track across shards. Rows: ECI (m, m/s,
    m/s^2) at data time ``t_ns``."""

    kind: str
    source: int
    target: int
    gid: tuple[int, int]
    decided_seq: int
    effective_seq: int
    track: Track | None = None
    x: np.ndarray | None = None  # (9,)
    P: np.ndarray | None = None  # (9, 9)
    t_ns: int = 0
    score: float = 0.0
    shadow: tuple[np.ndarray, np.ndarray, int] | None = None  # (x, P, t_ns) of its shadow

    @property
    def ident(self) -> tuple[str, int, int, tuple[int, int]]:
        """What makes a message unique (a resend after a restart is the same)."""
        return (self.kind, self.source, self.decided_seq, self.gid)


@dataclass
class Region:
    """Shard ``shard`` of ``shards``; ``delay`` = K, events between a transfer's decision
    and its effect. Distances in m (see the module docstring)."""

    shard: int
    shards: int
    delay: int = 128
    margin_m: float = MARGIN_M
    announce_m: float = 3 * MARGIN_M
    forget_m: float = 4 * MARGIN_M
    ghosts: set[int] = field(default_factory=set)  # local keys of tracks owned elsewhere
    gids: dict[int, tuple[int, int]] = field(default_factory=dict)  # imported key -> gid
    announced: dict[int, set[int]] = field(default_factory=dict)  # key -> shards told
    scheduled: dict[int, Handover] = field(default_factory=dict)  # key -> transfer out
    decided: list[Handover] = field(default_factory=list)  # this event's decisions
    pending: dict[tuple, Handover] = field(default_factory=dict)  # received, not applied
    applied_upto: int = 0  # events applied (imports before it are done)
    next_tick_ns: int | None = None
    handovers_in: int = 0
    handovers_out: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.shard < self.shards:
            raise ValueError(f"shard: must be 0..{self.shards - 1}, got {self.shard}")
        if self.delay < 1:
            raise ValueError(f"handover delay: must be >= 1 event, got {self.delay}")
        self.map = ShardMap(self.shards)

    # ------------------------------------------------------------ tracker hooks
    def attach(self, tracker: Tracker) -> None:
        """Number this shard's tracks ``shard + 1 + S * i``."""
        tracker.number_tracks(self.shard + 1, self.shards)

    def may_initiate(self, position_eci: np.ndarray, t_ns: int) -> bool:
        """A new track at ``position_eci`` (m) at data time ``t_ns``: in our cells?"""
        lat, lon, _ = geodesy.teme_to_geodetic(position_eci, t_ns / NS_PER_S)
        return int(self.map.shard_of(lat, lon)) == self.shard

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
            told = self.announced.setdefault(trk.key, set())
            for j in range(self.shards):
                if j == self.shard:
                    continue
                if dist[j, i] <= self.announce_m and j not in told:
                    told.add(j)
                    self.decided.append(self._export(tracker, trk, ANNOUNCE, j))
                elif dist[j, i] > self.forget_m:
                    told.discard(j)

    # ------------------------------------------------------------ event boundaries
    def after_event(self, tracker: Tracker, seq: int) -> list[Handover]:
        """Event ``seq`` applied: the messages to send (decisions stamped with ``seq``,
        transfers whose effect is due at ``seq`` with the state after it)."""
        out = []
        for h in self.decided:
            h.decided_seq = seq
            h.effective_seq = seq + self.delay
            out.append(h)
        self.decided = []
        due = [k for k, h in self.scheduled.items() if h.effective_seq <= seq]
        if due:
            by_key = {t.key: t for t in tracker.tracks}
            for key in due:
                h = self.scheduled.pop(key)
                trk = by_key.get(key)
                if trk is None or trk.deleted:
                    out.append(_transfer(h, None))
                    continue
                full = self._export(tracker, trk, TRANSFER, h.target)
                full.decided_seq, full.effective_seq = h.decided_seq, h.effective_seq
                out.append(full)
                self.ghosts.add(key)
                self.handovers_out += 1
        self.applied_upto = seq
        return out

    def deliver(self, msgs: list[Handover]) -> None:
        """Messages for this shard, received (duplicates and stale ones ignored)."""
        for h in msgs:
            if h.target != self.shard or h.effective_seq < self.applied_upto:
                continue
            self.pending.setdefault(h.ident, h)

    def waiting_for(self, seq: int) -> list[tuple[int, tuple[int, int]]]:
        """Before applying event ``seq``: the (source, gid) of scheduled transfers due
        whose state has not arrived (the caller must wait for them)."""
        have = {
            (h.source, h.gid, h.decided_seq) for h in self.pending.values() if h.kind == TRANSFER
        }
        return [
            (h.source, h.gid)
            for h in self.pending.values()
            if h.kind == SCHEDULED
            and h.effective_seq < seq
            and (h.source, h.gid, h.decided_seq) not in have
        ]

    def before_event(self, tracker: Tracker, seq: int) -> None:
        """Apply every received message due before event ``seq`` (announces decided at
        ``p`` take effect at ``p + K``, transfers after their effective event), in a
        fixed order: (effective event, source shard, kind, gid)."""
        due = [h for h in self.pending.values() if h.effective_seq < seq]
        if not due:
            return
        due.sort(key=lambda h: (h.effective_seq, h.source, h.kind, h.gid))
        for h in due:
            del self.pending[h.ident]
            if h.kind == SCHEDULED or h.track is None:
                continue
            self._adopt(tracker, h)

    # ------------------------------------------------------------ internals
    def _schedule(self, trk: Track, target: int) -> None:
        h = Handover(SCHEDULED, self.shard, target, self.gid_of(trk), 0, 0)
        self.scheduled[trk.key] = h
        self.decided.append(h)

    def _export(self, tracker: Tracker, trk: Track, kind: str, target: int) -> Handover:
        rows = tracker.rows
        r = trk.row
        shadow = None
        if trk.shadow is not None:
            s = trk.shadow_row
            shadow = (rows.x[s].copy(), rows.P[s].copy(), int(rows.t_ns[s]))
        return Handover(
            kind, self.shard, target, self.gid_of(trk), 0, 0, copy.deepcopy(trk),
            rows.x[r].copy(), rows.P[r].copy(), int(rows.t_ns[r]), float(rows.score[r]), shadow,
        )  # fmt: skip

    def _adopt(self, tracker: Tracker, h: Handover) -> None:
        for trk in tracker.tracks:  # the copy we hold, if any, gives way
            if self.gid_of(trk) == h.gid and not trk.deleted:
                self.scheduled.pop(trk.key, None)
                tracker.remove_track(trk)
        trk = tracker.adopt_track(copy.deepcopy(h.track), h.x, h.P, h.t_ns, h.score, h.shadow)
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
    return Handover(TRANSFER, h.source, h.target, h.gid, h.decided_seq, h.effective_seq, trk)
