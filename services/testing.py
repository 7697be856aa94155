"""pytest fixtures for integration tests against the real services (a pytest plugin).

Enable it in a ``conftest.py`` (or a test module)::

    pytest_plugins = ["tracklayer.services.testing"]

Fixtures (each on free loopback ports, files under the test's ``tmp_path``):

- ``tracklayer_services``: the track store (``tracklayer consumer``) and the
  fusion service (``tracklayer fusion``) as subprocesses, started and healthy;
  on teardown each gets SIGTERM and must exit 0 (else the test errors with
  the process's log).
- ``tracklayer_services_inprocess``: the same two servers inside the test
  process (``grpc.aio`` on a background event-loop thread), quicker to start
  and with the server objects at hand (``.store_server``, ``.fusion_server``).
- ``tracklayer_client``: a :class:`~tracklayer.services.clients.client.TracklayerClient`
  connected to ``tracklayer_services``.
- ``tracklayer_launcher``: a factory for other settings,
  ``tracklayer_launcher(in_process=False, fusion_id=..., idle_timeout_s=...,
  fusion_config={...}, sensors=[...])``; everything it started is stopped
  (and checked) on teardown.

Both kinds of service set have the same interface: ``store_address``,
``fusion_address``, ``client()``, ``stop()``, and ``workdir`` (database,
journal, outbox, and the subprocesses' logs). The fusion service runs with
``--idle-timeout 0`` by default, so results do not depend on wall-clock
timing (DESIGN §6): a stream the client closes takes its sensor out of the
ordering watermark, and once every stream is closed the service flushes.
"""

from __future__ import annotations

import asyncio
import math
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tracklayer.services.clients.client import TracklayerClient, TrackSubscription
from tracklayer.services.ops.processes import ChildError, ChildProcess, start_server, stop_all
from tracklayer.v1 import fusion_service_pb2, track_store_service_pb2

__all__ = [
    "FUSION_SERVICE",
    "STORE_SERVICE",
    "ChildError",
    "InProcessServices",
    "ProcessServices",
    "TrackSubscription",
    "TracklayerClient",
]

FUSION_SERVICE = fusion_service_pb2.DESCRIPTOR.services_by_name["FusionService"].full_name
STORE_SERVICE = track_store_service_pb2.DESCRIPTOR.services_by_name["TrackStoreService"].full_name
REBIND_TIMEOUT_S = 15.0  # a restarted store retries its old port this long
#: Seconds a graceful stop may take before SIGKILL. A stop tracks the tracker's backlog first
#: (DESIGN §8 rule 4: acks do not wait for the tracker): after a --max-speed replay that is
#: ~1 s of CPU, but on a starved CI core it took over 15 s (a dropout session's 2,387 frames).
STOP_GRACE_S = 60.0
T = TypeVar("T")


def _write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """A flat TOML table of FusionConfig fields (numbers and booleans)."""
    lines = []
    for key, value in config.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float) and math.isfinite(value):
            text = repr(value)
        else:
            raise ValueError(
                f"fusion_config.{key}: only finite numbers and booleans, got {value!r}"
            )
        lines.append(f"{key} = {text}")
    path.write_text("\n".join(lines) + "\n")
    return path


