"""Benchmark: ``tracklayer replay --max-speed`` of a scenario into a local fusion service.

Answers whether replay is limited by the fusion core or by the replayer and
per-message overhead. On one recording (``tracklayer simulate``), in one run:

1. core:      ``tracklayer track`` offline (the same FusionCore, no gRPC);
2. replayer:  ``tracklayer replay --max-speed`` into a sink that acknowledges
              every frame at once (no journal, no tracking): the replayer's own
              ceiling, gRPC and per-message costs included;
3. live:      ``tracklayer replay --max-speed`` into ``tracklayer fusion`` (fresh
              journal, ``--idle-timeout 0``) with a ``tracklayer consumer``; the
              time until every frame is acknowledged, and until the service has
              emitted as many reports as the offline run.

Every step is a separate process, as in use. Usage::

    .venv/bin/python benchmarks/bench_replay.py [--scenario salvo] [--duration 600]
        [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).with_name("tracklayer")


# ----------------------------------------------------------------------------- sink
def run_sink() -> None:
    """A FusionService that acks every frame ACCEPTED at once (the replayer's ceiling)."""
    import grpc.aio

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
    from tracklayer.v1 import sensor_pb2

    class Sink(fs_grpc.FusionServiceServicer):
        async def DeclareSensors(self, request, context):
            return fs.DeclareSensorsResponse(expected_sensor_ids=request.sensor_ids)

        async def StreamFrames(self, request_iterator, context):
            async for req in request_iterator:
                yield fs.StreamFramesResponse(
                    acks=[
                        sensor_pb2.FrameAck(
                            sensor_id=f.sensor_id,
                            sequence=f.sequence,
                            status=sensor_pb2.FRAME_STATUS_ACCEPTED,
                        )
                        for f in req.frames
                    ]
                )

    async def main() -> None:
        server = grpc.aio.server()
        fs_grpc.add_FusionServiceServicer_to_server(Sink(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(f"sink: listening on 127.0.0.1:{port}", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


# -------------------------------------------------------------------------- helpers
def timed(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run to completion: (wall s, CPU s of the child, stdout + stderr); raises on failure."""
    c0 = os.times()
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    c1 = os.times()  # reaped children only: exactly this one (servers are still running)
    cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stderr}")
    return wall, cpu, p.stdout + p.stderr


def start_server(argv: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start a server process and read 'listening on HOST:PORT' from its stdout."""
    p = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    deadline = time.monotonic() + 30
    assert p.stdout is not None
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if m:
            return p, m.group(1)
        if p.poll() is not None:
            break
    p.kill()
    raise RuntimeError(f"{argv[:3]} did not start")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status(address: str) -> dict[str, int]:
    import grpc

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    with grpc.insecure_channel(address) as ch:
        return dict(fs_grpc.FusionServiceStub(ch).GetStatus(fs.GetStatusRequest()).counters)


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# ----------------------------------------------------------------------------- main
def bench(scenario: str, duration: float | None, work: Path) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    rec = work / f"{scenario}.mcap"
    argv = [str(BIN), "simulate", scenario, "--out", str(rec)]
    if duration:
        argv += ["--duration", str(duration)]
    wall, _, out = timed(argv, env)
    m = re.search(r"frames (\d+), detections (\d+)", out)
    frames, detections = int(m.group(1)), int(m.group(2))
    res: dict = {"scenario": scenario, "frames": frames, "detections": detections, "sim_s": wall}

    # 1. the core alone, offline
    wall, cpu, out = timed([str(BIN), "track", str(rec), "--out", str(work / "offline.mcap")], env)
    res["track_s"], res["track_cpu_s"] = wall, cpu
    res["offline_reports"] = int(re.search(r"reports (\d+)", out).group(1))

    # 2. the replayer alone, into an instant sink
    sink, sink_addr = start_server([sys.executable, __file__, "--sink"], env)
    try:
        wall, cpu, out = timed(
            [str(BIN), "replay", str(rec), "--fusion", sink_addr, "--max-speed"], env
        )
        res["sink_replay_s"], res["sink_replay_cpu_s"] = wall, cpu
        res["sink_stream_s"] = float(re.search(r"streams in ([\d.]+) s", out).group(1))
        res["sink_cpu_s"] = proc_cpu_s(sink.pid)
    finally:
        stop(sink)

    # 3. live: consumer + fusion service, fresh journal, no idle timeout
    store, store_addr = start_server(
        [str(BIN), "consumer", "--listen", "127.0.0.1:0", "--db", str(work / "store.sqlite")], env
    )
    fusion, fusion_addr = start_server(
        [
            str(BIN), "fusion", "--listen", "127.0.0.1:0", "--store", store_addr,
            "--journal", str(work / "fusion.journal.sqlite"),
            "--outbox", str(work / "fusion.outbox.sqlite"), "--idle-timeout", "0",
        ],
        env,
    )  # fmt: skip
    try:
        t0 = time.perf_counter()
        wall, cpu, out = timed(
            [str(BIN), "replay", str(rec), "--fusion", fusion_addr, "--max-speed"], env
        )
        res["live_replay_s"], res["live_replay_cpu_s"] = wall, cpu
        res["live_summary"] = out.strip().splitlines()[0] if out.strip() else ""
        # Reports emitted after the last ack (the end-of-data flush) finish the run.
        last, stable_since = -1, time.perf_counter()
        while time.perf_counter() - t0 < 3600:
            n = status(fusion_addr).get("reports_total", 0)
            if n != last:
                last, stable_since = n, time.perf_counter()
            if n >= res["offline_reports"] or time.perf_counter() - stable_since > 5:
                break
            time.sleep(0.05)
        res["live_done_s"] = (
            stable_since if last < res["offline_reports"] else time.perf_counter()
        ) - t0
        res["live_reports"] = last
        res["fusion_cpu_s"] = proc_cpu_s(fusion.pid)
    finally:
        stop(fusion)
        stop(store)
    return res


def report(res: dict) -> str:
    f = res["frames"]
    rate = lambda s: f / s if s > 0 else float("nan")  # noqa: E731
    # The replayer is not the limit when, into an instant sink, it streams far faster than
    # the live service absorbs and costs far less CPU per frame than the service.
    fast = res["sink_replay_s"] < 0.5 * res["live_replay_s"]
    cheap = res["live_replay_cpu_s"] < 0.25 * res["fusion_cpu_s"]
    limit = "the fusion core" if fast and cheap else "the replayer / per-message overhead"
    rows = [
        ("offline `tracklayer track` (core only)", res["track_s"], res["track_cpu_s"]),
        ("replay --max-speed into an instant sink (replayer only)", res["sink_replay_s"],
         res["sink_replay_cpu_s"]),
        ("  ... streaming only (summary; no process start-up)", res["sink_stream_s"], float("nan")),
        ("replay --max-speed into `tracklayer fusion`: all acked", res["live_replay_s"],
         res["live_replay_cpu_s"]),
        ("  ... until the service's last report", res["live_done_s"], res["fusion_cpu_s"]),
    ]  # fmt: skip
    lines = [
        f"### bench_replay: {res['scenario']} — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}. Recording: {f} frames, {res['detections']} detections "
        f"(simulated in {res['sim_s']:.1f} s). Load average (1 min) at start / end: "
        f"{res['load'][0]:.1f} / {res['load'][1]:.1f} (other work on the machine inflates wall "
        "times; CPU seconds are per process).",
        "",
        "| step | wall s | frames/s (wall) | CPU s (that process) | frames per CPU s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, wall, cpu in rows:
        per_cpu = f"{rate(cpu):,.0f}" if cpu == cpu else ""
        cpu_s = f"{cpu:.2f}" if cpu == cpu else ""
        lines.append(f"| {name} | {wall:.2f} | {rate(wall):,.0f} | {cpu_s} | {per_cpu} |")
    lines += [
        "",
        f"Sink CPU {res['sink_cpu_s']:.2f} s. Live service emitted {res['live_reports']} reports "
        f"(offline: {res['offline_reports']}). Replay summary: `{res['live_summary']}`",
        "",
        "CPU per frame (process totals, start-up included): "
        f"replayer {1e6 * res['live_replay_cpu_s'] / f:.0f} us, fusion service "
        f"{1e6 * res['fusion_cpu_s'] / f:.0f} us (offline core {1e6 * res['track_cpu_s'] / f:.0f} "
        "us).",
        "",
        f"Limit: **{limit}** — the replayer alone streams "
        f"{rate(res['sink_replay_s']):,.0f} frames/s as a process "
        f"({rate(res['sink_stream_s']):,.0f} frames/s once streaming), "
        f"{rate(res['sink_replay_s']) / rate(res['live_replay_s']):.1f}x what the live service "
        f"absorbs ({rate(res['live_replay_s']):,.0f} frames/s; the offline core: "
        f"{rate(res['track_s']):,.0f} frames/s).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scenario", default="salvo")
    ap.add_argument("--duration", type=float, default=600.0, help="simulated s (0 = scenario's)")
    ap.add_argument("--append", type=Path, default=None, help="append the result to this file")
    args = ap.parse_args()
    if args.sink:
        run_sink()
        return 0
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as tmp:
        res = bench(args.scenario, args.duration or None, Path(tmp))
    res["load"] = (load0, os.getloadavg()[0])
    text = report(res)
    print(text)
    if args.append:
        with open(args.append, "a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
