"""The tracking core in a process of its own (issue 13 item 6, stop 22): the engine
orders, journals and acks; a spawned child follows the committed journal, tracks, and
sends the reports back. Its reports are the in-thread core's; ``ListLiveTracks`` reads
your writes; a SIGKILL of the child is noticed and a new child (checkpoint + journal)
goes on with nothing lost and nothing repeated; a graceful stop tracks the whole
backlog first."""

from __future__ import annotations

import asyncio
import os
import signal

from test_fusion_service import ACCEPTED, Services, Stream, content, frame, run
from tracker_double import RecordingTracker, SlowTracker

from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import track_pb2

FRAMES = 60  # 0.5 s apart: the watermark (6 s) releases all but the last 12


def _sent(n: int = FRAMES) -> list:
    return [frame("sat-1-1", k, k * 0.5) for k in range(n)]


def _outbox(path) -> list[track_pb2.TrackReport]:
    box = Outbox(path)
    try:
        return [track_pb2.TrackReport.FromString(b) for _, b in box.peek(100_000)]
    finally:
        box.close()


def _assert_each_once_in_order(reports: list[track_pb2.TrackReport], n: int = FRAMES) -> None:
    """One report per tracked frame in time order, revisions 1..N once each, and the
    end-of-input DELETED last (RecordingTracker's reports)."""
    assert [r.revision for r in reports] == list(range(1, len(reports) + 1))
    times = [r.time.seconds * 10**9 + r.time.nanos for r in reports[:-1]]
    assert times == [f.time.seconds * 10**9 + f.time.nanos for f in _sent(n)]
    assert reports[-1].status == track_pb2.TRACK_STATUS_DELETED


def test_the_tracking_process_reports_what_the_tracker_thread_does(tmp_path):
    """Same frames through both modes (two sensors, the watermark releasing bursts, a
    stream close, the stop's flush): the outboxes hold the same reports."""

    async def one(tmp, in_process: bool) -> None:
        s = Services(tmp, store=False, tracker_factory=RecordingTracker,
                     tracking_process=in_process)  # fmt: skip
        await s.start_fusion()
        a, b = Stream(s.stub, "sat-1-1"), Stream(s.stub, "sat-1-2")
        for k in range(0, 40, 5):
            await a.send(*(frame("sat-1-1", j, j * 0.3) for j in range(k, k + 5)))
            if not 10 <= k < 25:  # a gap: sat-1-1 runs ahead, then the watermark catches up
                await b.send(*(frame("sat-1-2", j, j * 0.3 + 0.05) for j in range(k, k + 5)))
        live = await s.stub.ListLiveTracks(fs.ListLiveTracksRequest())
        assert len(live.tracks) == 1
        await s.stop_fusion()

    (tmp_path / "thread").mkdir()
    (tmp_path / "proc").mkdir()
    run(one(tmp_path / "thread", False))
    run(one(tmp_path / "proc", True))
    here = _outbox(tmp_path / "thread" / "fu.outbox.sqlite")
    there = _outbox(tmp_path / "proc" / "fu.outbox.sqlite")
    assert len(here) > 40
    assert content(there) == content(here)


def test_acks_do_not_wait_for_the_tracking_process_and_list_live_tracks_reads_them(tmp_path):
    async def body():
        async with Services(
            tmp_path, store=False, tracker_factory=SlowTracker, tracking_process=True
        ) as s:
            engine = s.fusion.engine
            assert engine.core is None and engine._remote.pid != os.getpid()
            acks = await Stream(s.stub, "sat-1-1").send(*_sent())
            tracked_at_ack = engine.follower.items_tracked
            released = engine.orders.items_released
            assert {a.status for a in acks} == {ACCEPTED}
            assert released >= FRAMES // 2
            assert tracked_at_ack <= released // 3, (tracked_at_ack, released)
            live = await s.stub.ListLiveTracks(fs.ListLiveTracksRequest())
            (track,) = live.tracks  # read your writes: every released frame tracked
            assert track.update_count == released == engine.follower.items_tracked
            c = await s.counters()
            assert c["frames_untracked"] == 0 and c["tracker_behind_events"] == 0
            assert c["tracks_live"] == 1 and c["frames_applied_total"] == released
            # the child's time in stretches: at least the double's sleep per frame
            assert c["tracker_busy_ms_total"] >= released * SlowTracker.DELAY_S * 1000

    run(body())


def test_a_killed_tracking_process_is_replaced_and_nothing_is_lost_or_repeated(tmp_path, caplog):
    """SIGKILL of the child while it is behind: the engine logs it, starts a new child
    from the checkpoint and the journal, goes on taking frames meanwhile, and its
    outbox ends with every report once."""

    async def body():
        s = Services(tmp_path, store=False, tracker_factory=SlowTracker,
                     tracking_process=True, checkpoint_every=5)  # fmt: skip
        await s.start_fusion()
        engine = s.fusion.engine
        stream = Stream(s.stub, "sat-1-1")
        acks = await stream.send(*_sent()[:40])
        for _ in range(500):  # some reports outboxed and a checkpoint written, not all
            if (engine.outbox.items_mark or 0) >= 5 and engine.checkpointer.seq > 0:
                break
            await asyncio.sleep(0.01)
        assert engine.follower.behind(engine.journal.committed_seq)
        old = engine._remote
        busy_before = (await s.counters())["tracker_busy_ms_total"]
        assert busy_before >= 5 * SlowTracker.DELAY_S * 1000
        os.kill(old.pid, signal.SIGKILL)
        acks += await stream.send(*_sent()[40:])  # acked while the new child starts
        assert [a.status for a in acks] == [ACCEPTED] * FRAMES
        live = await s.stub.ListLiveTracks(fs.ListLiveTracksRequest())
        assert engine._remote is not old and engine._remote.pid != old.pid
        (track,) = live.tracks
        assert track.update_count == engine.orders.items_released
        # the dead child's seconds are kept: the counter never goes back
        assert (await s.counters())["tracker_busy_ms_total"] > busy_before
        await s.stop_fusion()  # drains the new child's work; the end-of-input flush

    with caplog.at_level("INFO", logger="tracklayer.services.fusion"):
        run(body())
    text = caplog.text
    assert "tracking_process_died" in text and "tracking_process_restarted" in text
    _assert_each_once_in_order(_outbox(tmp_path / "fu.outbox.sqlite"))


