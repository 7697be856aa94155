"""Hand-overs between shards through the broker (S > 1; docs/scaleout.md).

Each shard publishes to ``tracklayer.<ID>.handover.<shard>`` of stream
``TL_<ID>_HANDOVER``, in the order it applies the journal:

* a **hand-over** (``fusion.tracker.region.Handover``: an announce, a scheduled
  transfer, or a transfer's state) as ``H`` + the checkpoint codec's data (no pickle:
  classes only from ``tracklayer.fusion``), Msg-Id
  ``<shard>:<kind>:<decided seq>:<gid>`` (a shard taken over sends the same bytes
  again: the broker drops them, the receiver too);
* a **progress record** ``P`` + the journal seq up to which the shard has sent every
  message: published after each batch and before the shard waits for another.

Every shard reads every shard's subject from the start. Before applying journal event
``q`` it waits until every other shard's progress reached ``q - 1 - K`` (then it holds
every announce and scheduled transfer that can take effect before ``q``) and until the
state of each transfer due before ``q`` arrived: a pipeline K events deep, not a
barrier per event, and the imports a shard applies depend on the journal only.
"""

from __future__ import annotations

import asyncio
import struct

from tracklayer.fusion.tracker.region import Handover, Region
from tracklayer.services.fusion_service.state_codec import decode_state, encode_state
from tracklayer.services.scaleout.names import Names
from tracklayer.services.scaleout.stream_reader import StreamReader

_ALLOWED = ("tracklayer.fusion",)
_LEN = struct.Struct(">Q")
#: Seconds one wait for the other shards' messages lasts before checking again.
WAIT_POLL_S = 0.2


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
        self._published = -1
        self.waits = 0  # times this shard waited for another (status)

    async def close(self) -> None:
        await self._reader.close()

    async def publish(self, msgs: list[Handover]) -> list:
        """Publish this shard's messages; returns the ack futures."""
        subject = self.names.handover_subject(self.shard)
        out = []
        for h in msgs:
            msg_id = f"{h.source}:{h.kind}:{h.decided_seq}:{h.gid[0]}.{h.gid[1]}"
            out.append(
                await self._js.publish_async(
                    subject, encode_handover(h), headers={"Nats-Msg-Id": msg_id}
                )
            )
        return out

    async def publish_progress(self, seq: int) -> None:
        """Every message decided up to event ``seq`` was sent (and acknowledged)."""
        if seq <= self._published:
            return
        await self._js.publish(self.names.handover_subject(self.shard), encode_progress(seq))
        self._published = seq

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

    def _ready(self, region: Region, seq: int) -> bool:
        need = seq - 1 - region.delay
        if any(p < need for p in self.progress.values()):
            return False
        return not region.waiting_for(seq)

    async def ready(self, region: Region, seq: int, applied: int) -> None:
        """Wait until event ``seq`` may be applied (see the module docstring);
        ``applied``: the last event this shard applied (published as progress first,
        so that a shard waiting for this one can go on)."""
        if self._ready(region, seq):
            return
        await self.publish_progress(applied)
        self.waits += 1
        while not self._ready(region, seq):
            await self.pump(region, WAIT_POLL_S)
            await asyncio.sleep(0)
