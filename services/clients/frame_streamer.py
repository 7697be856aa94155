"""The client-side engine that streams sensor frames into a fusion service.

One engine serves both ``tracklayer sensors`` (live simulated satellites) and
``tracklayer replay`` (a recording). It talks to ``tracklayer.v1.FusionService``
over ``grpc.aio`` (DESIGN §9) and keeps the ordering promises of DESIGN §6:

- It first declares every sensor it will stream (``DeclareSensors``), then
  opens one ``StreamFrames`` call per sensor whose first request names the
  sensor (``StreamFramesRequest.sensor_id``), so every stream is open, and in
  the service's expected set, before any data flows (rule 2).
- Frames are released in source order (the delivery / recorded order) on one
  shared clock: ``wall = start + (log_time - t0) / speed``. Without pacing
  (``speed=None``, ``--max-speed``) the streams still share a *virtual* clock:
  a frame is released only while its log time is within ``window_s`` of the
  oldest unacknowledged frame of any stream, so no stream runs ahead of the
  slowest by more than that window, and frames are batched per request.
- Every frame is kept until its ``FrameAck`` arrives (acks come one per frame,
  in the order sent). A stream that fails is reopened with back-off and its
  unacknowledged frames are resent in order (the service answers DUPLICATE for
  the ones it already holds). Each stream has a bounded in-flight window, so a
  service that reads slowly holds back only that stream (back-pressure).
- Each stream is closed (half-closed, then drained of acks) once the source
  has no more frames; that removes its sensor from the expected set. The run
  ends when every frame is acknowledged.

The source is a plain iterable of ``(log_time_ns, tracklayer.v1.SensorFrame)``
in delivery order; it runs in a worker thread so that a simulator or a file
reader never blocks the event loop. Frames are sent exactly as given (a
replayed bad frame stays bad and comes back REJECTED).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import grpc
import grpc.aio

from tracklayer.fusion.domain import NS_PER_S
from tracklayer.v1 import fusion_service_pb2 as fs_pb2
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
from tracklayer.v1 import sensor_pb2

log = logging.getLogger(__name__)


#: Status codes after which a stream is reopened and its unacknowledged frames resent.
#: Not ABORTED: the service ends a stream so when a newer stream of the same sensor
#: replaced it (DESIGN §6 rule 5), i.e. another client is streaming this sensor.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

#: Channel options: reconnect quickly after a fusion-service restart (gRPC's
#: default back-off starts at 1 s and grows to 120 s).
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)

STATUS_NAMES = {
    v: sensor_pb2.FrameStatus.Name(v).removeprefix("FRAME_STATUS_")
    for v in sensor_pb2.FrameStatus.values()
}


class StreamerError(Exception):
    """The fusion service cannot be reached or refused the run; one line, names the address."""


def check_address(address: str, flag: str = "--fusion") -> str:
    """Validate ``HOST:PORT`` (IPv6 as ``[::1]:PORT``); return it unchanged or raise ValueError."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{flag}: expected HOST:PORT (e.g. 127.0.0.1:50051), got {address!r}")
    return address


@dataclass(frozen=True, slots=True)
class StreamerOptions:
    """How frames are paced and batched.

    ``speed``: log-time seconds per wall second; ``None`` streams as fast as the
    service acknowledges (``--max-speed``). ``window_s``: how far (log time, s)
    a released frame may be ahead of the oldest unacknowledged frame of any
    stream. ``max_in_flight``: unacknowledged frames per stream.
    """

    speed: float | None = 1.0
    window_s: float = 30.0
    max_in_flight: int = 512
    max_batch_frames: int = 100
    max_batch_bytes: int = 1 << 20
    connect_timeout_s: float = 10.0
    reconnect_timeout_s: float = 60.0
    progress_interval_s: float = 0.25
    source_chunk: int = 512

    def __post_init__(self) -> None:
        if self.speed is not None and not self.speed > 0:
            raise ValueError(f"speed: must be > 0, got {self.speed}")
        if not self.window_s > 0:
            raise ValueError(f"window_s: must be > 0, got {self.window_s}")
        if self.max_in_flight < 1 or self.max_batch_frames < 1:
            raise ValueError("max_in_flight and max_batch_frames: must be >= 1")