def test_a_graceful_stop_tracks_the_whole_backlog_first(tmp_path, caplog):
    async def body():
        s = Services(tmp_path, store=False, tracker_factory=SlowTracker, tracking_process=True)
        await s.start_fusion()
        engine = s.fusion.engine
        acks = await Stream(s.stub, "sat-1-1").send(*_sent())
        assert {a.status for a in acks} == {ACCEPTED}
        assert engine.follower.behind(engine.journal.committed_seq)
        await s.stop_fusion()
        assert not engine._remote.process.is_alive()

    with caplog.at_level("INFO", logger="tracklayer.services.fusion"):
        run(body())
    assert "stop_tracking_backlog" in caplog.text
    _assert_each_once_in_order(_outbox(tmp_path / "fu.outbox.sqlite"))


TRACKING_NICE = 5  # as given on the command line


def test_the_tracking_process_runs_below_the_engines_cpu_priority(tmp_path):
    """``tracking_nice`` (``tracklayer fusion --tracking-nice N``, default 0): the child's
    nice value is the engine's plus N (capped at 19) once its start's replay is done,
    for the child that starts and for one that replaces a dead child, so under
    contention for the cores the acks' event loop runs first (DESIGN §8.7); it still
    tracks everything acknowledged."""
    from tracklayer.services.cli.commands.fusion import settings_from_args
    from tracklayer.services.cli.main import build_parser

    parse = build_parser().parse_args
    assert settings_from_args(parse(["fusion", "--store", "127.0.0.1:1"])).tracking_nice == 0
    argv = ["fusion", "--store", "127.0.0.1:1", "--tracking-nice", "5"]
    assert settings_from_args(parse(argv)).tracking_nice == TRACKING_NICE
    mine = os.getpriority(os.PRIO_PROCESS, 0)

    async def niced(pid: int) -> int:
        """The child's nice value once it lowered it (right after READY), or after 10 s."""
        for _ in range(1000):
            if (value := os.getpriority(os.PRIO_PROCESS, pid)) != mine:
                return value
            await asyncio.sleep(0.01)
        return value

    async def body():
        async with Services(
            tmp_path, store=False, tracking_process=True, tracking_nice=TRACKING_NICE
        ) as s:
            engine = s.fusion.engine
            first = engine._remote.pid
            assert await niced(first) == min(mine + TRACKING_NICE, 19)
            assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # the engine's own is kept
            stream = Stream(s.stub, "sat-1-1")
            await stream.send(*_sent()[:20])
            os.kill(first, signal.SIGKILL)
            await stream.send(*_sent()[20:])
            live = await s.stub.ListLiveTracks(fs.ListLiveTracksRequest())
            assert engine._remote.pid != first
            assert await niced(engine._remote.pid) == min(mine + TRACKING_NICE, 19)
            (track,) = live.tracks
            assert track.update_count == engine.orders.items_released

    run(body())


def test_commits_a_few_ms_apart_are_tracked_together_once_the_child_caught_up(tmp_path):
    """Frames acknowledged one by one, 5 ms apart (a commit each, as a raid's 120
    streams at 1x give): after a stretch that caught up the child lets the commits
    gather for ``GATHER_S`` before the next stretch, so it sends at most one stretch
    of work per ``GATHER_S`` (one message, one outbox write for the engine), not one
    per commit; every frame is still tracked once, in order."""
    import time

    from tracklayer.services.fusion_service.tracking_child import GATHER_S, STRETCH

    async def body():
        s = Services(tmp_path, store=False, tracking_process=True)
        await s.start_fusion()
        engine = s.fusion.engine
        seqs: list[int] = []  # the child's journal place in each stretch message
        on_child = engine._on_child

        def spy(proc, msg) -> None:
            if msg[0] == STRETCH:
                seqs.append(msg[4]["seq"])
            on_child(proc, msg)

        engine._on_child = spy
        stream = Stream(s.stub, "sat-1-1")
        t0 = time.monotonic()
        for f in _sent():
            (ack,) = await stream.send(f)
            assert ack.status == ACCEPTED
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - t0
        live = await s.stub.ListLiveTracks(fs.ListLiveTracksRequest())
        (track,) = live.tracks
        assert track.update_count == engine.orders.items_released
        moved = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b > a)
        assert moved <= elapsed / GATHER_S + 3, (moved, FRAMES, elapsed)
        await s.stop_fusion()

    run(body())
    _assert_each_once_in_order(_outbox(tmp_path / "fu.outbox.sqlite"))
