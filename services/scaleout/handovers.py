"""Hand-overs between shards through the broker (S > 1; docs/scaleout.md).

Each shard publishes to ``tracklayer.<ID>.handover.<shard>`` of stream
``TL_<ID>_HANDOVER``, in the order it applies the journal:

* a **hand-over** (``fusion.tracker.region.Handover``: an announce, a scheduled
  transfer, or a transfer's state) as ``H`` + the checkpoint codec's data (no pickle:
  classes only from ``tracklayer.fusion``), Msg-Id
  ``<shard>:<kind>:<decided seq>:<gid>`` (a shard taken over sends the same bytes
  again: the broker drops them, the receiver too);
* a **progress record** ``P`` + the count of applied frames up to which the shard has
  sent every message: published after each batch and before the shard waits.

Every shard reads every shard's subject, from the start or from the position its
checkpoint kept (:meth:`HandoverLink.position`: the stream sequence read up to and the
progress seen); the front door's trimmer purges the stream below the lowest position
of every shard's checkpoint, so a restarted shard does not read it from the start.

A shard applies its batches in a thread of its own; before tracking frame ``m`` the tracker's region
(``fusion.tracker.region``) asks whether every other shard's progress reached
``m - 1 - K`` (then it holds every message that can take effect before ``m``) and
whether the state of each transfer due before ``m`` arrived; if not, the thread waits
while the event loop reads the stream: a pipeline K frames deep, not a barrier per
frame, and the imports a shard applies depend on the applied frames only. Before it
waits, a shard has the broker's acks of everything it sent (else it fails and restarts
from its checkpoint): a message lost with a killed broker must not be waited for.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tracklayer.fusion.tracker.region import Handover, Region
from tracklayer.services.fusion_service.state_codec import decode_state, encode_state
from tracklayer.services.scaleout.names import Names
from tracklayer.services.scaleout.stream_reader import StreamReader

_ALLOWED = ("tracklayer.fusion",)
_LEN = struct.Struct(">Q")
T = TypeVar("T")
#: Seconds one wait for the other shards' messages lasts before checking again.
WAIT_POLL_S = 0.2
#: Seconds a shard waits for the broker's acks of what it published (reports, hand-overs).
ACK_TIMEOUT_S = 5.0


class HandoverUnconfirmed(RuntimeError):
    """This shard's hand-over messages were not acknowledged: it must start again."""


def encode_handover(h: Handover) -> bytes:
    doc, buffer = encode_state(h, _ALLOWED)
    return b"H" + _LEN.pack(len(doc)) + doc + buffer


def encode_progress(seq: int) -> bytes:
    return b"P" + _LEN.pack(seq)


def decode_message(data: bytes) -> Handover | int:
    """A hand-over, or a progress record's seq; ValueError for anything else."""
    if data[:1] == b"P" and len(data) == 1 + _LEN.size:
        return int(_LEN.unpack_from(data, 1)[0])
    if data[:1] == b"H" and len(data) > 1 + _LEN.size:
        (n,) = _LEN.unpack_from(data, 1)
        start = 1 + _LEN.size
        h = decode_state(data[start : start + n], data[start + n :], _ALLOWED)
        if isinstance(h, Handover):
            return h
    raise ValueError("handover: not a hand-over or progress message")


