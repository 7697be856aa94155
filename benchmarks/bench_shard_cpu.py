"""Benchmark: CPU seconds of each sky-cell shard in one process (issue 14), against S = 1.

The recording (a scenario simulated for ``--duration`` s, or ``--recording``) is tracked
three ways in one process, one after the other:

1. S = 1: one ``FusionCore`` (the path of ``tracklayer track`` and of a one-shard worker);
2. S shards with the interleaved 30-degree sectors (``fusion.shards.ShardSet``: every
   shard applies every frame in a thread of its own, hand-overs between them);
3. S shards with a layout balanced by the measured load: cut longitudes from
   ``cells.balanced_cuts`` over the sub-point longitudes of the S = 1 run's reports
   (what ``tracklayer layout`` computes from a tracks recording).

Each shard's CPU is its thread's CPU time (``time.thread_time``) summed over the frames,
so the other shards' threads and other processes on the machine do not count in it.
With W = 1 a worker runs every shard on one core, so its tracking takes the *total*; with
W = S each worker runs one shard, so the slowest takes the *largest shard*: total /
largest is the bound on W = S / W = 1 on S free cores (less what the front door, store,
broker and sensors take of them). A digest of every report (id, revision, time, status,
position, covariance) tells runs of the same code apart.

Usage::

    .venv/bin/python benchmarks/bench_shard_cpu.py [--scenario raid-proliferated]
        [--duration 60] [--shards 2] [--recording FILE.mcap] [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from common import append_results, machine, work_dir

from tracklayer.fusion import cells
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.core import FusionCore
from tracklayer.fusion.domain import NS_PER_S, TrackReport
from tracklayer.fusion.shards import ShardSet
from tracklayer.services.cli import main as cli
from tracklayer.services.wire.recording import RecordingReader


def digest(reports: list[TrackReport]) -> str:
    """16 hex digits over every report's id, revision, time, status, position, covariance."""
    h = hashlib.sha256()
    for r in sorted(reports, key=lambda r: (r.track_id, r.revision)):
        h.update(f"{r.track_id}:{r.revision}:{r.time_ns}:{r.status}".encode())
        h.update(np.asarray(r.position, float).tobytes())
        h.update(np.asarray(r.covariance, float).tobytes())
    return h.hexdigest()[:16]


def sub_point_lon_deg(reports: list[TrackReport]) -> np.ndarray:
    """Geodetic longitude (deg) of each report's position (TEME at its time)."""
    pos = np.array([r.position[:3] for r in reports], float)
    return cells.sub_point_lon_deg(pos, [r.time_ns / NS_PER_S for r in reports])


def run_single(frames: list, sensors: list[str]) -> tuple[float, list[TrackReport]]:
    """S = 1: CPU seconds and reports."""
    core = FusionCore("fusion", FusionConfig(), expected_sensors=sensors)
    out: list[TrackReport] = []
    t0 = time.thread_time()
    for frame in frames:
        out += core.submit(frame)[2]
    out += core.flush()
    return time.thread_time() - t0, out


def run_sharded(
    frames: list, sensors: list[str], shards: int, layout: tuple[float, ...]
) -> tuple[list[float], list[list[TrackReport]]]:
    """S shards in one process: each shard's thread CPU seconds and reports."""
    kwargs = {"layout": layout} if layout else {}
    sset = ShardSet("fusion", FusionConfig(), shards, 128, expected_sensors=sensors, **kwargs)
    cpu: dict[int, float] = defaultdict(float)
    index = {id(c): k for k, c in enumerate(sset.cores)}

    def timed(core: FusionCore, call) -> list[TrackReport]:
        t0 = time.thread_time()
        try:
            return call(core)
        finally:
            cpu[index[id(core)]] += time.thread_time() - t0

    out: list[list[TrackReport]] = [[] for _ in range(shards)]
    for frame in frames:
        for k, r in sset.apply(lambda c, f=frame: timed(c, lambda c: c.submit(f)[2])):
            out[k].append(r)
    for k, r in sset.apply(lambda c: timed(c, lambda c: c.flush())):
        out[k].append(r)
    return [cpu[k] for k in range(shards)], out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="raid-proliferated")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--recording", metavar="FILE.mcap", help="instead of simulating")
    ap.add_argument("--keep", metavar="DIR")
    ap.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    balanced_cuts = getattr(cells, "balanced_cuts", None)  # None: code before layouts

    with work_dir(args.keep, "bench-shard-cpu-") as work:
        rec = Path(args.recording) if args.recording else work / "rec.mcap"
        if not args.recording:
            argv = ["simulate", args.scenario, "--out", str(rec), "--duration", str(args.duration)]
            assert cli(argv) == 0
        reader = RecordingReader(rec)
        sensors = [s for s in reader.sensor_ids() if s]
        frames = [f for _, f in reader.frames()]
    load0, t0 = os.getloadavg()[0], time.monotonic()
    single_cpu, single = run_single(frames, sensors)
    rows = [("S = 1", [single_cpu], [single], "")]
    layouts = [("interleaved 30-degree sectors", ())]
    if balanced_cuts is not None:
        cuts = balanced_cuts(sub_point_lon_deg(single), None, args.shards)
        layouts.append((f"balanced cuts {', '.join(f'{c:g}' for c in cuts)} deg", cuts))
    for name, layout in layouts:
        cpu, reps = run_sharded(frames, sensors, args.shards, layout)
        rows.append((f"S = {args.shards}, {name}", cpu, reps, name))
        print(rows[-1][0], [round(c, 1) for c in cpu], flush=True)
    load1, wall = os.getloadavg()[0], time.monotonic() - t0
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = []
    for label, cpu, reps, _ in rows:
        total, big = sum(cpu), max(cpu)
        per = " / ".join(f"{c:.1f}" for c in cpu)
        n = " / ".join(f"{len(r):,}" for r in reps)
        allr = [r for rs in reps for r in rs]
        lines.append(
            f"| {label} | {per} | {total:.1f} | {total / single_cpu:.2f}x | {total / big:.2f}x "
            f"| {n} | {digest(allr)} |"
        )
    text = (
        f"\n### bench_shard_cpu: {args.scenario} {args.duration:g} s, S = {args.shards} "
        f"in one process — {now}\n\nMachine: {machine()}. Recording: {len(frames):,} frames. "
        f"Load average (1 min) at start / end: {load0:.1f} / {load1:.1f}; {wall:.0f} s wall. "
        "Runs one after the other in one process; CPU is each shard thread's own.\n\n"
        "| run | CPU s per shard | total CPU s | total / S = 1 | bound W = S / W = 1 "
        "(total / largest shard) | reports per shard | digest |\n"
        "|---|---:|---:|---:|---:|---:|---|\n" + "\n".join(lines) + "\n"
    )
    print(text)
    if args.append:
        append_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
