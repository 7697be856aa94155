"""The fusion engine's stream bookkeeping: open calls, sensor owners, stale streams.

The core counts journaled stream opens minus closes per sensor (the engine's
``opens``, checkpointed with the core). :class:`StreamBook` keeps the live side:

* every open ``StreamFrames`` call (:class:`StreamState`, counted by the per-client
  cap of :class:`~tracklayer.services.fusion_service.caps.Caps`);
* the call that owns each sensor: a newer call naming the same sensor replaces it
  (DESIGN §6 rule 5);
* *stale* streams: open in the core with no call behind them, left by a previous
  process (after a replay) or cut by the network (the call ended without its client
  closing it). They close when their sensor reconnects, or after the idle timeout,
  so a flaky link is not the end of the input (DESIGN §6 rule 4).

The book decides which OPEN / CLOSE inputs to queue (through ``enqueue``); the
engine's worker applies and journals them in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tracklayer.services.fusion_service.caps import Caps
from tracklayer.services.fusion_service.inputs import EngineInput
from tracklayer.services.fusion_service.journal import EventKind
from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.fusion")


@dataclass(eq=False)
class StreamState:
    """One StreamFrames call; ``sensor_id`` set when it names its sensor."""

    peer: str
    client: str = ""  # identity the per-client stream cap counts
    sensor_id: str | None = None
    on_replaced: Callable[[], None] | None = None
    on_shutdown: Callable[[], None] | None = None
    on_unavailable: Callable[[BaseException], None] | None = None  # full disk: end now
    frames: Counter = field(default_factory=Counter)  # ack status -> count
    closed: bool = False


class StreamBook:
    """Open calls, the owner of each sensor and the stale streams of one engine."""

    def __init__(self, caps: Caps, enqueue: Callable[[EngineInput], None]) -> None:
        self.caps = caps
        self._enqueue = enqueue
        self._calls: set[StreamState] = set()
        self._owners: dict[str, StreamState] = {}
        self._stale: dict[str, int] = {}  # sensor -> streams open in the core, no call
        self._stale_since: dict[str, float] = {}  # sensor -> wall time it became stale

    def __len__(self) -> int:
        """Open calls."""
        return len(self._calls)

    def calls(self) -> list[StreamState]:
        return list(self._calls)

    @property
    def stale_streams(self) -> int:
        return sum(self._stale.values())

    def reset(self, opens: Counter, *, forget_owners: bool) -> None:
        """After a replay: every stream the core holds open is stale from now on;
        ``forget_owners``: the calls that owned sensors are gone (a rebuilt core)."""
        if forget_owners:
            self._owners.clear()
        self._stale = {s: n for s, n in opens.items() if n > 0}
        self._stale_since = dict.fromkeys(self._stale, time.time())

    def new(self, peer: str, client: str) -> StreamState:
        """A new call; raises TooManyStreams past the per-client cap."""
        self.caps.open_stream(client)
        st = StreamState(peer, client)
        self._calls.add(st)
        return st

    def open(self, st: StreamState, sensor_id: str) -> None:
        """``st`` names ``sensor_id``: queue its OPEN, then a CLOSE for each stale stream
        of the sensor; an older call of the sensor is replaced (told to end)."""
        self.caps.admit_sensors((sensor_id,))
        st.sensor_id = sensor_id
        old = self._owners.get(sensor_id)
        self._owners[sensor_id] = st
        self._enqueue(EngineInput(EventKind.OPEN, sensor_id, time.time()))
        self._stale_since.pop(sensor_id, None)
        for _ in range(self._stale.pop(sensor_id, 0)):
            self._enqueue(EngineInput(EventKind.CLOSE, sensor_id))
        if old is not None and not old.closed and old.on_replaced is not None:
            old.on_replaced()

    def close(self, st: StreamState, *, cut: bool, closing: bool, worker_alive: bool) -> None:
        """The call ended. The owner of a sensor, ``cut`` while the engine is not
        ``closing``, leaves its stream stale; otherwise the stream's CLOSE is queued
        (while the worker is alive to apply it)."""
        if st.closed:
            return
        st.closed = True
        self._calls.discard(st)
        self.caps.close_stream(st.client)
        if st.sensor_id is None:
            return
        if self._owners.get(st.sensor_id) is st:
            del self._owners[st.sensor_id]
            if cut and not closing:
                self._stale[st.sensor_id] = self._stale.get(st.sensor_id, 0) + 1
                self._stale_since[st.sensor_id] = time.time()
                return
        if worker_alive:
            self._enqueue(EngineInput(EventKind.CLOSE, st.sensor_id))

    def expire(self, now: float, timeout_s: float) -> None:
        """Close the stale streams of sensors that stayed away more than ``timeout_s``."""
        for sid in sorted(s for s, t in self._stale_since.items() if now - t > timeout_s):
            n = self._stale.pop(sid, 0)
            del self._stale_since[sid]
            log.info(kv("stale_stream_closed", sensor_id=sid, streams=n))
            for _ in range(n):
                self._enqueue(EngineInput(EventKind.CLOSE, sid))


async def idle_ticks(
    book: StreamBook, enqueue: Callable[[EngineInput], None], timeout_s: float
) -> None:
    """The idle timeout (``timeout_s`` > 0): a few times per timeout, expire stale
    streams and queue an IDLE input (sensors silent that long stop holding the
    watermark, DESIGN §6 rule 2)."""
    if timeout_s <= 0:
        return
    period = max(0.05, min(1.0, timeout_s / 4))
    while True:
        await asyncio.sleep(period)
        now = time.time()
        book.expire(now, timeout_s)
        enqueue(EngineInput(EventKind.IDLE, now=now, ids=(repr(float(timeout_s)),)))
