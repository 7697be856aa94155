"""A NATS connection on an event loop of its own thread, callable from anywhere.

The fusion engine calls its journal synchronously: the group commit on its database
thread, the replay on the event loop. :class:`NatsLink` runs the nats-py client on a
private loop so that both can wait for the broker (:meth:`call`), and async code on
another loop can too (:meth:`run`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from tracklayer.services.rpc.tls import TlsConfig
from tracklayer.services.scaleout.names import Names, connect, ensure_layout

T = TypeVar("T")


class NatsLink:
    """A connection (``nc``) and JetStream context (``js``) living on their own loop;
    ``lease_ttl_s`` sets the deployment's lease TTL (the front door's, s)."""

    def __init__(
        self,
        url: str,
        client_name: str,
        names: Names,
        tls: TlsConfig | None = None,
        lease_ttl_s: float | None = None,
    ) -> None:
        self.url, self.names = url, names
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._thread.start()
        try:
            self.nc = self.call(connect(url, client_name, tls=tls))
            self.js = self.nc.jetstream(timeout=10.0)
            self.call(ensure_layout(self.js, names, lease_ttl_s))
        except BaseException:
            self.close()
            raise

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the link's loop and wait for it (not from that loop)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the link's loop without waiting (a background reader)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``fn(*args)`` run on the link's loop, from another loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(fn(*args), self._loop))

    def close(self) -> None:
        """Drain the connection and stop the loop thread (idempotent)."""
        if not self._loop.is_running():
            return
        nc = getattr(self, "nc", None)
        if nc is not None and not nc.is_closed:
            try:
                self.call(nc.close(), timeout=5.0)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        try:  # a broker that went away first leaves the client's tasks waiting
            self.call(_cancel_other_tasks(), timeout=5.0)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)


async def _cancel_other_tasks() -> None:
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
