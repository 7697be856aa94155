"""Benchmark: what detection threads (fusion/threads.py, issue 13) cost and buy.

Simulates each scenario once, then tracks it alternately with ``thread_bonus = 0``
(threads off: the association before issue 13's threads) and with the default,
``--reps`` times each, in this one process (same machine load for both), and evaluates
one run of each. Prints and appends to benchmarks/RESULTS.md: tracking CPU s (median),
the ratio on/off, and the accuracy figures of ``tracklayer evaluate`` for both.

    python benchmarks/bench_threads.py [--scenarios salvo,PATH.toml] [--duration S]
        [--reps 3] [--keep DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from common import append_results, machine, work_dir

from tracklayer.fusion.config import FusionConfig
from tracklayer.sensors.scenario import load_scenario
from tracklayer.services.evaluation.run import read_recording
from tracklayer.services.offline import record_simulation, track_recording

FIGURES = [
    ("completeness", "completeness"),
    ("false_track_share", "false share"),
    ("id_switches_per_10_object_minutes", "ID switches /10 obj-min"),
    ("track_breaks_in_stereo", "breaks in stereo"),
]


def _truth_figures(path: Path) -> dict:
    res, _ = read_recording(path)
    d = res.to_dict()["truth"]
    out = {k: d.get(k) for k, _ in FIGURES}
    out["confirmed"] = sum(1 for t in res.track_series if t.confirmed)
    return out


def run_one(scenario: str, duration: float | None, reps: int, work: Path) -> dict:
    """Simulate once, track ``reps`` x (off, on), evaluate the last of each."""
    sc = load_scenario(scenario)
    sim = work / f"{sc.name}.mcap"
    print(f"{sc.name}: simulating ...", file=sys.stderr)
    record_simulation(sc, sim, duration_s=duration)
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    outs = {}
    for rep in range(reps):
        for label, bonus in (("off", 0.0), ("on", FusionConfig().thread_bonus)):
            out = work / f"{sc.name}.{label}.mcap"
            c0 = time.process_time()
            track_recording(sim, out, config=FusionConfig().replace(thread_bonus=bonus))
            cpu[label].append(time.process_time() - c0)
            outs[label] = out
            print(f"{sc.name}: rep {rep + 1} threads {label}: {cpu[label][-1]:.2f} CPU s",
                  file=sys.stderr)  # fmt: skip
    figs = {label: _truth_figures(p) for label, p in outs.items()}
    return {"name": sc.name, "cpu": cpu, "figures": figs}


def table(rows: list[dict]) -> str:
    head = "| scenario | threads | track CPU s (median) | ratio on/off | confirmed | "
    head += " | ".join(t for _, t in FIGURES) + " |\n"
    head += "|---|---|---:|---:|---:|" + "---:|" * len(FIGURES) + "\n"
    lines = []
    for r in rows:
        med = {k: statistics.median(v) for k, v in r["cpu"].items()}
        for label in ("off", "on"):
            f = r["figures"][label]
            ratio = f"{med['on'] / med['off']:.3f}" if label == "on" else ""
            vals = " | ".join(
                "-" if f[k] is None else (f"{f[k]:.4g}" if isinstance(f[k], float) else str(f[k]))
                for k, _ in FIGURES
            )
            runs = ", ".join(f"{x:.2f}" for x in r["cpu"][label])
            lines.append(
                f"| {r['name']} | {label} | {med[label]:.2f} ({runs}) | {ratio} | "
                f"{f['confirmed']} | {vals} |"
            )
    return head + "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="salvo", help="comma-separated names or TOML paths")
    ap.add_argument("--duration", type=float, default=None, help="simulated s (default: full)")
    ap.add_argument("--reps", type=int, default=3, help="tracking runs per setting (default 3)")
    ap.add_argument("--keep", default=None, help="keep recordings in this folder")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()
    with work_dir(args.keep, "bench_threads-") as work:
        rows = [run_one(s, args.duration, args.reps, work) for s in args.scenarios.split(",")]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    dur = "full duration" if args.duration is None else f"{args.duration:g} s"
    text = (
        f"\n### bench_threads: detection threads off/on, {dur} -- {when}\n\n"
        f"Machine: {machine()}. `benchmarks/bench_threads.py --scenarios {args.scenarios} "
        f"--reps {args.reps}`; off = `thread_bonus = 0`, runs alternate in one process.\n\n"
        + table(rows)
    )
    print(text)
    if not args.no_write:
        print(f"appended to {append_results(text)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
