"""Scale-out proof 3 for the front door and the broker (issue 14): SIGKILL by PID at
seeded random moments while ``tracklayer replay`` streams the shared ``dropout``
recording, restart, and the store must end with exactly the reports of the undisturbed
run (``tracklayer track``'s): none lost, none extra, no revision gap.

Why it holds: the front door acknowledges a frame only after the broker stored its
journal event, a restarted front door rebuilds its ordering from the stream (the
sensors' resends are answered DUPLICATE), the shards read the stream from where they
are, and the broker keeps everything in its store directory across the kill.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
from scaleout_chain import Chain, front_status, offline_reports, wait_for_line, wait_stored

from tracklayer.services.wire.recording import TOPIC_FRAMES, RecordingReader

pytest.importorskip("nats")
pytest.importorskip("tracklayer.fusion.tracker")

SCENARIO = ("dropout", 150.0)  # shared with test_scaleout and test_replay_service
PACE = ("--speed", "40")  # ~4 s of streaming: the kills land while frames flow
RESTART_LIMIT_S = 30.0  # kill -> SERVING again on a loaded 2-CPU machine


def front_logs(work: Path) -> str:
    """Every front-door log of the run, in start order."""

    def start_number(p: Path) -> int:  # fusion.log, fusion-2.log, fusion-3.log, ...
        return int(p.stem.partition("-")[2] or 1)

    logs = sorted((work / "logs").glob("fusion*.log"), key=start_number)
    return "\n".join(p.read_text() for p in logs)


def exact_and_gapless(got: dict[tuple[str, int], bytes], expected: list[bytes]) -> None:
    assert sorted(got.values()) == sorted(expected)  # nothing lost, duplicated or changed
    revisions: dict[str, list[int]] = {}
    for tid, rev in sorted(got):
        revisions.setdefault(tid, []).append(rev)
    assert all(r == list(range(1, len(r) + 1)) for r in revisions.values())


def test_front_door_sigkilled_twice_mid_stream_loses_and_duplicates_nothing(
    simulated_mcap, tracked_mcap, nats_broker, tmp_path
):
    rec = simulated_mcap(SCENARIO[0], duration_s=SCENARIO[1])
    expected = offline_reports(tracked_mcap(SCENARIO[0], duration_s=SCENARIO[1]))
    rng = random.Random(1402)
    # Front-door checkpoints every 300 events: the restarts load one and replay the rest.
    chain = Chain(tmp_path, nats_broker.url, "--checkpoint-every", "300")
    restarts = []
    try:
        w1 = chain.worker("w1")
        wait_for_line(w1, "event=shard_started")
        replay = chain.replay(rec, *PACE)
        for _ in range(2):
            wait_for_line(chain.front, "event=stream_open")  # frames are flowing (again)
            time.sleep(rng.uniform(0.2, 1.2))
            assert replay.alive(), "the replay ended before the kill"
            restarts.append(chain.kill_front())
        assert replay.wait(180) == 0, replay.log_tail()
        got = wait_stored(tmp_path / "t.sqlite", len(expected), timeout_s=90)
        journaled = front_status(chain.front_address, lambda c: True)["journal_frames"]
    finally:
        codes = chain.stop()
    assert codes == {"w1": 0, "fusion": 0, "store": 0}
    assert max(restarts) < RESTART_LIMIT_S
    frames = sum(1 for _ in RecordingReader(rec).raw_messages([TOPIC_FRAMES]))
    assert journaled == frames  # each frame journaled once, counted across the restarts
    journaled = [int(m) for m in re.findall(r"event=journal_replayed .* frames=(\d+)",
                                            front_logs(tmp_path))]  # fmt: skip
    assert len(journaled) == 3 and 0 < journaled[1] < journaled[2]  # frames before each kill
    exact_and_gapless(got, expected)


def test_broker_sigkilled_and_restarted_on_its_store_loses_and_duplicates_nothing(
    simulated_mcap, tracked_mcap, nats_broker, tmp_path
):
    from tracklayer.services.scaleout.broker import start_broker

    rec = simulated_mcap(SCENARIO[0], duration_s=SCENARIO[1])
    expected = offline_reports(tracked_mcap(SCENARIO[0], duration_s=SCENARIO[1]))
    rng = random.Random(1403)
    chain = Chain(tmp_path, nats_broker.url)
    broker = nats_broker
    try:
        w1 = chain.worker("w1", "--checkpoint-every", "300")
        wait_for_line(w1, "event=shard_started")
        replay = chain.replay(rec, *PACE)
        wait_for_line(chain.front, "event=stream_open")  # frames are flowing
        time.sleep(rng.uniform(0.5, 2.5))
        assert replay.alive(), "the replay ended before the kill"
        broker.kill()  # SIGKILL by PID
        time.sleep(rng.uniform(0.5, 1.5))
        broker = start_broker(nats_broker.address, nats_broker.store_dir)
        assert replay.wait(180) == 0, replay.log_tail()
        got = wait_stored(tmp_path / "t.sqlite", len(expected), timeout_s=90)
    finally:
        codes = chain.stop()
        if broker is not nats_broker:
            broker.stop(5.0)
    assert codes == {"w1": 0, "fusion": 0, "store": 0}
    assert "event=broker_unreachable" in chain.front.log_path.read_text()  # it did notice
    exact_and_gapless(got, expected)
