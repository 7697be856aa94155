"""Fast restart (issue 15 item 3): checkpoints by events and by wall time bound the
journal replay of a restart."""

from __future__ import annotations

import asyncio

from test_fusion_service import ACCEPTED, Services, Stream, frame, run

from tracklayer.services.cli.commands.fusion import settings_from_args
from tracklayer.services.cli.main import build_parser
from tracklayer.services.fusion_service.settings import FusionSettings


async def send_fast(st: Stream, frames: int, per_request: int) -> None:
    """``frames`` frames of ``st``'s sensor, ``per_request`` a request, each ACCEPTED."""
    for k in range(0, frames, per_request):
        batch = (frame(st.sensor_id, j, j * 0.1) for j in range(k, k + per_request))
        acks = await st.send(*batch)
        assert {a.status for a in acks} == {ACCEPTED}


async def settled_counters(s: Services, tries: int = 100) -> dict[str, int]:
    """The counters once no checkpoint is on its way (the last one due is written
    after the acks): checkpoint_seq unchanged over 0.2 s."""
    for _ in range(tries):
        c = await s.counters()
        await asyncio.sleep(0.2)
        if (await s.counters())["checkpoint_seq"] == c["checkpoint_seq"]:
            break
    return c


def test_defaults_checkpoint_by_events_and_by_time():
    s = FusionSettings()
    assert 0 < s.checkpoint_every <= 500 and 0 < s.checkpoint_interval_s <= 15.0
    args = build_parser().parse_args(["fusion", "--store", "127.0.0.1:1"])
    cli = settings_from_args(args)
    assert (cli.checkpoint_every, cli.checkpoint_interval_s) == (
        s.checkpoint_every,
        s.checkpoint_interval_s,
    )
    # the scale-out front door replays ordering only: it checkpoints less often
    argv = ["fusion", "--store", "127.0.0.1:1", "--nats", "nats://127.0.0.1:1"]
    assert settings_from_args(build_parser().parse_args(argv)).checkpoint_every == 3000


def test_with_the_default_policy_a_restart_replays_at_most_500_events(tmp_path):
    """1,600 frames as fast as the service takes them (the soak's way: the count, not
    the interval, checkpoints), then SIGKILL: the restart replays only the events since
    the newest checkpoint, under 500 + one request. The tracker runs ~1 ms per frame
    of the soak, so 500 events are ~0.5-1.5 s of replay (2,000-3,000 before: 3-8 s
    on this machine under load)."""

    async def body():
        s = Services(tmp_path, store=False)  # the FusionSettings defaults
        await s.start_fusion()
        await send_fast(Stream(s.stub, "sat-1-1"), 1_600, 20)
        c = await settled_counters(s)
        last = s.fusion.engine.journal.committed_seq
        assert last >= 1_600 and c["checkpoints_written_total"] >= 3
        await s.stop_fusion(kill=True)
        await s.start_fusion()
        replayed = s.fusion.engine.replayed_events
        assert replayed == last - c["checkpoint_seq"] < 500 + 20
        (ack,) = await Stream(s.stub, "sat-1-1").send(frame("sat-1-1", 1_600, 160.0))
        assert ack.status == ACCEPTED
        await s.stop_fusion()

    run(body(), timeout=120)


