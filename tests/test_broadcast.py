"""Fan-out to live subscribers (services/broadcast.py): bounded, never blocking the publisher."""

from __future__ import annotations

import asyncio

import pytest

from tracklayer.services.rpc.broadcast import BroadcastClosed, Broadcaster, SubscriberTooSlow


def test_every_subscriber_gets_every_batch_in_publication_order():
    async def body():
        hub: Broadcaster[int] = Broadcaster(max_batches=8)
        a, b = hub.subscribe(), hub.subscribe()
        hub.publish([1, 2])
        hub.publish([])  # empty batches are not delivered
        hub.publish([3])
        for sub in (a, b):
            assert [await sub.get(), await sub.get()] == [[1, 2], [3]]

    asyncio.run(body())


def test_a_subscriber_that_falls_behind_is_cut_off_and_the_others_go_on():
    async def body():
        hub: Broadcaster[int] = Broadcaster(max_batches=2)
        slow, fast = hub.subscribe(), hub.subscribe()
        for i in range(3):
            hub.publish([i])
            assert await fast.get() == [i]
        # The third batch found the slow queue full: cut off, told on its next read.
        with pytest.raises(SubscriberTooSlow):
            await slow.get()
        assert hub.subscriber_count == 1 and hub.dropped_subscribers == 1
        hub.publish([9])
        assert await fast.get() == [9]

    asyncio.run(body())


def test_closing_delivers_what_was_queued_then_ends_each_subscription():
    async def body():
        hub: Broadcaster[int] = Broadcaster(max_batches=4)
        sub = hub.subscribe()
        hub.publish([1])
        hub.close()
        assert await sub.get() == [1]
        with pytest.raises(BroadcastClosed):
            await sub.get()

    asyncio.run(body())
