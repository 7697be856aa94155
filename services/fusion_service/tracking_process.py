"""The tracking core in a process of its own: the engine's side (issue 13 item 6, stop 22).

:class:`TrackingProcess` spawns the child (:mod:`.tracking_child`; *spawned*, never
forked: the engine's process has gRPC's threads) and talks to it over one pipe:

- the newest committed journal seq goes into shared memory (``RawValue('q')``) at each
  commit, with a ``note`` on the pipe only when the child has read every note sent so
  far (it reads the shared value itself: at most one note waits in the pipe, so the
  engine never blocks on a full pipe, whatever the child does meanwhile);
- a thread reads the child's messages (a stretch's reports and figures, a checkpoint's
  bytes) into a queue and wakes the engine's tracking task;
- the child's death (a crash, an OOM kill) ends the pipe: the reader sees it and tells
  the engine (``on_death``), which logs it and starts a new child from the newest
  checkpoint and the journal (:mod:`.tracking_remote`).

:class:`RemoteFollower` is what the engine knows of the child's place (the fields of its
last message), with the methods of :class:`~.follower.Follower` the engine calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from tracklayer.services.fusion_service.journal import JournalError
from tracklayer.services.fusion_service.tracking_child import (
    ASK_CHECKPOINT,
    CHECKPOINT,
    FAILED,
    NOTE,
    READY,
    STOP,
    ChildSpec,
    child_main,
)

#: Seconds the child may take to end after ``stop`` before it is killed.
STOP_TIMEOUT_S = 10.0


class TrackingProcessFailed(RuntimeError):
    """The tracking process died or reported a failure."""


class TrackingProcess:
    """One spawned tracking child and its pipe (module docstring)."""

    def __init__(self, spec: ChildSpec, on_message: Callable[[], None]) -> None:
        """Spawn the child; ``on_message`` is called (from the reader thread) whenever a
        message arrives or the child ends."""
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self.committed = ctx.RawValue("q", spec.limit)
        self.process = ctx.Process(
            target=child_main,
            args=(child_conn, self.committed, spec),
            name="fusion-tracking",
            daemon=True,
        )
        self.process.start()
        child_conn.close()
        self.messages: deque[tuple[Any, ...]] = deque()
        self.ready: dict[str, Any] | None = None
        self._ready = threading.Event()
        self.dead = False  # the pipe ended (the child exited or was killed)
        self.failure: str | None = None  # what the child said before it died
        self.traceback = ""
        self.journal_error = False
        self.stopping = False
        self._sent = 0  # notes sent
        self._limit_read = spec.limit  # the committed seq the child last read
        self._notes_read = 0
        self._on_message = on_message
        self._reader = threading.Thread(target=self._read, name="fusion-tracking-pipe", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    # ---- the reader thread ----------------------------------------------------------
    def _read(self) -> None:
        conn = self._conn
        try:
            while True:
                msg = conn.recv()
                if msg[0] == CHECKPOINT and msg[2] >= 0:
                    msg = (*msg, conn.recv_bytes())
                if msg[0] == READY:
                    self.ready = msg[1]
                    self._ready.set()
                    continue
                if msg[0] == FAILED:
                    self.failure, self.journal_error = msg[1], bool(msg[3])
                    self.traceback = msg[2]
                    continue
                self.messages.append(msg)
                self._on_message()
        except (EOFError, OSError):
            pass
        self.dead = True
        self._ready.set()
        self._on_message()

    # ---- on the loop ------------------------------------------------------------------
    def wait_ready(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Block until the child replayed and sent READY (raises if it died first)."""
        if not self._ready.wait(timeout_s):
            raise TrackingProcessFailed(f"tracking process {self.pid}: no READY in {timeout_s} s")
        if self.ready is None:
            self.process.join(5.0)
            if self.journal_error:
                raise JournalError(self.failure)
            raise TrackingProcessFailed(
                f"tracking process {self.pid} ended ({self.process.exitcode}) before it was "
                f"ready: {self.failure or 'no message'}"
            )
        return self.ready

    def seen(self, state: dict[str, Any]) -> None:
        """A message's place: the notes and committed seq the child has read."""
        self._notes_read, self._limit_read = state["notes"], state["limit"]

    def note(self, committed: int) -> None:
        """The journal is committed up to ``committed``: the child may track it."""
        self.committed.value = committed
        self.poke()

    def poke(self) -> None:
        """Send a note unless one is unread, or the child has read the newest seq."""
        if self.dead or self.stopping or self._sent > self._notes_read:
            return
        if self.committed.value <= self._limit_read:
            return
        with contextlib.suppress(OSError):
            self._conn.send((NOTE,))
            self._sent += 1

    def ask_checkpoint(self) -> None:
        """Ask for a checkpoint at the child's next settled place."""
        if not self.dead:
            with contextlib.suppress(OSError):
                self._conn.send((ASK_CHECKPOINT,))

    def take(self) -> list[tuple[Any, ...]]:
        """The messages received so far, in order."""
        out = []
        while self.messages:
            out.append(self.messages.popleft())
        return out

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask the child to end (it has nothing left to do) and reap it; kill it if it
        does not end within ``timeout_s``."""
        self.stopping = True
        if not self.dead:
            with contextlib.suppress(OSError):
                self._conn.send((STOP,))
        self.process.join(timeout_s)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the child (if alive), reap it, close the pipe."""
        self.stopping = True
        if self.process.is_alive():
            self.process.kill()
        self.process.join(10.0)
        self._reader.join(5.0)  # it sees the pipe end; then nobody reads the pipe
        if not self._reader.is_alive():
            with contextlib.suppress(OSError):
                self._conn.close()


class RemoteFollower:
    """The child's place as its last message gave it (see :class:`~.follower.Follower`)."""

    reader = True  # the child reads what it misses back from the journal: never hold back
    feed: tuple[()] = ()

    def __init__(self, state: dict[str, Any]) -> None:
        self.update(state)

    def update(self, state: dict[str, Any]) -> None:
        self.seq: int = state["seq"]
        self.mark: int = state["mark"]
        self.items_tracked: int = state["items_tracked"]
        self.untracked: int = state["untracked"]
        self.untracked_frames: int = state["untracked_frames"]
        self.frames: int = state["frames"]
        self.now: float | None = state["now"]
        self.read_back: int = state["read_back"]
        self.busy_s: float = state["busy_s"]  # this child's seconds tracking

    def behind(self, committed: int) -> bool:
        """Committed events (or work of applied ones) wait for the child."""
        return self.seq < committed or self.untracked > 0

    def figures(self, committed: int, frames: int, committed_now: float | None) -> dict[str, int]:
        """The backlog figures of :meth:`Follower.figures`, from the child's place."""
        lag = 0.0
        if self.behind(committed) and self.now is not None and committed_now is not None:
            lag = max(committed_now - self.now, 0.0)
        return {
            "frames_untracked": frames - self.frames + self.untracked_frames,
            "tracker_behind_events": committed - self.seq,
            "tracker_behind_ms": int(lag * 1000),
            "tracker_feed_events": 0,
            "tracker_read_back_total": self.read_back,
        }

    def offer(self, events: list) -> None:  # noqa: ARG002 - the child reads the journal
        """Nothing to hold: the child reads the committed events itself."""

    def close(self) -> None:
        """Nothing to close (the engine stops the child)."""


async def wait_ready(proc: TrackingProcess) -> dict[str, Any]:
    """:meth:`TrackingProcess.wait_ready` off the event loop."""
    return await asyncio.to_thread(proc.wait_ready)
