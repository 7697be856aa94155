"""The fusion engine's group commits in flight, and the inputs waiting for them.

The ordering task (:mod:`.worker`) orders a batch of input on the loop, appends its
state-changing events to the journal and queues a commit on the journal's database
thread. With a journal whose commits may be chained (``Journal.CHAINED_COMMITS``: a
commit takes, under a lock, every event appended up to the moment it starts) it does
not wait for that commit before it orders the next batch: frames that arrive while a
commit's fsync is on its way are ordered and appended at once, and their commit is
queued behind it, so it starts on the database thread the moment the one before
ends and takes everything appended by then, with no trip through the event loop
between two fsyncs (stop 25: that trip, a wake of the loop and of the database
thread, was where the slow acks waited on a loaded machine). At most ``limit``
commits are on their way (one running, one queued behind it); input that arrives
while both are is still ordered and appended (the queued one takes it if it has not
started yet, else the next one, queued as soon as the oldest ended).

Each ordered input waits here, in order, until a commit covers every event appended
up to and including its own (``Staged.seq``): only then is it answered (a frame's
ack), so an ack still means "journaled", and the acks of one stream keep their
order (a REJECTED or DUPLICATE frame, journaled as nothing, waits for the events
appended before it, as it waited for its batch's commit before).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from tracklayer.fusion.domain import FrameStatus
from tracklayer.services.fusion_service.inputs import EngineInput

#: Commits on their way at once with a journal that chains them (one running, one queued).
CHAINED = 2


@dataclass(slots=True)
class Staged:
    """One ordered input waiting for its commit."""

    item: EngineInput
    status: FrameStatus
    reason: str
    seq: int  # the journal's last appended seq once this input was ordered
    event: tuple[int, EngineInput] | None  # (seq, the tracking core's input) if journaled


class CommitChain:
    """Ordered inputs and the commits queued for them, oldest first (module docstring)."""

    def __init__(self, limit: int, durable_seq: int) -> None:
        self.limit = limit
        self.durable_seq = durable_seq  # the seq the last finished commit made durable
        self.staged: deque[Staged] = deque()
        self.commits: deque[asyncio.Future[int]] = deque()

    def full(self) -> bool:
        """No more commits may be queued until the oldest ends."""
        return len(self.commits) >= self.limit

    def may_order(self) -> bool:
        """More input may be ordered and appended now: always with chained commits (the
        queued commit, or the next one, takes it), else only with no commit on its way
        (that journal's buffer is not shared with a commit)."""
        return self.limit > 1 or not self.commits

    def queue(self, fut: asyncio.Future[int]) -> None:
        """``fut``: a commit just queued on the database thread (resolves to its seq)."""
        self.commits.append(fut)

    def oldest_done(self) -> bool:
        """The oldest commit on its way has ended (they end in order)."""
        return bool(self.commits) and self.commits[0].done()

    def finish_oldest(self) -> int:
        """Take the ended oldest commit: its seq is durable (raises its failure)."""
        seq = self.commits.popleft().result()
        self.durable_seq = max(self.durable_seq, seq)
        return self.durable_seq

    def durable(self) -> list[Staged]:
        """The inputs, oldest first, whose events up to their own are all durable."""
        out = []
        while self.staged and self.staged[0].seq <= self.durable_seq:
            out.append(self.staged.popleft())
        return out

    def take_all(self) -> list[EngineInput]:
        """Every input still waiting (a failure refuses them), the chain emptied."""
        items = [s.item for s in self.staged]
        self.staged.clear()
        return items

    def reset(self, durable_seq: int) -> None:
        """After a rebuild: nothing on its way, ``durable_seq`` the journal's committed."""
        self.staged.clear()
        self.commits.clear()
        self.durable_seq = durable_seq
