"""Session-wide fixtures shared by the test modules.

Simulating a scenario costs seconds, so each (scenario, seed, duration) is simulated at
most once per test session: ask ``sim_result(name, duration_s=...)`` for an in-memory
run, and ``simulated_mcap(name, duration_s=...)`` for the path of its recording
(written once, by the ``tracklayer simulate`` command).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from grpc.experimental.aio import init_grpc_aio

# grpc.aio shuts its poller down (joining the poller thread) when its last object is
# freed; a server or channel of a test's event loop freed later by the garbage collector,
# after that loop closed, can hang that join for ever (grpc/grpc#22365, #40989: the poller
# blocks writing to a socket no loop reads). One reference held for the whole session,
# taken on the main thread, keeps the poller up: grpc's own advice.
init_grpc_aio()


# ---- two workers (pytest-xdist, ``make test``): see tests/parallel.py ----------------
_TURNSTILE: pytest.StashKey = pytest.StashKey()  # a worker's Turnstile


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        from parallel import Turnstile

        config.stash[_TURNSTILE] = Turnstile(config.option.basetemp, workerinput["testrunuid"])


def pytest_unconfigure(config: pytest.Config) -> None:
    turnstile = config.stash.get(_TURNSTILE, None)
    if turnstile is not None:
        turnstile.close()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` (``make test``): files, joined where they share a costly
    session fixture, longest first."""
    if config.getoption("dist") == "loadfile":
        from parallel import FileGroupScheduling

        return FileGroupScheduling(config, log)
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    turnstile = item.config.stash.get(_TURNSTILE, None)
    if turnstile is None:
        yield
        return
    with turnstile.hold(alone=item.get_closest_marker("alone") is not None):
        yield


@pytest.fixture(scope="session")
def sim_result() -> Callable[..., object]:
    """``sim_result(name_or_path, seed=None, duration_s=None) -> SimulationResult``,
    cached for the session (treat the result as read-only)."""
    from tracklayer.sensors.scenario import load_scenario
    from tracklayer.sensors.simulation import simulate_to_lists

    cache: dict[tuple, object] = {}

    def get(name: str, seed: int | None = None, duration_s: float | None = None):
        key = (name, seed, duration_s)
        if key not in cache:
            cache[key] = simulate_to_lists(load_scenario(name), seed, duration_s)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def simulated_mcap(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``simulated_mcap(name_or_path, seed=None, duration_s=None) -> Path`` of a recording
    written once per session by ``tracklayer simulate`` (treat the file as read-only)."""
    from tracklayer.services.cli import main

    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("simulated")

    def get(name: str, seed: int | None = None, duration_s: float | None = None) -> Path:
        key = (name, seed, duration_s)
        if key not in cache:
            out = root / f"{Path(name).stem}-{seed}-{duration_s}.mcap"
            argv = ["simulate", name, "--out", str(out)]
            if seed is not None:
                argv += ["--seed", str(seed)]
            if duration_s is not None:
                argv += ["--duration", str(duration_s)]
            assert main(argv) == 0
            cache[key] = out
        return cache[key]

    return get


@pytest.fixture(scope="session")
def tracked_mcap(simulated_mcap, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tracked_mcap(name_or_path, duration_s=None) -> Path``: ``tracklayer track`` run
    once per session on a scenario's recording (``simulated_mcap``) or, with
    ``duration_s=None`` and a path to an ``.mcap``, on that recording (read-only)."""
    from tracklayer.services.cli import main

    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("tracked")

    def get(source: str, duration_s: float | None = None) -> Path:
        key = (source, duration_s)
        if key not in cache:
            if duration_s is None and source.endswith(".mcap"):
                recording = Path(source)
            else:
                recording = simulated_mcap(source, duration_s=duration_s)
            out = root / f"{Path(source).stem}-{duration_s}.tracks.mcap"
            assert main(["track", str(recording), "--out", str(out)]) == 0
            cache[key] = out
        return cache[key]

    return get


@pytest.fixture
def nats_broker(tmp_path: Path):
    """A JetStream server (``tracklayer.services.scaleout.broker``) on a free loopback
    port with a store in ``tmp_path/broker``; stopped by its PID after the test."""
    pytest.importorskip("nats")
    from tracklayer.services.scaleout.broker import start_broker

    broker = start_broker("127.0.0.1:0", tmp_path / "broker")
    try:
        yield broker
    finally:
        broker.stop(5.0)