class _HandsOutClients:
    """The ``client()`` of both service sets: clients of both services, closed on stop."""

    fusion_address: str
    store_address: str
    _clients: list[TracklayerClient]

    def client(self, timeout: float = 30.0) -> TracklayerClient:
        """A client of both services (closed by :meth:`stop`)."""
        c = TracklayerClient(self.fusion_address, self.store_address, timeout=timeout)
        self._clients.append(c)
        return c

    def _close_clients(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()


class ProcessServices(_HandsOutClients):
    """Track store and fusion service as subprocesses on ephemeral loopback ports.

    ``fusion_config``: FusionConfig fields (SI units) passed as ``--config``;
    ``sensors``: the ``--sensors`` allow-list; ``fusion_args``: more flags.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        fusion_id: str = "fusion",
        idle_timeout_s: float = 0.0,
        fusion_config: Mapping[str, Any] | None = None,
        sensors: Sequence[str] = (),
        fusion_args: Sequence[str] = (),
        timeout_s: float = 60.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.fusion_id = fusion_id
        self.idle_timeout_s = idle_timeout_s
        self.fusion_config = dict(fusion_config or {})
        self.sensors = list(sensors)
        self.fusion_args = list(fusion_args)
        self.timeout_s = timeout_s
        self.store_process: ChildProcess | None = None
        self.fusion_process: ChildProcess | None = None
        self.exit_codes: dict[str, list[int]] = {"store": [], "fusion": []}
        self.stopped: list[tuple[ChildProcess, int, int]] = []  # (process, status, signal)
        self._store_address: str | None = None
        self._clients: list[TracklayerClient] = []

    @property
    def store_address(self) -> str:
        if self._store_address is None:
            raise RuntimeError("the track store has not been started")
        return self._store_address

    @property
    def fusion_address(self) -> str:
        if self.fusion_process is None or self.fusion_process.address is None:
            raise RuntimeError("the fusion service is not running")
        return self.fusion_process.address

    def start(self) -> ProcessServices:
        """Start the store, then the fusion service delivering to it."""
        self.start_store()
        self.start_fusion()
        return self

    def start_store(self) -> ChildProcess:
        """Start ``tracklayer consumer`` (again on the same port after a :meth:`stop_store`)."""
        listen = self._store_address or "127.0.0.1:0"
        deadline = time.monotonic() + REBIND_TIMEOUT_S
        while True:
            try:
                self.store_process = start_server(
                    "store",
                    ["consumer", "--listen", listen, "--db", str(self.workdir / "store.sqlite")],
                    self.workdir,
                    health_service=STORE_SERVICE,
                    timeout_s=self.timeout_s,
                )
                break
            except ChildError as exc:
                # The old port can be briefly held, e.g. by a client's connection attempt
                # that the kernel bound to that very port (a TCP self-connect): retry.
                if "cannot listen" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self._store_address = self.store_process.address
        return self.store_process

    def start_fusion(self) -> ChildProcess:
        """Start ``tracklayer fusion`` on a free port (a restart reuses journal and outbox)."""
        args = [
            "fusion",
            "--listen",
            "127.0.0.1:0",
            "--store",
            self.store_address,
            "--id",
            self.fusion_id,
            "--journal",
            str(self.workdir / f"{self.fusion_id}.journal.sqlite"),
            "--outbox",
            str(self.workdir / f"{self.fusion_id}.outbox.sqlite"),
            "--idle-timeout",
            repr(float(self.idle_timeout_s)),
        ]
        if self.sensors:
            args += ["--sensors", ",".join(self.sensors)]
        if self.fusion_config:
            args += [
                "--config",
                str(_write_config(self.workdir / "fusion.toml", self.fusion_config)),
            ]
        self.fusion_process = start_server(
            "fusion",
            args + self.fusion_args,
            self.workdir,
            health_service=FUSION_SERVICE,
            timeout_s=self.timeout_s,
        )
        return self.fusion_process

    def _stop(self, name: str, sig: int) -> int:
        child = self.store_process if name == "store" else self.fusion_process
        if child is None:
            return 0
        if sig == signal.SIGTERM:
            rc = stop_all([child], STOP_GRACE_S)[name]
        else:  # e.g. SIGKILL (a crash) or SIGINT; SIGTERM/SIGKILL if it does not end
            child.signal(sig)
            waited = child.wait(STOP_GRACE_S)
            rc = stop_all([child], 5.0)[name] if waited is None else waited
        self.exit_codes[name].append(rc)
        self.stopped.append((child, rc, sig))
        if name == "store":
            self.store_process = None
        else:
            self.fusion_process = None
        return rc

    def stop_fusion(self, sig: int = signal.SIGTERM) -> int:
        """Stop the fusion service with ``sig`` (SIGKILL: a crash); returns its exit status."""
        return self._stop("fusion", sig)

    def stop_store(self, sig: int = signal.SIGTERM) -> int:
        """Stop the track store with ``sig``; returns its exit status."""
        return self._stop("store", sig)

    def stop(self) -> dict[str, int]:
        """Close clients; SIGTERM the fusion service (it drains to the store), then the store."""
        self._close_clients()
        codes = {}
        for name in ("fusion", "store"):
            if (self.fusion_process if name == "fusion" else self.store_process) is not None:
                codes[name] = self._stop(name, signal.SIGTERM)
        return codes

    def check_clean_exit(self) -> None:
        """Fail the test unless every SIGTERM stop so far exited 0 (with the logs' tails)."""
        bad = [(c, rc) for c, rc, sig in self.stopped if sig == signal.SIGTERM and rc != 0]
        if bad:
            text = "\n".join(c.describe_exit() for c, _ in bad)
            pytest.fail(f"service(s) did not exit 0 on SIGTERM:\n{text}", pytrace=False)


class _LoopThread:
    """An asyncio event loop running in a daemon thread; ``run(coro)`` blocks for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="tracklayer-aio", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Cancel what is left on the loop, stop it and close it."""

        async def cancel_rest() -> None:
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.run(cancel_rest(), timeout=10.0)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10.0)
            self.loop.close()


class InProcessServices(_HandsOutClients):
    """Track store and fusion service in this process (grpc.aio on a loop thread).

    Same options and interface as :class:`ProcessServices`; ``fusion_config``
    is a mapping of FusionConfig fields or a ``FusionConfig``. The running
    servers are ``store_server`` and ``fusion_server``; touch them only through
    :meth:`call` (they live on the loop thread).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        fusion_id: str = "fusion",
        idle_timeout_s: float = 0.0,
        fusion_config: Any = None,
        sensors: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.fusion_id = fusion_id
        self.idle_timeout_s = idle_timeout_s
        self.fusion_config = fusion_config
        self.sensors = tuple(sorted(sensors))
        self.store_server: Any = None
        self.fusion_server: Any = None
        self._loop: _LoopThread | None = None
        self._clients: list[TracklayerClient] = []

    @property
    def store_address(self) -> str:
        if self.store_server is None:
            raise RuntimeError("the track store is not running")
        return self.store_server.address

    @property
    def fusion_address(self) -> str:
        if self.fusion_server is None:
            raise RuntimeError("the fusion service is not running")
        return self.fusion_server.address

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 60.0) -> T:
        """Run ``fn()`` (a coroutine function) on the servers' event loop; return its result."""
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop.run(fn(), timeout)

    def _settings(self):
        from tracklayer.fusion.config import FusionConfig
        from tracklayer.services.fusion_service.settings import FusionSettings

        cfg = self.fusion_config
        if cfg is None:
            cfg = FusionConfig()
        elif not isinstance(cfg, FusionConfig):
            cfg = FusionConfig.from_mapping(dict(cfg))
        return FusionSettings(
            fusion_id=self.fusion_id,
            config=cfg,
            sensors=self.sensors,
            journal_path=self.workdir / f"{self.fusion_id}.journal.sqlite",
            outbox_path=self.workdir / f"{self.fusion_id}.outbox.sqlite",
            store_target=self.store_address,
            idle_timeout_s=float(self.idle_timeout_s),
            store_max_backoff_s=0.5,
        )

    def start(self) -> InProcessServices:
        """Start the store, then the fusion service delivering to it."""
        from tracklayer.services.fusion_service.servicer import start_fusion_server
        from tracklayer.services.store_service.servicer import start_track_store_server

        db = self.workdir / "store.sqlite"
        self.store_server = self.call(lambda: start_track_store_server(db, "127.0.0.1:0"))
        settings = self._settings()
        self.fusion_server = self.call(lambda: start_fusion_server(settings, "127.0.0.1:0"))
        return self

    def stop(self) -> dict[str, int]:
        """Graceful stop: the fusion service (drains to the store), then the store."""
        self._close_clients()
        if self.fusion_server is not None:
            server, self.fusion_server = self.fusion_server, None
            self.call(lambda: server.stop(2.0))
        if self.store_server is not None:
            server, self.store_server = self.store_server, None
            self.call(lambda: server.stop(2.0))
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        return {"fusion": 0, "store": 0}

    def check_clean_exit(self) -> None:
        """In-process servers have no exit status; present for interface parity."""


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def tracklayer_launcher(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``launch(in_process=False, **options) -> ProcessServices | InProcessServices``,
    started; each launch gets its own directory under ``tmp_path``. All are stopped
    on teardown, and a subprocess that does not exit 0 on SIGTERM fails the test."""
    started: list[ProcessServices | InProcessServices] = []

    def launch(in_process: bool = False, **options: Any) -> ProcessServices | InProcessServices:
        workdir = tmp_path / f"tracklayer-{len(started) + 1}"
        cls = InProcessServices if in_process else ProcessServices
        services = cls(workdir, **options)
        started.append(services)
        return services.start()

    yield launch
    for s in reversed(started):
        s.stop()
    for s in started:
        s.check_clean_exit()


@pytest.fixture
def tracklayer_services(tracklayer_launcher: Callable[..., Any]) -> ProcessServices:
    """Track store + fusion service as subprocesses (``tracklayer consumer`` / ``fusion``)."""
    return tracklayer_launcher(in_process=False)


@pytest.fixture
def tracklayer_services_inprocess(tracklayer_launcher: Callable[..., Any]) -> InProcessServices:
    """Track store + fusion service in this process (grpc.aio on a background loop)."""
    return tracklayer_launcher(in_process=True)


@pytest.fixture
def tracklayer_client(tracklayer_services: ProcessServices) -> TracklayerClient:
    """A synchronous client of ``tracklayer_services`` (fusion and store)."""
    return tracklayer_services.client()
