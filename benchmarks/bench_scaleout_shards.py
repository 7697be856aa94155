"""Benchmark: S sky-cell shards on W = 1 and W = 2 workers (issue 14), same recording.

A scenario recording is replayed with ``--max-speed`` into the scale-out chain
(``tracklayer broker``, ``fusion --nats --shards S``, W workers with ``--max-shards
S / W``, the store). A run ends when every shard has applied the whole journal (the
front door's ``shard_lag_events`` all 0 after the replay) and the store holds every
report. Measured per run: the wall time from the replay's start to that end (tracking
throughput = frames / time), the store's report count (must be equal for W = 1 and 2),
each process's CPU seconds (from /proc: the broker's share beside the others) and the
hand-overs. Runs alternate W = 1, W = 2 (``--pairs``) so both see the same load.
Workers checkpoint every 30 s (a raid shard's state is 10-20 MB). ``--ceiling`` adds a
run without workers: how fast the front door acknowledges frames (journal on the
broker, nothing tracking), with its CPU per frame.

``--layout auto`` (the default with S > 1) gives the front door ``--layout`` cuts
balanced by the measured load: the recording is first tracked with S = 1 in this
process (untimed) and ``cells.balanced_cuts`` splits its reports' sub-point longitudes
into S wedges (what ``tracklayer layout`` does with a tracks recording);
``--layout interleaved`` keeps the 30-degree sectors dealt in turn; ``--layout
LON,...`` gives the cuts.

Usage::

    .venv/bin/python benchmarks/bench_scaleout_shards.py [--scenario raid-proliferated]
        [--duration 60] [--shards 12] [--pairs 1] [--w2-first] [--ceiling]
        [--layout auto|interleaved|LON,...] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import time
from pathlib import Path

from bench_scaleout import count_reports, cpu_s
from common import append_results, machine, work_dir

from tracklayer.services.cli import main as cli
from tracklayer.services.ops import processes
from tracklayer.services.scaleout.broker import start_broker
from tracklayer.services.wire.recording import RecordingReader


def shard_counters(address: str) -> dict[str, float]:
    import grpc

    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

    with grpc.insecure_channel(address) as ch:
        stub = fs_grpc.FusionServiceStub(ch)
        return dict(stub.GetStatus(fs.GetStatusRequest(), timeout=10).counters)


def run(
    work: Path, rec: Path, shards: int, workers: int, layout: tuple[float, ...] = ()
) -> dict[str, float]:
    """One replay into the chain with ``workers`` workers; the figures."""
    logs, db = work / "logs", work / "t.sqlite"
    broker = start_broker("127.0.0.1:0", work / "broker")
    store = processes.start_server(
        "store", ["consumer", "--listen", "127.0.0.1:0", "--db", str(db)], logs
    )
    fusion = processes.start_server(
        "fusion", ["fusion", "--listen", "127.0.0.1:0", "--store", store.address,
                   "--idle-timeout", "0", "--nats", broker.url, "--shards", str(shards),
                   *([f"--layout={','.join(map(repr, layout))}"] if layout else [])],
        logs,
    )  # fmt: skip
    kids = [store, fusion]
    for i in range(workers):
        argv = ["worker", "--nats", broker.url, "--id", f"w{i + 1}",
                "--max-shards", str(-(-shards // workers)),
                "--checkpoint-interval", "30"]  # fmt: skip
        kids.append(processes.start_command(f"w{i + 1}", argv, logs))
    try:
        time.sleep(3.0)  # the workers take their leases
        t0 = time.monotonic()
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        replay = processes.start_command(
            "replay", ["replay", str(rec), "--fusion", fusion.address, "--max-speed"], logs
        )
        assert replay.wait(7200) == 0, replay.log_tail()
        acked = time.monotonic() - t0
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # the replay, just reaped
        replay_cpu = ru.ru_utime + ru.ru_stime - reaped.ru_utime - reaped.ru_stime
        stable, last = 0, -1
        while workers:  # every shard caught up, and the store's count stable for 2 s
            c = shard_counters(fusion.address)
            lags = [c.get(f'shard_lag_events{{shard="{k}"}}', 1) for k in range(shards)]
            n = count_reports(db)
            stable = stable + 1 if (n == last and not any(lags)) else 0
            last = n
            if stable >= 4:
                break
            time.sleep(0.5)
        done = time.monotonic() - t0 - (2.0 if workers else 0.0)  # stable stretch: no work
        c = shard_counters(fusion.address) if not workers else c
        cpu = {k.name: cpu_s(k.pid) for k in kids}
        cpu["broker"] = cpu_s(broker.pid)
        cpu["replay"] = replay_cpu
        handovers = sum(
            c.get(f'shard_handovers_out_total{{shard="{k}"}}', 0) for k in range(shards)
        )
    finally:
        processes.stop_all(kids, grace_s=20)
        broker.stop()
    return {"acked_s": acked, "done_s": done, "reports": last, "handovers": handovers,
            **{f"cpu_{k}": v for k, v in cpu.items()}}  # fmt: skip


def choose_layout(text: str, rec: Path, shards: int) -> tuple[float, ...]:
    """The front door's ``--layout`` cuts for ``--layout`` ``text`` (() interleaved)."""
    if shards == 1 or text == "interleaved":
        return ()
    from tracklayer.fusion.cells import balanced_cuts, parse_cuts

    if text != "auto":
        return parse_cuts(text, shards)
    from bench_shard_cpu import run_single, sub_point_lon_deg

    reader = RecordingReader(rec)
    sensors = [s for s in reader.sensor_ids() if s]
    _, reports = run_single([f for _, f in reader.frames()], sensors)
    return balanced_cuts(sub_point_lon_deg(reports), None, shards)


