"""Scale-out on NATS JetStream (issue 14), with a real broker and real processes.

The broker comes from the ``nats_broker`` fixture (``tests/conftest.py``: a free
loopback port, a temporary store); the track store, the front door
(``tracklayer fusion --nats``) and the workers run as ``tracklayer`` processes, and
``tracklayer replay --max-speed`` streams the shared ``dropout`` recording (latency up
to 5 s and drops: every satellite's frames arrive out of order).

Proof 1: one shard through the broker reports exactly what ``tracklayer track`` writes
to ``/tracks``, in the same order and byte for byte (``emitted_at`` aside). Proof 3
(worker part): a worker SIGKILLed at a seeded random moment after its first
checkpoint is replaced by a standby that resumes from that checkpoint; the store ends
with exactly the undisturbed reports.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

import pytest

from tracklayer.services.ops import processes
from tracklayer.services.store_service.track_store import canonical_bytes
from tracklayer.services.wire.recording import TOPIC_TRACKS, RecordingReader
from tracklayer.v1 import track_pb2

pytest.importorskip("nats")
pytest.importorskip("tracklayer.fusion.tracker")

SCENARIO = ("dropout", 150.0)  # shared with test_replay_service and test_fault_injection


def offline_reports(tracked: Path) -> list[bytes]:
    """``/tracks`` of ``tracklayer track``, in file order, without ``emitted_at``."""
    return [
        canonical_bytes(track_pb2.TrackReport.FromString(d))
        for _, _, d in RecordingReader(tracked).raw_messages([TOPIC_TRACKS])
    ]


def stored(db: Path) -> dict[tuple[str, int], bytes]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT track_id, revision, content FROM reports").fetchall()
    except sqlite3.OperationalError:  # the store has not created its table yet
        rows = []
    finally:
        con.close()
    return {(tid, rev): content for tid, rev, content in rows}


def wait_stored(db: Path, n: int, timeout_s: float = 60.0) -> dict[tuple[str, int], bytes]:
    """The store's reports once it holds ``n`` (or the timeout passed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = stored(db)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def stream_reports(url: str, fusion_id: str = "fusion") -> list[bytes]:
    """Every message of the REPORTS stream, in stream order, without ``emitted_at``."""
    import nats

    from tracklayer.services.scaleout.names import Names
    from tracklayer.services.scaleout.stream_reader import StreamReader

    async def read() -> list[bytes]:
        names = Names(fusion_id)
        nc = await nats.connect(url)
        js = nc.jetstream()
        last = (await js.stream_info(names.reports_stream)).state.last_seq
        reader = StreamReader(js, names.reports_stream, names.reports_subject, 1)
        out: list[bytes] = []
        while reader.next_seq <= last:
            out += [
                canonical_bytes(track_pb2.TrackReport.FromString(m.data))
                for m in await reader.next_batch(2.0)
            ]
        await reader.close()
        await nc.close()
        return out

    return asyncio.run(read())


class Chain:
    """Store + front door (+ workers) as processes on one broker."""

    def __init__(self, work: Path, broker_url: str) -> None:
        self.work, self.url = work, broker_url
        self.logs = work / "logs"
        self.store = processes.start_server(
            "store", ["consumer", "--listen", "127.0.0.1:0", "--db", str(work / "t.sqlite")],
            self.logs,
        )  # fmt: skip
        self.front = processes.start_server(
            "fusion", ["fusion", "--listen", "127.0.0.1:0", "--store", self.store.address,
                       "--nats", broker_url, "--shards", "1", "--idle-timeout", "0"],
            self.logs,
        )  # fmt: skip
        self.workers: dict[str, processes.ChildProcess] = {}

    def worker(self, name: str, *extra: str) -> processes.ChildProcess:
        argv = ["worker", "--nats", self.url, "--id", name, *extra]
        self.workers[name] = processes.start_command(name, argv, self.logs)
        return self.workers[name]

    def replay(self, recording: Path) -> processes.ChildProcess:
        argv = ["replay", str(recording), "--fusion", self.front.address, "--max-speed"]
        return processes.start_command("replay", argv, self.logs)

    def stop(self) -> dict[str, int]:
        kids = [*self.workers.values(), self.front, self.store]
        return processes.stop_all([k for k in kids if k.alive()], grace_s=20)


