"""The scale-out front door's checkpoints record the frames journaled up to their own
seq, whenever they are written (issue 14's exactly-once replay; found at stop 18).

A checkpoint of seq S is encoded at S and written later (in the background, or after a
forked child encoded it) while the front door goes on journaling. Its frame count must
be that of the events up to S: the replay after a restart counts the frames after S
again, so a count taken at the write would count those twice ("3,982 journaled of
3,981").
"""

from __future__ import annotations

import pytest

pytest.importorskip("nats")

from tracklayer.services.fusion_service.journal import EventKind, JournalError  # noqa: E402
from tracklayer.services.scaleout.link import NatsLink  # noqa: E402
from tracklayer.services.scaleout.names import Names  # noqa: E402
from tracklayer.services.scaleout.stream_journal import StreamJournal  # noqa: E402


def journal_frames(j: StreamJournal, n: int) -> int:
    """Journal ``n`` frames and a status event, commit; the committed seq."""
    for _ in range(n):
        j.append(EventKind.FRAME, "sat-1", 0.0, b"frame")
    j.append(EventKind.OPEN, "sat-1", 0.0)
    return j.commit()


def test_a_checkpoint_written_late_counts_the_frames_up_to_its_seq(nats_broker):
    link = NatsLink(nats_broker.url, "test-frames", Names("frames"))
    try:
        j = StreamJournal(link)
        journal_frames(j, 3)
        at = journal_frames(j, 4)  # the checkpoint is encoded here: 7 frames up to ``at``
        journal_frames(j, 5)  # journaled while it is on its way
        assert j.frames == 12
        j.write_checkpoint(at, "v", b"state")
        with pytest.raises(JournalError, match="no frame count kept for seq 2"):
            j.write_checkpoint(2, "v", b"state")  # not a commit: refused, not guessed
    finally:
        link.close()
    # a restart: load the checkpoint, replay what follows it
    link = NatsLink(nats_broker.url, "test-frames-2", Names("frames"))
    try:
        j = StreamJournal(link)
        seq, _, state = j.latest_checkpoint()
        assert (seq, state) == (at, b"state")
        replayed = [ev for ev in j.events(seq) if ev.kind == EventKind.FRAME]
        assert len(replayed) == 5
        assert j.frames == 12  # 7 from the checkpoint + 5 replayed: each frame once
        # and a checkpoint of the replayed state counts the same
        j.write_checkpoint(j.committed_seq, "v", b"state-2")
        j2 = StreamJournal(link)
        seq2, _, _ = j2.latest_checkpoint()
        assert list(j2.events(seq2)) == [] and j2.frames == 12
    finally:
        link.close()
