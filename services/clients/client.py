"""A small synchronous client for the fusion service and the track store.

For scripts and integration tests (:mod:`tracklayer.services.testing`) that
want plain calls rather than ``grpc.aio``::

    with TracklayerClient(fusion_addr, store_addr) as client:
        acks = client.send_frames(frames)         # one FrameAck per frame, input order
        live = client.live_tracks()               # FusionService.ListLiveTracks
        stored = client.stored_tracks()           # TrackStoreService.ListTracks
        revisions = client.history("fusion-1")    # GetTrackHistory
        client.wait_for(lambda: len(client.stored_tracks()) > 0, timeout=10)

Reports come back as domain :class:`~tracklayer.fusion.domain.TrackReport`
objects (SI units, TEME), frames may be given as domain
:class:`~tracklayer.fusion.domain.SensorFrame` or as ``tracklayer.v1.SensorFrame``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

import grpc

from tracklayer.fusion.domain import SensorFrame, TrackReport
from tracklayer.services.clients.frame_streamer import FrameStreamer, StreamerOptions
from tracklayer.services.wire.convert import frame_to_proto, report_from_proto
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
from tracklayer.v1 import sensor_pb2
from tracklayer.v1 import track_store_service_pb2 as ts
from tracklayer.v1 import track_store_service_pb2_grpc as ts_grpc

T = TypeVar("T")
FRAMES_PER_REQUEST = 16  # frames batched into one StreamFramesRequest
_OPTIONS = (
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
)


def _run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end on a fresh event loop: here, or in a worker thread when this
    thread already runs a loop (a blocking client called from async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=work, name="send-frames", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _wire_frame(f: SensorFrame | sensor_pb2.SensorFrame) -> sensor_pb2.SensorFrame:
    return f if isinstance(f, sensor_pb2.SensorFrame) else frame_to_proto(f)


class TrackSubscription:
    """A live ``SubscribeTracks`` call read by a background thread.

    ``reports`` grows in the order the store sent them (protobuf
    ``tracklayer.v1.TrackReport``, exactly as on the wire); ``error`` holds the
    call's end status if it ended other than by :meth:`close`.
    """

    def __init__(self, stub: ts_grpc.TrackStoreServiceStub, include_current: bool) -> None:
        self.reports: list = []
        self.error: grpc.RpcError | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._call = stub.SubscribeTracks(
            ts.SubscribeTracksRequest(include_current=include_current)
        )
        self._thread = threading.Thread(target=self._read, name="track-subscription", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for resp in self._call:
                with self._cond:
                    self.reports.extend(resp.reports)
                    self._cond.notify_all()
        except grpc.RpcError as exc:
            if not self._closed:
                self.error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    @property
    def ended(self) -> bool:
        """True once the call has ended (server shutdown, error or :meth:`close`)."""
        return not self._thread.is_alive()

    def domain_reports(self) -> list[TrackReport]:
        """The reports received so far, as domain objects."""
        with self._cond:
            return [report_from_proto(r) for r in self.reports]

    def wait_for_count(self, n: int, timeout: float = 30.0) -> list:
        """Block until at least ``n`` reports arrived; returns them (TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.reports) < n:
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    raise TimeoutError(
                        f"subscription: {len(self.reports)} of {n} reports after {timeout:g} s"
                        + (f" (call ended: {self.error.code().name})" if self.error else "")
                    )
                self._cond.wait(min(left, 0.5))
            return list(self.reports)

    def close(self) -> None:
        """Cancel the call and join the reader thread."""
        self._closed = True
        self._call.cancel()
        self._thread.join(5.0)


