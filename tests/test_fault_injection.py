"""Fault injection (issue 7 item 4): SIGKILL and restart the services during a live run.

``tracklayer consumer`` and ``tracklayer fusion`` run as processes on fixed
ports; ``tracklayer replay --max-speed`` streams a recording into them while
the fusion service and the store are each SIGKILLed and restarted at random
moments (seeded). Each kill cuts every connection to that process: the sensor
streams, or the fusion service's outbox stream to the store.

DESIGN §6 and §8 make the outcome exact: the journal holds every acknowledged
frame, replaying it reproduces the same track ids and revisions, the outbox
redelivers at least once and the store keeps each (track_id, revision) once.
So the store must end with exactly the reports ``tracklayer track`` computes
offline from the same recording: none lost, none duplicated or conflicting,
no track id reused.
"""

from __future__ import annotations

import asyncio
import random
import socket
import sqlite3
import threading
import time
from pathlib import Path

import grpc
import pytest

from tracklayer.services.cli import main
from tracklayer.services.ops import processes
from tracklayer.services.store_service.track_store import canonical_bytes
from tracklayer.services.wire.recording import TOPIC_TRACKS, RecordingReader
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
from tracklayer.v1 import track_pb2

RESTART_LIMIT_S = 30.0  # kill -> SERVING again, journal replay included, on a loaded 2-CPU box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deployment:
    """Store + fusion processes on fixed ports; ``kill(name)`` SIGKILLs and restarts one."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.store_addr = f"127.0.0.1:{free_port()}"
        self.fusion_addr = f"127.0.0.1:{free_port()}"
        self.lock = threading.Lock()
        self.kills: list[tuple[str, float]] = []  # (name, seconds to SERVING again)
        self.children = {"store": self._start("store"), "fusion": self._start("fusion")}

    def _args(self, name: str) -> list[str]:
        if name == "store":
            return ["consumer", "--listen", self.store_addr, "--db", str(self.work / "t.sqlite")]
        return ["fusion", "--listen", self.fusion_addr, "--store", self.store_addr,
                "--journal", str(self.work / "f.journal.sqlite"),
                "--outbox", str(self.work / "f.outbox.sqlite"), "--idle-timeout", "0"]  # fmt: skip

    def _start(self, name: str) -> processes.ChildProcess:
        deadline = time.monotonic() + RESTART_LIMIT_S
        while True:
            try:
                return processes.start_server(
                    name, self._args(name), self.work / "logs", timeout_s=RESTART_LIMIT_S
                )
            except processes.ChildError:
                if time.monotonic() > deadline:  # the port may linger a moment after a kill
                    raise
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        with self.lock:
            child = self.children[name]
            child.signal(9)
            child.wait(30)
            t = time.monotonic()
            self.children[name] = self._start(name)
            self.kills.append((name, time.monotonic() - t))

    def stop(self) -> None:
        processes.stop_all(self.children.values(), grace_s=20)


async def fusion_quiet(address: str, timeout_s: float = 60.0) -> dict[str, int]:
    """GetStatus once the tracker has caught up with what was acknowledged and the
    outbox has been empty, for three polls in a row."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    async with grpc.aio.insecure_channel(address) as ch:
        stub = fs_grpc.FusionServiceStub(ch)
        while True:
            c = dict(
                (
                    await stub.GetStatus(fs.GetStatusRequest(), timeout=10, wait_for_ready=True)
                ).counters
            )
            busy = c.get("outbox_depth", 0) + c.get("frames_untracked", 0)
            quiet = quiet + 1 if busy == 0 else 0
            if quiet >= 3 or time.monotonic() > deadline:
                return c
            await asyncio.sleep(0.3)


def stored_reports(db: Path) -> dict[tuple[str, int], bytes]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT track_id, revision, content FROM reports").fetchall()
    con.close()
    return {(tid, rev): content for tid, rev, content in rows}


def test_random_sigkills_of_fusion_and_store_lose_duplicate_and_reuse_nothing(
    simulated_mcap, tmp_path
):
    pytest.importorskip("tracklayer.fusion.tracker")
    rec = simulated_mcap("dropout", duration_s=150)  # shared with test_replay_service
    offline = tmp_path / "offline.mcap"
    assert main(["track", str(rec), "--out", str(offline)]) == 0
    expected: dict[tuple[str, int], bytes] = {}
    for _, _, data in RecordingReader(offline).raw_messages([TOPIC_TRACKS]):
        r = track_pb2.TrackReport.FromString(data)
        expected[(r.track_id, r.revision)] = canonical_bytes(r)
    assert expected

    dep = Deployment(tmp_path)
    rng = random.Random(20261125)
    try:
        # Paced so the replay lasts at least 150 / 40 = 3.75 s: acks no longer wait for
        # the tracker, so at --max-speed it could end before the last kill at <= 3.0 s.
        replay = processes.start_command(
            "replay", ["replay", str(rec), "--fusion", dep.fusion_addr, "--speed", "40"],
            tmp_path / "logs",
        )  # fmt: skip
        # Two kills of each service at random moments while the replay runs.
        plan = sorted((rng.uniform(0.2, 3.0), name) for name in ("fusion", "store") * 2)
        start = time.monotonic()
        for at, name in plan:
            time.sleep(max(0.0, start + at - time.monotonic()))
            if replay.alive():
                dep.kill(name)
        assert replay.wait(180) == 0, replay.log_tail()
        status = asyncio.run(fusion_quiet(dep.fusion_addr))
    finally:
        dep.stop()
    got = stored_reports(tmp_path / "t.sqlite")

    killed = [name for name, _ in dep.kills]
    assert "fusion" in killed and "store" in killed, f"the replay ended before the kills: {killed}"
    assert max(s for _, s in dep.kills) < RESTART_LIMIT_S
    assert status["outbox_depth"] == 0 and status.get("outbox_rejected", 0) == 0
    assert sorted(set(expected) - set(got)) == []  # nothing lost
    assert sorted(set(got) - set(expected)) == []  # no extra revision, no reused track id
    assert [
        k for k in expected if got[k] != expected[k]
    ] == []  # same content, revision by revision
