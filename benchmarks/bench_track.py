"""Benchmark: ``tracklayer track`` speed (x real time, detections/s) and memory.

1. The built-in ``salvo`` (24 ICBMs, 28 satellites at 1 Hz, clutter), whole 2400 s,
   MCAP reading and writing included: CPU seconds of the ``track`` process, x real time,
   detections per CPU second, peak RSS.
2. A scaling curve over 10, 50 and 200 missiles (salvo's constellation and sensor, three
   launch sites, ``--duration`` 600 s so that 200 missiles stay affordable).

BLAS is pinned to one thread (DESIGN §9). Results are appended to benchmarks/RESULTS.md.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_track.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [str(Path(sys.executable).parent / "tracklayer")]
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

SCALING_TOML = """name = "scale-{n}"
description = "{n} ICBMs from three sites (benchmark)"
epoch = "2026-01-01T00:00:00Z"
duration_s = 600
seed = 7

[constellation]
kind = "walker"
altitude_km = 1000
inclination_deg = 80
planes = 4
satellites_per_plane = 7
phasing = 1

[sensor]
frame_rate_hz = 1.0
frame_phase = "random"
angular_sigma_urad = 20
pd_boost = 0.98
pd_midcourse = 0.85
clutter_per_frame = 2
latency_mean_s = 0.2
latency_max_s = 5.0
bias_sigma_urad = 0
{launches}"""

LAUNCH = """
[[launch]]
id = "{id}"
missile = "icbm"
site = {{ lat_deg = {lat}, lon_deg = {lon} }}
target = {{ lat_deg = {tlat}, lon_deg = {tlon} }}
time_s = {t0}
count = {count}
spacing_s = {spacing}
"""

SITES = [
    ("A", 40.0, 100.0, 47.6, -122.3),
    ("B", 40.6, 101.2, 37.8, -122.4),
    ("C", 39.3, 99.1, 34.0, -118.2),
]


def scaling_toml(n: int) -> str:
    counts = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    spacing = max(1.0, min(7.0, 150.0 / max(counts)))
    launches = "".join(
        LAUNCH.format(
            id=s[0],
            lat=s[1],
            lon=s[2],
            tlat=s[3],
            tlon=s[4],
            t0=10.0 + 2 * i,
            count=c,
            spacing=spacing if c > 1 else 0.0,
        )  # fmt: skip
        for i, (s, c) in enumerate(zip(SITES, counts, strict=True))
        if c > 0
    )
    return SCALING_TOML.format(n=n, launches=launches)


def run_child(argv: list[str]) -> str:
    """Run a CLI command; returns its output."""
    out = subprocess.run(CLI + argv, env=ENV, capture_output=True, text=True, check=True)
    return out.stdout + out.stderr


def frames_and_detections(path: Path) -> tuple[int, int, float]:
    from tracklayer.services.wire.recording import RecordingReader

    n_frames = n_det = 0
    t_min = t_max = None
    for _, f in RecordingReader(path).frames():
        n_frames += 1
        n_det += f.n_detections
        t_min = f.time_ns if t_min is None else min(t_min, f.time_ns)
        t_max = f.time_ns if t_max is None else max(t_max, f.time_ns)
    return n_frames, n_det, (t_max - t_min) / 1e9


def track_one(tmp: Path, scenario: str, label: str, duration: float | None) -> dict:
    rec = tmp / f"{label}.mcap"
    argv = ["simulate", scenario, "--out", str(rec)]
    if duration is not None:
        argv += ["--duration", str(duration)]
    run_child(argv)
    n_frames, n_det, span = frames_and_detections(rec)
    # each `track` runs in its own child so that its peak RSS is its own: measure in a
    # wrapper process that reports its child's rusage
    code = (
        "import resource, subprocess, sys, json;"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True);"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(json.dumps([u.ru_utime + u.ru_stime, u.ru_maxrss]))"
    )
    t0 = time.perf_counter()
    argv = [*CLI, "track", str(rec), "--out", str(tmp / f"{label}-t.mcap")]
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], env=ENV, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - t0
    import json

    cpu, rss_kb = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "label": label,
        "frames": n_frames,
        "detections": n_det,
        "span_s": span,
        "cpu_s": cpu,
        "wall_s": wall,
        "x_real_time": span / cpu,
        "det_per_s": n_det / cpu,
        "peak_rss_mb": rss_kb / 1024.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="scaling curve 10 and 50 only")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows.append(track_one(tmp, "salvo", "salvo (24 missiles, 2400 s)", None))
        for n in (10, 50) if args.quick else (10, 50, 200):
            toml = tmp / f"scale-{n}.toml"
            toml.write_text(scaling_toml(n))
            rows.append(track_one(tmp, str(toml), f"{n} missiles, 600 s", None))
    load = os.getloadavg()[0]
    lines = [
        f"\n### bench_track: `tracklayer track` speed and memory — "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} vCPU, "
        f"Python {platform.python_version()}, {platform.system()}; OPENBLAS_NUM_THREADS=1; "
        f"load average (1 min) at the end {load:.1f} (CPU seconds are the track process's).\n",
        "| run | frames | detections | data span s | CPU s | x real time | detections/CPU s "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['frames']:,} | {r['detections']:,} | {r['span_s']:.0f} | "
            f"{r['cpu_s']:.1f} | {r['x_real_time']:.0f} | {r['det_per_s']:,.0f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