@dataclass(slots=True)
class StreamProgress:
    """A snapshot for progress displays; ``log_time_s`` is seconds since the first frame."""

    released: int
    acked: int
    log_time_s: float
    counts: dict[str, int]
    reconnects: int
    source_done: bool


@dataclass(slots=True)
class StreamResult:
    """What a run did: acks by status (names as ``ACCEPTED`` ...), resends and timing."""

    frames: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {n: 0 for n in STATUS_NAMES.values()})
    resent: int = 0
    resent_duplicates: int = 0
    reconnects: int = 0
    sensors: int = 0
    wall_s: float = 0.0
    log_span_s: float = 0.0
    max_behind_s: float = 0.0  # paced runs: worst lateness of a frame's release (source too slow)
    reasons: dict[str, int] = field(default_factory=dict)
    per_sensor: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def acked(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """Human summary: one line of totals, then up to five distinct rejection/late reasons."""
        rate = self.frames / self.wall_s if self.wall_s > 0 else 0.0
        parts = [f"{name} {n}" for name, n in self.counts.items() if n or name != "UNSPECIFIED"]
        line = (
            f"{self.frames} frames on {self.sensors} streams in {self.wall_s:.2f} s "
            f"({rate:.0f} frames/s, {self.log_span_s:.1f} s of log time); acks: " + ", ".join(parts)
        )
        if self.resent_duplicates:
            line += (
                f" ({self.resent_duplicates} DUPLICATE were resends of frames the service "
                "already held)"
            )
        if self.reconnects:
            line += f"; {self.reconnects} reconnects, {self.resent} frames resent"
        if self.max_behind_s > 1.0:
            line += f"; fell up to {self.max_behind_s:.1f} s behind the requested pace"
        lines = [line]
        for reason, n in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  {n} x {reason}")
        return "\n".join(lines)


@dataclass(slots=True)
class _Outgoing:
    log_time_ns: int
    msg: sensor_pb2.SensorFrame
    size: int
    sends: int = 0


class _Stream:
    """Frames of one sensor: released but unsent, and sent but unacknowledged (both in order)."""

    __slots__ = ("sensor_id", "unsent", "in_flight", "wake", "done", "task", "counts", "last_ack")

    def __init__(self, sensor_id: str) -> None:
        self.sensor_id = sensor_id
        self.unsent: deque[_Outgoing] = deque()
        self.in_flight: deque[_Outgoing] = deque()
        self.wake = asyncio.Event()
        self.done = False  # the source has no more frames
        self.task: asyncio.Task | None = None
        self.counts: dict[str, int] = {}
        self.last_ack = 0.0  # monotonic time of the last ack (or of a send into an empty window)

    def oldest_ns(self) -> int | None:
        if self.in_flight:
            return self.in_flight[0].log_time_ns
        if self.unsent:
            return self.unsent[0].log_time_ns
        return None

    def finished(self) -> bool:
        return self.done and not self.unsent and not self.in_flight


class _StreamFailed(Exception):
    """One attempt of one stream ended early; the stream will be reopened."""


async def iterate_in_thread(
    items: Iterable, chunk: int = 64, max_wait_s: float = 0.05, max_chunks: int = 16
) -> AsyncIterator:
    """Run a blocking iterator in a worker thread and yield its items here, in order.

    Items cross in chunks of up to ``chunk`` (or whatever arrived within
    ``max_wait_s``), at most ``max_chunks`` ahead. An exception raised by the
    iterator is re-raised here.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=max_chunks)
    stop = threading.Event()
    end = object()

    def put(obj: object) -> bool:
        """Hand ``obj`` to the loop; False once the consumer has gone (never raises)."""
        if stop.is_set():
            return False
        coro = queue.put(obj)
        try:
            fut = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop is closed
            coro.close()
            return False
        while True:
            try:
                fut.result(timeout=0.2)
                return True
            except TimeoutError:
                if stop.is_set() or loop.is_closed():
                    fut.cancel()
                    return False
            except BaseException:  # cancelled along with the loop
                return False

    def work() -> None:
        try:
            buf: list = []
            first = 0.0
            for item in items:
                if not buf:
                    first = time.monotonic()
                buf.append(item)
                if len(buf) >= chunk or time.monotonic() - first >= max_wait_s:
                    if not put(buf):
                        return
                    buf = []
                if stop.is_set():
                    return
            if buf and not put(buf):
                return
            put(end)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=work, name="frame-source", daemon=True)
    thread.start()
    try:
        while True:
            got = await queue.get()
            if got is end:
                return
            if isinstance(got, BaseException):
                raise got
            for item in got:
                yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a producer waiting on a full queue
            queue.get_nowait()


class FrameStreamer:
    """Streams frames from one source into a fusion service; see the module docstring.

    ``progress`` is called with a :class:`StreamProgress` every
    ``options.progress_interval_s`` and once at the end. ``origin_ns``: the log
    time (ns since the Unix epoch) that maps to the start of streaming, e.g. a
    scenario's epoch; default the first frame's log time.
    """

    def __init__(
        self,
        address: str,
        options: StreamerOptions | None = None,
        progress: Callable[[StreamProgress], None] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        origin_ns: int | None = None,
    ) -> None:
        self.address = address
        self.origin_ns = origin_ns
        self.options = options or StreamerOptions()
        self.progress = progress
        self.credentials = credentials
        self._streams: dict[str, _Stream] = {}
        self._result = StreamResult()
        self._acked_event = asyncio.Event()
        self._t0_ns: int | None = None
        self._last_released_ns: int | None = None
        self._source_done = False
        self._failure: BaseException | None = None
        self._dispatch_task: asyncio.Task | None = None
        self._declare_lock = asyncio.Lock()
        self._declare_gen = 0  # declarations made so far
        self._ack_mismatches = 0
        self._wall0: float | None = None  # loop time of origin_ns, set once streams are open

    # ---------------------------------------------------------------- public

    async def run(self, sensor_ids: Sequence[str], source: Iterable) -> StreamResult:
        """Declare ``sensor_ids``, stream every ``(log_time_ns, SensorFrame)`` of ``source``.

        Frames of a sensor not in ``sensor_ids`` get a stream of their own when
        they first appear (frames with an empty ``sensor_id`` go on one stream
        that names no sensor, so the service can reject them). Raises
        :class:`StreamerError` when the service is unreachable or refuses.
        """
        started = time.monotonic()
        if self.credentials is None:
            channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        else:
            channel = grpc.aio.secure_channel(self.address, self.credentials, CHANNEL_OPTIONS)
        async with channel:
            self._channel = channel
            self._stub = fs_grpc.FusionServiceStub(channel)
            await self._connect()
            ids = list(dict.fromkeys(sensor_ids))
            await self._declare(ids)
            for sid in ids:
                self._open(sid)
            if self.origin_ns is not None:
                self._wall0 = asyncio.get_running_loop().time()
            ticker = asyncio.create_task(self._tick()) if self.progress else None
            watchdog = asyncio.create_task(self._watch_acks())
            self._dispatch_task = asyncio.create_task(self._dispatch(source))
            try:
                try:
                    await self._dispatch_task
                except asyncio.CancelledError:
                    if self._failure is None:
                        raise
                    raise self._failure from None
                await self._wait_streams()
            finally:
                watchdog.cancel()
                if ticker is not None:
                    ticker.cancel()
                for st in self._streams.values():
                    if st.task is not None and not st.task.done():
                        st.task.cancel()
                await asyncio.gather(
                    *(st.task for st in self._streams.values() if st.task is not None),
                    return_exceptions=True,
                )
        r = self._result
        r.sensors = len(self._streams)
        r.wall_s = time.monotonic() - started
        if self._t0_ns is not None and self._last_released_ns is not None:
            r.log_span_s = (self._last_released_ns - self._t0_ns) / NS_PER_S
        r.per_sensor = {sid: dict(st.counts) for sid, st in self._streams.items()}
        if self.progress:
            self.progress(self._snapshot())
        return r

    # ------------------------------------------------------------- connection

    async def _connect(self) -> None:
        timeout = self.options.connect_timeout_s
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            hint = "; with mTLS, check the --tls-* files" if self.credentials else ""
            raise StreamerError(
                f"cannot reach the fusion service at {self.address} (not ready within "
                f"{timeout:g} s{hint})"
            ) from None

    async def _declare(self, ids: list[str]) -> None:
        # A service restarting just then drops the call (UNAVAILABLE): retry until the
        # connect timeout, as the streams do; any other refusal is final.
        deadline = time.monotonic() + self.options.connect_timeout_s
        backoff = 0.05
        while True:
            try:
                await self._stub.DeclareSensors(
                    fs_pb2.DeclareSensorsRequest(sensor_ids=[i for i in ids if i]),
                    timeout=max(0.1, deadline - time.monotonic()),
                    wait_for_ready=True,
                )
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise StreamerError(
                        f"DeclareSensors at {self.address} failed: {exc.code().name}: "
                        f"{exc.details()}"
                    ) from None
                log.warning("DeclareSensors failed (%s); retrying", exc.code().name)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
        self._declare_gen += 1
        log.info("declared %d sensors to %s", len(ids), self.address)

    async def _redeclare(self, failed_gen: int) -> None:
        """Declare every unfinished sensor again before a stream reopens.

        A restarted service may have lost the expected set; declaring all the
        sensors still streaming before any of them resends keeps the first
        stream back from running the watermark past the others (DESIGN §6).
        Streams that failed together share one declaration: ``failed_gen`` is
        the declaration count when this stream failed.
        """
        async with self._declare_lock:
            if self._declare_gen > failed_gen:
                return  # another stream declared after this one failed
            ids = [sid for sid, st in self._streams.items() if sid and not st.finished()]
            try:
                await self._stub.DeclareSensors(
                    fs_pb2.DeclareSensorsRequest(sensor_ids=ids),
                    timeout=self.options.connect_timeout_s,
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("re-declaring sensors failed: %s", exc.code().name)
                return
            self._declare_gen += 1

    def _open(self, sensor_id: str) -> _Stream:
        st = _Stream(sensor_id)
        self._streams[sensor_id] = st
        st.task = asyncio.create_task(self._run_stream(st), name=f"stream-{sensor_id}")
        st.task.add_done_callback(self._on_stream_done)
        return st

    def _on_stream_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            if self._dispatch_task is not None and not self._dispatch_task.done():
                self._dispatch_task.cancel()
        self._acked_event.set()

    # --------------------------------------------------------------- dispatch

    def _oldest_pending_ns(self) -> int | None:
        oldest = None
        for st in self._streams.values():
            t = st.oldest_ns()
            if t is not None and (oldest is None or t < oldest):
                oldest = t
        return oldest

    async def _dispatch(self, source: Iterable) -> None:
        """Release frames in source order on the shared (wall or virtual) clock."""
        opts = self.options
        frames = iterate_in_thread(source, chunk=opts.source_chunk)
        async with contextlib.aclosing(frames):
            await self._release(frames)
        self._source_done = True
        for st in self._streams.values():
            st.done = True
            st.wake.set()

    async def _release(self, frames: AsyncIterator) -> None:
        loop = asyncio.get_running_loop()
        opts = self.options
        window_ns = int(opts.window_s * NS_PER_S)
        floor_ns = None  # a lower bound of the oldest pending log time (never decreases)
        wall0 = 0.0
        stream_of = self._streams
        async for log_time_ns, msg in frames:
            self._raise_failure()
            if self._t0_ns is None:
                self._t0_ns = log_time_ns if self.origin_ns is None else self.origin_ns
                wall0 = self._wall0 if self._wall0 is not None else loop.time()
            # Virtual clock: wait until this frame is within the window of the slowest stream.
            while floor_ns is not None and log_time_ns > floor_ns + window_ns:
                floor_ns = self._oldest_pending_ns()
                if floor_ns is None or log_time_ns <= floor_ns + window_ns:
                    break
                self._acked_event.clear()
                await self._acked_event.wait()
                self._raise_failure()
            if opts.speed is not None:
                delay = wall0 + (log_time_ns - self._t0_ns) / NS_PER_S / opts.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif -delay > self._result.max_behind_s:
                    self._result.max_behind_s = -delay
            st = stream_of.get(msg.sensor_id)
            if st is None:
                st = self._open(msg.sensor_id)
            st.unsent.append(_Outgoing(log_time_ns, msg, msg.ByteSize()))
            st.wake.set()
            if floor_ns is None:
                floor_ns = log_time_ns
            self._last_released_ns = log_time_ns
            self._result.frames += 1

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _wait_streams(self) -> None:
        while not all(st.finished() for st in self._streams.values()):
            self._raise_failure()
            self._acked_event.clear()
            await self._acked_event.wait()
        self._raise_failure()
        await asyncio.gather(*(st.task for st in self._streams.values() if st.task is not None))

    # ----------------------------------------------------------------- stream

    async def _run_stream(self, st: _Stream) -> None:
        """Keep one sensor's stream going until every frame of it is acknowledged."""
        opts = self.options
        backoff = 0.05
        last_progress = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            acked_before = self._result.acked
            call = self._stub.StreamFrames()
            try:
                await self._attempt(st, call)
                log.info("stream %s closed after its last ack", st.sensor_id or "<no id>")
                return
            except (_StreamFailed, grpc.aio.AioRpcError) as exc:
                call.cancel()
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                detail = (
                    f"{code.name}: {exc.details()}"
                    if isinstance(exc, grpc.aio.AioRpcError)
                    else str(exc)
                )
                if code is not None and code not in RETRYABLE_CODES:
                    raise StreamerError(
                        f"fusion service at {self.address} ended the stream of sensor "
                        f"{st.sensor_id!r}: {detail}"
                    ) from None
                # Unacknowledged frames go back to the front, in order, to be resent.
                failed_gen = self._declare_gen
                for f in reversed(st.in_flight):
                    st.unsent.appendleft(f)
                st.in_flight.clear()
                now = time.monotonic()
                if self._result.acked > acked_before:
                    last_progress = now
                    backoff = 0.05
                if now - last_progress > opts.reconnect_timeout_s:
                    raise StreamerError(
                        f"lost the fusion service at {self.address}: stream of sensor "
                        f"{st.sensor_id!r} made no progress for {opts.reconnect_timeout_s:g} s "
                        f"({detail})"
                    ) from None
                self._result.reconnects += 1
                log.warning(
                    "stream %s failed (%s); reopening in %.2f s, %d frames to resend",
                    st.sensor_id or "<no id>",
                    detail,
                    backoff,
                    len(st.unsent),
                )
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 2.0)
                remaining = max(0.1, opts.reconnect_timeout_s - (time.monotonic() - last_progress))
                try:
                    await asyncio.wait_for(self._channel.channel_ready(), remaining)
                except TimeoutError:
                    raise StreamerError(
                        f"lost the fusion service at {self.address}: not reachable again within "
                        f"{opts.reconnect_timeout_s:g} s ({detail})"
                    ) from None
                await self._redeclare(failed_gen)

    async def _attempt(self, st: _Stream, call: grpc.aio.StreamStreamCall) -> None:
        reader = asyncio.create_task(self._read_acks(st, call))
        try:
            try:
                await self._write_frames(st, call, reader)
            except asyncio.InvalidStateError:
                pass  # the call has already ended; the reader tells how
            await reader
        finally:
            if not reader.done():
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)

    async def _write_frames(
        self, st: _Stream, call: grpc.aio.StreamStreamCall, reader: asyncio.Task
    ) -> None:
        opts = self.options
        if st.sensor_id:
            await call.write(fs_pb2.StreamFramesRequest(sensor_id=st.sensor_id))
        while True:
            while not st.unsent or len(st.in_flight) >= opts.max_in_flight:
                if st.done and not st.unsent:
                    await call.done_writing()  # closes the stream once the acks are in
                    return
                if reader.done():
                    return  # failed or ended: the reader's outcome decides
                st.wake.clear()
                waiter = asyncio.ensure_future(st.wake.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
            room = opts.max_in_flight - len(st.in_flight)
            batch = []
            size = 0
            while st.unsent and len(batch) < min(room, opts.max_batch_frames):
                f = st.unsent[0]
                if batch and size + f.size > opts.max_batch_bytes:
                    break
                st.unsent.popleft()
                f.sends += 1
                if f.sends == 2:
                    self._result.resent += 1
                batch.append(f)
                size += f.size
            if not st.in_flight:
                st.last_ack = time.monotonic()  # the ack clock starts with the first frame out
            st.in_flight.extend(batch)
            await call.write(fs_pb2.StreamFramesRequest(frames=[f.msg for f in batch]))

    async def _read_acks(self, st: _Stream, call: grpc.aio.StreamStreamCall) -> None:
        result = self._result
        counts = result.counts
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                if st.in_flight or not st.done or st.unsent:
                    raise _StreamFailed(
                        f"stream ended by the service with {len(st.in_flight)} frames "
                        "unacknowledged"
                    )
                return
            for ack in resp.acks:
                if not st.in_flight:
                    raise _StreamFailed("ack for a frame that was never sent")
                f = st.in_flight.popleft()
                if (
                    ack.sequence != f.msg.sequence or ack.sensor_id != f.msg.sensor_id
                ) and self._ack_mismatches == 0:
                    self._ack_mismatches += 1
                    log.warning(
                        "ack (%s, %d) does not match the oldest unacknowledged frame (%s, %d)",
                        ack.sensor_id,
                        ack.sequence,
                        f.msg.sensor_id,
                        f.msg.sequence,
                    )
                name = STATUS_NAMES.get(ack.status, str(ack.status))
                counts[name] = counts.get(name, 0) + 1
                st.counts[name] = st.counts.get(name, 0) + 1
                if ack.status == sensor_pb2.FRAME_STATUS_DUPLICATE and f.sends > 1:
                    result.resent_duplicates += 1
                if ack.reason:
                    key = f"{name}: {ack.reason}"
                    if key in result.reasons or len(result.reasons) < 100:
                        result.reasons[key] = result.reasons.get(key, 0) + 1
            st.last_ack = time.monotonic()
            st.wake.set()
            self._acked_event.set()

    # --------------------------------------------------------------- progress

    def _snapshot(self) -> StreamProgress:
        t = 0.0
        if self._t0_ns is not None and self._last_released_ns is not None:
            t = (self._last_released_ns - self._t0_ns) / NS_PER_S
        return StreamProgress(
            released=self._result.frames,
            acked=self._result.acked,
            log_time_s=t,
            counts=dict(self._result.counts),
            reconnects=self._result.reconnects,
            source_done=self._source_done,
        )

    async def _watch_acks(self) -> None:
        """Fail the run when a connected stream gets no ack for ``reconnect_timeout_s``.

        A service that keeps the connection but stops answering (hung, or
        wedged) would otherwise hold the run forever.
        """
        limit = self.options.reconnect_timeout_s
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            now = time.monotonic()
            for st in self._streams.values():
                if st.in_flight and now - st.last_ack > limit:
                    self._failure = StreamerError(
                        f"fusion service at {self.address} acknowledged nothing on the stream "
                        f"of sensor {st.sensor_id!r} for {limit:g} s ({len(st.in_flight)} frames "
                        "waiting)"
                    )
                    if self._dispatch_task is not None and not self._dispatch_task.done():
                        self._dispatch_task.cancel()
                    self._acked_event.set()
                    return

    async def _tick(self) -> None:
        assert self.progress is not None
        while True:
            await asyncio.sleep(self.options.progress_interval_s)
            self.progress(self._snapshot())


async def stream_frames(
    address: str,
    sensor_ids: Sequence[str],
    source: Iterable,
    options: StreamerOptions | None = None,
    progress: Callable[[StreamProgress], None] | None = None,
) -> StreamResult:
    """Convenience: ``FrameStreamer(address, options, progress).run(sensor_ids, source)``."""
    return await FrameStreamer(address, options, progress).run(sensor_ids, source)
