"""The fusion service orders, journals and acknowledges before it tracks (issue 13
item 6): an ack waits for the journal, never for the tracker; ``ListLiveTracks`` still
shows every acknowledged frame (read your writes); a kill while the tracker is behind
loses no report and repeats none; ordering and tracking in two steps give the same
reports as in one."""

from __future__ import annotations

import asyncio

import pytest
from test_fusion_service import ACCEPTED, Services, Stream, frame, run
from tracker_double import RecordingTracker, SlowTracker

from tracklayer.fusion.core import FusionCore
from tracklayer.services.fusion_service import tracking_remote
from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.services.wire.convert import frame_from_proto
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import track_pb2

FRAMES = 60  # 0.5 s apart (the watermark lets all but 6 s of them go): 1.2 s of SlowTracker work


def test_acks_do_not_wait_for_the_tracker_and_list_live_tracks_reads_them(tmp_path):
    async def body():
        async with Services(tmp_path, store=False, tracker_factory=SlowTracker) as s:
            core = s.fusion.engine.core
            acks = await Stream(s.stub, "sat-1-1").send(
                *(frame("sat-1-1", k, k * 0.5) for k in range(FRAMES))
            )
            tracked_at_ack = len(core.tracker.frames)
            released = s.fusion.engine.orders.items_released  # by the ordering core
            assert {a.status for a in acks} == {ACCEPTED}
            assert released >= FRAMES // 2  # the watermark let most of them go
            # the acks came while the tracker had done little of the work they released
            assert tracked_at_ack <= released // 3, (tracked_at_ack, released)
            live = await s.stub.ListLiveTracks(fs.ListLiveTracksRequest())
            (track,) = live.tracks  # the double's one track: its count of frames
            assert track.update_count == released == len(core.tracker.frames)

    run(body())


def _outbox_reports(path) -> list[track_pb2.TrackReport]:
    box = Outbox(path)
    try:
        return [track_pb2.TrackReport.FromString(b) for _, b in box.peek(100_000)]
    finally:
        box.close()


@pytest.mark.parametrize("in_process", [False, True], ids=["thread", "process"])
def test_a_kill_while_the_tracker_is_behind_loses_and_repeats_no_report(tmp_path, in_process):
    async def body():
        s = Services(
            tmp_path, store=False, tracker_factory=SlowTracker, tracking_process=in_process
        )
        await s.start_fusion()
        engine = s.fusion.engine
        acks = await Stream(s.stub, "sat-1-1").send(
            *(frame("sat-1-1", k, k * 0.5) for k in range(FRAMES))
        )
        assert {a.status for a in acks} == {ACCEPTED}
        for _ in range(500):  # some reports are in the outbox, the rest still untracked
            if (engine.outbox.items_mark or 0) >= 5:
                break
            await asyncio.sleep(0.01)
        assert engine.outbox.items_mark >= 5
        assert engine.follower.behind(engine.journal.committed_seq)
        await s.stop_fusion(kill=True)
        await s.start_fusion()
        assert s.fusion.engine.replayed_events > 0
        await s.stop_fusion()  # the end-of-input flush: every buffered frame, then DELETED

    run(body())
    reports = _outbox_reports(tmp_path / "fu.outbox.sqlite")
    revisions = [r.revision for r in reports]
    assert revisions == list(range(1, len(reports) + 1))  # none lost, none twice
    times = [r.time.seconds * 10**9 + r.time.nanos for r in reports[:-1]]
    sent = [frame("sat-1-1", k, k * 0.5) for k in range(FRAMES)]
    assert times == [f.time.seconds * 10**9 + f.time.nanos for f in sent]
    assert reports[-1].status == track_pb2.TRACK_STATUS_DELETED


