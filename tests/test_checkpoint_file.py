"""Checkpoints in a file of their own (issue 13 item 6): a slow checkpoint write never
holds an ack back; a process killed while one is written loses and repeats nothing;
a journal of the older layout (checkpoints in its own table) still restores, and its
checkpoints move to the new file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading

import pytest
import test_checkpoint_format as _fmt
from test_checkpoint_format import FRAMES_A, FRAMES_B, _restart_and_finish, _sensors_run
from test_fusion_service import ACCEPTED, Services, Stream, frame, run

from tracklayer.services.fusion_service.checkpoint_file import CheckpointFile, checkpoint_path


class _HeldWrites:
    """A checkpoint writer double: each write waits until :meth:`release` (as a raid's
    50 MB write on a slow disk would), then writes, or fails as a kill would leave it."""

    def __init__(self, monkeypatch, *, then_fail: bool = False, from_call: int = 1) -> None:
        self.started = threading.Event()
        self._go = threading.Event()
        self.then_fail = then_fail
        self.calls = 0
        real = CheckpointFile.write_checkpoint

        def write(cpf, seq, version, state):
            self.calls += 1
            if self.calls < from_call:
                return real(cpf, seq, version, state)
            self.started.set()
            self._go.wait(120)
            if self.then_fail:
                raise sqlite3.OperationalError("process killed before COMMIT (double)")
            return real(cpf, seq, version, state)

        monkeypatch.setattr(CheckpointFile, "write_checkpoint", write)

    def release(self) -> None:
        self._go.set()


def test_acks_do_not_wait_for_a_checkpoint_write(tmp_path, monkeypatch):
    held = _HeldWrites(monkeypatch)

    async def body():
        async with Services(tmp_path, store=False, checkpoint_every=4) as s:
            a = Stream(s.stub, "sat-1-1")
            acks = list(await a.send(*(frame("sat-1-1", k, k * 1.0) for k in range(6))))
            assert await asyncio.to_thread(held.started.wait, 30)  # a write is held
            # 40 frames more: each batch is journaled and committed while it is held
            for k in range(6, 46):
                acks += await asyncio.wait_for(a.send(frame("sat-1-1", k, k * 1.0)), 60)
            assert not held._go.is_set() and s.fusion.engine.checkpointer.busy
            assert [x.status for x in acks] == [ACCEPTED] * 46
            held.release()
            await a.close()

    try:
        run(body(), timeout=180)
    finally:
        held.release()


uninterrupted = _fmt.uninterrupted  # the store content of the run without a kill


def test_a_kill_during_a_checkpoint_write_loses_and_repeats_nothing(
    tmp_path, monkeypatch, uninterrupted
):
    held = _HeldWrites(monkeypatch, then_fail=True, from_call=2)

    async def body():
        s = Services(tmp_path, checkpoint_every=6)
        await s.start_store()
        await s.start_fusion()
        await _sensors_run(s, FRAMES_A[:10], FRAMES_B[:10])
        assert await asyncio.to_thread(held.started.wait, 30)
        kept = CheckpointFile(checkpoint_path(s.fusion.engine.journal.path))
        before = kept.checkpoints()
        kept.close()
        held.release()  # the write ends without its COMMIT: as a SIGKILL in it would
        await s.stop_fusion(kill=True)
        monkeypatch.undo()
        return before, (await _restart_and_finish(s))[0]

    before, stored = run(body(), timeout=180)
    assert len(before) == 1  # the first one was written, the second cut
    assert stored == uninterrupted  # every report once, none lost


def test_a_journal_of_the_older_layout_restores_and_its_checkpoints_move(
    tmp_path, uninterrupted, caplog
):
    async def body():
        s = Services(tmp_path, checkpoint_every=6)
        await s.start_store()
        await s.start_fusion()
        await _sensors_run(s, FRAMES_A[:10], FRAMES_B[:10])
        engine = s.fusion.engine
        journal, cpf = engine.journal.path, engine.checkpointer.store.path
        await s.stop_fusion(kill=True)
        # the older layout: the checkpoints in the journal's own table, no file
        with sqlite3.connect(cpf) as db:
            rows = db.execute("SELECT * FROM checkpoints ORDER BY seq").fetchall()
        for suffix in ("", "-wal", "-shm"):
            cpf.with_name(cpf.name + suffix).unlink(missing_ok=True)
        with sqlite3.connect(journal) as db:
            db.executemany("INSERT INTO checkpoints VALUES (?,?,?,?)", rows)
        assert len(rows) == 2
        with caplog.at_level("INFO", logger="tracklayer.services.fusion"):
            await s.start_fusion()
        replayed = s.fusion.engine.replayed_events
        with sqlite3.connect(journal) as db:
            left = db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
        with sqlite3.connect(cpf) as db:
            moved = db.execute("SELECT seq FROM checkpoints ORDER BY seq").fetchall()
        await s.stop_fusion(kill=True)  # a graceful stop would end the input (a flush)
        return rows, replayed, left, moved, (await _restart_and_finish(s))[0]

    rows, replayed, left, moved, stored = run(body(), timeout=180)
    old, kept = [r[0] for r in rows], [m[0] for m in moved]
    # every kept checkpoint is a moved one, except one the restarted service may have
    # written after its replay (it checkpoints at once then), which pushes out the oldest
    assert left == 0 and old[-1] in kept and all(q in old or q > old[-1] for q in kept)
    assert 0 < replayed < 22  # from the newest moved checkpoint, not from the start
    assert any(
        "checkpoints_moved" in r.getMessage() and "count=2" in r.getMessage()
        for r in caplog.records
    )
    assert stored == uninterrupted


def test_a_checkpoint_past_the_journal_end_is_refused(tmp_path, uninterrupted, caplog):
    """A checkpoint file beside a journal it does not belong to (a journal restored
    from an older backup): a state past the journal's last event is never loaded."""

    def tamper(db):  # a newer one, of a longer journal
        db.execute(
            "INSERT INTO checkpoints SELECT seq + 1000, wall_ns, version, state "
            "FROM checkpoints ORDER BY seq DESC LIMIT 1"
        )

    with caplog.at_level("WARNING", logger="tracklayer.services.fusion"):
        stored, replayed = run(_fmt._crash_tamper_restart(tmp_path, tamper), timeout=180)
    refused = [r.getMessage() for r in caplog.records if "checkpoint_refused" in r.getMessage()]
    assert len(refused) == 1 and "past the journal" in refused[0]
    assert 0 < replayed < 22  # from the newest real checkpoint
    assert stored == uninterrupted


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_a_written_checkpoint_is_not_kept_in_memory(tmp_path):
    """The engine writes a raid's 20-57 MB checkpoint every ~20 s for as long as it runs:
    once written and dropped by the caller, none of it may stay in the process (a bound
    blob stayed in SQLite's cached statement: one more checkpoint held, growing with the
    state)."""
    cpf = CheckpointFile(tmp_path / "c.checkpoints.sqlite")
    try:
        size = 64_000_000
        before = _rss_mb()
        for seq in (1, 2):
            state = os.urandom(size)
            cpf.write_checkpoint(seq, "v", state)
            del state
        grown = _rss_mb() - before
        kept = cpf.checkpoints()
        assert [(s, len(b)) for s, _, b in kept] == [(2, size), (1, size)]
    finally:
        cpf.close()
    assert grown < size / 4 / 1e6, f"{grown:.0f} MB stayed after writing a 64 MB checkpoint"
