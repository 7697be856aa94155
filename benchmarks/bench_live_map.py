"""Benchmark: the CPU the live map adds to the track store at salvo rates (issue 16: at most
5%).

A salvo is simulated and tracked once (``tracklayer simulate`` + ``track``); its
``/tracks`` reports are then published into a fresh ``tracklayer consumer`` at the
recorded pace times ``--speed``, in the batches they were emitted in (reports of one
log time within 50 ms), stamped ``emitted_at`` = now. Each run measures the store
process's CPU seconds (user + system, /proc) from the first to the last publish:
``off`` = no ``--http``; ``on`` = ``--http`` with ``--pages`` pages connected to
``/events`` (read by this script like a browser's EventSource). Runs alternate; the
difference is reported as a mean, per pair and as the median of the pairs (the machine
is shared: compare within one run). With ``--concurrent`` the two stores of a pair run
at the same time on the same schedule, so that the machine's other load hits both alike.

Beside it, a figure without the noise of a shared machine: the live map's own Python
work (the listener on every batch, one flush per :data:`FLUSH_S` of publishing time with
one page, status included) replayed in this process over the same batches, as thread CPU
time. It leaves out aiohttp's socket writes and the event loop's wake-ups.

Usage::

    .venv/bin/python benchmarks/bench_live_map.py [--duration 300] [--speed 4]
        [--reps 1] [--pages 1] [--keep DIR] [--no-append] [--positions]
        [--concurrent]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from common import append_results, machine, work_dir

BIN = Path(sys.executable).with_name("tracklayer")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batches(recording: Path, frames_from: Path | None = None) -> list[tuple[float, list]]:
    """The recording's reports grouped as emitted: (offset s from the first, reports).
    With ``frames_from`` (the simulated recording), each report carries the
    ``sensor_positions`` a fusion service would attach: its sensors at their latest frame
    up to the report's time."""
    from tracklayer.services.fusion_service.sensor_positions import SensorPositions
    from tracklayer.services.wire.convert import report_to_proto, sensor_position_to_proto
    from tracklayer.services.wire.recording import RecordingReader

    out: list[tuple[float, list]] = []
    with RecordingReader(recording) as reader:
        raw = [(log, msg) for _, log, msg in reader.messages(["/tracks"])]
    frames = []
    if frames_from is not None:
        with RecordingReader(frames_from) as reader:
            frames = [m for _, _, m in reader.messages(["/sensor_frames"])]
        frames.sort(key=lambda f: f.time_ns)
    book, i = SensorPositions(), 0
    raw.sort(key=lambda x: x[0])
    t0 = raw[0][0]
    for log, rep in raw:
        while i < len(frames) and frames[i].time_ns <= rep.time_ns:
            book.seen(frames[i])
            i += 1
        msg = report_to_proto(rep)
        msg.sensor_positions.extend(sensor_position_to_proto(p) for p in book.of(rep.sensor_ids))
        off = (log - t0) / 1e9
        if out and off - out[-1][0] < 0.05:
            out[-1][1].append(msg)
        else:
            out.append((off, [msg]))
    return out


def read_page(url: str, stop: threading.Event, counts: list[int]) -> None:
    """Read ``/events`` like a browser until ``stop``; counts the bytes received."""
    with urllib.request.urlopen(url + "events", timeout=30) as resp:
        while not stop.is_set():
            chunk = resp.read1(65536)
            if not chunk:
                return
            counts[0] += len(chunk)


def map_work_cpu(plan: list, speed: float) -> float:
    """CPU seconds of the live map's own work over ``plan`` at ``speed``, in process."""
    from tracklayer.services.live_map import server as srv
    from tracklayer.services.live_map.picture import LiveMapPicture

    picture, pending, page = LiveMapPicture(), srv._Pending(), srv._Page()
    on_batch = srv._listener(picture, pending)
    t0, next_flush = time.thread_time(), srv.FLUSH_S
    for off, reps in plan:
        while off / speed >= next_flush:
            data = srv._send_pending(picture, pending, {page})
            status = {**picture.status(), "satellites": picture.satellites()}
            data += srv._event("status", json.dumps(status, separators=(",", ":")))
            next_flush += srv.FLUSH_S
        on_batch(reps)
    return time.thread_time() - t0