def test_two_steps_give_the_reports_of_one():
    """Two sensors (the watermark holds frames back and releases them in bursts), a
    stream close and the final flush: the deferred core tracks the same frames in the
    same order and emits the same reports as the one-step core."""

    def feed(core: FusionCore) -> list[tuple[int, int]]:
        out = []
        for sid in ("sat-1-1", "sat-1-2"):
            core.open_stream(sid)
        for k in range(40):
            for sid, dt in (("sat-1-1", 0.0), ("sat-1-2", 0.05)):
                if sid == "sat-1-2" and 10 <= k < 25:
                    continue  # a gap: sat-1-1 runs ahead, then the watermark catches up
                status, _, reports = core.submit(frame_from_proto(frame(sid, k, k * 0.2 + dt)))
                out.extend((r.revision, r.time_ns) for r in reports)
            if core.defer_tracking and k % 7 == 0:
                while core.untracked:
                    out.extend((e.report.revision, e.report.time_ns) for e in core.track_next()[1])
        out.extend((r.revision, r.time_ns) for r in core.close_stream("sat-1-2"))
        out.extend((r.revision, r.time_ns) for r in core.flush())
        while core.untracked:
            out.extend((e.report.revision, e.report.time_ns) for e in core.track_next()[1])
        return out

    one = FusionCore("fu", tracker_factory=RecordingTracker)
    two = FusionCore("fu", tracker_factory=RecordingTracker)
    two.defer_tracking = True
    a, b = feed(one), feed(two)
    assert len(a) > 60 and a == b
    assert one.items_released == one.items_tracked == two.items_tracked
    assert one.counters == two.counters


@pytest.mark.parametrize(
    "in_process,forked", [(False, False), (True, False), (True, True)],
    ids=["thread", "process", "process-forked-encode"],
)  # fmt: skip
def test_checkpoints_are_written_behind_a_backlog_and_a_kill_loses_nothing(
    tmp_path, monkeypatch, in_process, forked
):
    """While the tracker works through a backlog, checkpoints go on at its place in the
    journal (not only once it caught up): a kill then replays from one of them, and the
    outbox still holds every report once. ``forked``: the tracking process encodes every
    checkpoint in a forked child of its own while it tracks on."""
    if forked:
        monkeypatch.setattr(tracking_remote, "FORK_ABOVE_S", 0.0)
        monkeypatch.setenv("GRPC_ENABLE_FORK_SUPPORT", "false")  # for the spawned child

    async def body():
        s = Services(tmp_path, store=False, tracker_factory=SlowTracker, checkpoint_every=5,
                     tracking_process=in_process)  # fmt: skip
        await s.start_fusion()
        engine = s.fusion.engine
        acks = await Stream(s.stub, "sat-1-1").send(
            *(frame("sat-1-1", k, k * 0.5) for k in range(FRAMES))
        )
        assert {a.status for a in acks} == {ACCEPTED}
        committed = engine.journal.committed_seq  # every frame's event (and the OPEN)
        behind_with_checkpoint = False
        for _ in range(500):
            c = await s.counters()
            if c["frames_untracked"] == 0:
                break
            if 0 < c["checkpoint_seq"] < committed and c["checkpoints_written_total"] >= 2:
                behind_with_checkpoint = True
                break
            await asyncio.sleep(0.01)
        assert behind_with_checkpoint, "no checkpoint while the tracker was behind"
        assert (c["checkpoints_in_child_total"] > 0) == forked
        await s.stop_fusion(kill=True)
        await s.start_fusion()
        assert 0 < s.fusion.engine.replayed_events < committed  # from a checkpoint
        await s.stop_fusion()

    run(body())
    reports = _outbox_reports(tmp_path / "fu.outbox.sqlite")
    assert [r.revision for r in reports] == list(range(1, len(reports) + 1))  # once each
    times = [r.time.seconds * 10**9 + r.time.nanos for r in reports[:-1]]
    sent = [frame("sat-1-1", k, k * 0.5) for k in range(FRAMES)]
    assert times == [f.time.seconds * 10**9 + f.time.nanos for f in sent]
    assert reports[-1].status == track_pb2.TRACK_STATUS_DELETED
