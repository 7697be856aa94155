"""Benchmark: DESIGN §7 metrics (``MetricsAccumulator``) on synthetic many-missile runs.

Independent of the simulator and tracker: N synthetic missiles (tests/synthetic_tracking.py)
flying 2,000 s, one confirmed track each reporting at 1 Hz with Gaussian errors, two
satellites detecting each missile every second. Measures feeding (reports, truth frames,
detections) and ``finish()`` wall time, the accumulator's stored arrays and the heap peak
of ``finish()`` (tracemalloc), for N = 10, 50, 100, on one CPU. (Making the synthetic
inputs takes most of the run.)

Usage::

    .venv/bin/python benchmarks/bench_metrics.py [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from synthetic_tracking import (  # noqa: E402
    SyntheticMissile,
    noisy_reports,
    stereo_detections,
    truth_frames,
)

from tracklayer.fusion.evaluation import MetricsAccumulator  # noqa: E402

FLIGHT_S = 1200  # SyntheticMissile default flight


def run(n: int) -> dict[str, float]:
    ms = [
        SyntheticMissile(
            f"M{i:03d}-01", lat_deg=20 + 0.2 * i % 40, launch_s=i % 60, flight_s=FLIGHT_S
        )
        for i in range(n)
    ]
    # inputs are generated per missile and fed at once (never all held): only the feeding
    # calls are timed
    acc = MetricsAccumulator()
    feed = 0.0
    n_rep = n_det = 0
    for i, m in enumerate(ms):
        truth = truth_frames([m])
        t = time.perf_counter()
        for tf in truth:
            acc.add_truth(tf)
        feed += time.perf_counter() - t
        reps = noisy_reports(m, f"fusion-{i}", range(5, FLIGHT_S + 1), i)
        dets = stereo_detections(m, range(0, FLIGHT_S), 30.0)
        n_rep += len(reps)
        n_det += len(dets)
        t = time.perf_counter()
        for r in reps:
            acc.add_report(r)
        for frame, d in dets:
            acc.add_frame_truth(frame, d)
        feed += time.perf_counter() - t
    stored = sum(b._a.nbytes for b in (acc._rep_f, acc._rep_i, acc._det_i, acc._det_f)) + sum(
        a._a.nbytes + b._a.nbytes for a, b in acc._truth
    )
    tracemalloc.start()
    t1 = time.perf_counter()
    res = acc.finish()
    t2 = time.perf_counter()
    finish = t2 - t1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert res.truth is not None and res.truth["completeness"] == 1.0
    return {
        "missiles": n,
        "reports": n_rep,
        "detections": n_det,
        "feed_s": feed,
        "finish_s": finish,
        "stored_mb": stored / 1e6,
        "finish_heap_peak_mb": peak / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--append", type=Path, help="append a results section to this file")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rows = [run(n) for n in (10, 50, 100)]
    head = "| missiles | reports | detections | feed s | finish s | stored MB | finish peak MB |"
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['missiles']} | {r['reports']} | {r['detections']} | {r['feed_s']:.2f} "
            f"| {r['finish_s']:.2f} | {r['stored_mb']:.0f} | {r['finish_heap_peak_mb']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.append:
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = (
            f"\n## metrics (fusion/evaluation/), {when}\n\n"
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}; one CPU. Synthetic missiles, {FLIGHT_S} s flights, "
            "1 Hz reports, 2 satellites per missile per second (benchmarks/bench_metrics.py).\n\n"
            f"{table}\n"
        )
        with open(args.append, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