def wait_for_line(child: processes.ChildProcess, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in child.log_path.read_text(errors="replace"):
        assert child.alive(), child.describe_exit()
        assert time.monotonic() < deadline, f"no {text!r} in {child.log_path}"
        time.sleep(0.05)


def test_broker_command_says_where_it_listens_and_stores_and_stops_on_sigterm(tmp_path):
    import nats

    child = processes.start_command(
        "broker", ["broker", "--listen", "127.0.0.1:0", "--store", str(tmp_path / "b")],
        tmp_path / "logs",
    )  # fmt: skip
    try:
        address = processes.wait_listening(child, 30)
        assert f"storing in {tmp_path / 'b' / 'jetstream'}" in child.log_path.read_text()

        async def jetstream_answers() -> int:
            nc = await nats.connect(f"nats://{address}")
            info = await nc.jetstream().account_info()
            await nc.close()
            return info.limits.max_streams

        asyncio.run(jetstream_answers())  # raises unless JetStream is on
    finally:
        rc = child.stop(10)
    assert rc == 0, child.describe_exit()
    assert (tmp_path / "b" / "jetstream").is_dir()


def test_one_shard_through_the_broker_reports_what_tracklayer_track_writes(
    simulated_mcap, tracked_mcap, nats_broker, tmp_path
):
    """Proof 1: the REPORTS stream equals ``/tracks`` of ``tracklayer track`` message for
    message (the same order), and the store holds exactly those reports."""
    rec = simulated_mcap(SCENARIO[0], duration_s=SCENARIO[1])
    expected = offline_reports(tracked_mcap(SCENARIO[0], duration_s=SCENARIO[1]))
    assert expected
    chain = Chain(tmp_path, nats_broker.url)
    try:
        chain.worker("w1")
        replay = chain.replay(rec)
        assert replay.wait(120) == 0, replay.log_tail()
        got = wait_stored(tmp_path / "t.sqlite", len(expected))
        in_stream = stream_reports(nats_broker.url)
    finally:
        codes = chain.stop()
    assert codes == {"w1": 0, "fusion": 0, "store": 0}
    assert in_stream == expected  # byte for byte, in order
    assert sorted(got.values()) == sorted(expected)
    assert "ACCEPTED" in replay.log_tail() and "LATE 0" in replay.log_tail()


def test_a_sigkilled_worker_is_replaced_from_its_checkpoint_and_nothing_is_lost(
    simulated_mcap, tracked_mcap, nats_broker, tmp_path
):
    """Proof 3 (worker): SIGKILL by PID at a seeded random moment after the first
    checkpoint; the standby takes the expired lease, resumes from the checkpoint (not
    from the start) and the store ends with exactly the undisturbed reports: nothing
    lost, nothing extra, every revision sequence 1..n without a gap."""
    rec = simulated_mcap(SCENARIO[0], duration_s=SCENARIO[1])
    expected = offline_reports(tracked_mcap(SCENARIO[0], duration_s=SCENARIO[1]))
    rng = random.Random(14)
    chain = Chain(tmp_path, nats_broker.url)
    try:
        w1 = chain.worker("w1", "--checkpoint-every", "300")
        wait_for_line(w1, "event=shard_started")
        w2 = chain.worker("w2", "--checkpoint-every", "300")  # standby: the lease is w1's
        replay = chain.replay(rec)
        wait_for_line(w1, "event=checkpoint_written")
        time.sleep(rng.uniform(0.0, 0.5))
        w1.signal(9)
        assert w1.wait(10) == -9
        assert replay.wait(120) == 0, replay.log_tail()
        got = wait_stored(tmp_path / "t.sqlite", len(expected), timeout_s=90)
    finally:
        codes = chain.stop()
    assert codes["w2"] == 0 and codes["fusion"] == 0 and codes["store"] == 0
    w2_log = w2.log_path.read_text()
    assert "event=checkpoint_loaded shard=0" in w2_log  # resumed, not replayed from 0
    assert sorted(got.values()) == sorted(expected)  # nothing lost, duplicated or changed
    revisions: dict[str, list[int]] = {}
    for tid, rev in sorted(got):
        revisions.setdefault(tid, []).append(rev)
    assert all(r == list(range(1, len(r) + 1)) for r in revisions.values())
