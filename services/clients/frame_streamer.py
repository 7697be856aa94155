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
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import grpc
import grpc.aio

from tracklayer.fusion.domain import NS_PER_S
from tracklayer.services.clients.sensor_stream import (
    AckCallback,
    Outgoing,
    RunState,
    SendCallback,
    SensorStream,
    StreamFailed,
)
from tracklayer.services.clients.stream_options import (
    CHANNEL_OPTIONS,
    RETRYABLE_CODES,
    STATUS_NAMES,
    StreamerError,
    StreamerOptions,
    StreamProgress,
    StreamResult,
    check_address,
)
from tracklayer.services.clients.thread_source import iterate_in_thread
from tracklayer.v1 import fusion_service_pb2 as fs_pb2
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

__all__ = [
    "CHANNEL_OPTIONS",
    "RETRYABLE_CODES",
    "STATUS_NAMES",
    "FrameStreamer",
    "StreamProgress",
    "StreamResult",
    "StreamerError",
    "StreamerOptions",
    "check_address",
    "iterate_in_thread",
    "stream_frames",
]

log = logging.getLogger("tracklayer.services.frame_streamer")  # name kept from before issue 10


class FrameStreamer:
    """Streams frames from one source into a fusion service; see the module docstring.

    ``progress`` is called with a :class:`StreamProgress` every
    ``options.progress_interval_s`` and once at the end. ``origin_ns``: the log
    time (ns since the Unix epoch) that maps to the start of streaming, e.g. a
    scenario's epoch; default the first frame's log time. ``on_ack`` is called
    with (index of the frame in the source, its ``FrameAck``) as each ack arrives;
    ``on_send`` with the source indexes of a request's frames just before it is written
    (a resend counts again), so that a caller can time frame-sent -> ack.
    """

    def __init__(
        self,
        address: str,
        options: StreamerOptions | None = None,
        progress: Callable[[StreamProgress], None] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        origin_ns: int | None = None,
        on_ack: AckCallback | None = None,
        on_send: SendCallback | None = None,
    ) -> None:
        self.address = address
        self.origin_ns = origin_ns
        self.options = options or StreamerOptions()
        self.progress = progress
        self.credentials = credentials
        self._streams: dict[str, SensorStream] = {}
        self._result = StreamResult()
        self._run = RunState(self.options, self._result, on_ack=on_ack, on_send=on_send)
        self._acked_event = self._run.acked
        self._t0_ns: int | None = None
        self._last_released_ns: int | None = None
        self._source_done = False
        self._failure: BaseException | None = None
        self._dispatch_task: asyncio.Task | None = None
        self._declare_lock = asyncio.Lock()
        self._declare_gen = 0  # declarations made so far
        self._declares = True  # False: the caller declares (no re-declaring after a reconnect)
        self._wall0: float | None = None  # loop time of origin_ns, set once streams are open

    # ---------------------------------------------------------------- public

    async def run(
        self, sensor_ids: Sequence[str], source: Iterable, *, declare: bool = True
    ) -> StreamResult:
        """Declare ``sensor_ids``, stream every ``(log_time_ns, SensorFrame)`` of ``source``.

        Frames of a sensor not in ``sensor_ids`` get a stream of their own when
        they first appear (frames with an empty ``sensor_id`` go on one stream
        that names no sensor, so the service can reject them). ``declare=False``:
        the caller has declared the sensors (or wants them undeclared); the
        streams still open for ``sensor_ids`` first. Raises
        :class:`StreamerError` when the service is unreachable or refuses.
        """
        started = time.monotonic()
        self._declares = declare
        if self.credentials is None:
            channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        else:
            channel = grpc.aio.secure_channel(self.address, self.credentials, CHANNEL_OPTIONS)
        async with channel:
            self._channel = channel
            self._stub = fs_grpc.FusionServiceStub(channel)
            await self._connect()
            ids = list(dict.fromkeys(sensor_ids))
            if declare:
                await self._declare(ids)
            for sid in ids:
                self._open(sid)
            if self.origin_ns is not None:
                self._wall0 = asyncio.get_running_loop().time()
            await self._stream_all(source)
        return self._finish(started)

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
        if not self._declares:
            return
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

    def _open(self, sensor_id: str) -> SensorStream:
        st = SensorStream(sensor_id, self._run)
        self._streams[sensor_id] = st
        st.task = asyncio.create_task(self._run_stream(st), name=f"stream-{sensor_id}")
        st.task.add_done_callback(self._on_stream_done)
        return st

    def _on_stream_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())
        self._acked_event.set()

    def _fail(self, exc: BaseException) -> None:
        """Record the run's first failure and stop the dispatcher (which raises it)."""
        if self._failure is None:
            self._failure = exc
            if self._dispatch_task is not None and not self._dispatch_task.done():
                self._dispatch_task.cancel()

    # --------------------------------------------------------------- the run

    async def _stream_all(self, source: Iterable) -> None:
        """Dispatch ``source`` and wait for every stream; cancel what is left on the way out."""
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

    def _finish(self, started: float) -> StreamResult:
        r = self._result
        r.sensors = len(self._streams)
        r.wall_s = time.monotonic() - started
        if self._t0_ns is not None and self._last_released_ns is not None:
            r.log_span_s = (self._last_released_ns - self._t0_ns) / NS_PER_S
        r.per_sensor = {sid: dict(st.counts) for sid, st in self._streams.items()}
        if self.progress:
            self.progress(self._snapshot())
        return r

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
            st.release(Outgoing(log_time_ns, msg, msg.ByteSize(), self._result.frames))
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

    async def _run_stream(self, st: SensorStream) -> None:
        """Keep one sensor's stream going until every frame of it is acknowledged."""
        opts = self.options
        backoff = 0.05
        last_progress = time.monotonic()
        while True:
            acked_before = self._result.acked
            call = self._stub.StreamFrames()
            try:
                await st.attempt(call)
                log.info("stream %s closed after its last ack", st.label)
                return
            except (StreamFailed, grpc.aio.AioRpcError) as exc:
                call.cancel()
                detail = self._check_retryable(st, exc)
                # Unacknowledged frames go back to the front, in order, to be resent.
                failed_gen = self._declare_gen
                st.requeue_unacked()
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
                    st.label,
                    detail,
                    backoff,
                    len(st.unsent),
                )
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 2.0)
                remaining = max(0.1, opts.reconnect_timeout_s - (time.monotonic() - last_progress))
                await self._await_channel(remaining, detail)
                await self._redeclare(failed_gen)

    def _check_retryable(self, st: SensorStream, exc: Exception) -> str:
        """The failure as text; raises StreamerError when its status is not worth a retry."""
        if not isinstance(exc, grpc.aio.AioRpcError):
            return str(exc)
        code = exc.code()
        detail = f"{code.name}: {exc.details()}"
        if code not in RETRYABLE_CODES:
            raise StreamerError(
                f"fusion service at {self.address} ended the stream of sensor "
                f"{st.sensor_id!r}: {detail}"
            ) from None
        return detail

    async def _await_channel(self, timeout_s: float, detail: str) -> None:
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except TimeoutError:
            raise StreamerError(
                f"lost the fusion service at {self.address}: not reachable again within "
                f"{self.options.reconnect_timeout_s:g} s ({detail})"
            ) from None

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
                    self._fail(
                        StreamerError(
                            f"fusion service at {self.address} acknowledged nothing on the "
                            f"stream of sensor {st.sensor_id!r} for {limit:g} s "
                            f"({len(st.in_flight)} frames waiting)"
                        )
                    )
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
