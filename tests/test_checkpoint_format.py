"""Checkpoints as data (issue 15 item 2): no pickle, versioned, checksummed, and a
corrupt or foreign checkpoint refused with one line naming the file while the
service falls back to the previous good checkpoint plus the journal."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sqlite3
from pathlib import Path

import pytest
from test_fusion_service import ACCEPTED, Services, Stream, content, frame, run

from tracklayer.fusion.core import FusionCore
from tracklayer.services.fusion_service.checkpoint import (
    CheckpointError,
    decode_checkpoint,
    encode_checkpoint,
)
from tracklayer.services.fusion_service.journal import JournalError
from tracklayer.services.fusion_service.state_codec import (
    StateFormatError,
    decode_state,
    encode_state,
)

FUSION = ("tracklayer.fusion",)


class _RunsCode:
    """Unpickling this runs ``os.system``: what a writable state directory allowed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _sensors_run(s: Services, frames_a, frames_b):
    async def go():
        a, b = Stream(s.stub, "sat-1-1"), Stream(s.stub, "sat-2-1")
        for fa, fb in zip(frames_a, frames_b, strict=True):
            assert [x.status for x in await a.send(fa) + await b.send(fb)] == [ACCEPTED] * 2
        return a, b

    return go()


FRAMES_A = [frame("sat-1-1", k, k * 1.0) for k in range(14)]
FRAMES_B = [frame("sat-2-1", k, k * 1.0 + 0.3) for k in range(14)]


async def _restart_and_finish(s: Services) -> tuple[list[bytes], int]:
    """Start the fusion service again, send the rest of the looks, stop; (stored
    contents, events the restart replayed)."""
    await s.start_fusion()
    replayed = s.fusion.engine.replayed_events
    a, b = await _sensors_run(s, FRAMES_A[10:], FRAMES_B[10:])
    await a.close()
    await b.close()
    stored = content(await s.stored(29))
    await s.stop_fusion()
    await s.stop_store()
    return stored, replayed


async def _crash_tamper_restart(tmp: Path, tamper) -> tuple[list[bytes], int]:
    """Run 10 looks with checkpoints every 6 events, SIGKILL, ``tamper(checkpoints)``
    (their file), restart, send the rest; (stored contents, events replayed)."""
    s = Services(tmp, checkpoint_every=6)
    await s.start_store()
    await s.start_fusion()
    await _sensors_run(s, FRAMES_A[:10], FRAMES_B[:10])
    checkpoints = s.fusion.engine.checkpointer.store.path
    await s.stop_fusion(kill=True)
    with sqlite3.connect(checkpoints) as db:
        tamper(db)
    return await _restart_and_finish(s)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[bytes]:
    async def go():
        async with Services(tmp_path_factory.mktemp("plain")) as s:
            a, b = await _sensors_run(s, FRAMES_A, FRAMES_B)
            await a.close()
            await b.close()
            return content(await s.stored(29))

    return run(go())


def test_a_pickled_checkpoint_is_refused_without_running_it(tmp_path, uninterrupted, caplog):
    marker = tmp_path / "ran"
    evil = pickle.dumps(_RunsCode(marker))

    def tamper(db):
        assert db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 2
        (newest,) = db.execute("SELECT MAX(seq) FROM checkpoints").fetchone()
        db.execute("UPDATE checkpoints SET state = ? WHERE seq = ?", (evil, newest))

    with caplog.at_level(logging.WARNING, logger="tracklayer.services.fusion"):
        stored, replayed = run(_crash_tamper_restart(tmp_path, tamper))
    assert not marker.exists()  # loading the checkpoint ran nothing
    refused = [r.getMessage() for r in caplog.records if "checkpoint_refused" in r.getMessage()]
    assert len(refused) == 1  # one line, naming the file and why
    assert "fu.journal.checkpoints.sqlite" in refused[0]  # the file it is in
    assert "not a tracklayer checkpoint" in refused[0]
    assert 6 < replayed < 22  # from the checkpoint before it, not from the start
    assert stored == uninterrupted


def test_no_usable_checkpoint_over_a_trimmed_journal_refuses_to_start(tmp_path):
    """Never silence: with the covered events trimmed, a service without a usable
    checkpoint would start empty; it stops with one message naming the file."""

    async def body():
        s = Services(tmp_path, store=False, checkpoint_every=6)
        await s.start_fusion()
        await _sensors_run(s, FRAMES_A[:10], FRAMES_B[:10])
        for _ in range(100):
            if s.fusion.engine.journal.trimmed_through:
                break
            await asyncio.sleep(0.02)
        checkpoints = s.fusion.engine.checkpointer.store.path
        await s.stop_fusion(kill=True)
        with sqlite3.connect(checkpoints) as db:
            db.execute("UPDATE checkpoints SET state = ?", (b"garbage",))
        with pytest.raises(JournalError, match=r"fu\.journal\.sqlite: no usable checkpoint"):
            await s.start_fusion()

    run(body())


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path, uninterrupted, caplog):
    def tamper(db):
        seq, state = db.execute(
            "SELECT seq, state FROM checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        flipped = bytearray(state)
        flipped[len(flipped) // 2] ^= 0xFF
        db.execute("UPDATE checkpoints SET state = ? WHERE seq = ?", (bytes(flipped), seq))

    with caplog.at_level(logging.WARNING, logger="tracklayer.services.fusion"):
        stored, replayed = run(_crash_tamper_restart(tmp_path, tamper))
    refused = [r.getMessage() for r in caplog.records if "checkpoint_refused" in r.getMessage()]
    assert len(refused) == 1 and "checksum mismatch" in refused[0]
    assert 6 < replayed < 22  # from the previous checkpoint, not from the start
    assert stored == uninterrupted


def test_a_foreign_class_in_a_checkpoint_is_refused_before_it_is_touched():
    doc = b'{"root":{"r":0},"nodes":[{"k":"obj","c":"subprocess:Popen","d":{}}]}'
    with pytest.raises(StateFormatError, match="subprocess:Popen is outside"):
        decode_state(doc, b"", FUSION)
    doc = b'{"root":{"e":"os:system","v":"true"},"nodes":[]}'
    with pytest.raises(StateFormatError, match="outside"):
        decode_state(doc, b"", FUSION)
    with pytest.raises(StateFormatError, match="outside"):
        encode_state({"x": _RunsCode(Path("x"))}, FUSION)
    with pytest.raises(CheckpointError, match="format version"):
        good = encode_checkpoint(FusionCore("fu"), __import__("collections").Counter())
        decode_checkpoint(good[:22] + b"\x00\x00\x00\x09" + good[26:], FUSION)


def test_a_real_tracker_restored_mid_run_gives_the_same_reports(sim_result):
    """The codec keeps every bit of a real tracker's state (arrays, deques, enums,
    shared references): the restored core continues exactly as the original."""
    sim = sim_result("single-icbm", duration_s=400.0)
    frames = sim.frames
    sensors = sorted({f.sensor_id for f in frames})
    core = FusionCore("fu", expected_sensors=sensors)
    half = len(frames) * 3 // 4
    for f in frames[:half]:
        core.submit(f)
    from collections import Counter

    blob = encode_checkpoint(core, Counter({"sat-1-1": 1}))
    restored, opens = decode_checkpoint(blob, FUSION)
    assert opens == {"sat-1-1": 1}
    assert restored is not core and len(core.live_reports()) > 0

    def rest(c: FusionCore) -> list[str]:
        out = []
        for f in frames[half:]:
            out += c.submit(f)[2]
        return [repr(r) for r in out + c.flush()]

    assert rest(restored) == rest(core)
