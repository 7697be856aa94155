"""Encode a checkpoint in a forked child, so that a big state never holds the event loop.

At raid scale (issue 13: 1,000 objects under 120 satellites) the fusion state is
~55 MB of checkpoint data and takes 1-2.5 s to encode; encoded on the event loop,
every checkpoint stopped the acks, the streams and the outbox for that long. The
child made by ``os.fork`` sees the state exactly as it was at the fork (copy on
write), so the engine goes on applying frames while the child encodes it on
another core and sends the bytes back through a pipe; the engine writes them into
the journal as before. The fork itself costs the copy of the page tables (a few ms
per 100 MB of resident memory).

gRPC's own fork handlers must be off (:func:`can_fork`). The child touches nothing but
the state and the pipe: it turns the garbage
collector off (no finalizer of a gRPC or SQLite object may run there), restores the
default signal handlers, and leaves with ``os._exit`` (no atexit, no flushing of
the parent's buffers). Only where ``os.fork`` exists (POSIX).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import os
import signal
import struct
import time
from collections.abc import Callable

from tracklayer.services.fork_policy import fork_allowed

#: Seconds a child may take before it is killed and the checkpoint given up (a raid's
#: 55 MB state encodes in 1-2.5 s).
CHILD_TIMEOUT_S = 120.0

#: Header the child writes before the data: encode seconds (float64, little-endian).
_HEADER = struct.Struct("<dQ")  # encode seconds, then the length of the state that follows


class ChildEncodeFailed(RuntimeError):
    """The forked child did not deliver the encoded state (it crashed or was killed)."""


def can_fork() -> bool:
    """True where a child may encode: POSIX ``os.fork`` and the command's
    :func:`~tracklayer.services.fork_policy.allow_fork` (gRPC's fork handlers off before
    it loaded). Elsewhere checkpoints stay on the event loop."""
    return hasattr(os, "fork") and fork_allowed()


def _child(encode: Callable[[], bytes], w: int) -> None:  # pragma: no cover - in the child
    code = 1
    try:
        gc.disable()
        faulthandler.enable()  # a crash of the child names where, in the parent's log
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
        t = time.perf_counter()
        blob = encode()
        for part in (_HEADER.pack(time.perf_counter() - t, len(blob)), blob):
            view = memoryview(part)
            while view:
                view = view[os.write(w, view) :]
        code = 0
    finally:
        os._exit(code)


def _fill(r: int, buf: bytearray) -> int:
    """Read from ``r`` into ``buf`` until it is full or the pipe ends; bytes read."""
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = os.readv(r, [view[got:]])
        if n == 0:
            break
        got += n
    return got


def collect_child(pid: int, r: int) -> tuple[bytearray, float]:
    """Read the child's output to its end and reap it (blocking: runs in a thread). The
    state is read into one buffer of its announced size: no second copy (a raid's
    20-57 MB was read in chunks, joined and sliced: three copies at once in the engine)."""
    data, ok = bytearray(), False
    try:
        head = bytearray(_HEADER.size)
        if _fill(r, head) == _HEADER.size:
            seconds, size = _HEADER.unpack(head)
            data = bytearray(size)
            ok = _fill(r, data) == size
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not ok:
        raise ChildEncodeFailed(f"checkpoint encoder child {pid} ended with {code}")
    return data, seconds


class ChildEncode:
    """One encode in a forked child: :meth:`start` forks (on the loop, with the state
    as it is now), :meth:`result` waits for (bytes, encode seconds) off the loop."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self._r: int | None = None

    def start(self, encode: Callable[[], bytes]) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(r)
            _child(encode, w)
        os.close(w)
        self.pid, self._r = pid, r

    async def result(self, timeout_s: float = CHILD_TIMEOUT_S) -> tuple[bytearray, float]:
        """(encoded bytes, seconds the child took); raises :class:`ChildEncodeFailed`,
        also when the child has not finished within ``timeout_s`` (it is killed: a fork
        of a threaded process can leave the child waiting on a lock another thread held
        at the fork, and a checkpoint that never comes would stop every later one)."""
        assert self.pid is not None and self._r is not None
        pid = self.pid
        task = asyncio.ensure_future(asyncio.to_thread(collect_child, pid, self._r))
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout_s)
            if not done:
                self.kill()  # the pipe then ends and the thread reaps the child
                with contextlib.suppress(ChildEncodeFailed):
                    await task
                raise ChildEncodeFailed(
                    f"checkpoint encoder child {pid} took over {timeout_s:g} s: killed"
                )
            return task.result()
        finally:
            self.pid = None

    def take_pipe(self) -> int:
        """The read end of the child's pipe, for a caller that collects it itself
        (:func:`collect_child`, e.g. on a thread of the tracking process)."""
        assert self._r is not None
        r, self._r = self._r, None
        return r

    def kill(self) -> None:
        """End the child now (the engine is abandoned); :meth:`result` then fails."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
