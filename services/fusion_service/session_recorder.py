"""Recording a live fusion session to MCAP (``tracklayer fusion --record FILE.mcap``).

:class:`SessionRecorder` hooks onto a
:class:`~tracklayer.services.fusion_service.engine.FusionEngine`'s frame and report
listeners. Every frame the service received (whatever its ack: REJECTED, LATE and
DUPLICATE frames are kept too) goes to ``/sensor_frames`` in arrival order with log time
= arrival wall time (ns since the Unix epoch); every emitted report goes to ``/tracks``
with log time = its ``emitted_at``. The metadata record names the fusion identity, its
configuration and the sensors known at start (DESIGN §5).

The listeners run on the event loop, so they only put the message on a bounded
queue (never blocking); a dedicated thread serialises and writes. If the disk
falls so far behind that the queue fills, messages are dropped and counted
(``dropped``), never waiting. Small chunks (64 KiB) and a flush whenever the
queue runs empty keep a file cut short by SIGKILL readable up to its last
complete chunk; :meth:`SessionRecorder.close` (graceful shutdown) completes it.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tracklayer.services.rpc.server import kv
from tracklayer.services.wire.recording import (
    TOPIC_FRAMES,
    TOPIC_TRACKS,
    RecordingError,
    RecordingWriter,
    format_sensor_ids,
)
from tracklayer.v1 import sensor_pb2, track_pb2

log = logging.getLogger("tracklayer.services.fusion")

#: Uncompressed bytes per MCAP chunk: at most this much is lost to a SIGKILL.
RECORD_CHUNK_SIZE = 64 * 1024
#: Messages waiting for the writer thread (bounds memory: ~15 MB at ~300 B per message).
MAX_QUEUED_MESSAGES = 50_000
#: Longest time written chunks stay in the process's file buffer while messages keep coming.
FLUSH_INTERVAL_S = 0.5
_STOP = object()


def session_metadata(
    fusion_id: str,
    fusion_config: Mapping[str, Any],
    allow_list: Iterable[str] = (),
    expected_at_start: Iterable[str] = (),
) -> dict[str, str]:
    """The ``tracklayer`` metadata record of a live recording (string values).

    ``sensor_ids`` is the ``--sensors`` allow-list (every accepted frame comes from
    one of them); without one it is left out, so a reader (``tracklayer replay``)
    finds the sensors by scanning ``/sensor_frames``. ``expected_sensors_at_start``:
    the sensors the ordering waited for when recording began (a restarted service's
    journal may already expect some).
    """
    meta = {
        "source": "fusion --record",
        "fusion_id": fusion_id,
        "fusion_config": json.dumps(dict(fusion_config), sort_keys=True),
    }
    allowed = sorted({s for s in allow_list if s})
    if allowed:
        meta["sensor_ids"] = format_sensor_ids(allowed)
    expected = sorted({s for s in expected_at_start if s and "," not in s})
    meta["expected_sensors_at_start"] = ",".join(expected)
    return meta


def unused_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if nothing is there, else the first free ``<stem>.<n><suffix>`` beside it
    (a restarted service must not overwrite the recording its crash left)."""
    p = Path(path)
    n = 1
    while p.exists():
        p = p.with_name(f"{Path(path).stem}.{n}{Path(path).suffix}")
        n += 1
    return p


class SessionRecorder:
    """Writes a live session to ``path`` from its own thread; see the module docstring.

    Create, :meth:`attach` to an engine (before it serves), :meth:`close` after the
    engine stopped (its final flush reports are recorded too).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: Mapping[str, str],
        *,
        chunk_size: int = RECORD_CHUNK_SIZE,
        max_queued: int = MAX_QUEUED_MESSAGES,
    ) -> None:
        self.path = Path(path)
        self._writer = RecordingWriter(self.path, metadata, chunk_size=chunk_size)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self.frames = 0  # written to /sensor_frames
        self.reports = 0  # written to /tracks
        self.dropped = 0  # not written: the queue was full
        self.error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="fusion-recorder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ listeners (event loop)
    def attach(self, engine: Any) -> None:
        """Register on the engine's frame and report listeners and its counters."""
        engine.frame_listeners.append(self.on_frame)
        engine.report_listeners.append(self.on_reports)
        engine.counter_sources.append(self.counters)

    def counters(self) -> dict[str, int]:
        """GetStatus / Prometheus counters of the recording."""
        return {
            "record_frames_total": self.frames,
            "record_reports_total": self.reports,
            "record_dropped_total": self.dropped,
        }

    def _put(self, item: tuple[str, int, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                log.warning(kv("record_dropping", file=str(self.path), reason="queue full"))

    def on_frame(self, frame: sensor_pb2.SensorFrame, status: int, arrival_ns: int) -> None:
        """A frame as received (any ack status), at its arrival wall time."""
        if not self._closed:
            self._put((TOPIC_FRAMES, arrival_ns, frame))

    def on_reports(self, reports: list[track_pb2.TrackReport]) -> None:
        """Reports as emitted, without ``sensor_positions`` (a display aid: the frames
        on ``/sensor_frames`` hold the positions); log time = ``emitted_at`` (now, if
        unset)."""
        if self._closed:
            return
        now = time.time_ns()
        for r in reports:
            t = r.emitted_at.ToNanoseconds() if r.HasField("emitted_at") else now
            if r.sensor_positions:
                r = track_pb2.TrackReport.FromString(r.SerializeToString())
                r.ClearField("sensor_positions")
            self._put((TOPIC_TRACKS, t, r))

    # ------------------------------------------------------------ writer thread
    def _run(self) -> None:
        w = self._writer
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=FLUSH_INTERVAL_S)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if item is not None and self.error is None:
                topic, log_ns, msg = item
                try:
                    w.write_raw(topic, msg.SerializeToString(), log_ns)
                except Exception as exc:  # noqa: BLE001 - stop writing, keep draining
                    self.error = exc
                    log.error(kv("record_failed", file=str(self.path), error=str(exc)))
                else:
                    if topic == TOPIC_FRAMES:
                        self.frames += 1
                    else:
                        self.reports += 1
            now = time.monotonic()
            if self.error is None and (self._queue.empty() or now - last_flush >= FLUSH_INTERVAL_S):
                try:
                    w.flush()
                except (RecordingError, OSError) as exc:
                    self.error = exc
                last_flush = now

    def close(self) -> None:
        """Write everything queued, then the MCAP summary and footer; idempotent."""
        if self._closed:
            return
        self._closed = True
        while self._thread.is_alive():  # waits only while the writer drains a full queue
            try:
                self._queue.put(_STOP, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        try:
            self._writer.close()
        except RecordingError as exc:
            self.error = self.error or exc
        log.info(
            kv(
                "record_closed",
                file=str(self.path),
                frames=self.frames,
                reports=self.reports,
                dropped=self.dropped,
                error=str(self.error) if self.error else "",
            )
        )
