"""Benchmark: ``tracklayer simulate salvo`` wall time and memory, and memory vs duration.

Each measurement runs in its own process pinned to one CPU (the target: the whole salvo
flight in under 60 s on one core), through the real command (simulation + MCAP writing):

1. full run: wall and CPU seconds, peak resident set size (``ru_maxrss``);
2. the same at a quarter of the duration and in full with ``tracemalloc``: the Python
   heap peak must not grow with the duration (frames stream to the file).

Usage::

    .venv/bin/python benchmarks/bench_simulate.py [--scenario salvo]
        [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine

ROOT = Path(__file__).resolve().parents[1]


def child(scenario: str, duration: float | None, trace: bool) -> None:
    """Run one simulation in this process and print its figures as JSON."""
    import resource
    import time
    import tracemalloc

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from tracklayer.services.cli import main

    if trace:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mcap"
        argv = ["simulate", scenario, "--out", str(out)]
        if duration is not None:
            argv += ["--duration", str(duration)]
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with open(os.devnull, "w") as devnull:
            stdout, sys.stdout = sys.stdout, devnull
            try:
                assert main(argv) == 0
            finally:
                sys.stdout = stdout
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        size = out.stat().st_size
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "maxrss_mb": rss_kb / 1024,
                      "heap_peak_mb": None if peak is None else peak / 2**20,
                      "file_mb": size / 2**20}))  # fmt: skip


def run(scenario: str, duration: float | None, trace: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", scenario, "--trace" if trace else "--no-trace"]
    if duration is not None:
        cmd += ["--duration", str(duration)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="salvo")
    ap.add_argument("--append", metavar="RESULTS.md", help="append the figures to this file")
    ap.add_argument("--child", metavar="SCENARIO", help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--trace", action=argparse.BooleanOptionalAction, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.duration, bool(args.trace))
        return 0

    sys.path.insert(0, str(ROOT))
    from tracklayer.sensors.scenario import load_scenario

    full = load_scenario(args.scenario).duration_s
    quarter = full / 4
    timed = run(args.scenario, None, trace=False)
    short = run(args.scenario, quarter, trace=True)
    long = run(args.scenario, full, trace=True)
    lines = [
        f"### simulate {args.scenario} ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}; one process pinned to one CPU; `benchmarks/bench_simulate.py`.",
        "",
        "| run | simulated s | wall s | CPU s | peak RSS MB | Python heap peak MB | file MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, d, r in (
        ("full, untraced", full, timed),
        ("quarter, tracemalloc", quarter, short),
        ("full, tracemalloc", full, long),
    ):
        heap = "-" if r["heap_peak_mb"] is None else f"{r['heap_peak_mb']:.1f}"
        lines.append(
            f"| {label} | {d:.0f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['maxrss_mb']:.0f} | {heap} | {r['file_mb']:.1f} |"
        )
    lines += [
        "",
        f"Target: whole flight < 60 s on one core -> {timed['wall_s']:.1f} s "
        f"({'met' if timed['wall_s'] < 60 else 'NOT met'}). Memory flat in duration: heap peak "
        f"{short['heap_peak_mb']:.1f} MB at {quarter:.0f} s vs {long['heap_peak_mb']:.1f} MB "
        f"at {full:.0f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
