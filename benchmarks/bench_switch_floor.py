"""Benchmark: the floor of the ID-switch figures (issue 13) -- what a perfect tracker scores.

A raid's missiles leave one pad 0.2-0.5 s apart along one path, so in the first minute
of boost they are 20-300 m apart, closer than any boost track's error. The evaluation
assigns tracks to objects afresh each second (GOSPA), so among such objects even a
tracker that never loses an object is charged switches. This benchmark measures how many:

1. simulate a scenario (``--scenario``, ``--duration``), or take ``--recording``;
2. for each ``--sigma`` write an *oracle* tracks file: one CONFIRMED track per object,
   reporting at every truth sample the true position plus an error drawn per axis from
   a first-order Gauss-Markov process (sigma ``--sigma`` m in boost, ``--sigma-after``
   m after burnout, correlation time ``--tau`` s: a Kalman track's error is smooth, not
   white), and the true velocity; ``/truth``, ``/sensor_frames`` and
   ``/detection_truth`` are copied so ``evaluate`` scores it as it scores a tracker;
3. ``tracklayer evaluate`` each; optionally ``--tracks FILE`` (a ``tracklayer track``
   output of the same recording) is evaluated beside them.

Prints and appends to benchmarks/RESULTS.md (unless ``--no-write``) both switch counts
per 10 object-minutes (``id_switches`` and the CLEAR-MOT ``id_switches_clear_mot``),
completeness and false-track share. For reference, a single ICBM tracked alone has a
boost position error of 50-300 m (3-D) on these sensors.

    .venv/bin/python benchmarks/bench_switch_floor.py [--scenario raid] [--duration 120]
        [--sigma 20,60] [--recording FILE] [--tracks FILE] [--keep DIR] [--no-write]
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
from common import append_results, machine, work_dir

from tracklayer.fusion.domain import FlightPhase, TrackReport, TrackStatus
from tracklayer.services.wire.recording import (
    TOPIC_DETECTION_TRUTH,
    TOPIC_FRAMES,
    TOPIC_TRUTH,
    RecordingReader,
    RecordingWriter,
)

CLI = str(Path(sys.executable).parent / "tracklayer")
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
VEL_VAR = 10.0**2  # (m/s)^2 reported velocity variance (the velocity is the truth's)
T_IDSW = 1.0  # issue 13: ID switches per 10 object-minutes


def cli(argv: list[str], log: Path) -> None:
    """``tracklayer ARGV`` as its own process; exits with its log's tail on failure."""
    with open(log, "w") as fh:
        rc = subprocess.call([CLI, *argv], stdout=fh, stderr=subprocess.STDOUT, env=ENV)
    if rc != 0:
        raise SystemExit(f"tracklayer {' '.join(argv)}: exit {rc}\n{log.read_text()[-2000:]}")


def write_oracle(rec: Path, out: Path, sigma_m: float, after_m: float, tau_s: float) -> int:
    """Oracle tracks of ``rec`` into ``out`` (module docstring); returns the reports."""
    rng = np.random.default_rng(20261206)
    err: dict[str, np.ndarray] = {}
    last_ns: dict[str, int] = {}
    n = 0
    with RecordingReader(rec) as reader, RecordingWriter(out, reader.metadata) as w:
        topics = [TOPIC_TRUTH, TOPIC_FRAMES, TOPIC_DETECTION_TRUTH]
        for topic, log_ns, obj in reader.messages(topics):
            if topic == TOPIC_FRAMES:
                w.write_frame(obj, log_ns)
                continue
            if topic == TOPIC_DETECTION_TRUTH:
                w.write_detection_truth(obj, log_ns)
                continue
            w.write_truth(obj, log_ns)
            for s in obj.objects:
                sig = sigma_m if s.phase == FlightPhase.BOOST else after_m
                e = err.get(s.object_id)
                if e is None:
                    e = rng.normal(0.0, sig, 3)
                else:  # Gauss-Markov step: stationary sigma sig, correlation time tau_s
                    a = np.exp(-(obj.time_ns - last_ns[s.object_id]) * 1e-9 / tau_s)
                    e = a * e + np.sqrt(1.0 - a * a) * rng.normal(0.0, sig, 3)
                err[s.object_id], last_ns[s.object_id] = e, obj.time_ns
                rep = TrackReport(
                    track_id=f"oracle-{s.object_id}",
                    revision=1,
                    status=TrackStatus.CONFIRMED,
                    time_ns=obj.time_ns,
                    position=s.position + e,
                    velocity=s.velocity,
                    covariance=np.diag([sig**2] * 3 + [VEL_VAR] * 3),
                    latitude_deg=0.0,
                    longitude_deg=0.0,
                    altitude_m=0.0,
                    phase=s.phase,
                    sensor_ids=("oracle",),
                    update_count=1,
                )
                w.write_track(rep, log_ns)
                n += 1
    return n


