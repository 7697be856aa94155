"""The live part of ``bench_services.py``: a recorded scenario streamed at a pace into
``tracklayer fusion`` + ``tracklayer consumer`` (processes), watched every second.

Imported as ``live_run`` by ``bench_services.py`` (this folder is first on ``sys.path``).

- The scenario is simulated once by ``tracklayer simulate`` (its own process, so its
  memory leaves with it) into an MCAP file, kept in ``--cache DIR`` when given and
  reused by later runs; the frames are then read from the file as they are streamed.
- The streaming client is the one ``tracklayer sensors`` / ``tracklayer replay`` use
  (:class:`~tracklayer.services.clients.frame_streamer.FrameStreamer`): one
  ``StreamFrames`` per satellite, paced by the log times / ``speed``; ``clients`` > 1
  splits the satellites over that many client processes (this script in ``--client``
  mode), all paced from one wall-clock start. Each records frame-sent -> ack per frame
  and how far its releases fell behind the pace (a client that cannot keep the pace
  shows there).
- The watcher (in the parent) samples once a second: RSS and CPU seconds of the fusion,
  consumer and client processes, the fusion's ``GetStatus`` gauges (``frames_pending``:
  admitted but not yet applied and acknowledged: the backlog; ``frames_buffered``: held
  by the ordering watermark; ``outbox_depth``: reports not yet stored) and the load
  average.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).with_name("tracklayer")
CLK_TCK = os.sysconf("SC_CLK_TCK")
GAUGES = (
    "frames_pending",
    "frames_buffered",
    "frames_untracked",
    "tracker_behind_ms",
    "outbox_depth",
    "frames_applied_total",
    "db_busy_ms_total",
)


# ----------------------------------------------------------------------------- recording
@dataclass
class Recording:
    path: Path
    cached: bool  # reused from an earlier run: no simulation in this one
    sim_wall_s: float = 0.0
    sim_cpu_s: float = 0.0
    sim_peak_mb: float = 0.0


def recording(scenario: str, duration_s: float, folder: Path, seed: int | None) -> Recording:
    """The scenario's MCAP in ``folder`` (simulated by ``tracklayer simulate`` if absent)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(scenario).stem)
    path = folder / f"{name}-{duration_s:g}s-seed{'default' if seed is None else seed}.mcap"
    if path.exists():
        return Recording(path, cached=True)
    folder.mkdir(parents=True, exist_ok=True)
    argv = [str(BIN), "simulate", scenario, "--duration", f"{duration_s:g}", "--out", str(path)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"tracklayer simulate {scenario} failed (exit {proc.returncode})")
    return Recording(
        path,
        cached=False,
        sim_wall_s=time.perf_counter() - t,
        sim_cpu_s=ru.ru_utime + ru.ru_stime,
        sim_peak_mb=ru.ru_maxrss / 1024,
    )


# ----------------------------------------------------------------------------- processes
def start(argv: list[str], cwd: Path) -> tuple[subprocess.Popen, str]:
    """Start ``tracklayer ARGV`` in ``cwd``; returns it and the address it listens on."""
    proc = subprocess.Popen(
        [str(BIN), *argv],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=open(cwd / f"{argv[0]}.log", "w"),  # noqa: SIM115 - lives with the process
        text=True,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1"),
    )
    line = proc.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    if not m:
        raise SystemExit(f"{argv[0]} did not start: {line!r}")
    return proc, m.group(1)


