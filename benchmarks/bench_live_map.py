"""Benchmark: the CPU the live map adds to the track store at salvo rates (issue 16: at most
5%).

A salvo is simulated and tracked once (``tracklayer simulate`` + ``track``); its
``/tracks`` reports are then published into fresh ``tracklayer consumer`` processes at
the recorded pace times ``--speed`` (1 = real time, the salvo's own rate), in the
batches they were emitted in (reports of one log time within 50 ms), stamped
``emitted_at`` = now. ``--pairs`` pairs of stores run at the same time on the same
schedule (so the machine's other load hits every store alike): in each pair one store
without ``--http`` and one with ``--http`` and ``--pages`` pages connected (each page
loads ``/``, its scripts, style and land outlines once, then reads the WebSocket
``/live`` as the page does).

Two figures, kept apart:

- **start-up (one time)**: each store's CPU from exec to "listening" (imports, opening
  the database, starting gRPC and, with ``--http``, aiohttp), and the CPU the ``--http``
  store spends serving a page once (static files, the snapshot).
- **steady state (per second)**: each store's CPU per second of wall time over the
  publishing after the first ``--warmup`` seconds, from the kernel's per-thread run
  time (``/proc/PID/task/*/schedstat``, nanoseconds); the extra of the ``--http`` store
  per pair, as a share of its pair's store without the map and of one core. The whole
  publishing window (warm-up included) is given beside it.

Beside it, a figure without the noise of a shared machine: the live map's own Python
work (the listener on every batch, the flushes it brings and the tail timers, with one
page, status included) replayed in this process over the same batches, as thread CPU
time. It leaves out aiohttp's socket writes and the event loop's wake-ups.

Usage::

    .venv/bin/python benchmarks/bench_live_map.py [--duration 300] [--speed 1]
        [--pairs 3] [--pages 1] [--warmup 30] [--keep DIR] [--no-append]
        [--no-positions] [--before OTHER/.venv/bin/tracklayer]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import append_results, machine, work_dir
from live_map_pages import load_page, read_page

BIN = Path(sys.executable).with_name("tracklayer")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads, ended ones
    included; 10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_ns(pid: int) -> dict[int, int]:
    """Run time (ns, the scheduler's own count) of each live thread of ``pid``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return out


def ran_ns(before: dict[int, int], after: dict[int, int]) -> int:
    """Run time between two :func:`thread_ns` samples (a thread started in between counts
    from 0; one that ended in between is lost, which the stat-based figure catches)."""
    return sum(ns - before.get(tid, 0) for tid, ns in after.items())


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


def map_work_cpu(plan: list, speed: float) -> float:
    """CPU seconds of the live map's own work over ``plan`` at ``speed``, in process: the
    store's listener on every batch, the flushes it brings and the timers of the tails,
    with one page (its queue emptied as aiohttp's writer would). The bytes of each report
    are made before (the store has them from storing it)."""
    import asyncio
    import heapq

    from tracklayer.services.live_map.feed import LiveMapFeed

    class Store:  # the track store as the map sees it
        def open_feed(self, on_batch):
            self.on_batch = on_batch
            return lambda: None

        def live_count(self) -> int:
            return 0

    now = [0.0]
    loop = asyncio.new_event_loop()
    loop.time = lambda: now[0]  # type: ignore[method-assign]
    store = Store()
    feed = LiveMapFeed(loop, store)  # type: ignore[arg-type]
    page = feed.open_page()
    timers = loop._scheduled  # type: ignore[attr-defined]
    raws = [(reps, [r.SerializeToString() for r in reps]) for _, reps in plan]
    t0 = time.thread_time()
    for (off, _), (reps, raw) in zip(plan, raws, strict=True):
        now[0] = off / speed
        while timers and timers[0].when() <= now[0]:
            handle = heapq.heappop(timers)
            if not handle.cancelled():
                handle._run()
        store.on_batch(reps, raw)
        while not page.queue.empty():
            page.queue.get_nowait()
    spent = time.thread_time() - t0
    feed.close()
    loop.close()
    return spent


class _Store:
    """A fresh ``tracklayer consumer`` (with ``--http`` if ``http``); its start-up CPU."""

    def __init__(self, work: Path, http: bool, binary: Path = BIN) -> None:
        import grpc

        from tracklayer.v1 import track_store_service_pb2_grpc as ts_grpc

        tag = time.monotonic_ns()
        self.binary = binary
        argv = [str(binary), "consumer", "--listen", "127.0.0.1:0"]
        argv += ["--db", str(work / f"store-{tag}.sqlite")]
        argv += ["--http", "127.0.0.1:0"] if http else []
        self.log_path = work / f"store-{tag}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        while not re.search(r"listening on (\S+)", self.log_path.read_text()):
            if self.proc.poll() is not None:
                raise RuntimeError(f"store exited: {self.log_path.read_text()}")
            time.sleep(0.02)
        time.sleep(0.3)  # the live map line comes after the gRPC one
        self.startup_cpu = self.cpu()
        text = self.log_path.read_text()
        self.url = m.group(1) if (m := re.search(r"live map on (\S+)", text)) else None
        self.page_cpu, self.page_bytes = 0.0, 0
        self.stop, self.counts = threading.Event(), [0]
        self.latency: list[float] = []  # s, published -> arrived at the first page
        self.channel = grpc.insecure_channel(re.search(r"listening on (\S+)", text).group(1))
        self.stub = ts_grpc.TrackStoreServiceStub(self.channel)

    def open_pages(self, pages: int) -> None:
        """Open ``pages`` pages as a browser does (files once, then ``/live``); the CPU
        this took the store is :attr:`page_cpu`."""
        if self.url is None:
            return
        cpu0 = self.cpu()
        for i in range(pages):
            self.page_bytes += load_page(self.url)
            opened = threading.Event()
            args = (self.url, self.stop, self.counts, opened, self.latency if i == 0 else None)
            threading.Thread(target=read_page, args=args, daemon=True).start()
            if not opened.wait(30):
                raise RuntimeError("no snapshot from /live within 30 s")
        time.sleep(0.3)
        self.page_cpu = self.cpu() - cpu0

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def threads(self) -> dict[int, int]:
        return thread_ns(self.proc.pid)

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


def _copy(plan: list) -> list:
    return [(off, [type(r).FromString(r.SerializeToString()) for r in b]) for off, b in plan]


def concurrent_runs(work: Path, plan: list, args: argparse.Namespace) -> list[dict]:
    """``args.pairs`` stores without and as many with the map, all fed the same schedule
    at the same time; per store: start-up CPU, page CPU, CPU over the whole publishing
    (stat) and run time in the steady window (schedstat), acks, page bytes."""
    from tracklayer.services.live_map.feed import MAX_WAIT_S

    bins = [BIN] + ([Path(args.before)] if args.before else [])
    stores = [
        _Store(work, http, b) for _ in range(args.pairs) for b in bins for http in (False, True)
    ]
    try:
        for s in stores:
            s.open_pages(args.pages)
        plans = [plan] + [_copy(plan) for _ in stores[1:]]
        acks = [0] * len(stores)
        start = time.monotonic() + 0.5
        end = start + plan[-1][0] / args.speed + MAX_WAIT_S + 0.5
        cpu0 = [s.cpu() for s in stores]

        def feed(i: int) -> None:
            acks[i] = stores[i].publish(plans[i], args.speed, start)

        threads = [threading.Thread(target=feed, args=(i,)) for i in range(len(stores))]
        for th in threads:
            th.start()
        time.sleep(max(0.0, start + args.warmup - time.monotonic()))
        warm, t_warm = [s.threads() for s in stores], time.monotonic()
        for th in threads:
            th.join()
        time.sleep(max(0.0, end - time.monotonic()))  # the last flush of the live map
        last, t_end = [s.threads() for s in stores], time.monotonic()
        out = []
        for i, s in enumerate(stores):
            out.append(
                {
                    "http": s.url is not None,
                    "before": s.binary != BIN,
                    "startup": s.startup_cpu,
                    "page": s.page_cpu,
                    "page_bytes": s.page_bytes,
                    "whole": s.cpu() - cpu0[i],
                    "whole_s": t_end - start,
                    "steady": ran_ns(warm[i], last[i]) / 1e9,
                    "steady_loop": (last[i][s.proc.pid] - warm[i][s.proc.pid]) / 1e9,
                    "steady_s": t_end - t_warm,
                    "acks": acks[i],
                    "bytes": s.counts[0],
                    "latency": _latency(s.latency),
                }
            )
        return out
    finally:
        for s in stores:
            s.close()


def _latency(values: list[float]) -> dict[str, float] | None:
    """Median, 99th percentile and maximum (s) of published -> arrived at the page."""
    if not values:
        return None
    q = statistics.quantiles(values, n=100)
    return {"p50": statistics.median(values), "p99": q[98], "max": max(values), "n": len(values)}


def _pct(values: list[float], digits: int = 1) -> str:
    return ", ".join(f"{v:+.{digits}f}%" for v in values)


def _before(args: argparse.Namespace, runs: list[dict]) -> str:
    """The ``--before`` stores' figures (same run, same schedule), or nothing."""
    if not args.before:
        return ""
    offs, ons = runs[0::2], runs[1::2]
    rel = [(b["steady"] - a["steady"]) / a["steady"] * 100 for a, b in zip(offs, ons, strict=True)]
    span = statistics.mean(r["steady_s"] for r in runs)
    off_s = statistics.mean(r["steady"] for r in offs)
    on_s = statistics.mean(r["steady"] for r in ons)
    return (
        f"In the same run, {len(offs)} pair(s) of stores of the code before (`{args.before}`): "
        f"without the map {off_s / span * 100:.2f}% of one core, with it "
        f"{on_s / span * 100:.2f}%: **{(on_s - off_s) / off_s * 100:+.1f}%** (per pair "
        f"{_pct(rel)}); start-up {statistics.mean(r['startup'] for r in offs):.2f} s / "
        f"{statistics.mean(r['startup'] for r in ons):.2f} s CPU, a page opened "
        f"{statistics.mean(r['page'] for r in ons) * 1000:.0f} ms.\n\n"
    )


def report(args: argparse.Namespace, runs: list[dict], n: int, own: float, load0: float) -> str:
    """The RESULTS.md section of ``runs`` (pairs: off, on, off, on, ...; ``--before`` ones
    apart)."""
    before = _before(args, [r for r in runs if r["before"]])
    runs = [r for r in runs if not r["before"]]
    offs, ons = runs[0::2], runs[1::2]
    span = statistics.mean(r["steady_s"] for r in runs)
    whole_s = statistics.mean(r["whole_s"] for r in runs)
    rel = [(b["steady"] - a["steady"]) / a["steady"] * 100 for a, b in zip(offs, ons, strict=True)]
    core = [(b["steady"] - a["steady"]) / span * 100 for a, b in zip(offs, ons, strict=True)]
    rel_whole = [
        (b["whole"] - a["whole"]) / a["whole"] * 100 for a, b in zip(offs, ons, strict=True)
    ]
    off_s = statistics.mean(r["steady"] for r in offs)
    on_s = statistics.mean(r["steady"] for r in ons)
    loop_extra = statistics.mean(
        b["steady_loop"] - a["steady_loop"] for a, b in zip(offs, ons, strict=True)
    )
    mean_rel = (on_s - off_s) / off_s * 100
    start_off = statistics.mean(r["startup"] for r in offs)
    start_on = statistics.mean(r["startup"] for r in ons)
    page = statistics.mean(r["page"] for r in ons)
    lat = [r["latency"] for r in ons if r["latency"]]
    latency = (
        "Published -> arrived at the page (each report of every update message; the page "
        "draws an update in under 100 ms, tests/test_live_map_browser.py): median "
        + ", ".join(f"{x['p50']:.2f}" for x in lat)
        + " s; 99th percentile "
        + ", ".join(f"{x['p99']:.2f}" for x in lat)
        + " s; max "
        + ", ".join(f"{x['max']:.2f}" for x in lat)
        + f" s (per pair; {sum(x['n'] for x in lat)} reports); bound: 2 s to shown.\n\n"
        if lat
        else ""
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    flags = f"--duration {args.duration:g} --speed {args.speed:g} --pairs {args.pairs} "
    flags += f"--pages {args.pages} --warmup {args.warmup:g}"
    flags += " --no-positions" if args.no_positions else ""
    flags += " --before BIN" if args.before else ""
    return (
        f"\n### bench_live_map: {args.scenario} — {stamp}\n\n"
        f"Machine: {machine()}; load average (1 min) at start {load0:.1f}, "
        f"end {os.getloadavg()[0]:.1f}. `benchmarks/bench_live_map.py {flags}`.\n\n"
        f"{n} stored reports of `{args.scenario}` ({args.duration:g} s tracked"
        f"{'' if args.no_positions else ', with the sensor positions a fusion service attaches'}"
        f") published into `tracklayer consumer` at {args.speed:g}x the recorded pace "
        f"({n / whole_s:.1f} reports/s over {whole_s:.0f} s), in the batches they were "
        f"emitted in; {args.pairs} pair(s) of stores (without / with `--http` and "
        f"{args.pages} page(s)), all at the same time on the same schedule.\n\n"
        f"Steady state (from {args.warmup:g} s into the publishing to its end, {span:.0f} s; "
        "run time of the store's threads, schedstat):\n\n"
        "| store | CPU s | CPU % of one core |\n|---|---:|---:|\n"
        f"| without `--http` | {off_s:.3f} | {off_s / span * 100:.2f} |\n"
        f"| with `--http`, {args.pages} page(s) on `/live` | {on_s:.3f} "
        f"| {on_s / span * 100:.2f} |\n\n"
        f"**The live map adds {mean_rel:+.1f}% to the store's steady-state CPU** "
        f"({(on_s - off_s) / span * 100:+.3f}% of one core); per pair: {_pct(rel)} "
        f"(median {statistics.median(rel):+.1f}%; of one core {_pct(core, 3)}); goal: at "
        f"most +5%. Of the extra, on the event loop's thread (where the map runs): "
        f"{loop_extra / span * 100:+.3f}% of one core. Whole publishing window (warm-up "
        "included, /proc stat): per pair "
        f"{_pct(rel_whole)}.\n\n"
        f"One-time start-up: exec to listening {start_off:.2f} s CPU without `--http`, "
        f"{start_on:.2f} s with it ({start_on - start_off:+.2f} s); opening a page once "
        f"(page, style, scripts, land outlines: "
        f"{statistics.mean(r['page_bytes'] for r in ons) / 1e3:.0f} kB, then the snapshot) "
        f"{page * 1000:.0f} ms of the store's CPU.\n\n{latency}{before}"
        f"The map's own Python work replayed in process over the same batches (listener, "
        f"the flushes it brings, one page; no sockets; median of 5): {own * 1000:.0f} ms "
        f"over the publishing = {own / whole_s * 100:.3f}% of one core.\n"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="salvo")
    ap.add_argument("--duration", type=float, default=300.0, help="scenario seconds")
    ap.add_argument("--speed", type=float, default=1.0, help="publish pace x the recording's")
    ap.add_argument("--pairs", type=int, default=3, help="store pairs, all run at once")
    ap.add_argument("--pages", type=int, default=1, help="pages connected to the --http store")
    ap.add_argument("--warmup", type=float, default=30.0, help="s left out of the steady state")
    ap.add_argument("--keep", default=None, help="keep the work folder here")
    ap.add_argument(
        "--before",
        default=None,
        help="another checkout's tracklayer executable: as many pairs of its stores run "
        "beside, on the same schedule (before/after in one run)",
    )
    ap.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument(
        "--no-positions",
        action="store_true",
        help="reports without the sensor_positions a fusion service attaches",
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
        plan = batches(tracked, None if args.no_positions else sim)
        n = sum(len(b) for _, b in plan)
        own = sorted(map_work_cpu(plan, args.speed) for _ in range(5))[2]
        runs = concurrent_runs(work, plan, args)
        for r in runs:
            print(json.dumps(r), flush=True)
    text = report(args, runs, n, own, load0)
    print(text)
    if not args.no_append:
        print(f"appended to {append_results(text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