def _layout_text(layout: tuple[float, ...], how: str) -> str:
    if not layout:
        return "the interleaved 30-degree sectors"
    why = " (balanced by the S = 1 run's reports, `--layout auto`)" if how == "auto" else ""
    return f"cuts {', '.join(f'{c:g}' for c in layout)} deg{why}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="raid-proliferated")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--shards", type=int, default=12)
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--w2-first", action="store_true", help="each pair runs W = 2 first")
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="also a run without workers: the front door's ingest ceiling (frames "
        "acknowledged per second with the journal on the broker and nothing tracking)",
    )
    ap.add_argument(
        "--layout",
        default="auto",
        help="auto (cuts balanced by the S = 1 run's reports), interleaved, or LON,... "
        "(default: %(default)s)",
    )
    ap.add_argument("--keep", metavar="DIR")
    ap.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    results: list[tuple[int, dict[str, float]]] = []
    with work_dir(args.keep, "bench-shards-") as work:
        rec = work / "rec.mcap"
        argv = ["simulate", args.scenario, "--out", str(rec), "--duration", str(args.duration)]
        assert cli(argv) == 0
        frames = sum(1 for _ in RecordingReader(rec).raw_messages(["/sensor_frames"]))
        layout = choose_layout(args.layout, rec, args.shards)
        print(f"layout: {layout or 'interleaved 30-degree sectors'}", flush=True)
        load0 = os.getloadavg()[0]
        for p in range(args.pairs):
            for w in (2, 1) if args.w2_first else (1, 2):
                r = run(work / f"p{p}-w{w}", rec, args.shards, w, layout)
                print(f"pair {p} W={w}: {r}", flush=True)
                results.append((w, r))
        if args.ceiling:
            r = run(work / "ceiling", rec, args.shards, 0, layout)
            print(f"ceiling W=0: {r}", flush=True)
            results.append((0, r))
        load1 = os.getloadavg()[0]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for w, r in results:
        cpus = ", ".join(f"{k[4:]} {v:.1f}" for k, v in r.items() if k.startswith("cpu_"))
        rows.append(
            f"| W = {w} | {r['acked_s']:.1f} | {r['done_s']:.1f} | {frames / r['done_s']:,.0f} "
            f"| {r['reports']:.0f} | {r['handovers']:.0f} | {cpus} |"
        )
    ceiling = [r for w, r in results if w == 0]
    w1 = [r["done_s"] for w, r in results if w == 1]
    w2 = [r["done_s"] for w, r in results if w == 2]
    ratio = sum(w1) / sum(w2)
    text = (
        f"\n### bench_scaleout_shards: {args.scenario} {args.duration:g} s, S = {args.shards}"
        f" — {now}\n\nMachine: {machine()}. Recording: {frames} frames. Load average "
        f"(1 min) at start / end: {load0:.1f} / {load1:.1f}. Runs in the order shown. "
        f"Layout: {_layout_text(layout, args.layout)}.\n\n"
        "| run | all acked s | all tracked + stored s | frames/s tracked | reports "
        "| hand-overs | CPU s per process |\n|---|---:|---:|---:|---:|---:|---|\n"
        + "\n".join(rows)
        + f"\n\nW = 2 throughput / W = 1: **{ratio:.2f}x**.\n"
    )
    for r in ceiling:
        text += (
            f"Front door ingest ceiling (no workers): {frames / r['acked_s']:,.0f} frames/s "
            f"acknowledged, front door {r['cpu_fusion']:.1f} CPU s "
            f"({frames / max(r['cpu_fusion'], 1e-9):,.0f} frames per CPU s), broker "
            f"{r['cpu_broker']:.1f} CPU s.\n"
        )
    print(text)
    if args.append:
        append_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
