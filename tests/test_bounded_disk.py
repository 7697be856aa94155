"""Bounded disk (issue 15 item 1): journal events covered by a checkpoint are trimmed,
delivered outbox entries removed, file sizes stay flat, GetStatus shows them, and a
restart after trimming still ends with exactly the uninterrupted run's reports."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import urllib.request

from test_fusion_service import ACCEPTED, Services, Stream, content, frame, run
from tracker_double import RecordingTracker

SENSORS = ("sat-1-1", "sat-2-1", "sat-3-1")


class BoundedTracker(RecordingTracker):
    """The recording double without its growing frame list (so its checkpoints stay
    the same size, like a real tracker's on steady load): one report per frame."""

    def __init__(self, fusion_id, config) -> None:
        super().__init__(fusion_id, config)
        self.count = 0

    def process(self, frame):
        self.count += 1
        self.frames = [frame] * min(self.count, 3)  # what _report reads: len() >= 3
        return super().process(frame)


async def _pass(s: Services, start: int, looks: int) -> None:
    """Every sensor streams ``looks`` looks from look ``start`` (one request per look)."""

    async def one(i: int, sid: str) -> None:
        st = Stream(s.stub, sid)
        for k in range(start, start + looks):
            (ack,) = await st.send(frame(sid, k, k * 1.0 + 0.1 * i))
            assert ack.status == ACCEPTED, ack.reason
        await st.close()

    await asyncio.gather(*(one(i, sid) for i, sid in enumerate(SENSORS)))


async def _settled(s: Services) -> dict[str, int]:
    """Counters once the tracker caught up with what was acknowledged (the service
    tracks between batches), the outbox is empty (with a store) and the trimmer caught up."""
    for _ in range(200):
        c = await s.counters()
        done = c["frames_untracked"] == 0 and (c["outbox_depth"] == 0 or s.store is None)
        # no checkpoint on its way to its file (written off the worker), and the trim
        # it asked for done
        engine = s.fusion.engine
        cp = engine.checkpointer
        trim_to = min(cp.oldest, engine.outbox.journal_mark)
        done = done and not cp.busy and c["journal_trimmed_through"] >= trim_to
        if done and c["journal_trimmed_through"] > 0:
            await asyncio.sleep(0.1)  # the reclaim step after the last batch
            return await s.counters()
        await asyncio.sleep(0.05)
    raise AssertionError(f"never settled: {c}")


def test_journal_and_outbox_stay_flat_over_a_long_run(tmp_path):
    async def body():
        async with Services(tmp_path, checkpoint_every=200, tracker_factory=BoundedTracker) as s:
            sizes = []
            for p in range(8):
                await _pass(s, p * 150, 150)  # 450 frames + opens/closes per pass
                c = await _settled(s)
                # bytes of the journal's events table and of the outbox file, after
                # moving the WAL into the files (the WAL comes and goes with SQLite's
                # checkpoints, capped at 16 MB after each: journal_size_limit). The
                # checkpoints table holds the core's state, which grows with its
                # duplicate windows (bounded: 1,024 sequences per sensor).
                main = []
                for n in ("journal", "outbox"):
                    path = tmp_path / f"fu.{n}.sqlite"
                    with sqlite3.connect(path) as db:
                        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                        if n == "journal":
                            (events_bytes,) = db.execute(
                                "SELECT SUM(pgsize) FROM dbstat WHERE name = 'events'"
                            ).fetchone()
                    main.append(events_bytes if n == "journal" else path.stat().st_size)
                sizes.append((main[0], main[1], c["journal_events"]))
                assert c["journal_bytes"] < main[0] + 17 * 2**20
            assert c["journal_frames"] == 8 * 450  # every frame journaled, counted once
            assert c["journal_trimmed_total"] > 3000 and c["journal_last_trim_unix_seconds"] > 0
            # Events kept: at most two checkpoints' worth plus one pass.
            assert max(e for _, _, e in sizes) < 2 * 200 + 500
            j2, o2 = sizes[2][0], sizes[2][1]
            jn, on = sizes[-1][0], sizes[-1][1]
            assert jn <= 2 * j2 and on <= 2 * o2, sizes
            with sqlite3.connect(tmp_path / "fu.journal.sqlite") as db:
                assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
                (n,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
            assert n == c["journal_events"] < 1000
            stored = await s.stored(1)
            assert len(stored) > 0

    run(body(), timeout=180)


def test_getstatus_and_prometheus_show_the_disk_figures(tmp_path):
    async def body():
        s = Services(tmp_path, store=False, checkpoint_every=50)
        await s.start_fusion(metrics=0)
        await _pass(s, 0, 40)
        await _settled(s)
        url = f"http://127.0.0.1:{s.fusion.metrics.port}/metrics"
        names = ("journal_events", "journal_bytes", "outbox_bytes", "journal_trimmed_through")
        for _ in range(50):  # a scrape between two equal reads: the outbox write of the
            # last batch is settled off the worker (engine), so its size may still move
            c = await s.counters()
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
            c2 = await s.counters()
            if all(c[k] == c2[k] for k in names):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the disk figures never held still over a scrape: {c2}")
        await s.stop_fusion()
        return c, text

    c, text = run(body())
    assert c["journal_bytes"] > 0 and c["outbox_bytes"] > 0 and c["journal_events"] < 120
    for name in ("journal_events", "journal_bytes", "outbox_bytes", "journal_trimmed_through"):
        # the exposition writes large values in Go's style (1.095736e+06): read the number
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        assert found and float(found.group(1)) == c[name], (name, c[name], found)
    assert re.search(r"^journal_last_trim_unix_seconds \d", text, re.M)


def test_restart_after_trimming_gives_the_uninterrupted_reports(tmp_path):
    async def uninterrupted():
        async with Services(tmp_path / "a") as s:
            await _pass(s, 0, 80)  # the same two passes (each ends with a flush)
            await _pass(s, 80, 40)
            return content(await s.stored(362))

    async def crashed():
        s = Services(tmp_path / "b", checkpoint_every=60)
        await s.start_store()
        await s.start_fusion()
        await _pass(s, 0, 80)
        await _settled(s)
        trimmed = s.fusion.engine.journal.trimmed_through
        await s.stop_fusion(kill=True)
        await s.start_fusion()
        assert s.fusion.engine.journal.trimmed_through == trimmed > 0
        assert s.fusion.engine.replayed_events < 200
        await _pass(s, 80, 40)
        stored = content(await s.stored(362))
        await s.stop_fusion()
        await s.stop_store()
        return stored

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert run(crashed()) == run(uninterrupted())
