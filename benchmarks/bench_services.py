"""Benchmark: the live services (issue 5 speed goals) on loopback.

1. ingest ceiling: the fusion service in this process with a tracker that does
   nothing, so only gRPC, conversion, validation, ordering, the journal's group
   commit and the acks are measured; 4 streams x 50 frames per request x 10
   detections, and 1 stream x 1 frame per request.
2. live run: ``tracklayer consumer`` and ``tracklayer fusion`` (real tracker) as
   processes; this script streams a simulated scenario into them, one stream
   per satellite, paced at ``--speed`` x the scenario clock (delivery order and
   times as simulated). Measured:
   - ack latency: frame sent -> its FrameAck back (journaled, applied as far
     as the watermark allows, reports handed on); the ordering delay of the
     frame itself is not in it;
   - delivery latency: report emitted (``emitted_at``, right after the journal
     commit of the frame that released it) -> stored by the store
     (``stored_at_ns``, read from the store's file after the run);
   - the fusion process's resident memory, sampled every second.

Usage::

    .venv/bin/python benchmarks/bench_services.py [--scenario salvo] [--duration 600]
        [--speed 4] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).with_name("tracklayer")


# ----------------------------------------------------------------------------- ingest
async def ingest(n_streams: int, per_stream: int, batch: int, dets: int) -> tuple[float, float]:
    """(frames/s, detections/s) into an in-process service with a null tracker."""
    import grpc

    from tracklayer.services.fusion_service.servicer import start_fusion_server
    from tracklayer.services.fusion_service.settings import FusionSettings
    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
    from tracklayer.v1 import sensor_pb2

    class NullTracker:
        def __init__(self, fusion_id, config):
            pass

        def process(self, frame):
            return []

        def flush(self):
            return []

        def live_reports(self):
            return []

    def frame(sensor: str, seq: int) -> sensor_pb2.SensorFrame:
        f = sensor_pb2.SensorFrame(sensor_id=sensor, sequence=seq)
        f.time.seconds = 1_767_225_600 + seq // 10
        f.time.nanos = (seq % 10) * 100_000_000
        f.sensor_position_eci.x = 7.0e6
        f.sensor_velocity_eci.y = 7.5e3
        for _ in range(dets):
            d = f.detections.add(angular_sigma=2e-5, intensity=1.0)
            d.line_of_sight_eci.x, d.line_of_sight_eci.y = 0.6, 0.8
        return f

    tmp = Path(tempfile.mkdtemp())
    settings = FusionSettings(
        fusion_id="bench",
        journal_path=tmp / "j.sqlite",
        outbox_path=tmp / "o.sqlite",
        idle_timeout_s=0.0,
        tracker_factory=NullTracker,
    )
    server = await start_fusion_server(settings)
    reqs = {
        s: [
            fs.StreamFramesRequest(
                sensor_id=f"s{s}", frames=[frame(f"s{s}", i) for i in range(k, k + batch)]
            )
            for k in range(0, per_stream, batch)
        ]
        for s in range(n_streams)
    }
    async with grpc.aio.insecure_channel(server.address) as ch:
        stub = fs_grpc.FusionServiceStub(ch)

        async def one(s: int) -> int:
            return sum([len(r.acks) async for r in stub.StreamFrames(iter(reqs[s]))])

        t = time.perf_counter()
        total = sum(await asyncio.gather(*(one(s) for s in range(n_streams))))
        wall = time.perf_counter() - t
    await server.stop(0.5)
    return total / wall, total * dets / wall


# ----------------------------------------------------------------------------- live
def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


def start(argv: list[str], cwd: Path) -> tuple[subprocess.Popen, str]:
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


async def stream_live(address: str, frames, speed: float, fusion_pid: int) -> dict:
    """Stream (log_ns, frame proto) pairs paced at ``speed``; ack latencies and RSS."""
    import grpc

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    sensors = sorted({f.sensor_id for _, f in frames})
    latencies: list[float] = []
    rss: list[float] = []
    async with grpc.aio.insecure_channel(address) as ch:
        stub = fs_grpc.FusionServiceStub(ch)
        await stub.DeclareSensors(fs.DeclareSensorsRequest(sensor_ids=sensors))
        queues = {s: asyncio.Queue() for s in sensors}

        async def per_sensor(sensor: str) -> None:
            call = stub.StreamFrames()
            await call.write(fs.StreamFramesRequest(sensor_id=sensor))
            sent: asyncio.Queue = asyncio.Queue()

            async def acks() -> None:
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        return
                    for _ in resp.acks:
                        latencies.append(time.perf_counter() - await sent.get())

            reader = asyncio.create_task(acks())
            while (f := await queues[sensor].get()) is not None:
                sent.put_nowait(time.perf_counter())
                await call.write(fs.StreamFramesRequest(frames=[f]))
            await call.done_writing()
            await reader

        async def sample() -> None:
            while True:
                rss.append(rss_mb(fusion_pid))
                await asyncio.sleep(1.0)

        tasks = [asyncio.create_task(per_sensor(s)) for s in sensors]
        sampler = asyncio.create_task(sample())
        t0, log0 = time.perf_counter(), frames[0][0]
        for log_ns, f in frames:
            delay = t0 + (log_ns - log0) / 1e9 / speed - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queues[f.sensor_id].put_nowait(f)
        for q in queues.values():
            q.put_nowait(None)
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        sampler.cancel()
    return {"ack_s": latencies, "rss_mb": rss, "wall_s": wall, "sensors": len(sensors)}


def delivery_latencies(db: Path) -> np.ndarray:
    """stored_at - emitted_at of every stored report, seconds."""
    from tracklayer.v1 import track_pb2

    out = []
    with sqlite3.connect(db) as con:
        for blob, stored_ns in con.execute("SELECT report, stored_at_ns FROM reports"):
            r = track_pb2.TrackReport.FromString(blob)
            emitted = r.emitted_at.seconds * 1_000_000_000 + r.emitted_at.nanos
            out.append((stored_ns - emitted) / 1e9)
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="salvo")
    ap.add_argument("--duration", type=float, default=600.0, help="scenario seconds")
    ap.add_argument("--speed", type=float, default=4.0, help="scenario seconds per wall second")
    ap.add_argument("--append", type=Path, help="append the results to this markdown file")
    args = ap.parse_args()

    from tracklayer.fusion.domain import SensorFrame
    from tracklayer.sensors.scenario import load_scenario
    from tracklayer.sensors.simulation import simulate
    from tracklayer.services.wire.convert import frame_to_proto

    lines = []
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load0 = os.getloadavg()[0]
    batched = asyncio.run(ingest(4, 3000, 50, 10))
    single = asyncio.run(ingest(1, 3000, 1, 10))

    t = time.perf_counter()
    frames = [
        (log_ns, frame_to_proto(item))
        for log_ns, item in simulate(load_scenario(args.scenario), duration_s=args.duration)
        if isinstance(item, SensorFrame)
    ]
    sim_s = time.perf_counter() - t
    n_dets = sum(len(f.detections) for _, f in frames)

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store, store_addr = start(["consumer", "--listen", "127.0.0.1:0", "--db", "t.sqlite"], tmp)
        fusion, fusion_addr = start(
            ["fusion", "--listen", "127.0.0.1:0", "--store", store_addr, "--idle-timeout", "0"],
            tmp,
        )
        live = asyncio.run(stream_live(fusion_addr, frames, args.speed, fusion.pid))
        time.sleep(2.0)  # let the outbox drain before stopping
        for p in (fusion, store):
            p.terminate()
            p.wait(30)
        deliver = delivery_latencies(tmp / "t.sqlite")

    ack = np.asarray(live["ack_s"])
    rss = np.asarray(live["rss_mb"])
    q = len(rss) // 4 or 1
    lines += [
        f"### bench_services: {args.scenario} — {now}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.system()}; load average (1 min) at start "
        f"{load0:.1f}, end {os.getloadavg()[0]:.1f}. `benchmarks/bench_services.py`.",
        "",
        "Ingest ceiling (service in-process, null tracker: gRPC + convert + validate + order"
        " + journal group commit + acks):",
        "",
        "| streams x frames/request x detections | frames/s | detections/s |",
        "|---|---:|---:|",
        f"| 4 x 50 x 10 | {batched[0]:,.0f} | {batched[1]:,.0f} |",
        f"| 1 x 1 x 10 | {single[0]:,.0f} | {single[1]:,.0f} |",
        "",
        f"Live: {args.scenario}, {args.duration:g} s of scenario at {args.speed:g}x "
        f"({len(frames)} frames, {n_dets} detections, {live['sensors']} streams, simulated "
        f"in {sim_s:.1f} s) into `tracklayer fusion` (real tracker) + `tracklayer consumer`, "
        f"separate processes; streamed in {live['wall_s']:.1f} s "
        f"({len(frames) / live['wall_s']:,.0f} frames/s, {n_dets / live['wall_s']:,.0f} "
        "detections/s).",
        "",
        "| latency | n | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        f"| frame sent -> ack (journaled, applied) | {ack.size} | "
        f"{np.percentile(ack, 50) * 1e3:.1f} | {np.percentile(ack, 99) * 1e3:.1f} | "
        f"{ack.max() * 1e3:.1f} |",
        f"| report emitted -> stored | {deliver.size} | "
        f"{np.percentile(deliver, 50) * 1e3:.1f} | {np.percentile(deliver, 99) * 1e3:.1f} | "
        f"{deliver.max() * 1e3:.1f} |",
        "",
        f"Fusion RSS: first quarter of the run {rss[:q].mean():.0f} MB, last quarter "
        f"{rss[-q:].mean():.0f} MB, max {rss.max():.0f} MB ({rss.size} samples, 1 s apart).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
