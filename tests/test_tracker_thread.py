"""The fusion service tracks on a thread of its own (issue 13 item 6): while the
tracker is inside one frame, however long, the event loop still orders, journals and
acknowledges newly sent frames, also past the ``MAX_UNTRACKED`` events it keeps in
memory for the tracker (the tracker reads the rest back from the journal); once it goes
on, every acknowledged frame is tracked once, in order (read your writes)."""

from __future__ import annotations

import asyncio
import threading

from test_fusion_service import ACCEPTED, Services, Stream, frame, run
from tracker_double import RecordingTracker

from tracklayer.fusion.domain import SensorFrame, TrackReport
from tracklayer.services.fusion_service.worker import MAX_UNTRACKED
from tracklayer.v1 import fusion_service_pb2 as fs

#: How long the double waits at its gate at most (s): the test fails, not hangs, when
#: the tracker blocks the loop (then nothing can open the gate but this timeout).
GATE_TIMEOUT_S = 3.0


class GatedTracker(RecordingTracker):
    """:class:`RecordingTracker` whose first frame waits at a gate (a threading.Event)."""

    entered = threading.Event()  # the first frame is inside process()
    gate = threading.Event()  # opened by the test
    timed_out = False

    def process(self, frame: SensorFrame) -> list[TrackReport]:
        cls = GatedTracker
        if not cls.entered.is_set():
            cls.entered.set()
            cls.timed_out = not cls.gate.wait(GATE_TIMEOUT_S)
        return super().process(frame)


def test_acks_arrive_while_the_tracker_is_blocked_inside_a_frame(tmp_path):
    GatedTracker.entered.clear()
    GatedTracker.gate.clear()
    GatedTracker.timed_out = False

    async def body():
        async with Services(tmp_path, store=False, tracker_factory=GatedTracker) as s:
            try:
                core = s.fusion.engine.core
                stream = Stream(s.stub, "sat-1-1")
                # 10 s of frames: the watermark (6 s) releases the first ones to the tracker
                first = await stream.send(*(frame("sat-1-1", k, k * 0.5) for k in range(20)))
                loop = asyncio.get_running_loop()
                assert await loop.run_in_executor(None, GatedTracker.entered.wait, 10.0)
                more = await stream.send(*(frame("sat-1-1", k, k * 0.5) for k in range(20, 40)))
                blocked = GatedTracker.gate.is_set() is False and not GatedTracker.timed_out
                assert {a.status for a in first + more} == {ACCEPTED}
                assert blocked, "the acks waited for the tracker (it timed out at its gate)"
                assert core.items_tracked < s.fusion.engine.orders.items_released  # inside one
            finally:
                GatedTracker.gate.set()
            for _ in range(1000):  # the live picture shows what is tracked so far: catch up
                live = await s.stub.ListLiveTracks(fs.ListLiveTracksRequest())
                if [t.update_count for t in live.tracks] == [core.items_released]:
                    break
                await asyncio.sleep(0.01)
            (track,) = live.tracks  # the double's one track: its count of frames, in order
            assert track.update_count == core.items_released == len(core.tracker.frames)
            times = [f.time_ns for f in core.tracker.frames]
            assert times == sorted(times) and len(set(times)) == len(times)

    run(body())


def test_acks_go_on_past_the_memory_bound_and_the_tracker_reads_the_backlog_back(tmp_path):
    """Blocked tracker, more frames than ``MAX_UNTRACKED`` sent: every ack arrives while
    the tracker is still blocked (the memory feed stays within its bound, the rest waits
    in the journal); once it goes on, each frame is tracked exactly once, in time order."""
    GatedTracker.entered.clear()
    GatedTracker.gate.clear()
    GatedTracker.timed_out = False
    n = MAX_UNTRACKED + 200
    sent = [frame("sat-1-1", k, k * 0.5) for k in range(n)]

    async def body():
        async with Services(tmp_path, store=False, tracker_factory=GatedTracker) as s:
            engine = s.fusion.engine
            stream = Stream(s.stub, "sat-1-1")
            try:
                acks = await stream.send(*sent[:20])
                loop = asyncio.get_running_loop()
                assert await loop.run_in_executor(None, GatedTracker.entered.wait, 10.0)
                for k in range(20, n, 50):
                    acks += await stream.send(*sent[k : k + 50])
                blocked = not GatedTracker.gate.is_set() and not GatedTracker.timed_out
                assert blocked, "the acks waited for the tracker (it timed out at its gate)"
                assert [a.status for a in acks] == [ACCEPTED] * n
                f = engine.follower
                assert len(f.feed) <= MAX_UNTRACKED  # memory bounded: the rest is on disk
                assert engine.journal.committed_seq - f.seq > MAX_UNTRACKED
            finally:
                GatedTracker.gate.set()
            live = await s.stub.ListLiveTracks(fs.ListLiveTracksRequest())
            status = await s.stub.GetStatus(fs.GetStatusRequest())
            core = engine.core
            times = [f.time_ns for f in core.tracker.frames]
            # the watermark (6 s) still holds the last 12 frames; the rest tracked once each
            assert times == [x.time.seconds * 10**9 + x.time.nanos for x in sent[: n - 12]]
            (track,) = live.tracks
            assert track.update_count == len(times)
            c = dict(status.counters)
            assert c["tracker_read_back_total"] > 0  # the backlog came back from the journal
            assert c["tracker_behind_events"] == 0 and c["frames_untracked"] == 0

    run(body())