def test_a_quiet_service_checkpoints_by_time_so_a_restart_replays_little(tmp_path):
    """40 frames, far fewer than ``checkpoint_every``: the interval alone checkpoints."""

    async def body():
        s = Services(tmp_path, store=False, checkpoint_every=10_000, checkpoint_interval_s=0.3)
        await s.start_fusion()
        st = Stream(s.stub, "sat-1-1")
        for k in range(40):
            (ack,) = await st.send(frame("sat-1-1", k, k * 1.0))
            assert ack.status == ACCEPTED
            await asyncio.sleep(0.02)
        # settle: a checkpoint by time may still be on its way for the last events; read
        # what the restart will replay only once none can be (no new events: none comes)
        c = await settled_counters(s, tries=50)
        assert c["checkpoints_written_total"] >= 1 and c["checkpoint_seq"] > 10
        last = s.fusion.engine.journal.committed_seq
        await s.stop_fusion(kill=True)
        await s.start_fusion()
        replayed = s.fusion.engine.replayed_events
        assert replayed == last - c["checkpoint_seq"] < 30
        await s.stop_fusion(kill=True)
        # The first commit after a replay checkpoints at once (a second kill soon after the
        # restart must not replay the same events again). The checkpoint by time above may
        # have covered every event (then nothing was replayed), so make sure some are:
        # a process that never checkpoints by time or count takes three frames and dies.
        never = dict(checkpoint_every=0, checkpoint_interval_s=3600.0)
        await s.start_fusion(**never)
        st = Stream(s.stub, "sat-1-1")
        for k in range(40, 43):
            (ack,) = await st.send(frame("sat-1-1", k, k * 1.0))
            assert ack.status == ACCEPTED
        await s.stop_fusion(kill=True)
        await s.start_fusion(**never)
        assert s.fusion.engine.replayed_events >= 2
        (ack,) = await Stream(s.stub, "sat-1-1").send(frame("sat-1-1", 43, 43.0))
        assert ack.status == ACCEPTED
        for _ in range(600):  # written after the batch's acks (up to 30 s on a busy machine)
            if (await s.counters())["checkpoints_written_total"]:
                break
            await asyncio.sleep(0.05)
        assert (await s.counters())["checkpoints_written_total"] == 1
        await s.stop_fusion()

    run(body())


def test_without_new_events_no_checkpoint_is_written(tmp_path):
    async def body():
        s = Services(tmp_path, store=False, checkpoint_every=0, checkpoint_interval_s=1.0)
        await s.start_fusion()
        st = Stream(s.stub, "sat-1-1")
        await st.send(frame("sat-1-1", 1, 1.0))
        await asyncio.sleep(1.5)
        await st.send(frame("sat-1-1", 2, 2.0))  # the interval passed: a checkpoint
        for _ in range(100):
            written = (await s.counters())["checkpoints_written_total"]
            if written:
                break
            await asyncio.sleep(0.05)
        assert written >= 1
        await asyncio.sleep(2.5)  # idle for more than two intervals: nothing to save
        assert (await s.counters())["checkpoints_written_total"] == written
        await s.stop_fusion()

    run(body())


def test_each_checkpoint_is_logged_at_debug_and_info_gets_summaries(tmp_path, caplog):
    """At full rate a checkpoint every 500 events is about two a second: INFO gets the
    first checkpoint of the process and then one ``checkpoints_written`` line per minute
    (and one at the stop) summing them up; each checkpoint is a DEBUG line."""
    import logging
    import re

    caplog.set_level(logging.DEBUG, logger="tracklayer.services.fusion")

    async def body():
        s = Services(tmp_path, store=False, checkpoint_every=20, checkpoint_interval_s=0)
        await s.start_fusion()
        await send_fast(Stream(s.stub, "sat-1-1"), 200, 10)
        c = await settled_counters(s)
        await s.stop_fusion()
        return c["checkpoints_written_total"]

    written = run(body(), timeout=120)
    assert written >= 5
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    each = [m for lvl, m in lines if "event=checkpoint_written " in m]
    assert len(each) == written
    assert all(lvl == logging.DEBUG for lvl, m in lines if "event=checkpoint_written " in m)
    summaries = [m for lvl, m in lines if lvl == logging.INFO and "event=checkpoints_written" in m]
    assert len(summaries) == 2  # the first checkpoint, then the rest at the stop
    counts = [int(re.search(r"count=(\d+)", m).group(1)) for m in summaries]
    assert counts[0] == 1 and sum(counts) == written
    last_seq = int(re.search(r" seq=(\d+)", summaries[-1]).group(1))
    assert last_seq == int(re.search(r" seq=(\d+)", each[-1]).group(1))