def proc_rss_mb(pid: int) -> float:
    """Resident set size (MB) of a live process, NaN once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    except OSError:
        return float("nan")
    return int(m.group(1)) / 1024 if m else float("nan")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process and its reaped children (the fusion's
    forked checkpoint encoders) so far, NaN once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def tracking_child(pid: int) -> int | None:
    """The fusion's tracking process (stop 22: a child spawned by multiprocessing), if any."""
    try:
        kids = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
        for kid in kids:
            with open(f"/proc/{kid}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    return kid
    except OSError:
        return None
    return None


# ----------------------------------------------------------------------------- client
def client_options(speed: float):
    from tracklayer.services.clients.stream_options import StreamerOptions

    return StreamerOptions(speed=speed, reconnect_timeout_s=120.0, progress_interval_s=60.0)


async def stream_part(
    address: str, mcap: Path, sensors: list[str], speed: float, origin_ns: int, start_at: float
) -> dict:
    """Stream ``sensors``' frames of ``mcap`` (declared by the caller), paced from the wall
    time ``start_at`` (``time.time()``) = log time ``origin_ns``; per-frame timings."""
    from tracklayer.services.clients.frame_streamer import FrameStreamer
    from tracklayer.services.clients.sources import RecordedFrames
    from tracklayer.services.wire.recording import RecordingReader

    sent: dict[int, float] = {}
    ack_at: list[float] = []  # wall time of each ack
    ack_s: list[float] = []  # frame sent -> its ack

    def on_send(indexes: list[int]) -> None:
        now = time.perf_counter()
        for i in indexes:
            sent[i] = now

    def on_ack(index: int, _ack) -> None:
        t = sent.pop(index, None)
        if t is not None:
            ack_s.append(time.perf_counter() - t)
            ack_at.append(time.time())

    reader = RecordingReader(mcap)
    source = RecordedFrames(reader, set(sensors), 0.0, None)
    streamer = FrameStreamer(
        address, client_options(speed), origin_ns=origin_ns, on_ack=on_ack, on_send=on_send
    )
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu0 = time.process_time()
    result = await streamer.run(sensors, source, declare=False)
    return {
        "ack_s": ack_s,
        "ack_at": ack_at,
        "frames": result.frames,
        "counts": result.counts,
        "max_behind_s": result.max_behind_s,
        "reconnects": result.reconnects,
        "wall_s": result.wall_s,
        "cpu_s": time.process_time() - cpu0,
    }


def client_main(argv: list[str]) -> None:
    """``bench_services.py --client ADDRESS MCAP SPEED ORIGIN_NS START_AT OUT S1,S2,...``"""
    address, mcap, speed, origin_ns, start_at, out, sensors = argv
    res = asyncio.run(
        stream_part(
            address, Path(mcap), sensors.split(","), float(speed), int(origin_ns), float(start_at)
        )
    )
    Path(out).write_text(json.dumps(res))


# ----------------------------------------------------------------------------- watcher
@dataclass
class Samples:
    """One row a second: wall time, per-process RSS (MB) and CPU (s), gauges, load."""

    t: list[float] = field(default_factory=list)
    rss: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    gauges: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GAUGES})
    load: list[float] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"t": np.asarray(self.t), "load": np.asarray(self.load)}
        out |= {f"rss_{k}": np.asarray(v) for k, v in self.rss.items()}
        out |= {f"cpu_{k}": np.asarray(v) for k, v in self.cpu.items()}
        out |= {k: np.asarray(v, dtype=float) for k, v in self.gauges.items()}
        return out


async def watch(fusion_addr: str, pids: dict[str, int], samples: Samples, stop: asyncio.Event):
    """Sample every second until ``stop`` is set (see the module docstring)."""
    import grpc

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    async with grpc.aio.insecure_channel(fusion_addr) as ch:
        stub = fs_grpc.FusionServiceStub(ch)
        nxt = time.monotonic()
        while not stop.is_set():
            samples.t.append(time.time())
            for name, pid in pids.items():
                rss = proc_rss_mb(pid)
                cpu = time.process_time() if pid == os.getpid() else proc_cpu_s(pid)
                if name == "fusion":  # its tracking process counted in, and apart
                    kid = tracking_child(pid)
                    k_rss = proc_rss_mb(kid) if kid else float("nan")
                    k_cpu = proc_cpu_s(kid) if kid else float("nan")
                    samples.rss.setdefault("tracking", []).append(k_rss)
                    samples.cpu.setdefault("tracking", []).append(k_cpu)
                    if kid:
                        rss, cpu = rss + k_rss, cpu + k_cpu
                samples.rss.setdefault(name, []).append(rss)
                samples.cpu.setdefault(name, []).append(cpu)
            try:
                st = await stub.GetStatus(fs.GetStatusRequest(), timeout=5.0)
                c = st.counters
            except grpc.aio.AioRpcError:
                c = {}
            for g in GAUGES:
                samples.gauges[g].append(c.get(g, float("nan")))
            samples.load.append(os.getloadavg()[0])
            nxt += 1.0
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, nxt - time.monotonic()))
            except TimeoutError:
                pass


# ----------------------------------------------------------------------------- the run
def split(sensors: list[str], n: int) -> list[list[str]]:
    """``n`` parts of about equal size (round robin, so every part spans the planes)."""
    return [p for p in (sensors[i::n] for i in range(n)) if p]


