"""Benchmark: the tracking core's resident memory over data time (issue 13: RSS flat).

Tracks a recording offline the way ``tracklayer track`` does (``FusionCore`` fed frame
by frame, survivors frozen out of the collector once a second; no MCAP output) in a
child process per ``--python`` (a venv's interpreter: before/after), one after the
other, and samples every ``--every`` data seconds: RSS, the interpreter's allocated
blocks, the tracker's live tracks, track ids reported so far, and the sequences the
orderer's duplicate windows hold. Prints one table per run and the RSS slope in MB per
minute of data time fitted from ``--fit-from`` s on (where a raid's live picture is
built), so growth that follows time shows apart from growth that follows the picture.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rss.py \\
        /work/scratch/live10/cache/raid-proliferated-600s-seeddefault.mcap \\
        [--python OTHER/.venv/bin/python ...] [--every 20] [--fit-from 200] [--append FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import machine


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def worker(rec: Path, every_s: float, until_s: float) -> None:
    """In the child: track ``rec``, print one JSON row per sample."""
    from tracklayer.fusion.config import FusionConfig
    from tracklayer.fusion.core import FusionCore
    from tracklayer.services.gc_policy import GcFreezer
    from tracklayer.services.wire import convert
    from tracklayer.services.wire.recording import TOPIC_FRAMES, RecordingReader
    from tracklayer.v1 import sensor_pb2

    reader = RecordingReader(rec)
    core = FusionCore(
        "fusion", FusionConfig(), expected_sensors=[s for s in reader.sensor_ids() if s]
    )
    freezer, ids, t0, due = GcFreezer(), set(), None, 0.0
    cpu0 = time.process_time()
    for topic, _, data in reader.raw_messages():
        if topic != TOPIC_FRAMES:
            continue
        frame = convert.frame_from_proto(sensor_pb2.SensorFrame.FromString(data))
        _, _, emitted = core.submit_timed(frame)
        ids.update(e.report.track_id for e in emitted)
        freezer.tick()
        t0 = frame.time_ns if t0 is None else t0
        s = (frame.time_ns - t0) / 1e9
        if s >= due:
            due += every_s
            o = core.orderer
            row = {
                "s": round(s, 1), "cpu_s": round(time.process_time() - cpu0, 1),
                "rss_mb": round(_rss_mb(), 1), "blocks": sys.getallocatedblocks(),
                "live": len(core.live_reports()), "ever": len(ids),
                "window": sum(o.window_size(k) for k in list(o._windows)),
            }  # fmt: skip
            print(json.dumps(row), flush=True)
        if s >= until_s:
            break


def run(python: str, rec: Path, every_s: float, until_s: float) -> list[dict]:
    """One child run; its rows."""
    argv = [
        python,
        __file__,
        str(rec),
        "--worker",
        "--every",
        str(every_s),
        "--until",
        str(until_s),
    ]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def slope(rows: list[dict], key: str, fit_from: float) -> float:
    """Least-squares slope of ``key`` per minute of data time from ``fit_from`` s on."""
    late = [r for r in rows if r["s"] >= fit_from]
    if len(late) < 3:
        return float("nan")
    return float(np.polyfit([r["s"] / 60 for r in late], [r[key] for r in late], 1)[0])


def report(python: str, rows: list[dict], fit_from: float) -> str:
    head = (
        "| data s | CPU s | RSS MB | blocks (k) | live tracks | track ids ever | window entries |"
    )
    lines = [f"`{python}`:", "", head, "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['s']:.0f} | {r['cpu_s']:.0f} | {r['rss_mb']:.0f} | {r['blocks'] / 1e3:.0f} "
            f"| {r['live']} | {r['ever']} | {r['window']} |"
        )
    kb_block = slope(rows, "blocks", fit_from) / 1e3
    lines += [
        "",
        f"RSS slope from {fit_from:.0f} s of data on: **{slope(rows, 'rss_mb', fit_from):+.2f} "
        f"MB/min** (blocks {kb_block:+.1f} k/min, live tracks "
        f"{slope(rows, 'live', fit_from):+.1f}/min, window entries "
        f"{slope(rows, 'window', fit_from):+.0f}/min).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recording", type=Path)
    ap.add_argument("--python", action="append", help="interpreter(s) to compare, in turn")
    ap.add_argument("--every", type=float, default=20.0, help="data seconds between samples")
    ap.add_argument("--until", type=float, default=1e9, help="stop after this many data s")
    ap.add_argument("--fit-from", type=float, default=200.0, help="slope fitted from (data s)")
    ap.add_argument("--append", type=Path, help="append the results to this markdown file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.recording, a.every, a.until)
        return
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load0 = os.getloadavg()
    parts = []
    for python in a.python or [sys.executable]:
        rows = run(python, a.recording, a.every, a.until)
        parts.append(report(python, rows, a.fit_from))
        print(parts[-1], flush=True)
    load1 = os.getloadavg()
    args = " ".join(sys.argv[1:])
    text = (
        f"\n#### bench_rss: {a.recording.name} — {when}\n\nMachine: {machine()}; "
        f"load average at start "
        f"{load0[0]:.1f}, at end {load1[0]:.1f}. `benchmarks/bench_rss.py {args}`\n\n"
        + "\n".join(parts)
    )
    if a.append:
        with a.append.open("a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