def figures(tracks: Path, work: Path, label: str) -> dict:
    """``tracklayer evaluate`` of ``tracks``: the switch counts and coverage figures."""
    report = work / f"{label}-report"
    cli(["evaluate", str(tracks), "--report", str(report), "--no-plots"], work / f"{label}.log")
    t = json.loads((report / "metrics.json").read_text())["truth"]
    return {
        "label": label,
        "objects": t["n_objects"],
        "switches": t["id_switches"],
        "per10": t["id_switches_per_10_object_minutes"],
        "cm": t["id_switches_clear_mot"],
        "cm_per10": t["id_switches_clear_mot_per_10_object_minutes"],
        "completeness": t["completeness"],
        "false": t["false_track_share"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="raid", help="built-in name or TOML (default raid)")
    ap.add_argument("--duration", type=float, default=120.0, help="simulated s (default 120)")
    ap.add_argument("--recording", type=Path, help="use this simulated recording instead")
    ap.add_argument("--sigma", default="20,60", help="boost error sigmas, m per axis")
    ap.add_argument("--sigma-after", type=float, default=10.0, help="m per axis after boost")
    ap.add_argument("--tau", type=float, default=5.0, help="error correlation time, s")
    ap.add_argument("--tracks", type=Path, help="a tracker's output of the same recording")
    ap.add_argument("--keep", help="keep files in this folder")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()
    sigmas = [float(x) for x in args.sigma.split(",")]
    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    with work_dir(args.keep, "switch-floor-") as work:
        rec = args.recording
        if rec is None:
            rec = work / "sim.mcap"
            print(f"simulate {args.scenario} {args.duration:g} s ...", flush=True)
            cli(
                ["simulate", args.scenario, "--out", str(rec), "--duration", f"{args.duration:g}"],
                work / "simulate.log",
            )
        rows = []
        for sig in sigmas:
            out = work / f"oracle-{sig:g}.mcap"
            n = write_oracle(rec, out, sig, args.sigma_after, args.tau)
            print(f"oracle sigma {sig:g} m: {n:,} reports; evaluate ...", flush=True)
            rows.append(figures(out, work, f"oracle, boost sigma {sig:g} m per axis"))
        if args.tracks is not None:
            print(f"evaluate {args.tracks} ...", flush=True)
            rows.append(figures(args.tracks, work, f"tracker ({args.tracks.name})"))
    lines = [
        "| tracks | objects | ID switches | per 10 object-min | CLEAR-MOT switches "
        "| CLEAR-MOT per 10 object-min | completeness | false-track share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['objects']:,} | {r['switches']:,} | {r['per10']:.1f} "
            f"| {r['cm']:,} | {r['cm_per10']:.1f} | {r['completeness']:.3f} "
            f"| {100 * r['false']:.1f}% |"
        )
    print("\n".join(lines))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    src = str(args.recording) if args.recording else f"`{args.scenario}` {args.duration:g} s"
    text = (
        f"\n### bench_switch_floor: {src} -- {now}\n\n"
        f"Machine: {machine()}; load average {load0:.1f} -> {os.getloadavg()[0]:.1f}; "
        f"{time.monotonic() - t0:.0f} s wall. Oracle: truth + Gauss-Markov error (boost "
        f"sigma as given, {args.sigma_after:g} m after, correlation {args.tau:g} s), one "
        f"track per object. Issue 13's target: <= {T_IDSW:g} ID switch per 10 "
        "object-minutes.\n\n" + "\n".join(lines) + "\n"
    )
    if not args.no_write:
        print(f"appended to {append_results(text)}")


if __name__ == "__main__":
    main()
