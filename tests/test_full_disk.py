"""A full disk (issue 15 item 7), as a file-size limit (RLIMIT_FSIZE) on a real
``tracklayer fusion`` process: it stops acknowledging (UNAVAILABLE saying why),
keeps answering health (NOT_SERVING) and status, logs one line, resumes by itself
when the limit is lifted, and loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import sqlite3
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_fusion_service import ACCEPTED, DUPLICATE, frame, run

from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

LIMIT_BYTES = 1_500_000
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _frames(n: int) -> list:
    rng = np.random.default_rng(5)
    out = []
    for k in range(n):
        los = rng.normal(size=(100, 3))
        los /= np.linalg.norm(los, axis=1, keepdims=True)
        out.append(frame("sat-1-1", k, k * 0.5, los=[tuple(u) for u in los]))
    return out


def _limit_file_size() -> None:
    """Soft limit only: lifting it again (``prlimit``) needs no privilege."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, resource.RLIM_INFINITY))


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit")
def test_a_full_disk_stops_acks_then_resumes_by_itself_losing_nothing(tmp_path):
    journal = tmp_path / "j.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracklayer.services.cli", "fusion", "--listen", "127.0.0.1:0",
         "--store", "127.0.0.1:9", "--id", "fx", "--journal", str(journal),
         "--outbox", str(tmp_path / "o.sqlite"), "--idle-timeout", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"), preexec_fn=_limit_file_size,
    )  # fmt: skip
    frames = _frames(600)
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        assert m, line + proc.stderr.read()
        address = m.group(1)
        try:
            acked, refusal, health_while_full, status_while_full, resumed_s, statuses = run(
                _drive(address, proc.pid, frames), timeout=120
            )
        except Exception as exc:
            proc.kill()
            raise AssertionError(f"{exc!r}\n" + proc.stderr.read()[-3000:]) from None
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert refusal.startswith("journal: cannot write") and str(journal) in refusal
    assert "resend" in refusal
    assert health_while_full == NOT_SERVING
    # status answers while full (its totals may include the refused group commit's
    # frames until the state is rebuilt from the journal)
    assert status_while_full['frames_total{status="accepted"}'] >= acked > 0
    assert resumed_s < 10
    assert set(statuses) <= {ACCEPTED, DUPLICATE} and len(statuses) == len(frames) - acked
    assert err.count("event=journal_unwritable") == 1, err[-3000:]
    assert err.count("event=journal_writable") == 1
    with sqlite3.connect(journal) as db:
        (journaled,) = db.execute("SELECT COUNT(*) FROM events WHERE kind = 1").fetchone()
        (trimmed,) = db.execute(
            "SELECT COALESCE(MAX(value), 0) FROM meta WHERE key = 'trimmed_frames'"
        ).fetchone()
    # every frame acknowledged (before or after the full disk) journaled exactly once
    assert journaled + trimmed == len(frames)


async def _drive(address: str, pid: int, frames: list):
    async with grpc.aio.insecure_channel(address) as ch:
        stub = fs_grpc.FusionServiceStub(ch)
        health = health_pb2_grpc.HealthStub(ch)
        call = stub.StreamFrames()
        acked = 0
        refusal = ""
        try:
            for i in range(0, len(frames), 10):
                await call.write(fs.StreamFramesRequest(frames=frames[i : i + 10]))
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    break
                assert {a.status for a in resp.acks} == {ACCEPTED}
                acked += len(resp.acks)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            refusal = exc.details()
        assert refusal, "the file-size limit was never reached"
        h = await health.Check(health_pb2.HealthCheckRequest(service=""))
        status = dict((await stub.GetStatus(fs.GetStatusRequest(), timeout=10)).counters)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        t0 = time.monotonic()
        while (await health.Check(health_pb2.HealthCheckRequest(service=""))).status != SERVING:
            assert time.monotonic() - t0 < 20, "never SERVING again"
            await asyncio.sleep(0.1)
        resumed_s = time.monotonic() - t0
        call = stub.StreamFrames()
        statuses = []
        for i in range(acked, len(frames), 10):
            await call.write(fs.StreamFramesRequest(frames=frames[i : i + 10]))
            resp = await call.read()
            statuses += [a.status for a in resp.acks]
        await call.done_writing()
        return acked, refusal, h.status, status, resumed_s, statuses
