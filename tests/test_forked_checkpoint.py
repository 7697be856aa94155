"""Checkpoints of a big state encoded in a forked child (issue 13 item 6: at raid scale
the encode took 1-2.5 s on the event loop every few seconds; see
services/fusion_service/forked_encode.py and checkpointer.py).

The forks run in a fresh interpreter with gRPC's fork handlers off, as the
``tracklayer`` command runs the service, so that this test process (which has gRPC
loaded by other tests) is never forked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tracklayer.services import fork_policy
from tracklayer.services.fusion_service import checkpointer as cp_mod
from tracklayer.services.fusion_service import forked_encode
from tracklayer.services.fusion_service.checkpointer import Checkpointer
from tracklayer.services.fusion_service.journal import EventKind, Journal
from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.services.fusion_service.settings import FusionSettings

CHILD_SCRIPT = textwrap.dedent(
    """
    import asyncio, os
    from tracklayer.services.fork_policy import allow_fork
    allow_fork()  # first, as the tracklayer command does
    from collections import Counter
    from tracklayer.fusion.core import FusionCore
    from tracklayer.fusion.config import FusionConfig
    from tracklayer.fusion.domain import SensorFrame
    from tracklayer.sensors.scenario import load_scenario
    from tracklayer.sensors.simulation import simulate
    from tracklayer.services.fusion_service.forked_encode import (
        ChildEncode, ChildEncodeFailed, can_fork)
    from tracklayer.services.fusion_service.recovery import checkpoint_state

    assert can_fork()
    core = FusionCore("fusion", FusionConfig(), live=True)
    n = 0
    for _, item in simulate(load_scenario("salvo"), duration_s=240):
        if isinstance(item, SensorFrame):
            core.submit(item)
            n += 1
    opens = Counter({"sat-1-1": 1})
    inline = checkpoint_state(core, opens)

    async def main():
        child = ChildEncode()
        child.start(lambda: checkpoint_state(core, opens))
        for _ in range(50):  # the engine goes on while the child encodes the old state
            core.tracker.process  # touch
        blob, seconds = await child.result()
        assert blob == inline, (len(blob), len(inline))
        assert seconds > 0
        def boom():
            raise RuntimeError("no")
        bad = ChildEncode()
        bad.start(boom)
        try:
            await bad.result()
        except ChildEncodeFailed as exc:
            failed = str(exc)
        else:
            raise AssertionError("a failing child was not reported")
        def hang():
            import time
            time.sleep(600)
            return b""
        stuck = ChildEncode()
        stuck.start(hang)
        pid = stuck.pid
        try:
            await stuck.result(timeout_s=1.0)
        except ChildEncodeFailed as exc:
            assert "killed" in str(exc), exc
        else:
            raise AssertionError("a hung child was not given up")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pass  # killed and reaped
        else:
            raise AssertionError("the hung child is still there")
        return len(blob), failed

    size, failed = asyncio.run(main())
    print("OK", n, size, core.counters["tracks_live"], failed)
    """
)


def test_a_state_encoded_in_a_child_is_the_one_encoded_in_place(tmp_path: Path) -> None:
    env = dict(os.environ, GRPC_ENABLE_FORK_SUPPORT="false", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    words = out.stdout.split()
    assert words[0] == "OK"
    frames, size, live = int(words[1]), int(words[2]), int(words[3])
    assert frames > 1000 and live > 0  # a real state with tracks in it
    assert size > 10_000
    assert "ended with 1" in out.stdout  # the failing child's exit status is named
    # and a child that hangs (a lock held at the fork) is killed after its deadline


def _checkpointer(tmp_path: Path) -> Checkpointer:
    settings = FusionSettings(
        journal_path=tmp_path / "j.sqlite",
        outbox_path=tmp_path / "o.sqlite",
        checkpoint_every=5,
        checkpoint_interval_s=0.0,
    )
    journal = Journal(settings.journal_path)
    outbox = Outbox(settings.outbox_path)
    cp = Checkpointer(settings, journal, outbox, db_run=None)  # type: ignore[arg-type]
    for _ in range(10):
        journal.append(EventKind.FRAME, "sat-1-1", time.time(), b"x")
    journal.commit()
    return cp


def test_a_big_state_is_checkpointed_no_more_often_than_its_cost_allows(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("GRPC_ENABLE_FORK_SUPPORT", "false")
    monkeypatch.setattr(fork_policy, "_allowed", True)  # as in the command
    cp = _checkpointer(tmp_path)
    assert cp.due(10)  # 10 events since none, the encode cheap so far: by the event count
    cp.last_encode_s = 2.0  # a raid-size state: 2 s to encode
    cp.at = time.monotonic() - 5.0
    assert not cp.due(10)  # 5 s < COST_FACTOR x 2 s since the last one
    cp.at = time.monotonic() - (cp_mod.COST_FACTOR * 2.0 + 0.5)
    assert cp.due(10)


def test_where_it_may_not_fork_the_event_count_alone_decides(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GRPC_ENABLE_FORK_SUPPORT", raising=False)
    cp = _checkpointer(tmp_path)
    cp.last_encode_s = 2.0
    cp.at = time.monotonic()
    assert cp.due(10)  # encoded on the loop as before: every checkpoint_every events


def test_a_process_that_loaded_grpc_first_never_forks(monkeypatch) -> None:
    # this test process has gRPC loaded (other tests use it), as one that calls the
    # tracklayer command in process would: allowing forks must change nothing (a fork
    # here crashed a child in CI: threading's after-fork handler, SIGSEGV)
    import grpc  # noqa: F401

    monkeypatch.setattr(fork_policy, "_allowed", False)
    monkeypatch.setenv("GRPC_ENABLE_FORK_SUPPORT", "false")
    fork_policy.allow_fork()
    assert not forked_encode.can_fork()
