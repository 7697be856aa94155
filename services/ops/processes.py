"""Child processes running ``tracklayer`` commands: start, find the bound address, stop.

Used by ``tracklayer demo`` and by the pytest fixtures of
:mod:`tracklayer.services.testing`. Every child runs
``python -m tracklayer.services.cli COMMAND ...`` with the current interpreter,
its stdout and stderr going to one log file. A server started with
``--listen 127.0.0.1:0`` prints ``... listening on HOST:PORT`` once bound;
:func:`start_server` reads that line, then waits until the server's
``grpc.health.v1.Health`` answers SERVING.

Stopping is SIGTERM first (the services shut down gracefully on it), then
SIGKILL after a grace period, so no child outlives :func:`stop_all`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tracklayer.services.ops.parent_watch import ENV

_LISTENING = re.compile(r"listening on (\S+)")
POLL_S = 0.05  # how often a starting child's log is read (s)


class ChildError(Exception):
    """A child process failed to start or ended badly; the message names it and its log."""


@dataclass
class ChildProcess:
    """One running ``tracklayer`` command; ``address`` is set once a server is listening."""

    name: str
    argv: list[str]
    proc: subprocess.Popen
    log_path: Path
    address: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` if the child still runs (never to a reaped pid)."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout_s: float | None = None) -> int | None:
        """The exit status, or None if still running after ``timeout_s`` seconds."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM, wait up to ``grace_s`` seconds, then SIGKILL; returns the exit status."""
        return stop_all([self], grace_s)[self.name]

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the child's log (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe_exit(self) -> str:
        """``name (pid N) exited with status S; log FILE:`` followed by the log's tail."""
        rc = self.proc.poll()
        how = "is still running" if rc is None else f"exited with status {rc}"
        if rc is not None and rc < 0:
            how = f"was killed by {signal.Signals(-rc).name}"
        tail = self.log_tail()
        return f"{self.name} (pid {self.pid}) {how}; log {self.log_path}" + (
            ":\n" + tail if tail else ""
        )


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: this one, unbuffered, one BLAS thread (DESIGN §9)."""
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def start_command(
    name: str,
    args: Sequence[str],
    log_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    new_group: bool = False,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> ChildProcess:
    """Start ``tracklayer ARGS...`` as a child; stdout and stderr go to ``log_dir/NAME.log``
    (``NAME-2.log``, ... when that exists: each start has a log of its own).

    ``new_group``: run it in a process group of its own, so that a terminal's
    Ctrl-C reaches only this process, which then stops the child in order.
    ``die_with_parent`` (Linux): the child gets SIGTERM when this process dies, even
    by SIGKILL (:mod:`.parent_watch`). Call it from a thread that lives as long as
    the child should: the kernel watches the thread that started the child.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    k = 1
    while log_path.exists():  # a restart keeps the earlier run's log
        k += 1
        log_path = log_dir / f"{name}-{k}.log"
    argv = [sys.executable, "-m", "tracklayer.services.cli", *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env({**(env or {}), **({ENV: str(os.getpid())} if die_with_parent else {})}),
            cwd=cwd,
            process_group=0 if new_group else None,
        )
    return ChildProcess(name=name, argv=argv, proc=proc, log_path=log_path)


def wait_listening(child: ChildProcess, timeout_s: float = 60.0) -> str:
    """Wait for the child's ``listening on HOST:PORT`` line; returns ``HOST:PORT``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            m = _LISTENING.search(child.log_path.read_text(errors="replace"))
        except OSError:
            m = None
        if m:
            child.address = m.group(1)
            return child.address
        if not child.alive():
            raise ChildError(f"{child.name} did not start: " + child.describe_exit())
        if time.monotonic() > deadline:
            raise ChildError(
                f"{child.name} printed no 'listening on' line within {timeout_s:g} s: "
                + child.describe_exit()
            )
        time.sleep(POLL_S)


def wait_healthy(address: str, service: str = "", timeout_s: float = 30.0) -> None:
    """Wait until ``grpc.health.v1.Health/Check(service)`` at ``address`` says SERVING."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildError(f"{address}: health check {service!r} not SERVING ({last})")
            try:
                resp = stub.Check(
                    health_pb2.HealthCheckRequest(service=service),
                    timeout=min(left, 5.0),
                    wait_for_ready=True,
                )
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            except grpc.RpcError as exc:
                last = f"{exc.code().name}: {exc.details()}"
            time.sleep(POLL_S)


def start_server(
    name: str,
    args: Sequence[str],
    log_dir: Path,
    *,
    health_service: str = "",
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
    new_group: bool = False,
    cwd: Path | None = None,
) -> ChildProcess:
    """Start a server command (``consumer``, ``fusion``) and return it once SERVING.

    ``args`` should listen on port 0; the bound address is read from the
    child's log. On failure the child is stopped and :class:`ChildError` raised.
    """
    child = start_command(name, args, log_dir, env=env, new_group=new_group, cwd=cwd)
    try:
        address = wait_listening(child, timeout_s)
        wait_healthy(address, health_service, timeout_s)
    except BaseException:
        stop_all([child], grace_s=5.0)
        raise
    return child


def stop_all(children: Iterable[ChildProcess], grace_s: float = 10.0) -> dict[str, int]:
    """SIGTERM every running child, SIGKILL those still running after ``grace_s`` seconds.

    Returns each child's exit status by name (negative: killed by that signal).
    """
    kids = list(children)
    for c in kids:
        c.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for c in kids:
        c.wait(max(0.0, deadline - time.monotonic()))
    for c in kids:
        if c.alive():
            c.signal(signal.SIGKILL)
    return {c.name: c.proc.wait() for c in kids}
