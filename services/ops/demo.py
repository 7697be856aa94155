"""``tracklayer demo``: the whole system live on this machine, then its evaluation.

Runs, as separate processes on free loopback ports (:mod:`.processes`):

1. ``tracklayer simulate SCENARIO --out OUT/truth.mcap`` - the truth the run is
   scored against (the same scenario, seed and duration as the sensors);
2. ``tracklayer consumer`` - the track store (``OUT/store.sqlite``);
3. ``tracklayer fusion`` - the fusion service delivering to the store
   (journal and outbox in ``OUT/``, default ``--idle-timeout``);
4. ``tracklayer sensors SCENARIO --speed X`` - every satellite, streaming live.

While the sensors stream, a table of the tracks the store holds (from a
``SubscribeTracks`` subscription) and the service's counters are shown,
redrawn in place on a terminal and as periodic plain lines otherwise. Once
every frame is acknowledged and every report stored, the services are stopped
(SIGTERM, each must exit 0), every stored report is fetched, and
``OUT/demo.mcap`` is written: the simulation's frames, truth and detection
truth plus the stored reports as ``/tracks``. ``tracklayer evaluate`` then
prints the metrics and writes ``OUT/report/`` (metrics.json and plots).

SIGINT / SIGTERM / SIGHUP stop every child (SIGTERM, then SIGKILL after a grace
period; a second Ctrl-C kills at once); no process is left behind.
"""

from __future__ import annotations

import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import grpc

from tracklayer.fusion.domain import TrackReport, TrackStatus
from tracklayer.services.clients.client import TracklayerClient
from tracklayer.services.errors import UserError
from tracklayer.services.ops import demo_scaleout
from tracklayer.services.ops.demo_recording import write_demo_recording
from tracklayer.services.ops.live_view import LivePicture, Screen, status_lines, track_table
from tracklayer.services.ops.processes import (
    ChildError,
    ChildProcess,
    start_command,
    wait_healthy,
    wait_listening,
)

__all__ = [
    "Demo",
    "DemoFailed",
    "DemoOptions",
    "Interrupted",
    "LivePicture",
    "Screen",
    "default_speed",
    "track_table",
    "write_demo_recording",
]

DEFAULT_SCENARIO = "single-icbm"
TARGET_STREAM_S = 100.0  # wall seconds of streaming the default speed aims at (~2 min in all)
FUSION_ID = "fusion"
DRAIN_TIMEOUT_S = 60.0  # after the sensors end: time for the last reports to reach the store
_STORE_SERVICE = "tracklayer.v1.TrackStoreService"
_FUSION_SERVICE = "tracklayer.v1.FusionService"
_EXIT_FOR = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
_RUN_FILES = (
    "store.sqlite",
    f"{FUSION_ID}.journal.sqlite",
    f"{FUSION_ID}.outbox.sqlite",
    "truth.mcap",
    "demo.mcap",
)


_LIVE_MAP = re.compile(r"live map on (\S+)")


class Interrupted(KeyboardInterrupt):
    """The demo got SIGINT / SIGTERM / SIGHUP (a KeyboardInterrupt, so that one arriving
    outside :meth:`Demo.run`'s handler still ends the command as an interruption)."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.sig = sig


class DemoFailed(Exception):
    """A child failed; the message names it and ends with its log's tail."""


def default_speed(duration_s: float) -> float:
    """Scenario seconds per wall second so that streaming takes about ``TARGET_STREAM_S``."""
    return max(1.0, round(duration_s / TARGET_STREAM_S, 1))


@dataclass
class DemoOptions:
    """What ``tracklayer demo`` runs (``speed`` None: :func:`default_speed`)."""

    scenario: str = DEFAULT_SCENARIO
    speed: float | None = None
    out_dir: Path = Path("demo-out")
    duration_s: float | None = None
    seed: int | None = None
    grace_s: float = 10.0
    refresh_s: float | None = None  # None: 0.5 s on a terminal, 10 s otherwise
    plots: bool = True
    http: str = "127.0.0.1:0"  # the store's live map (``consumer --http``)
    workers: int = 0  # > 0: the scale-out chain (broker, front door, workers: demo_scaleout)
    shards: int = 1


# ------------------------------------------------------------------ the demo


def _exit_text(child: ChildProcess) -> str:
    rc = child.returncode
    if rc is None:
        return "running"
    return f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit {rc}"


