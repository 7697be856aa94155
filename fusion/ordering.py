"""Deterministic frame ordering behind a watermark (DESIGN §6, fixed rules).

Frames reach the fusion core in delivery order: per sensor in its own stream order,
interleaved across sensors in no fixed way (a file's order offline, concurrent gRPC
streams live). :class:`FrameOrderer` turns any such interleaving into one application
order and one status per frame, both independent of the interleaving:

* Every offered frame gets a status. REJECTED: :func:`~.validation.validate_frame`
  failed (nothing changes). DUPLICATE: its (sensor_id, sequence) was accepted before.
  LATE: its time is at or before (the latest time already accepted from the same
  sensor) - ``allowed_lateness``; or its sequence is older than that sensor's duplicate
  window (see below); or its time is at or behind the watermark already released (only
  possible for a sensor that was not holding the watermark: never declared, joined
  late, or idle-expired). ACCEPTED otherwise: the frame is buffered.
  A non-ACCEPTED frame changes no state at all.
* The watermark is the minimum over the *expected* sensors of (latest accepted time -
  allowed_lateness); -inf while any expected sensor has sent nothing. Expected sensors:
  given at construction (``--sensors``), declared (:meth:`declare`), with an open
  stream (:meth:`open_stream`), or that sent an accepted frame. A sensor leaves only
  when its stream closes (:meth:`close_stream`) or, live, by :meth:`expire_idle`.
* Buffered frames with time <= watermark are released in (time_ns, sensor_id,
  sequence) order. When the last stream closes and no expected sensor remains, or on
  :meth:`flush` (end of input), everything buffered is released in that order.

Because every status depends only on the sensor's own stream (its latest accepted time,
its duplicate window, its own validation), and an accepted frame of a continuously
expected sensor is always strictly ahead of every watermark released so far, every
interleaving accepts the same frames and applies them in the same sorted order.

Duplicate window (bounded memory): per sensor the sequences of accepted frames are
remembered while their time is within ``allowed_lateness`` of the sensor's latest
time (a repeat of those could otherwise pass the LATE rule), and beyond that the
``duplicate_window`` most recent ones, so that a resend after a reconnect is
acknowledged DUPLICATE. Older entries are forgotten; a frame whose sequence is at or
below the highest forgotten one is LATE ("older than the duplicate window"): a
(sensor_id, sequence) is therefore never applied twice. Sequences are look indices
(DESIGN §4) and grow with time, so for a well-behaved sensor that rule only ever
fires on frames the time rule would call LATE anyway. Each window keeps such a stream's
entries in two numpy columns (16 bytes an entry, :mod:`.sequence_window`).

Idle timeout (live only): :meth:`expire_idle` takes a clock reading supplied by the
caller; every expected sensor whose last activity (declare, stream open or accepted
frame, each with the caller's ``now``) is more than the timeout old leaves the
expected set and so stops holding the watermark; its next accepted frame brings it
back. A sensor that joined without a ``now`` has no clock and never expires. The
result depends only on the calls made and the ``now`` values given, and a call that
expires nobody changes nothing.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from numbers import Integral
from typing import NamedTuple

from .domain import NS_PER_S, FrameStatus, SensorFrame
from .sequence_window import SequenceWindow
from .validation import validate_frame

#: Default number of accepted sequences remembered per sensor beyond those still inside
#: the lateness window (at 1 Hz about 17 minutes of resends are recognised as DUPLICATE).
DEFAULT_DUPLICATE_WINDOW = 1024

_NEG_INF = -math.inf
_POS_INF = math.inf


class Offer(NamedTuple):
    """Outcome of :meth:`FrameOrderer.offer` (a named tuple: one per frame, built in
    a fraction of a frozen dataclass's time).

    ``status`` of the offered frame; ``reason`` names the rule or field for REJECTED,
    LATE and DUPLICATE ("" when ACCEPTED); ``released`` the frames (possibly from
    other sensors) that became applicable, in application order (a new list).
    """

    status: FrameStatus
    reason: str
    released: list[SensorFrame]
    #: A frame that was not ACCEPTED but moved its sensor's latest received time
    #: (:meth:`FrameOrderer.note_received`): a journal must record that time.
    noted: bool = False


class FrameOrderer:
    """Watermark ordering of sensor frames (DESIGN §6); see the module docstring.

    ``allowed_lateness_s``: seconds; ``expected``: sensors expected from the start;
    ``allowed``: allow-list of sensor ids or None; ``duplicate_window``: accepted
    sequences remembered per sensor beyond the lateness window.
    """

    def __init__(
        self,
        allowed_lateness_s: float,
        expected: Iterable[str] = (),
        allowed: Iterable[str] | None = None,
        duplicate_window: int = DEFAULT_DUPLICATE_WINDOW,
    ) -> None:
        if not math.isfinite(allowed_lateness_s) or allowed_lateness_s < 0:
            raise ValueError(
                f"allowed_lateness_s: must be finite and >= 0, got {allowed_lateness_s}"
            )
        if duplicate_window < 1:
            raise ValueError(f"duplicate_window: must be >= 1, got {duplicate_window}")
        self.lateness_ns = int(round(allowed_lateness_s * NS_PER_S))
        self.allowed: frozenset[str] | None = None if allowed is None else frozenset(allowed)
        self.duplicate_window = int(duplicate_window)
        self._expected: set[str] = set(expected)
        self._open: dict[str, int] = {}  # sensor -> number of open streams
        self._latest: dict[str, int] = {}  # sensor -> latest accepted time_ns
        # sensor -> time_ns of its previous frame when after its latest accepted one
        self._ahead: dict[str, int] = {}
        self._windows: dict[str, SequenceWindow] = {}
        self._last_active: dict[str, float] = {}  # caller's clock, for expire_idle
        self._buffer: list[tuple[tuple[int, str, int], SensorFrame]] = []
        self._horizon: float | int = _NEG_INF  # highest watermark released so far

    # ---- membership -------------------------------------------------------------
    def declare(self, sensor_ids: Iterable[str], now: float | None = None) -> None:
        """Expect ``sensor_ids`` (before their data): each holds the watermark from now on."""
        for sid in sensor_ids:
            self._join(sid, now)

    def open_stream(self, sensor_id: str, now: float | None = None) -> None:
        """A stream from ``sensor_id`` opened: it is expected until the stream closes.

        Streams are counted, so a replacing stream opened before the old one's close
        keeps the sensor expected (DESIGN §6 rule 5).
        """
        self._open[sensor_id] = self._open.get(sensor_id, 0) + 1
        self._join(sensor_id, now)

    def close_stream(self, sensor_id: str) -> list[SensorFrame]:
        """A stream of ``sensor_id`` closed; returns the frames that became applicable.

        When no stream stays open and no expected sensor remains, this is the end of
        the input: everything buffered is released (the same flush as end of file).
        """
        n = self._open.get(sensor_id, 0) - 1
        if n > 0:
            self._open[sensor_id] = n
            return []
        self._open.pop(sensor_id, None)
        self._expected.discard(sensor_id)
        self._last_active.pop(sensor_id, None)
        if not self._open and not self._expected:
            return self.flush()
        return self._release()

    def expire_idle(self, now: float, timeout_s: float) -> tuple[list[str], list[SensorFrame]]:
        """Live idle timeout: drop expected sensors inactive for more than ``timeout_s``.

        ``now`` is the caller's clock (seconds, any origin, the same as the ``now``
        values passed to the other calls). A sensor that joined without a ``now`` has
        no clock and never expires. A call that expires nobody changes no state (so a
        journal need not record it). Returns (expired sensor ids sorted, released frames).
        """
        expired: list[str] = []
        for sid in sorted(self._expected):
            last = self._last_active.get(sid)
            if last is not None and now - last > timeout_s:
                expired.append(sid)
        for sid in expired:
            self._expected.discard(sid)
            del self._last_active[sid]
        return expired, (self._release() if expired else [])

    def _join(self, sensor_id: str, now: float | None) -> None:
        self._expected.add(sensor_id)
        if now is not None:
            self._last_active[sensor_id] = now

    # ---- frames -----------------------------------------------------------------
    def offer(self, frame: SensorFrame, now: float | None = None) -> Offer:
        """Judge one frame (in its delivery order) and release what became applicable."""
        offer = self._judge(frame, now)
        if offer.status is not FrameStatus.ACCEPTED and self.note_received(
            frame.sensor_id, frame.time_ns
        ):
            return Offer(offer.status, offer.reason, offer.released, noted=True)
        return offer

    def note_received(self, sensor_id: str, time_ns: object) -> bool:
        """A frame of ``sensor_id`` at ``time_ns`` that was not ACCEPTED was received:
        update its latest received time (clock-jump rule). Returns True when the state
        changed. Only sensors with an accepted frame are tracked (bounded memory)."""
        latest = self._latest.get(sensor_id)
        if latest is None or not isinstance(time_ns, Integral) or isinstance(time_ns, bool):
            return False
        time_ns = int(time_ns)
        if time_ns > latest:
            if self._ahead.get(sensor_id) == time_ns:
                return False
            self._ahead[sensor_id] = time_ns
            return True
        return self._ahead.pop(sensor_id, None) is not None

    def received_ns(self, sensor_id: str) -> int | None:
        """Latest received time of ``sensor_id`` for the clock-jump rule (ns), None
        before its first accepted frame."""
        latest = self._latest.get(sensor_id)
        ahead = self._ahead.get(sensor_id)
        return latest if ahead is None or latest is None else max(latest, ahead)

    def _judge(self, frame: SensorFrame, now: float | None) -> Offer:
        sid = frame.sensor_id
        latest = self._latest.get(sid)
        ahead = self._ahead.get(sid)  # (received_ns, inline: it runs every frame)
        received = latest if ahead is None or latest is None else max(latest, ahead)
        try:
            validate_frame(frame, received, self.allowed)
        except ValueError as exc:
            return Offer(FrameStatus.REJECTED, str(exc), [])
        seq, t = frame.sequence, frame.time_ns
        window = self._windows.get(sid)
        if window is not None and not window.is_new(seq):
            if seq in window:
                return Offer(
                    FrameStatus.DUPLICATE, f"sequence: {seq} from {sid!r} was received before", []
                )
            return Offer(
                FrameStatus.LATE,
                f"sequence: {seq} from {sid!r} is older than the duplicate window "
                f"(forgotten up to {window.floor})",
                [],
            )
        if latest is not None and t <= latest - self.lateness_ns:
            return Offer(
                FrameStatus.LATE,
                f"time: {(latest - t) / NS_PER_S:.3f} s before {sid!r}'s latest frame "
                f"(allowed lateness {self.lateness_ns / NS_PER_S:g} s)",
                [],
            )
        if t <= self._horizon:
            return Offer(
                FrameStatus.LATE,
                f"time: {(self._horizon - t) / NS_PER_S:.3f} s behind the watermark "
                f"({sid!r} was not holding it)",
                [],
            )
        # ACCEPTED: from here on state changes.
        if window is None:
            window = self._windows[sid] = SequenceWindow()
        if latest is None or t > latest:
            latest = self._latest[sid] = t
        if ahead is not None:
            del self._ahead[sid]
        window.add(seq, t)
        window.trim(latest - self.lateness_ns, self.duplicate_window)
        self._expected.add(sid)  # (_join, inline)
        if now is not None:
            self._last_active[sid] = now
        heapq.heappush(self._buffer, ((t, sid, seq), frame))  # frame.order_key
        return Offer(FrameStatus.ACCEPTED, "", self._release())

    def flush(self) -> list[SensorFrame]:
        """End of input: release every buffered frame in order and empty the expected set.

        Later frames at or before the last released time are LATE.
        """
        out = [heapq.heappop(self._buffer)[1] for _ in range(len(self._buffer))]
        if out and out[-1].time_ns > self._horizon:
            self._horizon = out[-1].time_ns
        self._expected.clear()
        self._last_active.clear()
        return out

    # ---- watermark --------------------------------------------------------------
    @property
    def watermark_ns(self) -> float | int:
        """Current watermark (ns); -inf while an expected sensor has sent nothing,
        +inf when no sensor is expected."""
        if not self._expected:
            return _POS_INF
        try:  # (one C-level pass over the expected sensors: it runs every frame)
            lowest = min(map(self._latest.__getitem__, self._expected))
        except KeyError:  # an expected sensor has sent nothing
            return _NEG_INF
        return lowest - self.lateness_ns

    def _release(self) -> list[SensorFrame]:
        wm = self.watermark_ns
        buf = self._buffer
        out: list[SensorFrame] = []
        while buf and buf[0][0][0] <= wm:
            out.append(heapq.heappop(buf)[1])
        if wm == _POS_INF:
            wm = out[-1].time_ns if out else self._horizon
        if wm > self._horizon:
            self._horizon = wm
        return out

    # ---- introspection ----------------------------------------------------------
    @property
    def expected_sensors(self) -> tuple[str, ...]:
        return tuple(sorted(self._expected))

    @property
    def open_streams(self) -> tuple[str, ...]:
        return tuple(sorted(self._open))

    @property
    def buffered(self) -> int:
        """Frames accepted and waiting for the watermark."""
        return len(self._buffer)

    @property
    def oldest_buffered_ns(self) -> int | None:
        """Time of the earliest buffered frame (ns), None when nothing waits.

        Invariant after every call: it is above the watermark (only frames ahead of the
        watermark are held, so the buffer is bounded by the lateness window)."""
        return self._buffer[0][0][0] if self._buffer else None

    @property
    def horizon_ns(self) -> float | int:
        """Highest watermark released so far (ns, -inf before any release)."""
        return self._horizon

    def known_sensors(self) -> frozenset[str]:
        """Every sensor the orderer keeps state for (expected, streaming, or accepted)."""
        return frozenset(self._expected) | frozenset(self._open) | frozenset(self._latest)

    def latest_ns(self, sensor_id: str) -> int | None:
        """Latest accepted time of ``sensor_id`` (ns), None before its first frame."""
        return self._latest.get(sensor_id)

    def window_size(self, sensor_id: str) -> int:
        """Sequences remembered for ``sensor_id``'s duplicate check."""
        w = self._windows.get(sensor_id)
        return 0 if w is None else len(w)

    def holding_sensors(self) -> tuple[str, ...]:
        """Expected sensors that set the current watermark (silent ones first)."""
        silent = sorted(s for s in self._expected if s not in self._latest)
        if silent:
            return tuple(silent)
        if not self._expected:
            return ()
        low = min(self._latest[s] for s in self._expected)
        return tuple(sorted(s for s in self._expected if self._latest[s] == low))
