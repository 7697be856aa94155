"""Fan-out of report batches to live subscribers, with bounded per-subscriber queues.

The publisher never blocks on a subscriber: a subscriber whose queue is full
(it reads slower than reports are produced) is cut off and its next
:meth:`Subscription.get` raises :class:`SubscriberTooSlow`, which ends the call
``RESOURCE_EXHAUSTED`` (``rpc.status``): nothing is dropped silently, and one slow
client can neither stall tracking nor grow memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Generic, TypeVar

from tracklayer.services.errors import ResourceExhausted

T = TypeVar("T")
log = logging.getLogger("tracklayer.services")

DEFAULT_QUEUE_BATCHES = 4096


class SubscriberTooSlow(ResourceExhausted):
    """The subscriber fell more than its queue's capacity behind and was cut off."""


class BroadcastClosed(Exception):
    """The broadcaster was closed (server shutting down): the subscription has ended."""


class Subscription(Generic[T]):
    """One subscriber's bounded queue of batches; use as an async context manager."""

    def __init__(self, hub: Broadcaster[T], max_batches: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[list[T] | None] = asyncio.Queue(maxsize=max_batches)
        self.overflowed = False
        self.closed = False

    def _offer(self, batch: list[T]) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.overflowed = True
            self._hub._drop(self)
            # Make room for the wake-up sentinel so a waiting get() returns now.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def get(self) -> list[T]:
        """Next batch, in publication order; raises SubscriberTooSlow after an overflow."""
        batch = await self._queue.get()
        if batch is None and self.closed and not self.overflowed:
            raise BroadcastClosed("server shutting down")
        if batch is None or self.overflowed:
            raise SubscriberTooSlow(
                f"subscriber fell more than {self._queue.maxsize} batches behind"
            )
        return batch

    def close(self) -> None:
        self._hub._drop(self)

    def _end(self) -> None:
        # Batches already queued are still delivered, then the sentinel ends it.
        self.closed = True
        if self._queue.full():
            self._offer([])  # no room for the sentinel: this subscriber is too slow
        else:
            self._queue.put_nowait(None)

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Broadcaster(Generic[T]):
    """Publishes batches to every current subscriber (same event loop)."""

    def __init__(self, max_batches: int = DEFAULT_QUEUE_BATCHES) -> None:
        self._subs: set[Subscription[T]] = set()
        self._max = max_batches
        self.dropped_subscribers = 0

    def subscribe(self) -> Subscription[T]:
        """A new subscription receiving every batch published from now on."""
        sub: Subscription[T] = Subscription(self, self._max)
        self._subs.add(sub)
        return sub

    def publish(self, batch: Sequence[T]) -> None:
        """Offer ``batch`` to every subscriber without blocking (empty batches are skipped)."""
        if not batch:
            return
        items = list(batch)
        for sub in list(self._subs):
            sub._offer(items)

    def close(self) -> None:
        """End every subscription (their next ``get`` raises BroadcastClosed)."""
        for sub in list(self._subs):
            sub._end()
        self._subs.clear()

    def _drop(self, sub: Subscription[T]) -> None:
        if sub in self._subs:
            self._subs.discard(sub)
            if sub.overflowed:
                self.dropped_subscribers += 1

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
