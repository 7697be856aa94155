"""Soak (issue 7 items 4-5): a scenario streamed in a loop for minutes, optionally with faults.

``tracklayer consumer`` and ``tracklayer fusion`` run as processes on fixed
loopback ports. This script streams a simulated scenario (default ``salvo``,
300 s) into the fusion service again and again at full speed (``FrameStreamer``,
one stream per satellite, shared virtual clock); pass ``k`` is the same
recording shifted ``k`` x its span later in time (times, log times and
sequences), so every pass is new data to the service. Every pass ends with all
streams closed, i.e. a flush (every track ends DELETED).

Faults (``--kill-fusion S``, ``--kill-store S``): SIGKILL the fusion service or
the store at random moments (exponential gaps, mean S seconds) and restart it
on the same port and files; the streamer reconnects and resends unacknowledged
frames, the fusion service replays its journal, the outbox redelivers.
``--cuts S``: the chaos proxy (``soak_cuts.py``) sits on the sensor and the store
links and cuts their connections at random moments, both processes alive.

Sampled every 2 s: resident memory and open file descriptors of both
processes. After the run, from the store's SQLite file: delivery latency
(report ``emitted_at`` -> ``stored_at``) per minute, and the integrity checks
that make "reports lost: 0" a measurement:

- every track's stored revisions are exactly 1..n (a lost report is a gap);
- a track is DELETED at most as its last revision (a reused track id would add
  revisions after DELETED); a track still live in the fusion service at the end
  has its live revision stored last; every other track ends DELETED (tracks
  of one pass coast out on the data time of the next, the flush at the end of
  a pass keeps them live);
- the fusion outbox is empty and rejected nothing (a report re-emitted with
  different content after a restart would be REJECTED by the store);
- every frame sent got an ack (the streamer waits for all of them), and the
  journal holds each acknowledged frame exactly once (journal FRAME events ==
  distinct frames acknowledged ACCEPTED or DUPLICATE, when none was REJECTED
  or LATE): an ack given for a frame a crash then lost would be missing.

Usage::

    .venv/bin/python benchmarks/bench_soak.py [--minutes 10] [--scenario salvo]
        [--span 300] [--kill-fusion 60] [--kill-store 90] [--cuts 30]
        [--python OTHER_VENV/bin/python] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from soak_report import disk_at, integrity, latency_by_minute, restart_figures

NS = 1_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats(pid: int) -> tuple[float, int]:
    """(resident MB, open file descriptors) of a live process (0, 0 when gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0
    return rss, fds


class Services:
    """Store and fusion as child processes on fixed ports; kill/restart keeps ports and files."""

    def __init__(self, work: Path, cuts_mean_s: float = 0.0, seed: int = 0) -> None:
        from tracklayer.services.ops import processes

        self.p = processes
        self.work = work
        self.store_port, self.fusion_port = free_port(), free_port()
        self.store_addr = f"127.0.0.1:{self.store_port}"
        self.fusion_addr = f"127.0.0.1:{self.fusion_port}"
        # with cuts, the streamer and the fusion service's outbox go through the proxies
        self.sensor_addr, self.store_link = self.fusion_addr, self.store_addr
        self.cuts = None
        if cuts_mean_s > 0:
            from soak_cuts import Cuts

            self.cuts = Cuts(self.fusion_port, self.store_port, cuts_mean_s, seed)
            self.cuts.start()
            self.sensor_addr, self.store_link = self.cuts.sensor_address, self.cuts.store_address
        self.lock = threading.Lock()
        self.kills = {"fusion": 0, "store": 0}
        self.restart_s: dict[str, list[float]] = {"fusion": [], "store": []}
        self.kill_load: list[float] = []  # 1-minute load average at each kill
        self.store = self._start("store")
        self.fusion = self._start("fusion")

    def _args(self, name: str) -> list[str]:
        if name == "store":
            return ["consumer", "--listen", self.store_addr, "--db", str(self.work / "t.sqlite")]
        return [
            "fusion", "--listen", self.fusion_addr, "--store", self.store_link, "--id", "soak",
            "--journal", str(self.work / "soak.journal.sqlite"),
            "--outbox", str(self.work / "soak.outbox.sqlite"), "--idle-timeout", "0",
        ]  # fmt: skip

    def _start(self, name: str):
        return self.p.start_server(
            name, self._args(name), self.work / "logs", timeout_s=120, cwd=self.work
        )  # not this checkout's folder: its tracklayer/ would hide --python's

    def kill_and_restart(self, name: str) -> None:
        with self.lock:
            child = getattr(self, name)
            child.signal(9)
            child.wait(30)
            self.kills[name] += 1
            self.kill_load.append(os.getloadavg()[0])
            t = time.monotonic()
            for attempt in range(20):  # the port may linger for a moment
                try:
                    setattr(self, name, self._start(name))
                    break
                except self.p.ChildError:
                    if attempt == 19:
                        raise
                    time.sleep(0.5)
            self.restart_s[name].append(time.monotonic() - t)

    def pids(self) -> dict[str, int]:
        with self.lock:
            return {"fusion": self.fusion.pid, "store": self.store.pid}

    def stop(self) -> None:
        self.p.stop_all([self.fusion, self.store], grace_s=30)


def load_frames(path: Path):
    """``(log_time_ns, v1.SensorFrame)`` of the recording, in file order, and the sensor ids."""
    from tracklayer.services.wire.recording import TOPIC_FRAMES, RecordingReader
    from tracklayer.v1 import sensor_pb2

    reader = RecordingReader(path)
    frames = [
        (t, sensor_pb2.SensorFrame.FromString(data))
        for _, t, data in reader.raw_messages([TOPIC_FRAMES])
    ]
    return frames, sorted({f.sensor_id for _, f in frames})


def shifted(frames, k: int, span_ns: int, seq_step: int):
    """Pass ``k``: every frame ``k * span`` later, sequences ``k * seq_step`` higher."""
    from tracklayer.v1 import sensor_pb2

    for log_t, f in frames:
        g = sensor_pb2.SensorFrame()
        g.CopyFrom(f)
        t = f.time.seconds * NS + f.time.nanos + k * span_ns
        g.time.seconds, g.time.nanos = divmod(t, NS)
        g.sequence = f.sequence + k * seq_step
        yield log_t + k * span_ns, g


async def fusion_status(address: str) -> dict[str, int]:
    import grpc

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    async with grpc.aio.insecure_channel(address) as ch:
        resp = await fs_grpc.FusionServiceStub(ch).GetStatus(
            fs.GetStatusRequest(), timeout=10, wait_for_ready=True
        )
    return dict(resp.counters)


def fault_loop(services: Services, name: str, mean_s: float, stop: threading.Event, rng) -> None:
    while not stop.wait(rng.expovariate(1.0 / mean_s)):
        services.kill_and_restart(name)
        print(f"  killed and restarted {name} ({services.kills[name]})", flush=True)


def disk_bytes(work: Path) -> int:
    """Journal + outbox of the fusion service, with their WAL and shm files (bytes)."""
    total = 0
    for p in work.glob("soak.*.sqlite*"):
        try:
            total += p.stat().st_size
        except OSError:
            continue
    return total


def sample_loop(services: Services, samples: list, stop: threading.Event, t0: float) -> None:
    while not stop.wait(2.0):
        row = [time.monotonic() - t0]
        for _, pid in sorted(services.pids().items()):
            row.extend(proc_stats(pid))
        row.append(disk_bytes(services.work) / 1e6)
        samples.append(row)  # t, fusion MB, fusion fds, store MB, store fds, disk MB


async def soak(args, services: Services, frames, sensors) -> dict:
    from tracklayer.services.clients.frame_streamer import FrameStreamer, StreamerOptions

    span_ns = frames[-1][0] - frames[0][0] + NS
    seq_step = 10 ** (len(str(max(f.sequence for _, f in frames))) + 1)
    deadline = time.monotonic() + args.minutes * 60
    passes, sent, counts, reconnects, resent = 0, 0, {}, 0, 0
    pass_s = []
    while time.monotonic() < deadline:
        streamer = FrameStreamer(
            services.sensor_addr,
            StreamerOptions(speed=None, connect_timeout_s=60, reconnect_timeout_s=120),
        )
        t = time.monotonic()
        result = await streamer.run(sensors, shifted(frames, passes, span_ns, seq_step))
        pass_s.append(time.monotonic() - t)
        passes += 1
        sent += result.frames
        reconnects += result.reconnects
        resent += result.resent
        for k, v in result.counts.items():
            counts[k] = counts.get(k, 0) + v
        print(
            f"  pass {passes}: {result.frames} frames in {pass_s[-1]:.1f} s, "
            f"acks {dict((k, v) for k, v in result.counts.items() if v)}, "
            f"reconnects {result.reconnects}",
            flush=True,
        )
    return dict(
        passes=passes, sent=sent, counts=counts, reconnects=reconnects, resent=resent,
        pass_s=pass_s,
    )  # fmt: skip


async def drained(address: str, timeout_s: float = 120) -> tuple[dict[str, int], dict[str, int]]:
    """(GetStatus, live track id -> revision) once the outbox has stayed empty for 1 s."""
    import grpc

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    deadline = time.monotonic() + timeout_s
    quiet = 0
    while True:
        c = await fusion_status(address)
        busy = c.get("outbox_depth", 0) + c.get("frames_untracked", 0)
        quiet = quiet + 1 if busy == 0 else 0
        if quiet >= 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    async with grpc.aio.insecure_channel(address) as ch:
        live = await fs_grpc.FusionServiceStub(ch).ListLiveTracks(
            fs.ListLiveTracksRequest(), timeout=10
        )
    return c, {t.track_id: t.revision for t in live.tracks}


#: Run by the services' interpreter: where its tracklayer comes from, and the defaults.
_REVISION = (
    "import tracklayer.services.fusion_service.settings as s; d = s.FusionSettings(); "
    "print(s.__file__.rsplit('/services/', 1)[0], f'(checkpoint every "
    "{d.checkpoint_every} events or {d.checkpoint_interval_s:g} s)')"
)


def parse_args() -> argparse.Namespace:
    """The command line (``--help``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--scenario", default="salvo")
    ap.add_argument("--span", type=float, default=300.0, help="scenario seconds per pass")
    ap.add_argument("--kill-fusion", type=float, default=0.0, metavar="S", help="mean s; 0 off")
    ap.add_argument("--kill-store", type=float, default=0.0, metavar="S", help="mean s; 0 off")
    ap.add_argument("--cuts", type=float, default=0.0, metavar="S",
                    help="mean s between two cuts of the chaos proxy on the sensor or store "
                    "link (soak_cuts.py); 0 off")  # fmt: skip
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--append", type=Path, default=None)
    ap.add_argument("--python", default=sys.executable, metavar="EXE",
                    help="interpreter that runs the two services, e.g. a virtual environment "
                    "whose tracklayer is another revision (to compare in one run)")  # fmt: skip
    return ap.parse_args()


def run_with_faults(args: argparse.Namespace, services: Services, frames, sensors) -> tuple:
    """Stream the passes with the sampler and the fault threads beside them; the run's
    figures, the samples, the wall time (s) and the drained fusion's status and live tracks."""
    stop = threading.Event()
    samples: list = []
    t0 = time.monotonic()
    rng = random.Random(args.seed)
    threads = [threading.Thread(target=sample_loop, args=(services, samples, stop, t0))]
    for name, mean in (("fusion", args.kill_fusion), ("store", args.kill_store)):
        if mean > 0:
            threads.append(
                threading.Thread(target=fault_loop, args=(services, name, mean, stop, rng))
            )
    for th in threads:
        th.start()
    try:
        run = asyncio.run(soak(args, services, frames, sensors))
    finally:
        stop.set()
        for th in threads:
            th.join()
        if services.cuts is not None:
            services.cuts.stop_cutting()
    wall = time.monotonic() - t0
    status, live = asyncio.run(drained(services.fusion_addr))
    return run, np.array(samples), wall, status, live


def nothing_lost(run: dict, checks: dict, status: dict) -> bool:
    """Every frame acknowledged and journaled once, every track's revisions whole."""
    unacked = run["sent"] - sum(run["counts"].values())
    bad_acks = run["counts"].get("REJECTED", 0) + run["counts"].get("LATE", 0)
    journal_ok = bad_acks == 0 and status.get("journal_frames", -1) == run["sent"]
    return (
        checks["tracks_with_gaps"] == 0
        and checks["tracks_not_ending_deleted_or_live"] == 0
        and checks["tracks_with_revisions_after_deleted"] == 0
        and status.get("outbox_depth", 1) == 0
        and status.get("outbox_rejected", 1) == 0
        and unacked == 0
        and journal_ok
    )


def main() -> int:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    rec = work / "scenario.mcap"
    bin_ = [sys.executable, "-m", "tracklayer.services.cli"]
    subprocess.run(
        [*bin_, "simulate", args.scenario, "--duration", str(args.span), "--out", str(rec)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    frames, sensors = load_frames(rec)
    print(f"soak: {len(frames)} frames per pass, {len(sensors)} sensors, work dir {work}")
    sys.executable = args.python  # what ops.processes starts the services with
    rev = subprocess.run([args.python, "-c", _REVISION], capture_output=True, text=True,
                         check=True, cwd=work).stdout.strip()  # fmt: skip
    services = Services(work, args.cuts, args.seed + 1)
    run, s, wall, status, live = run_with_faults(args, services, frames, sensors)
    services.stop()
    if services.cuts is not None:
        services.cuts.close()
    checks = integrity(work / "t.sqlite", live)
    lost_ok = nothing_lost(run, checks, status)
    head = (args, rev, len(frames), len(sensors), wall)
    text = "\n".join(report_lines(head, run, services, s, status, checks, work)) + "\n"
    text += f"- reports lost: {'0' if lost_ok else 'NOT SHOWN (see the checks above)'}\n"
    print(text)
    if args.append:
        with open(args.append, "a") as fh:
            fh.write(text)
    return 0 if lost_ok else 1


def report_lines(
    head: tuple, run: dict, services: Services, s: np.ndarray, status: dict, checks: dict,
    work: Path,
) -> list[str]:  # fmt: skip
    """The RESULTS.md section: the run, restarts, disk, store integrity, RSS, latency."""
    args, rev, n_frames, n_sensors, wall = head
    lat = latency_by_minute(work / "t.sqlite")
    q = max(1, len(s) // 4)
    return [
        f"\n## soak (benchmarks/bench_soak.py), {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", load {os.getloadavg()[0]:.1f}; services: {rev}. "
        f"`{args.scenario}` {args.span:g} s per pass "
        f"({n_frames} frames, {n_sensors} satellites), streamed at full speed, "
        f"{run['passes']} passes in {wall / 60:.1f} min; faults: fusion SIGKILL+restart "
        f"{services.kills['fusion']}x (mean gap {args.kill_fusion:g} s), store "
        f"{services.kills['store']}x (mean gap {args.kill_store:g} s)"
        + (
            f"; chaos proxy cuts (mean gap {args.cuts:g} s): {services.cuts.summary()}"
            if services.cuts
            else ""
        )
        + ".\n",
        f"- frames sent {run['sent']}, acked {sum(run['counts'].values())} "
        f"({', '.join(f'{k} {v}' for k, v in run['counts'].items() if v)}); "
        f"stream reconnects {run['reconnects']}, frames resent {run['resent']}; journal "
        f"FRAME events {status.get('journal_frames', -1)} (distinct frames acknowledged: "
        f"{run['sent']})",
        f"- pass wall time s: min {min(run['pass_s']):.1f}, median "
        f"{float(np.median(run['pass_s'])):.1f}, max {max(run['pass_s']):.1f} "
        f"(~{n_frames / float(np.median(run['pass_s'])):.0f} frames/s)",
        "- restart to SERVING s (process start to health SERVING, replay included): "
        + "; ".join(
            f"{name} {len(v)} restarts, p50 {np.percentile(v, 50):.1f}, "
            f"p99 {np.percentile(v, 99):.1f}, max {max(v):.1f}"
            for name, v in services.restart_s.items()
            if v
        )
        + ("" if any(services.restart_s.values()) else "no restarts")
        + (
            f"; load average at the kills median {np.median(services.kill_load):.1f}, "
            f"max {max(services.kill_load):.1f}"
            if services.kill_load
            else ""
        ),
        f"- fusion {restart_figures(work / 'logs')}",
        f"- journal + outbox on disk MB: {disk_at(s, 300):.1f} after 5 min, "
        f"{s[-1, 5]:.1f} at the end, max {s[:, 5].max():.1f}",
        f"- store: {checks['reports']} reports of {checks['tracks']} tracks; tracks with revision "
        f"gaps {checks['tracks_with_gaps']}, ending neither DELETED nor at their live "
        f"revision ({checks['live_tracks']} live) {checks['tracks_not_ending_deleted_or_live']}, "
        f"revisions after DELETED "
        f"{checks['tracks_with_revisions_after_deleted']}; fusion outbox depth "
        f"{status.get('outbox_depth')}, rejected {status.get('outbox_rejected')}",
        f"- fusion RSS MB: first quarter {s[:q, 1].mean():.0f}, last quarter "
        f"{s[-q:, 1].mean():.0f}, max {s[:, 1].max():.0f}; open fds first/last quarter "
        f"{s[:q, 2].mean():.0f}/{s[-q:, 2].mean():.0f}, max {s[:, 2].max():.0f}",
        f"- store RSS MB: first quarter {s[:q, 3].mean():.0f}, last quarter "
        f"{s[-q:, 3].mean():.0f}, max {s[:, 3].max():.0f}; open fds max {s[:, 4].max():.0f}",
        "- delivery latency (emitted_at -> stored) per minute, p50/p99 ms: "
        + ", ".join(f"{m}: {p50:.0f}/{p99:.0f}" for m, _, p50, p99 in lat),
    ]


if __name__ == "__main__":
    sys.exit(main())
