"""Per-track records of the tracker: motion mode, life-cycle flags and bounded histories.

A :class:`Track` is the bookkeeping of one live track; its filter state (``x`` (9,),
``P`` (9, 9), ECI, SI units) and the memories every update writes (NIS fades and window,
1-s hit bins) live in the stacked rows of :mod:`.rows`, at index ``Track.row`` (and
``Track.shadow_row`` for a burnout-test shadow). Times are data time in integer
nanoseconds (``*_ns``). The small records group what one concern of the
tracker reads and writes: :class:`Plume` (brightness and boost snapshots, used by the
burnout logic of :mod:`.modes`), :class:`LaunchFit` (samples for the launch point,
:mod:`.reports`) and :class:`Reporting` (track number, revision, last report).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from ..domain import NS_PER_S, GroundEllipse, TrackReport, TrackStatus

NIS_WINDOW = 16  # updates whose mean NIS the confirmation test checks
HIT_BINS_KEPT = 16  # 1-s bins with an update kept for the M-of-N test (>= confirm_n)
SNAPSHOTS_KEPT = 32  # boost updates kept to replay from the last bright one at burnout
LAUNCH_SAMPLES_KEPT = 64  # early boost positions kept for the launch fit (4 per s, 16 s)
#: A satellite's entry in ``Track.sensors_seen`` is read for this long after its last update
#: of the track (and for ``confirm_n`` s if longer): the merge test's "one look resolved the
#: two tracks" (lifecycle._resolved) reads no older entry, so older ones are dropped as the
#: track updates, and a track holds the satellites of the last minute, not every satellite
#: that ever updated it (issue 13: memory flat in time under a proliferated layer).
SEEN_KEPT_NS = 60 * NS_PER_S


def seen_horizon_ns(t_ns: int, confirm_n: int) -> int:
    """Data time (ns) at or before which a ``sensors_seen`` entry is no longer read at
    ``t_ns`` (``SEEN_KEPT_NS``, or ``confirm_n`` s if longer: the confirmation's count)."""
    return t_ns - max(SEEN_KEPT_NS, confirm_n * NS_PER_S)


class Mode(IntEnum):
    """Motion model of a track: BOOST (thrust estimated), BALLISTIC (``a = 0``), DRAG
    (ballistic below 100 km with the deceleration estimated), GLIDE (lift and drag
    estimated inside the atmosphere: :mod:`.glide_mode`)."""

    BOOST = 0
    BALLISTIC = 1
    DRAG = 2
    GLIDE = 3


class Look(NamedTuple):
    """One detection as a track's update used it (kept for the burnout replay)."""

    time_ns: int
    sensor_position: np.ndarray  # (3,) ECI m, the detecting sensor
    los: np.ndarray  # (3,) measured unit line of sight, ECI
    sigma: float  # rad, angular noise of the detection
    bright: bool  # the detection was a burning plume


class Snapshot(NamedTuple):
    """One update of a boosting track as checkpoints written before speed10 kept it (the
    burnout replay still reads them: :func:`replay_start`); :class:`Plume` now keeps the
    looks themselves and the state after the last bright one."""

    x: np.ndarray | None  # (9,) state after a bright look's update, ECI (m, m/s, m/s^2)
    P: np.ndarray | None  # (9, 9) its covariance
    look: Look


class LaunchSample(NamedTuple):
    """One early boost position for the launch-point fit."""

    time_ns: int
    r_ecef: np.ndarray  # (3,) m, Earth-fixed position
    var_m2: float  # m^2 per axis, trace(P_rr) / 3


class RowMemory(NamedTuple):
    """The memories of a track's row (:class:`.rows.StateRows`' columns) carried by a copy
    of the track outside the rows (a hand-over, an alias sibling)."""

    fade: np.ndarray  # (2,) fading NIS sums: manoeuvre test, boost thrust-change test
    nis: np.ndarray  # (NIS_WINDOW,) latest NIS values, newest last
    nis_n: int  # how many of them are valid
    hits: np.ndarray  # (HIT_BINS_KEPT,) int, latest 1-s bins (data time s) with an update
    hits_n: int  # how many of them are valid


class RowOwner(NamedTuple):
    """Who a stacked state row belongs to: a track, or the burnout shadow of one."""

    track: Track
    is_shadow: bool


@dataclass(slots=True)
class ShadowTest:
    """Burnout test in progress: a zero-thrust copy of a boosting track (DESIGN §3)."""

    start_ns: int  # data time the shadow was conditioned on zero thrust
    nis_sum: float = 0.0  # sum of its normalised innovation squares since
    count: int = 0  # updates since
    failed: bool = False  # one innovation beyond the boost gate: thrust is on


@dataclass(slots=True)
class Plume:
    """What the detections' brightness tells about the thrust of one track.

    The burnout replay starts from the state after the newest bright look of a boosting
    track and re-applies the dark looks after it (:func:`replay_start`): ``snapshots``
    keeps, of the last ``SNAPSHOTS_KEPT`` boost looks, the newest bright one as its data
    time (ns; the looks before it are never replayed, so a bright look empties the
    window first) and the dark ones after it as :class:`Look`; ``bright`` holds the state
    after that bright look as row ``i`` of one frame's batch ``(x (B, 9), P (B, 9, 9),
    i)`` (:meth:`.modes.MotionModes.keep_bright`: one gather per frame instead of two
    copies per update; never written in place). A checkpoint from before speed10 holds
    a :class:`Snapshot` per boost look instead."""

    bright_seen: bool = False  # a burning plume has been seen on this track
    bright_run: int = 0  # bright detections in a row
    dim_run: int = 0  # dark detections in a row after a bright one
    snapshots: deque[int | Look | Snapshot] = field(
        default_factory=lambda: deque(maxlen=SNAPSHOTS_KEPT)
    )
    bright: tuple[np.ndarray, np.ndarray, int] | None = None  # see the class docstring


def replay_start(plume: Plume) -> tuple[int, np.ndarray, np.ndarray, list[Look]] | None:
    """Where ``plume``'s burnout replay starts: the data time (ns) of the newest bright
    boost look kept, the state after it (x (9,), P (9, 9), ECI; not to be modified) and
    the dark looks after it; None when no bright look is kept or no dark look follows."""
    snaps = list(plume.snapshots)
    j = max((i for i, s in enumerate(snaps) if _is_bright(s)), default=None)
    if j is None or j == len(snaps) - 1:
        return None
    start = snaps[j]
    if isinstance(start, Snapshot):  # a checkpoint from before speed10
        t_b, x, P = start.look.time_ns, start.x, start.P
    else:
        kept = getattr(plume, "bright", None)
        if kept is None:
            return None
        t_b, x, P = start, kept[0][kept[2]], kept[1][kept[2]]
    dark = [s.look if isinstance(s, Snapshot) else s for s in snaps[j + 1 :]]
    return t_b, x, P, dark


def _is_bright(entry: int | Look | Snapshot) -> bool:
    """A kept boost look (:class:`Plume`) is the bright one."""
    if not isinstance(entry, tuple):  # its data time (an int, Python's or numpy's)
        return True
    return (entry.look if isinstance(entry, Snapshot) else entry).bright


@dataclass(slots=True)
class LaunchFit:
    """Launch-point estimate of a track first seen low in boost."""

    enabled: bool = False  # first seen below launch_max_first_altitude_m
    samples: deque[LaunchSample] = field(default_factory=lambda: deque(maxlen=LAUNCH_SAMPLES_KEPT))
    estimate: GroundEllipse | None = None
    final: bool = False  # fit window over: the estimate no longer changes
    fitted_ns: int | None = None  # data time of the last fit (refits on a schedule)


@dataclass(slots=True)
class Reporting:
    """Report bookkeeping of one track."""

    number: int | None = None  # n of the track id ``<fusion_id>-<n>``, set at first report
    revision: int = 0
    last_ns: int | None = None  # data time of the last report
    last: TrackReport | None = None
    since: set[str] = field(default_factory=set)  # sensors that updated it since then


@dataclass(slots=True)
class Track:
    """Bookkeeping of one live track (its state is row ``row`` of the stacked rows)."""

    key: int  # creation order, never reused (merge tie-break)
    created_ns: int
    last_update_ns: int
    row: int = -1
    shadow_row: int = -1
    mode: Mode = Mode.BOOST
    status: TrackStatus = TrackStatus.TENTATIVE
    status_changed: bool = False  # not reported since the last status change
    updated_now: bool = False  # updated by the current frame
    deleted: bool = False
    update_count: int = 0
    # sensor id -> last update ns, oldest first, within SEEN_KEPT_NS (bookkeeping.book_updates)
    sensors_seen: dict[str, int] = field(default_factory=dict)
    ballistic_looks: int = 0  # updates in ballistic flight, and the sensors that made them
    ballistic_sensors: int = 0  # (bits of Tracker._sensor_bits): bookkeeping.ballistic_looks
    earth_fixed: bool = False  # never moved: a fire or glint, never confirmed
    uncertain: bool = False  # boost range lost (one satellite): coasting, not reported
    shadow: ShadowTest | None = None
    burnout_ns: int | None = None
    lift_mean: float = 0.0  # m/s^2, fading mean of the upward lift of a DRAG track
    lift_ticks: int = 0  # life-cycle ticks that mean has run (level flight in the air)
    dived: bool = False  # left GLIDE in its terminal dive: never glides again
    impact: GroundEllipse | None = None
    plume: Plume = field(default_factory=Plume)
    launch: LaunchFit = field(default_factory=LaunchFit)
    report: Reporting = field(default_factory=Reporting)
    # the row's memories while this record is outside the rows (a copy: hand-over, alias
    # sibling); None in the rows, where they are columns (NIS fades and window, hit bins)
    memory: RowMemory | None = None