async def run_live(
    mcap: Path, fusion_addr: str, pids: dict[str, int], speed: float, clients: int, work: Path
) -> dict:
    """Declare every sensor, stream the recording (in ``clients`` processes when > 1),
    watch; returns the merged client results and the samples."""
    import grpc

    from tracklayer.services.wire.recording import TOPIC_FRAMES, RecordingReader
    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    reader = RecordingReader(mcap)
    sensors = [s for s in reader.sensor_ids() if s]
    origin_ns = next(iter(reader.raw_messages([TOPIC_FRAMES])))[1]
    async with grpc.aio.insecure_channel(fusion_addr) as ch:
        # All at once, before any stream opens, so no part runs the watermark past another.
        await fs_grpc.FusionServiceStub(ch).DeclareSensors(
            fs.DeclareSensorsRequest(sensor_ids=sensors)
        )
    samples, stop = Samples(), asyncio.Event()
    start_at = time.time() + 2.0 + 0.5 * clients  # room for the client processes to start
    pids = dict(pids)
    if clients <= 1:
        pids["client"] = os.getpid()
        watcher = asyncio.create_task(watch(fusion_addr, pids, samples, stop))
        parts = [await stream_part(fusion_addr, mcap, sensors, speed, origin_ns, start_at)]
    else:
        procs, outs = [], []
        for i, part in enumerate(split(sensors, clients)):
            out = work / f"client{i}.json"
            argv = [fusion_addr, str(mcap), f"{speed}", f"{origin_ns}", f"{start_at}", str(out)]
            procs.append(
                subprocess.Popen(
                    [sys.executable, sys.argv[0], "--client", *argv, ",".join(part)],
                    env=dict(os.environ, OPENBLAS_NUM_THREADS="1"),
                )
            )
            pids[f"client{i}"] = procs[-1].pid
            outs.append(out)
        watcher = asyncio.create_task(watch(fusion_addr, pids, samples, stop))
        while any(p.poll() is None for p in procs):
            await asyncio.sleep(0.5)
        if any(p.returncode for p in procs):
            raise SystemExit(f"a client process failed: exits {[p.returncode for p in procs]}")
        parts = [json.loads(o.read_text()) for o in outs]
    streamed_at = time.time()
    await drained(fusion_addr)
    drain_s = time.time() - streamed_at
    stop.set()
    await watcher
    merged = {
        "ack_s": np.concatenate([np.asarray(p["ack_s"]) for p in parts]),
        "ack_at": np.concatenate([np.asarray(p["ack_at"]) for p in parts]),
        "frames": sum(p["frames"] for p in parts),
        "max_behind_s": max(p["max_behind_s"] for p in parts),
        "reconnects": sum(p["reconnects"] for p in parts),
        "wall_s": max(p["wall_s"] for p in parts),
        "client_cpu_s": sum(p["cpu_s"] for p in parts),
        "counts": {k: sum(p["counts"].get(k, 0) for p in parts) for k in parts[0]["counts"]},
        "sensors": len(sensors),
        "start_at": start_at,
        "drain_s": drain_s,
    }
    return merged | {"samples": samples.arrays()}


async def drained(fusion_addr: str, timeout_s: float = 900.0) -> None:
    """Wait until the fusion has tracked and forwarded everything it acknowledged
    (``frames_untracked``, ``frames_pending`` and ``outbox_depth`` all 0, twice in a row)."""
    import grpc

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    deadline, quiet = time.monotonic() + timeout_s, 0
    async with grpc.aio.insecure_channel(fusion_addr) as ch:
        stub = fs_grpc.FusionServiceStub(ch)
        while quiet < 2 and time.monotonic() < deadline:
            c = (await stub.GetStatus(fs.GetStatusRequest(), timeout=10.0)).counters
            busy = sum(c.get(g, 0) for g in ("frames_untracked", "frames_pending", "outbox_depth"))
            quiet = quiet + 1 if busy == 0 else 0
            await asyncio.sleep(0.5)


def delivery(db: Path) -> tuple[np.ndarray, np.ndarray]:
    """(stored_at - emitted_at in s, stored_at as Unix s) of every stored report."""
    from tracklayer.v1 import track_pb2

    lat, at = [], []
    with sqlite3.connect(db) as con:
        for blob, stored_ns in con.execute("SELECT report, stored_at_ns FROM reports"):
            r = track_pb2.TrackReport.FromString(blob)
            emitted = r.emitted_at.seconds * 1_000_000_000 + r.emitted_at.nanos
            lat.append((stored_ns - emitted) / 1e9)
            at.append(stored_ns / 1e9)
    return np.asarray(lat), np.asarray(at)


def children_peak_mb() -> float:
    """Largest peak RSS (MB) of the waited-for children so far (the services)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
