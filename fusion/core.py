"""The fusion core: validation + ordering + tracker, with the service's counters.

:class:`FusionCore` is what ``tracklayer track`` runs over a file and what the fusion
service runs over its live streams (and its journal on restart): the same calls in the
same per-sensor order give the same statuses and the same track reports (DESIGN §6).
It holds no clock of its own; live callers pass ``now`` (their wall clock, seconds)
so that the idle timeout stays a deterministic function of the calls made.

Ordering and tracking can run as two steps (``defer_tracking``, the live service):
every call then only orders, and the work it releases (frames to track, end-of-input
flushes) waits in a queue that :meth:`FusionCore.track_next` runs one item at a time.
The items are numbered (``items_released`` / ``items_tracked``, the same in both
modes), so a restart can tell which items' reports already left the process. The
results are the same as in one step: the tracker sees the same frames and flushes in
the same order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

from .config import FusionConfig
from .domain import FrameStatus, SensorFrame, TrackReport
from .ordering import DEFAULT_DUPLICATE_WINDOW, FrameOrderer
from .registration import SensorBias

#: Label values of ``frames_total{status=...}``, in wire-enum order.
#: Version of the state a checkpoint stores (the attributes of the core, the tracker
#: and everything they hold). Bump it when a stored attribute is added, removed or
#: changes meaning: a checkpoint of another layout is then refused at restore (the
#: journal is replayed instead) rather than restored into objects that lack what the
#: code reads. tests/test_checkpoint_layout.py fails when the layout changes unbumped.
STATE_LAYOUT = 6  # 2: FusionConfig.stream_min_group (fusion/tracker/stream.py); 3: the
# registration's open windows in columns (fusion/registration_looks.OpenWindows); 4:
# FusionConfig.stream_regroup_min, the alias families' held-track branches (tracker/regroup.py),
# the orderer's duplicate windows in columns (fusion/sequence_window.SequenceWindow), the
# threads' by-key index holds {thread id: sensor} (fusion/threads.ThreadBook._held); 5: the
# tracks' NIS fades, NIS window and hit bins are columns of the rows (tracker/rows.StateRows),
# the threads' holders are arrays per sensor (fusion/threads.ThreadBook._owner, ._held); a
# track's sensors_seen holds the last minute only, its ballistic looks are a count and a bit
# set over Tracker._sensor_bits (fusion/tracker/bookkeeping.py), Handover.sensors; 6:
# FusionConfig.registration_site_drift and .registration_common_once, a site's equations
# keep the biases' block (registration_sites.SiteNormals.D, .g), Registration.counts_common
# and ._where (registration_common)

STATUS_LABELS = {
    FrameStatus.ACCEPTED: "accepted",
    FrameStatus.DUPLICATE: "duplicate",
    FrameStatus.LATE: "late",
    FrameStatus.REJECTED: "rejected",
}


def frames_counter(status: FrameStatus) -> str:
    """Counter name for frames of one status, e.g. ``frames_total{status="late"}``."""
    return f'frames_total{{status="{STATUS_LABELS[status]}"}}'


class TrackerLike(Protocol):
    """What :class:`FusionCore` needs of a tracker (``fusion.tracker.Tracker``)."""

    def process(self, frame: SensorFrame) -> list[TrackReport]: ...
    def flush(self) -> list[TrackReport]: ...
    def live_reports(self) -> list[TrackReport]: ...


TrackerFactory = Callable[[str, FusionConfig], TrackerLike]


def _default_tracker(fusion_id: str, config: FusionConfig) -> TrackerLike:
    from .tracker import Tracker  # imported lazily: the tracker is the heavy part

    return Tracker(fusion_id, config)


class Emitted(NamedTuple):
    """A report with the data time (ns) of the frame whose application produced it
    (for reports of the final flush: the last applied frame's time)."""

    data_time_ns: int
    report: TrackReport


class FusionCore:
    """Validation (DESIGN §4) + ordering (DESIGN §6) + tracker, with counters (§8).

    ``fusion_id`` names the tracks (``<fusion_id>-<n>``); ``expected_sensors`` hold the
    watermark from the start (``--sensors``); ``allowed_sensors`` is the allow-list
    (None: any); ``live`` enables :meth:`expire_idle`; ``tracker_factory(fusion_id,
    config)`` builds the tracker (default ``fusion.tracker.Tracker``).
    """

    #: Two steps (module docstring): calls order only; :meth:`track_next` tracks.
    defer_tracking = False
    #: Work items released by the ordering (frames, flushes) and tracked, since the
    #: start of the input (class defaults: a checkpoint of an older version lacks them).
    items_released = 0
    items_tracked = 0
    _work: deque[SensorFrame | None] | None = None  # released, not tracked (None: flush)

    def __init__(
        self,
        fusion_id: str = "fusion",
        config: FusionConfig | None = None,
        expected_sensors: Iterable[str] = (),
        live: bool = False,
        tracker_factory: TrackerFactory | None = None,
        *,
        allowed_sensors: Iterable[str] | None = None,
        duplicate_window: int = DEFAULT_DUPLICATE_WINDOW,
    ) -> None:
        self.fusion_id = fusion_id
        self.config = config if config is not None else FusionConfig()
        self.live = live
        self.orderer = FrameOrderer(
            self.config.allowed_lateness_s,
            expected=expected_sensors,
            allowed=allowed_sensors,
            duplicate_window=duplicate_window,
        )
        self.tracker: TrackerLike = (tracker_factory or _default_tracker)(fusion_id, self.config)
        self._frames = dict.fromkeys(STATUS_LABELS, 0)
        self._detections = 0
        self._applied = 0
        self._reports = 0
        self._idle_timeouts = 0
        self._last_applied_ns: int | None = None
        self._dirty = False  # frames applied since the last tracker flush
        self._work = deque()
        #: True when the last :meth:`submit` did not accept its frame but moved its
        #: sensor's latest received time (the long-outage rule, DESIGN §6): a journal
        #: records that time and replays it with :meth:`note_received`.
        self.last_noted = False

    # ---- membership (DESIGN §6 rule 2) ------------------------------------------
    def declare(self, sensor_ids: Iterable[str], now: float | None = None) -> None:
        """Expect these sensors before their data (replayer, sensor nodes)."""
        self.orderer.declare(sensor_ids, now)

    def open_stream(self, sensor_id: str, now: float | None = None) -> None:
        """A stream from ``sensor_id`` opened: it holds the watermark until it closes."""
        self.orderer.open_stream(sensor_id, now)

    def close_stream(self, sensor_id: str) -> list[TrackReport]:
        """A stream closed; when it was the last one this is the end-of-input flush."""
        return [e.report for e in self.close_stream_timed(sensor_id)]

    def close_stream_timed(self, sensor_id: str) -> list[Emitted]:
        released = self.orderer.close_stream(sensor_id)
        out = self._track_released(released)
        if not self.orderer.open_streams and not self.orderer.expected_sensors:
            out.extend(self._flush_tracker())
        return out

    def expire_idle(self, now: float, timeout_s: float) -> tuple[list[str], list[TrackReport]]:
        """Live idle timeout (DESIGN §6 rule 2): sensors inactive for more than
        ``timeout_s`` (caller's clock) stop holding the watermark; counted in
        ``idle_timeouts_total``. Returns (expired sensors, reports)."""
        expired, emitted = self.expire_idle_timed(now, timeout_s)
        return expired, [e.report for e in emitted]

    def expire_idle_timed(self, now: float, timeout_s: float) -> tuple[list[str], list[Emitted]]:
        if not self.live:
            raise ValueError("expire_idle: only a live FusionCore has an idle timeout")
        expired, released = self.orderer.expire_idle(now, timeout_s)
        self._idle_timeouts += len(expired)
        return expired, self._track_released(released)

    # ---- frames -----------------------------------------------------------------
    def submit(
        self, frame: SensorFrame, now: float | None = None
    ) -> tuple[FrameStatus, str, list[TrackReport]]:
        """Offer one frame in delivery order: (status, reason, reports it released).

        ``reason`` names the field or rule for REJECTED / LATE / DUPLICATE, "" if
        ACCEPTED. The reports come from whichever frames the watermark released.
        """
        status, reason, emitted = self.submit_timed(frame, now)
        return status, reason, [e.report for e in emitted]

    def submit_timed(
        self, frame: SensorFrame, now: float | None = None
    ) -> tuple[FrameStatus, str, list[Emitted]]:
        """:meth:`submit`, each report paired with its producing frame's data time."""
        offer = self.orderer.offer(frame, now)
        self.last_noted = offer.noted
        self._frames[offer.status] += 1
        if offer.status is FrameStatus.ACCEPTED:
            self._detections += frame.n_detections
        return offer.status, offer.reason, self._track_released(offer.released)

    def note_received(self, sensor_id: str, time_ns: int) -> bool:
        """Replay of a frame that was not accepted but moved ``sensor_id``'s latest
        received time to ``time_ns`` (ns); changes nothing else (no counter)."""
        return self.orderer.note_received(sensor_id, time_ns)

    def reject(self, reason: str) -> tuple[FrameStatus, str, list[TrackReport]]:
        """Count a frame that could not even be converted to a :class:`SensorFrame`
        (e.g. a wire field left unset) as REJECTED; nothing else changes."""
        self._frames[FrameStatus.REJECTED] += 1
        self.last_noted = False
        return FrameStatus.REJECTED, reason, []

    def flush(self) -> list[TrackReport]:
        """End of input: apply every buffered frame in order, then flush the tracker."""
        return [e.report for e in self.flush_timed()]

    def flush_timed(self) -> list[Emitted]:
        out = self._track_released(self.orderer.flush())
        out.extend(self._flush_tracker())
        return out

    def _track_released(self, frames: list[SensorFrame]) -> list[Emitted]:
        """Run the tracker over frames the orderer released (in order); their reports
        (none when tracking is deferred: the frames wait for :meth:`track_next`)."""
        self.items_released += len(frames)
        if self.defer_tracking:
            self._queue().extend(frames)
            return []
        self.items_tracked += len(frames)
        return self._track(frames)

    def _track(self, frames: list[SensorFrame]) -> list[Emitted]:
        out: list[Emitted] = []
        process = self.tracker.process
        for frame in frames:
            t = frame.time_ns
            out.extend(Emitted(t, r) for r in process(frame))
            self._last_applied_ns = t
        if frames:
            self._applied += len(frames)
            self._dirty = True
        self._reports += len(out)
        return out

    def _flush_tracker(self) -> list[Emitted]:
        """Flush the tracker once per stretch of applied data (a second flush is a
        no-op); deferred like the frames when tracking is."""
        self.items_released += 1
        if self.defer_tracking:
            self._queue().append(None)
            return []
        self.items_tracked += 1
        return self._flush_now()

    def _flush_now(self) -> list[Emitted]:
        if not self._dirty:
            return []
        self._dirty = False
        reports = self.tracker.flush()
        self._reports += len(reports)
        t = self._last_applied_ns
        return [Emitted(r.time_ns if t is None else t, r) for r in reports]

    # ---- deferred tracking (two steps) ----------------------------------------------
    def _queue(self) -> deque[SensorFrame | None]:
        if self._work is None:
            self._work = deque()
        return self._work

    @property
    def untracked(self) -> int:
        """Work items released by the ordering and not tracked yet (deferred mode)."""
        return self.items_released - self.items_tracked

    @property
    def untracked_frames(self) -> int:
        """Frames among :attr:`untracked` (flushes left out)."""
        return sum(1 for item in self._queue() if item is not None)

    def track_next(self) -> tuple[int, list[Emitted]]:
        """Track the oldest deferred item: (its number, counting from 1, its reports)."""
        item = self._queue().popleft()
        self.items_tracked += 1
        out = self._flush_now() if item is None else self._track([item])
        return self.items_tracked, out

    # ---- state --------------------------------------------------------------------
    def live_reports(self) -> list[TrackReport]:
        """Latest report of each live track (ListLiveTracks)."""
        return self.tracker.live_reports()

    @property
    def counters(self) -> dict[str, int]:
        """Counters with the Prometheus names of DESIGN §8 (plus a few of the core's own)."""
        c = {frames_counter(s): n for s, n in self._frames.items()}
        c["detections_total"] = self._detections
        c["late_frames_total"] = self._frames[FrameStatus.LATE]
        c["tracks_live"] = len(self.tracker.live_reports())
        c["reports_total"] = self._reports
        c["frames_applied_total"] = self._applied
        c["frames_buffered"] = self.orderer.buffered
        c["frames_untracked"] = self.untracked_frames
        c["idle_timeouts_total"] = self._idle_timeouts
        reg = getattr(self.tracker, "registration", None)
        if reg is not None:
            c["registration_windows_total"] = reg.windows_total
            c["registration_outliers_total"] = reg.outliers_total
            c["registration_rejected_total"] = reg.rejected_total
        return c

    def sensor_biases(self) -> list[SensorBias]:
        """Every sensor's pointing-bias estimate (empty when registration is off)."""
        reg = getattr(self.tracker, "registration", None)
        return reg.estimates() if reg is not None else []

    def sensor_bias_time_ns(self) -> int | None:
        """Data time (ns) of :meth:`sensor_biases`; None when they are empty (cheap)."""
        reg = getattr(self.tracker, "registration", None)
        return reg.time_ns if reg is not None else None