class _Store:
    """A fresh ``tracklayer consumer`` (with ``--http`` and ``pages`` readers if ``http``)."""

    def __init__(self, work: Path, http: bool, pages: int) -> None:
        import grpc

        from tracklayer.v1 import track_store_service_pb2_grpc as ts_grpc

        tag = time.monotonic_ns()
        argv = [str(BIN), "consumer", "--listen", "127.0.0.1:0"]
        argv += ["--db", str(work / f"store-{tag}.sqlite")]
        argv += ["--http", "127.0.0.1:0"] if http else []
        self.log_path = work / f"store-{tag}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        while not re.search(r"listening on (\S+)", self.log_path.read_text()):
            time.sleep(0.05)
        text = self.log_path.read_text()
        self.stop, self.counts = threading.Event(), [0]
        if http:
            url = re.search(r"live map on (\S+)", text).group(1)
            for _ in range(pages):
                args = (url, self.stop, self.counts)
                threading.Thread(target=read_page, args=args, daemon=True).start()
            time.sleep(0.5)
        self.channel = grpc.insecure_channel(re.search(r"listening on (\S+)", text).group(1))
        self.stub = ts_grpc.TrackStoreServiceStub(self.channel)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def publish(self, plan: list, speed: float, start: float) -> int:
        """Publish ``plan`` at ``speed`` x its pace from monotonic ``start``; the acks."""
        from tracklayer.v1 import track_store_service_pb2 as ts

        def requests():
            for off, reps in plan:
                delay = start + off / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = time.time_ns()
                for r in reps:
                    r.emitted_at.FromNanoseconds(now)
                yield ts.PublishTracksRequest(reports=reps)

        return sum(len(resp.acks) for resp in self.stub.PublishTracks(requests()))

    def close(self) -> None:
        self.channel.close()
        self.stop.set()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self._log.close()


def one_run(work: Path, plan: list, speed: float, http: bool, pages: int) -> dict:
    """Publish ``plan`` into a fresh store; the store's CPU seconds and the pages' bytes."""
    from tracklayer.services.live_map.server import FLUSH_S

    store = _Store(work, http, pages)
    try:
        cpu0, wall0 = store.cpu(), time.monotonic()
        acks = store.publish(plan, speed, wall0)
        time.sleep(FLUSH_S + 0.2)  # the last flush of the live map
        cpu1, wall1 = store.cpu(), time.monotonic()
        return {"cpu": cpu1 - cpu0, "wall": wall1 - wall0, "acks": acks, "bytes": store.counts[0]}
    finally:
        store.close()