class HandoverLink:
    """Shard ``shard``'s side of the hand-over stream."""

    def __init__(self, js, names: Names, shard: int, shards: int) -> None:  # noqa: ANN001
        self._js, self.names, self.shard, self.shards = js, names, shard, shards
        self.progress = dict.fromkeys((k for k in range(shards) if k != shard), 0)
        self._reader = StreamReader(js, names.handover_stream, names.handover_subject(">"), 1)
        self.start_seq = 1
        self._published = -1
        self._sent: list = []  # ack futures not yet taken
        self.waits = 0  # times this shard waited for another (status)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"shard-{shard}")

    def position(self) -> dict:
        """Where this shard is on the stream: every message before ``seq`` is in its region
        (or was applied) and ``progress`` is the other shards' it read (kept with its
        checkpoint, taken between batches, when no read is under way)."""
        progress = {str(k): int(v) for k, v in sorted(self.progress.items())}
        return {"seq": int(self._reader.next_seq), "progress": progress}

    def resume(self, position: dict | None) -> None:
        """Read on from a checkpoint's :meth:`position` (None: from the stream's start,
        for a shard without one); ValueError naming what is wrong."""
        if position is None:
            return
        try:
            seq = int(position["seq"])
            progress = {int(k): int(v) for k, v in dict(position["progress"]).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"handover position: {exc!r}") from None
        for k, v in progress.items():
            if k in self.progress:
                self.progress[k] = max(self.progress[k], v)
        self.start_seq = max(1, seq)
        self._reader.next_seq = self.start_seq

    async def close(self) -> None:
        await self._reader.close()
        self._pool.shutdown(wait=False)

    async def publish(self, msgs: list[Handover]) -> list:
        """Publish this shard's messages; returns the ack futures."""
        subject = self.names.handover_subject(self.shard)
        out = []
        for h in msgs:
            msg_id = f"{h.source}:{h.kind}:{h.decided}:{h.gid[0]}.{h.gid[1]}"
            out.append(
                await self._js.publish_async(
                    subject, encode_handover(h), headers={"Nats-Msg-Id": msg_id}
                )
            )
        return out

    async def publish_progress(self, frames: int) -> None:
        """Every message decided up to frame ``frames`` was sent before this record."""
        if frames <= self._published:
            return
        subject = self.names.handover_subject(self.shard)
        self._sent.append(await self._js.publish_async(subject, encode_progress(frames)))
        self._published = frames

    async def pump(self, region: Region, timeout: float) -> None:
        """Read what the other shards sent (up to one batch, waiting up to ``timeout``)."""
        for m in await self._reader.next_batch(timeout):
            source = int(m.subject.rsplit(".", 1)[1])
            if source == self.shard:
                continue
            got = decode_message(m.data)
            if isinstance(got, int):
                self.progress[source] = max(self.progress[source], got)
            else:
                region.deliver([got])

    def _ready(self, region: Region, m: int) -> bool:
        need, missing = region.needs(m)
        return not missing and all(p >= need for p in self.progress.values())

    async def _send(self, region: Region) -> None:
        """This shard's queued messages, then its progress (in that order on the stream)."""
        self._sent += await self.publish(region.take_outbox())
        await self.publish_progress(region.frames)

    async def _wait(self, region: Region, m: int) -> None:
        await self._send(region)  # a shard waiting for this one can go on ...
        await self._confirm()  # ... once it is on the broker, not lost with it
        self.waits += 1
        while not self._ready(region, m):
            await self.pump(region, WAIT_POLL_S)

    async def _confirm(self) -> None:
        """Wait for the broker's acks of everything this shard sent; HandoverUnconfirmed
        when they do not come within :data:`ACK_TIMEOUT_S` (the shard then fails and
        restarts from its checkpoint, sending it all again under the same Msg-Ids).

        A message is stored only once acknowledged: one published as the broker was
        killed may be lost with it, its ack never comes. Before this, a shard stopped to
        wait for the others with such a message outstanding; the shard waiting for that
        very progress record (or transfer) waited for ever, and this one for it."""
        if not self._sent:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*self._sent), ACK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - timeout, or the broker refused one
            raise HandoverUnconfirmed(
                f"shard {self.shard}: hand-over messages not acknowledged by the broker "
                f"within {ACK_TIMEOUT_S:g} s: {exc!r}"
            ) from None

    def take_sent(self) -> list:
        """Ack futures of the messages published since the last call."""
        out, self._sent = self._sent, []
        return out

    async def run_batch(self, region: Region, apply: Callable[[], T]) -> T:
        """``apply()`` (the shard applying a batch of events) in this shard's thread; before
        each frame the region calls back, and where a message may still come this waits
        for it on the event loop. Then sends what the batch decided."""
        loop = asyncio.get_running_loop()

        def waiter(m: int) -> None:  # in the shard's thread; the loop is free meanwhile
            if not self._ready(region, m):
                asyncio.run_coroutine_threadsafe(self._wait(region, m), loop).result()

        region.waiter = waiter
        try:
            out = await loop.run_in_executor(self._pool, apply)
        finally:
            region.waiter = None
        await self._send(region)
        return out
