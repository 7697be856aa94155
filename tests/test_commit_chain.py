"""Group commits chained on the journal's database thread (stop 25, ``commit_chain``):
input that arrives while a commit is on its way is ordered and journaled at once and its
commit queued behind it; an ack still waits for the commit that holds its frame; a
failed commit is followed by no later one (no gap in the journal's seqs)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading

import pytest
from test_fusion_service import ACCEPTED, Services, Stream, frame, run

from tracklayer.services.fusion_service import journal as journal_mod
from tracklayer.services.fusion_service.journal import EventKind, Journal


def _seqs(path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [s for (s,) in db.execute("SELECT seq FROM events ORDER BY seq")]


def test_a_failed_commit_is_followed_by_no_later_one_until_the_reset(tmp_path, monkeypatch):
    j = Journal(tmp_path / "j.sqlite")
    for k in range(3):
        j.append(EventKind.FRAME, "sat-1-1", 1.0 + k, b"x%d" % k)

    @contextlib.contextmanager
    def full_disk(db, begin="BEGIN"):
        raise sqlite3.OperationalError("database or disk is full")
        yield  # pragma: no cover

    monkeypatch.setattr(journal_mod, "transaction", full_disk)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        j.commit()
    monkeypatch.undo()  # space is back, but the events 1-3 are lost:
    j.append(EventKind.FRAME, "sat-1-1", 4.0, b"x3")  # seq 4 would follow a gap
    with pytest.raises(sqlite3.OperationalError, match="full"):
        j.commit()
    assert _seqs(tmp_path / "j.sqlite") == [] and j.committed_seq == 0
    j.reset_to_committed()  # what the engine does before it rebuilds
    assert j.last_seq == 0 and j.frames == 0
    j.append(EventKind.FRAME, "sat-1-1", 5.0, b"y")
    assert j.commit() == 1
    assert _seqs(tmp_path / "j.sqlite") == [1]
    j.close()


def test_a_commit_takes_what_was_appended_before_it_started(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.append(EventKind.FRAME, "sat-1-1", 1.0, b"a")
    j.append(EventKind.FRAME, "sat-1-2", 1.0, b"b")
    assert j.commit() == 2
    assert j.commit() == 2  # a commit queued behind it finds nothing: no write
    j.append(EventKind.FRAME, "sat-1-1", 2.0, b"c")
    assert j.commit() == 3
    assert _seqs(tmp_path / "j.sqlite") == [1, 2, 3]
    j.close()


def test_input_is_journaled_while_a_commit_is_on_its_way_and_acked_after_it(tmp_path):
    """The journal's database thread is held (a commit stuck in its fsync): the first
    frames are ordered and appended and their commit waits; frames of other streams that
    come meanwhile are ordered and appended too (before the first commit ended: the
    chain), and so are frames that come while two commits are on their way; none is
    acknowledged while nothing is durable, and once the thread goes on
    every frame is acknowledged ACCEPTED, journaled once, the seqs contiguous."""

    async def body():
        async with Services(tmp_path, store=False) as s:
            engine = s.fusion.engine
            hold, held = threading.Event(), threading.Event()

            def stuck() -> None:  # stands in for a slow fsync
                held.set()
                hold.wait(30)

            blocker = engine._db.submit(stuck)
            await asyncio.to_thread(held.wait, 10)
            base = engine.journal.last_seq
            committed = engine.journal.committed_seq

            async def appended_past(seq: int) -> int:
                for _ in range(500):
                    if engine.journal.last_seq > seq:
                        return engine.journal.last_seq
                    await asyncio.sleep(0.01)
                raise AssertionError(f"nothing journaled past {seq}")

            first = [Stream(s.stub, "sat-1-1")]  # one batch: its commit waits on the thread
            wave1 = [asyncio.create_task(st.send(frame(st.sensor_id, 0, 1.0))) for st in first]
            await appended_past(base)
            await asyncio.sleep(0.1)  # (its stream's open and its frame)
            after1 = engine.journal.last_seq
            second = [Stream(s.stub, f"sat-2-{k}") for k in (1, 2, 3)]
            wave2 = [asyncio.create_task(st.send(frame(st.sensor_id, 0, 1.0))) for st in second]
            await appended_past(after1)  # ordered while the first commit is on its way
            await asyncio.sleep(0.1)
            after2 = engine.journal.last_seq
            third = [Stream(s.stub, "sat-3-1")]  # two commits on their way: it waits for
            wave3 = [asyncio.create_task(st.send(frame(st.sensor_id, 0, 1.0))) for st in third]
            await appended_past(after2)  # a commit, and is journaled all the same
            waves = wave1 + wave2 + wave3
            assert not any(t.done() for t in waves)  # nothing durable: no ack
            assert engine.journal.committed_seq == committed
            assert len(engine._chain.commits) <= 2
            hold.set()
            await blocker
            acks = [a for t in waves for a in await t]
            assert [a.status for a in acks] == [ACCEPTED] * 5
            assert engine.journal.committed_seq == engine.journal.last_seq
            frames = engine.journal.frames
            for st in first + second + third:
                await st.close()
        seqs = _seqs(tmp_path / "fu.journal.sqlite")
        assert seqs == list(range(1, len(seqs) + 1))
        assert frames == 5

    run(body())