class TracklayerClient:
    """Blocking client of a fusion service (``fusion_addr``) and a track store (``store_addr``).

    Either address may be None when only the other service is used. ``timeout``:
    deadline (s) of each unary call.
    """

    def __init__(
        self, fusion_addr: str | None, store_addr: str | None, *, timeout: float = 30.0
    ) -> None:
        self.fusion_addr = fusion_addr
        self.store_addr = store_addr
        self.timeout = timeout
        self._channels: list[grpc.Channel] = []
        self._subs: list[TrackSubscription] = []
        self._fusion: fs_grpc.FusionServiceStub | None = None
        self._store: ts_grpc.TrackStoreServiceStub | None = None
        if fusion_addr:
            ch = grpc.insecure_channel(fusion_addr, options=_OPTIONS)
            self._channels.append(ch)
            self._fusion = fs_grpc.FusionServiceStub(ch)
        if store_addr:
            ch = grpc.insecure_channel(store_addr, options=_OPTIONS)
            self._channels.append(ch)
            self._store = ts_grpc.TrackStoreServiceStub(ch)

    # ------------------------------------------------------------ plumbing

    def __enter__(self) -> TracklayerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End subscriptions and close the channels."""
        for s in self._subs:
            s.close()
        self._subs.clear()
        for ch in self._channels:
            ch.close()
        self._channels.clear()

    @property
    def fusion(self) -> fs_grpc.FusionServiceStub:
        """The raw FusionService stub (for calls this helper does not wrap)."""
        if self._fusion is None:
            raise ValueError("fusion_addr: this client was made without a fusion service")
        return self._fusion

    @property
    def store(self) -> ts_grpc.TrackStoreServiceStub:
        """The raw TrackStoreService stub."""
        if self._store is None:
            raise ValueError("store_addr: this client was made without a track store")
        return self._store

    # ------------------------------------------------------------ fusion service

    def declare(self, sensor_ids: Iterable[str]) -> list[str]:
        """``DeclareSensors``: the sensors join the expected set; returns the whole set."""
        resp = self.fusion.DeclareSensors(
            fs.DeclareSensorsRequest(sensor_ids=list(sensor_ids)), timeout=self.timeout
        )
        return list(resp.expected_sensor_ids)

    def send_frames(
        self, frames: Sequence[SensorFrame | sensor_pb2.SensorFrame], *, declare: bool = True
    ) -> list[sensor_pb2.FrameAck]:
        """Stream ``frames`` into the fusion service; one ``FrameAck`` per frame, input order.

        As a sensor node does (DESIGN §6), through the same
        :class:`~tracklayer.services.clients.frame_streamer.FrameStreamer`: the
        sensors are declared first, then each sensor's frames go, in input order,
        over a stream of its own (all streams concurrently, ``FRAMES_PER_REQUEST``
        per request, unpaced), and each stream is closed at the end, which
        removes its sensor from the expected set. Once every stream of the
        service is closed the service flushes, as at the end of a file. Frames
        with an empty ``sensor_id`` share one stream (they come back REJECTED).
        A stream that fails is reopened and its unacknowledged frames resent;
        :class:`~tracklayer.services.clients.stream_options.StreamerError` when
        the service stays unreachable for ``timeout`` seconds or refuses a stream.
        """
        wire = [_wire_frame(f) for f in frames]
        if not wire:
            return []
        sensors = sorted({m.sensor_id for m in wire if m.sensor_id})
        if declare and sensors:
            self.declare(sensors)
        acks: list[sensor_pb2.FrameAck | None] = [None] * len(wire)

        def keep(index: int, ack: sensor_pb2.FrameAck) -> None:
            acks[index] = ack

        options = StreamerOptions(
            speed=None,
            max_batch_frames=FRAMES_PER_REQUEST,
            connect_timeout_s=self.timeout,
            reconnect_timeout_s=self.timeout,
        )
        streamer = FrameStreamer(self.fusion_addr or "", options, on_ack=keep)
        # Log time 0 for every frame: no pacing and no virtual-clock window, input order.
        _run_coroutine(streamer.run(sensors, ((0, m) for m in wire), declare=False))
        missing = sum(a is None for a in acks)
        if missing:
            raise RuntimeError(f"send_frames: {missing} of {len(acks)} frames got no ack")
        return acks  # type: ignore[return-value]

    def live_tracks(self) -> list[TrackReport]:
        """``ListLiveTracks``: the latest report of each live track of the fusion service."""
        resp = self.fusion.ListLiveTracks(fs.ListLiveTracksRequest(), timeout=self.timeout)
        return [report_from_proto(r) for r in resp.tracks]

    def status(self) -> dict[str, int]:
        """``GetStatus`` counters (Prometheus sample names, e.g. ``frames_total{...}``)."""
        resp = self.fusion.GetStatus(fs.GetStatusRequest(), timeout=self.timeout)
        return dict(resp.counters)

    # ------------------------------------------------------------ track store

    def stored_tracks(self, include_deleted: bool = False) -> list[TrackReport]:
        """``ListTracks``: the latest stored revision of each track."""
        resp = self.store.ListTracks(
            ts.ListTracksRequest(include_deleted=include_deleted), timeout=self.timeout
        )
        return [report_from_proto(r) for r in resp.tracks]

    def history(self, track_id: str) -> list[TrackReport]:
        """``GetTrackHistory``: every stored revision of ``track_id``, in order."""
        resp = self.store.GetTrackHistory(
            ts.GetTrackHistoryRequest(track_id=track_id), timeout=self.timeout
        )
        return [report_from_proto(r) for r in resp.reports]

    def all_stored_reports(self) -> list[TrackReport]:
        """Every stored revision of every track (deleted ones too), by track then revision."""
        out: list[TrackReport] = []
        for t in sorted(self.stored_tracks(include_deleted=True), key=lambda r: r.track_id):
            out += self.history(t.track_id)
        return out

    def subscribe(self, include_current: bool = True) -> TrackSubscription:
        """Start a ``SubscribeTracks`` call read in the background (closed with the client)."""
        sub = TrackSubscription(self.store, include_current)
        self._subs.append(sub)
        return sub

    # ------------------------------------------------------------ waiting

    @staticmethod
    def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.1) -> T:
        """Call ``predicate()`` until it returns something truthy; return that value.

        Raises TimeoutError after ``timeout`` seconds (naming the last value seen).
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"wait_for: still {value!r} after {timeout:g} s")
            time.sleep(interval)