def concurrent_run(work: Path, plan: list, speed: float, pages: int) -> tuple[dict, dict]:
    """A store without and one with the map, fed the same schedule at the same time (the
    machine's load hits both alike); (off, on) as :func:`one_run` gives them."""
    from tracklayer.services.live_map.server import FLUSH_S

    stores = [_Store(work, False, pages), _Store(work, True, pages)]
    copies = [
        plan,
        [(off, [type(r).FromString(r.SerializeToString()) for r in b]) for off, b in plan],
    ]
    acks = [0, 0]
    try:
        start = time.monotonic() + 0.2
        cpu0 = [s.cpu() for s in stores]

        def feed(i: int) -> None:
            acks[i] = stores[i].publish(copies[i], speed, start)

        threads = [threading.Thread(target=feed, args=(i,)) for i in (0, 1)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        time.sleep(FLUSH_S + 0.2)
        wall = time.monotonic() - start
        out = [
            {"cpu": s.cpu() - c0, "wall": wall, "acks": a, "bytes": s.counts[0]}
            for s, c0, a in zip(stores, cpu0, acks, strict=True)
        ]
        return out[0], out[1]
    finally:
        for s in stores:
            s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="salvo")
    ap.add_argument("--duration", type=float, default=300.0, help="scenario seconds")
    ap.add_argument("--speed", type=float, default=4.0, help="publish pace x the recording's")
    ap.add_argument("--reps", type=int, default=1, help="off/on pairs")
    ap.add_argument("--pages", type=int, default=1, help="pages connected in the on runs")
    ap.add_argument("--keep", default=None, help="keep the work folder here")
    ap.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument(
        "--concurrent",
        action="store_true",
        help="run each pair's two stores at the same time on the same schedule",
    )
    ap.add_argument(
        "--positions",
        action="store_true",
        help="reports carry sensor_positions, as a fusion service sends them",
    )
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with work_dir(args.keep, "bench-live-map-") as work:
        sim, tracked = work / "sim.mcap", work / "tracked.mcap"
        if not tracked.exists():
            common = ["--duration", f"{args.duration:g}"]
            subprocess.run(
                [str(BIN), "simulate", args.scenario, "--out", str(sim), *common],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            subprocess.run(
                [str(BIN), "track", str(sim), "--out", str(tracked)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        plan = batches(tracked, sim if args.positions else None)
        n = sum(len(b) for _, b in plan)
        own = sorted(map_work_cpu(plan, args.speed) for _ in range(5))[2]
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        for _ in range(args.reps):
            if args.concurrent:
                off_run, on_run = concurrent_run(work, plan, args.speed, args.pages)
                pair = {"off": off_run, "on": on_run}
            else:
                pair = {m: one_run(work, plan, args.speed, m == "on", args.pages) for m in runs}
            for mode, r in pair.items():
                runs[mode].append(r)
                print(
                    f"{mode}: store CPU {r['cpu']:.2f} s over {r['wall']:.1f} s, "
                    f"{r['acks']} acks, page bytes {r['bytes']}",
                    flush=True,
                )
    off = sum(r["cpu"] for r in runs["off"]) / args.reps
    on = sum(r["cpu"] for r in runs["on"]) / args.reps
    wall = sum(r["wall"] for r in runs["off"] + runs["on"]) / (2 * args.reps)
    added = (on - off) / off * 100 if off else float("nan")
    pairs = sorted(
        (b["cpu"] - a["cpu"]) / a["cpu"] * 100 for a, b in zip(runs["off"], runs["on"], strict=True)
    )
    median_pair = pairs[len(pairs) // 2]
    per_core = (on - off) / wall * 100
    core_pairs = sorted(
        (b["cpu"] - a["cpu"]) / wall * 100 for a, b in zip(runs["off"], runs["on"], strict=True)
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"\n### bench_live_map: {args.scenario} — {stamp}\n\n"
        f"Machine: {machine()}; load average (1 min) at start {load0:.1f}, "
        f"end {os.getloadavg()[0]:.1f}. `benchmarks/bench_live_map.py --duration "
        f"{args.duration:g} --speed {args.speed:g} --reps {args.reps} --pages {args.pages}"
        f"{' --positions' if args.positions else ''}"
        f"{' --concurrent' if args.concurrent else ''}`.\n\n"
        f"{n} stored reports of `{args.scenario}` ({args.duration:g} s tracked"
        f"{', with the sensor positions a fusion service attaches' if args.positions else ''}) "
        "published "
        f"into `tracklayer consumer` at {args.speed:g}x the recorded pace ({n / wall:.0f} "
        f"reports/s over {wall:.0f} s), in the batches they were emitted in; store process "
        f"CPU (user + system) over the publishing, mean of {args.reps} run(s) each, "
        f"{'both stores of a pair at the same time' if args.concurrent else 'alternating'}"
        ".\n\n"
        "| store | CPU s | CPU % of one core |\n|---|---:|---:|\n"
        f"| without `--http` | {off:.2f} | {off / wall * 100:.1f} |\n"
        f"| with `--http`, {args.pages} page(s) on `/events` | {on:.2f} "
        f"| {on / wall * 100:.1f} |\n\n"
        f"The live map adds {added:+.1f}% to the store's CPU ({per_core:+.2f}% of one "
        f"core); per off/on pair: {', '.join(f'{p:+.1f}%' for p in pairs)} (median "
        f"{median_pair:+.1f}%; as a share of one core "
        f"{', '.join(f'{p:+.2f}%' for p in core_pairs)}); goal: at most +5%.\n\n"
        f"The map's own Python work replayed in process over the same batches (listener, "
        f"one flush per second with one page; no sockets; median of 5): {own * 1000:.0f} ms "
        f"= {own / off * 100:.1f}% of the store's CPU without the map, "
        f"{own / wall * 100:.2f}% of one core.\n"
    )
    print(text)
    if not args.no_append:
        print(f"appended to {append_results(text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