class Demo:
    """One run of the demo; :meth:`run` returns the exit status."""

    def __init__(self, options: DemoOptions, out: TextIO | None = None) -> None:
        self.opt = options
        self.out = out or sys.stdout
        self.children: list[ChildProcess] = []
        self._hurry = False
        self._spawning = False
        self._interrupt: signal.Signals | None = None

    # ---------------------------------------------------------- helpers

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _on_signal(self, signum: int, _frame: object) -> None:
        sig = signal.Signals(signum)
        if self._interrupt is None:
            self._interrupt = sig
            if not self._spawning:
                raise Interrupted(sig)
            return  # raised by _spawn once the new child is on the list
        self._hurry = True  # a second signal during cleanup: kill at once

    def _spawn(self, name: str, args: list[str], logs: Path, service: str | None = None):
        """Start a child in a process group of its own and list it at once (a signal in
        between is held until it is listed, so no child can escape the cleanup); for a
        server (``service``: its health name), wait until it listens and is SERVING."""
        self._spawning = True
        try:
            child = start_command(name, args, logs, new_group=True, die_with_parent=True)
            self.children.append(child)
        finally:
            self._spawning = False
        if self._interrupt is not None:
            raise Interrupted(self._interrupt)
        if service is not None:
            wait_listening(child)
            wait_healthy(child.address or "", service)
        return child

    def _check_child(self, child: ChildProcess, must_run: bool) -> None:
        rc = child.returncode
        if rc is None:
            return
        if rc != 0 or must_run:
            raise DemoFailed(child.describe_exit())

    def _stop_children(self) -> list[str]:
        """SIGTERM every running child, SIGKILL after the grace period (at once on a 2nd signal)."""
        running = [c for c in self.children if c.alive()]
        for c in running:
            c.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.opt.grace_s
        while any(c.alive() for c in running) and time.monotonic() < deadline and not self._hurry:
            time.sleep(0.05)
        killed = []
        for c in running:
            if c.alive():
                c.signal(signal.SIGKILL)
                killed.append(c.name)
            c.proc.wait()
        return killed

    def _prepare_out_dir(self) -> Path:
        out = self.opt.out_dir
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name in _RUN_FILES:  # a fresh run: the journal of the last one must not replay
                for suffix in ("", "-wal", "-shm", "-journal"):
                    (out / (name + suffix)).unlink(missing_ok=True)
            shutil.rmtree(out / "report", ignore_errors=True)
            shutil.rmtree(out / demo_scaleout.BROKER_DIR, ignore_errors=True)
        except OSError as exc:
            raise UserError(f"--out: cannot use {out}: {exc.strerror}") from None
        return out

    # ---------------------------------------------------------- run

    def run(self) -> int:
        from tracklayer.sensors.scenario import ScenarioError, load_scenario

        try:
            scenario = load_scenario(self.opt.scenario)
        except ScenarioError as exc:
            raise UserError(str(exc)) from None
        duration = self.opt.duration_s if self.opt.duration_s is not None else scenario.duration_s
        speed = self.opt.speed if self.opt.speed is not None else default_speed(duration)
        out = self._prepare_out_dir()
        handlers = {s: signal.signal(s, self._on_signal) for s in _EXIT_FOR}
        started = time.monotonic()
        try:
            return self._run(scenario, duration, speed, out, started)
        except Interrupted as exc:
            self.say(f"\ntracklayer demo: interrupted ({exc.sig.name}); stopping every process")
            return _EXIT_FOR[exc.sig]
        except (DemoFailed, ChildError) as exc:
            self.say(f"\ntracklayer demo: failed: {exc}")
            return 1
        finally:
            killed = self._stop_children()
            if killed:
                self.say(
                    f"tracklayer demo: killed after {self.opt.grace_s:g} s: {', '.join(killed)}"
                )
            if self._interrupt is not None:
                self.say(
                    "tracklayer demo: stopped "
                    + ", ".join(f"{c.name} (pid {c.pid}, {_exit_text(c)})" for c in self.children)
                )
            for s, h in handlers.items():
                signal.signal(s, h)

    def _common_args(self, duration: float) -> list[str]:
        args = []
        if self.opt.seed is not None:
            args += ["--seed", str(self.opt.seed)]
        if self.opt.duration_s is not None:
            args += ["--duration", repr(float(self.opt.duration_s))]
        return args

    def _run(self, scenario, duration: float, speed: float, out: Path, started: float) -> int:
        logs = out / "logs"
        n_sats = len(scenario.sensor_ids())
        n_launch = sum(launch.count for launch in scenario.launches)
        self.say(
            f"tracklayer demo: {scenario.name}: {n_launch} missile(s), {n_sats} satellites, "
            f"{duration:g} s of scenario at {speed:g}x (about {duration / speed:.0f} s live)"
        )
        self.say(f"  output in {out}/ (logs in {logs}/)")
        common = self._common_args(duration)
        sim, store, fusion = self._start_services(out, logs, common)
        reports = self._live(scenario, duration, speed, out, logs, common, sim, store, fusion)
        rc = store.stop(self.opt.grace_s)
        if rc != 0:
            raise DemoFailed(store.describe_exit())
        live_s = time.monotonic() - started
        n_tracks = len({r.track_id for r in reports})
        n_conf = len({r.track_id for r in reports if r.status == TrackStatus.CONFIRMED})
        self.say(
            f"live run done in {live_s:.0f} s: {len(reports)} reports of {n_tracks} tracks "
            f"({n_conf} confirmed) stored"
        )
        if sim.wait(120.0) is None:
            raise DemoFailed("simulate is still running after 120 s: " + sim.describe_exit())
        self._check_child(sim, must_run=False)
        recording = out / "demo.mcap"
        write_demo_recording(out / "truth.mcap", reports, recording, FUSION_ID)
        self.say(f"recording: {recording} (simulated frames and truth + the stored /tracks)")
        self.say("")
        code = self._evaluate(recording, out / "report")
        self.say(f"\ntracklayer demo: finished in {time.monotonic() - started:.0f} s")
        return code

    def _start_services(
        self, out: Path, logs: Path, common: list[str]
    ) -> tuple[ChildProcess, ChildProcess, ChildProcess]:
        """Start the truth simulation, the store and the fusion service (both healthy)."""
        sim = self._spawn(
            "simulate",
            ["simulate", self.opt.scenario, "--out", str(out / "truth.mcap"), *common],
            logs,
        )
        store = self._spawn(
            "store",
            [
                "consumer",
                "--listen",
                "127.0.0.1:0",
                "--db",
                str(out / "store.sqlite"),
                "--http",
                self.opt.http,
            ],
            logs,
            _STORE_SERVICE,
        )
        self.say(f"  store    pid {store.pid:<7} {store.address}")
        m = _LIVE_MAP.search(store.log_path.read_text(errors="replace"))
        if m:
            self.say(f"  live map {m.group(1)}  (open it in a browser)")
        journal = [
            "--journal",
            str(out / f"{FUSION_ID}.journal.sqlite"),
            "--outbox",
            str(out / f"{FUSION_ID}.outbox.sqlite"),
        ]
        if self.opt.workers:
            url, start_workers = demo_scaleout.start_broker_and_workers(
                self._spawn, out, logs, self.opt.workers, self.opt.shards
            )
            self.say(f"  broker   {url}")
            journal = demo_scaleout.front_door_args(url, self.opt.shards)
        fusion = self._spawn(
            "fusion",
            ["fusion", "--listen", "127.0.0.1:0", "--store", store.address or "",
             "--id", FUSION_ID, *journal],
            logs,
            _FUSION_SERVICE,
        )  # fmt: skip
        self.say(f"  fusion   pid {fusion.pid:<7} {fusion.address}")
        if self.opt.workers:
            for w in start_workers():
                self.say(f"  {w.name} pid {w.pid}")
        return sim, store, fusion

    def _live(
        self,
        scenario,
        duration: float,
        speed: float,
        out: Path,
        logs: Path,
        common: list[str],
        sim: ChildProcess,
        store: ChildProcess,
        fusion: ChildProcess,
    ) -> list[TrackReport]:
        """Stream the sensors, show the tracks, drain, stop the fusion service; return
        every stored report."""
        client = TracklayerClient(fusion.address, store.address, timeout=10.0)
        try:
            sub = client.subscribe(include_current=True)
            sensors = self._spawn(
                "sensors",
                [
                    "sensors",
                    self.opt.scenario,
                    "--fusion",
                    fusion.address or "",
                    "--speed",
                    repr(float(speed)),
                    *common,
                ],
                logs,
            )
            n_sats = len(scenario.sensor_ids())
            self.say(f"  sensors  pid {sensors.pid:<7} {n_sats} satellites streaming at {speed:g}x")
            self.say(
                f"  simulate pid {sim.pid:<7} truth for the evaluation -> {out / 'truth.mcap'}"
            )
            self.say("")
            picture = LivePicture(sub)
            self._watch(scenario, duration, speed, client, picture, [store, fusion, sim], sensors)
            self._drain(client, picture, fusion, store)
            if picture.confirmed_last:
                self.say("confirmed tracks, last stored report:")
                self.say("\n".join(track_table(list(picture.confirmed_last.values()), 40)))
            self.say("stopping the fusion service ...")
            rc = fusion.stop(self.opt.grace_s)
            if rc != 0:
                raise DemoFailed(fusion.describe_exit())
            return client.all_stored_reports()
        finally:
            client.close()

    def _evaluate(self, recording: Path, report_dir: Path) -> int:
        from tracklayer.services.evaluation import evaluate_recording

        run = evaluate_recording(
            recording, report_dir=report_dir, plots=self.opt.plots, out=self.out
        )
        return run.exit_code

    def _watch(
        self,
        scenario,
        duration: float,
        speed: float,
        client: TracklayerClient,
        picture: LivePicture,
        servers: list[ChildProcess],
        sensors: ChildProcess,
    ) -> None:
        tty = self.out.isatty()
        refresh = self.opt.refresh_s or (0.5 if tty else 10.0)
        screen = Screen(self.out, tty)
        next_draw = time.monotonic() + (0.0 if tty else refresh)
        next_poll = 0.0
        first_frame: float | None = None  # wall time the first frame was accepted
        counters: dict[str, int] = {}
        shown: list[tuple[str, TrackStatus]] = []
        while True:
            for c in servers:
                self._check_child(c, must_run=c.name != "simulate")
            done = sensors.returncode is not None
            picture.update()
            now = time.monotonic()
            if now >= next_poll or done:
                try:
                    counters = client.status()
                except grpc.RpcError:
                    pass
                next_poll = now + 0.5
                if first_frame is None and counters.get('frames_total{status="accepted"}'):
                    first_frame = now
            if now >= next_draw or done:
                # Scenario time: the sensors pace frames from the scenario epoch on.
                t_live = duration if done else (0.0 if first_frame is None else now - first_frame)
                t_live = t_live if done else t_live * speed
                lines = status_lines(scenario, duration, t_live, counters, picture)
                shape = sorted((r.track_id, r.status) for r in picture.latest.values())
                if not done and (tty or shape != shown):  # plain output: the table on change
                    lines += track_table(list(picture.latest.values()))
                    shown = shape
                screen.draw(lines)
                next_draw = now + refresh
            if done:
                screen.release()
                if sensors.returncode != 0:
                    raise DemoFailed(sensors.describe_exit())
                summary = [
                    ln for ln in sensors.log_tail(4).splitlines() if ln.startswith("sensors:")
                ]
                self.say("\n" + (summary[-1] if summary else "sensors: done"))
                return
            time.sleep(0.1)

    def _drain(
        self,
        client: TracklayerClient,
        picture: LivePicture,
        fusion: ChildProcess,
        store: ChildProcess,
    ) -> None:
        """Wait until the fusion service's outbox is empty and the store has every report."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        quiet = 0
        while True:
            self._check_child(fusion, must_run=True)
            self._check_child(store, must_run=True)
            picture.update()
            try:
                c = client.status()
            except grpc.RpcError:
                c = None
            if self.opt.workers:  # shard figures arrive about once a second
                quiet = (
                    quiet + 1 if c is not None and demo_scaleout.drained(c, self.opt.shards) else 0
                )
                if quiet >= 3:
                    return
            elif (
                c is not None
                and c.get("outbox_depth", 1) == 0
                and c.get("frames_pending", 0) == 0
                and c.get("frames_untracked", 0) == 0
                and picture.stored >= c.get("reports_total", 0)
            ):
                return
            if time.monotonic() > deadline:
                self.say(f"warning: reports still in flight after {DRAIN_TIMEOUT_S:g} s")
                return
            time.sleep(0.2)
