"""Hand-overs between shards through a real broker when a message is lost with it.

A message published as the broker is SIGKILLed can be lost with the broker's socket
buffers: it is never stored and its ack never comes. The shards' hand-over pipeline
(``services/scaleout/handovers.py``) is free of deadlock only if every message a shard
sent before it stops to wait for the others is on the broker: the shard furthest
behind then always has what it needs. These tests lose exactly one such message,
deterministically, with a real broker and two shards' links (the worker kill test of
the chain, ``test_scaleout_shards.py`` proof 3, covers the restart from checkpoints).
"""

from __future__ import annotations

import asyncio

import pytest

from tracklayer.fusion.tracker.region import Region
from tracklayer.services.scaleout import handovers
from tracklayer.services.scaleout.handovers import HandoverLink, HandoverUnconfirmed
from tracklayer.services.scaleout.names import Names, ensure_layout

pytest.importorskip("nats")

#: Seconds the test allows for what must happen (several times the ack timeout used).
BOUND_S = 15.0


class LosesFirstProgress:
    """A JetStream context that publishes everything except shard ``shard``'s first
    progress record: that one is lost as with a broker killed while it was in flight
    (nothing stored, the ack future never completes)."""

    def __init__(self, js, subject: str) -> None:  # noqa: ANN001 - nats JetStreamContext
        self._js, self._subject, self.lost = js, subject, 0

    async def publish_async(self, subject: str, payload: bytes = b"", **kw):  # noqa: ANN003, ANN201
        if subject == self._subject and payload[:1] == b"P" and not self.lost:
            self.lost += 1
            return asyncio.get_running_loop().create_future()  # never acknowledged
        return await self._js.publish_async(subject, payload, **kw)

    def __getattr__(self, name: str):  # noqa: ANN204 - everything else as the real one
        return getattr(self._js, name)


def test_a_shard_waits_for_the_others_only_once_its_own_progress_is_on_the_broker(
    nats_broker, monkeypatch
):
    """Shard 0 has applied 10 frames, shard 1 5, K = 1: shard 1 stops before frame 6
    for shard 0's progress >= 4, shard 0 before frame 11 for shard 1's >= 9. Shard 0's
    progress record of 10 is lost with the broker. Before the fix each waited for the
    other for ever (shard 0 believed its record sent; no report after: the CI failure
    of proof 3 with the broker killed). Now shard 0 fails within the ack timeout
    (the worker restarts it from its checkpoint) and its replacement's record lets
    shard 1 go on."""
    import nats

    monkeypatch.setattr(handovers, "ACK_TIMEOUT_S", 1.0)
    names = Names("fusion")

    async def main() -> tuple[BaseException | None, int]:
        nc = await nats.connect(nats_broker.url)
        js = nc.jetstream()
        await ensure_layout(js, names)
        lossy = LosesFirstProgress(js, names.handover_subject(0))
        a, b = HandoverLink(lossy, names, 0, 2), HandoverLink(js, names, 1, 2)
        ra, rb = Region(0, 2, delay=1), Region(1, 2, delay=1)
        ra.frames, rb.frames = 10, 5
        ta = asyncio.ensure_future(a.run_batch(ra, lambda: ra.waiter(11)))
        tb = asyncio.ensure_future(b.run_batch(rb, lambda: rb.waiter(6)))
        try:
            done, _ = await asyncio.wait({ta}, timeout=BOUND_S)
            failed = ta.exception() if done else None
            # the worker starts shard 0 again: it sends its progress again
            a2 = HandoverLink(js, names, 0, 2)
            ra2 = Region(0, 2, delay=1)
            ra2.frames = 10
            await a2.run_batch(ra2, lambda: None)
            await asyncio.wait_for(asyncio.gather(*a2.take_sent()), BOUND_S)
            await a2.close()
            await asyncio.wait({tb}, timeout=BOUND_S)
            return failed, b.progress[0] if tb.done() and tb.exception() is None else -1
        finally:
            for t in (ta, tb):
                t.cancel()
            await asyncio.gather(ta, tb, return_exceptions=True)
            await a.close()
            await b.close()
            await nc.close()

    failed, seen = asyncio.run(main())
    assert isinstance(failed, HandoverUnconfirmed), failed  # not a wait for ever
    assert seen == 10  # shard 1 went on with shard 0's progress once it was stored
