"""What `tracklayer track` costs besides the tracker: MCAP I/O, validation, ordering.

Simulates a scenario (default `salvo`, whole duration) once, then measures on one core:
1. `tracklayer track` end to end with the tracker replaced by a null tracker (reads,
   copies and decodes every message, validates and orders every frame, writes the file);
2. FusionCore alone (validation + ordering, null tracker) over the pre-decoded frames;
3. FrameOrderer peak buffer (frames held ahead of the watermark) and duplicate windows.
Appends a section to benchmarks/RESULTS.md.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_track_overhead.py [SCENARIO] [--duration S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from tracklayer.fusion import core as fusion_core
from tracklayer.fusion.core import FusionCore
from tracklayer.services.cli import main
from tracklayer.services.wire.recording import RecordingReader


class NullTracker:
    """Takes frames and reports nothing: isolates the cost around the tracker."""

    def __init__(self, fusion_id, config) -> None:
        pass

    def process(self, frame):
        return []

    def flush(self):
        return []

    def live_reports(self):
        return []


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main_bench() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default="salvo")
    ap.add_argument("--duration", type=float, default=None)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    tmp = Path(tempfile.mkdtemp(prefix="bench_track_"))
    rec, out = tmp / "in.mcap", tmp / "out.mcap"
    argv = ["simulate", args.scenario, "--out", str(rec)]
    if args.duration:
        argv += ["--duration", str(args.duration)]
    assert main(argv) == 0

    reader = RecordingReader(rec)
    frames = [f for _, f in reader.frames()]
    n_det = sum(f.n_detections for f in frames)
    span_s = (max(f.time_ns for f in frames) - min(f.time_ns for f in frames)) / 1e9

    fusion_core._default_tracker = NullTracker  # the tracker is measured elsewhere
    w0, c0 = time.perf_counter(), cpu_s()
    assert main(["track", str(rec), "--out", str(out)]) == 0
    track_wall, track_cpu = time.perf_counter() - w0, cpu_s() - c0

    core = FusionCore("bench", expected_sensors=reader.sensor_ids(), tracker_factory=NullTracker)
    peak_buffer = 0
    w0, c0 = time.perf_counter(), cpu_s()
    for f in frames:
        core.submit(f)
        peak_buffer = max(peak_buffer, core.orderer.buffered)
    core.flush()
    core_wall, core_s = time.perf_counter() - w0, cpu_s() - c0
    windows = max(core.orderer.window_size(s) for s in reader.sensor_ids())

    load = os.getloadavg()[0]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    n = len(frames)
    text = f"""
### bench_track_overhead: {args.scenario} — {now}

Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python \
{platform.python_version()}, {platform.system()}; pinned to one CPU; load average (1 min) \
{load:.1f}. Recording: {n} frames, {n_det} detections, {span_s:.0f} s of data.
Everything `tracklayer track` does except tracking (the tracker replaced by a null one):

| step | wall s | CPU s | us per frame (CPU) | x real time (CPU) |
|---|---:|---:|---:|---:|
| `tracklayer track`, null tracker (MCAP read + copy + decode + validate + order + write) \
| {track_wall:.2f} | {track_cpu:.2f} | {1e6 * track_cpu / n:.0f} | {span_s / track_cpu:.0f} |
| FusionCore only (validate + order), frames pre-decoded | {core_wall:.2f} | {core_s:.2f} \
| {1e6 * core_s / n:.0f} | {span_s / core_s:.0f} |

Ordering memory: peak {peak_buffer} frames buffered ahead of the watermark \
({peak_buffer / max(1, len(reader.sensor_ids())):.0f} per sensor; lateness 6 s + latency \
holds them), largest duplicate window {windows} sequences (bound 1,024 + those within 6 s).
"""
    print(text)
    with open(Path(__file__).with_name("RESULTS.md"), "a") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main_bench())
