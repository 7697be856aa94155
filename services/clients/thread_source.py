"""Run a blocking iterator (a simulator, a file reader) in a worker thread and consume
its items on the event loop, in order, without blocking the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterable


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
