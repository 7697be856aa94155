"""Benchmark: the cost of sensor registration (issue 12) in ``tracklayer track`` on salvo.

``tracklayer simulate salvo`` once, then ``tracklayer track`` on it with registration on
(the default) and with ``--no-registration``, alternating, ``--repeat`` times each, as
separate processes. CPU = user + system of the track process (``os.wait4``; MCAP
reading and writing included; BLAS pinned to one thread). The cost is the median CPU
with registration over the median without, minus one; issue 12 asks <= 15 %. Both runs'
midcourse RMSE and NEES (``tracklayer evaluate --no-plots``) are printed beside it.
``--before REV`` adds a third mode in the same run: registration on with
``fusion/registration.py`` as of git revision REV (the rest of the code as checked out),
so a change to the estimator is measured before and after on one machine state.

    .venv/bin/python benchmarks/bench_registration.py [--duration S] [--repeat 2]
        [--before REV] [--keep DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import append_results, machine, work_dir

CLI = str(Path(sys.executable).parent / "tracklayer")
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TARGET = 0.15  # issue 12: registration adds at most 15 % to track time


def run_cli(argv: list[str], log: Path) -> float:
    """Run ``tracklayer ARGV`` as its own process; its CPU seconds."""
    with open(log, "w") as fh:
        p = subprocess.Popen([CLI, *argv], stdout=fh, stderr=subprocess.STDOUT, env=ENV)
        _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise SystemExit(f"tracklayer {' '.join(argv)} failed (log {log})")
    return ru.ru_utime + ru.ru_stime


#: ``python -c`` body: track with the estimator from the file argv[1] (module source of
#: fusion/registration.py at another revision), then argv[2:] as ``tracklayer`` arguments
BEFORE = """
import importlib.util, sys
import tracklayer.fusion.tracker.tracker as tr
spec = importlib.util.spec_from_file_location("tracklayer.fusion.registration_before", sys.argv[1])
mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod
spec.loader.exec_module(mod)
tr.Registration = mod.Registration
from tracklayer.services.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_before(source: Path, argv: list[str], log: Path) -> float:
    """``tracklayer ARGV`` with the estimator of ``source``; its CPU seconds."""
    with open(log, "w") as fh:
        cmd = [sys.executable, "-c", BEFORE, str(source), *argv]
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=ENV)
        _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"before run failed (log {log})")
    return ru.ru_utime + ru.ru_stime


def figures(work: Path, tracked: Path) -> dict:
    """Midcourse RMSE and NEES of a tracked recording (``tracklayer evaluate``)."""
    report = work / (tracked.stem + "-report")
    run_cli(["evaluate", str(tracked), "--report", str(report), "--no-plots"], work / "ev.log")
    t = json.loads((report / "metrics.json").read_text())["truth"]
    return {"rmse": t["position_rmse_m"]["midcourse"], "nees": t["nees_midcourse_mean"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=None, help="simulated s (default full)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--keep", default=None)
    ap.add_argument("--before", default=None, help="git revision of the estimator to compare")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    load0 = os.getloadavg()
    with work_dir(args.keep, "bench-registration-") as work:
        rec = work / "salvo.mcap"
        sim = ["simulate", "salvo", "--out", str(rec)]
        if args.duration:
            sim += ["--duration", f"{args.duration:g}"]
        run_cli(sim, work / "sim.log")
        modes = ["on", "off"]
        if args.before:
            old = work / "registration_before.py"
            old.write_bytes(subprocess.run(["git", "show", f"{args.before}:fusion/registration.py"],
                                           check=True, capture_output=True).stdout)  # fmt: skip
            modes.append("before")
        cpu: dict[str, list[float]] = {m: [] for m in modes}
        for i in range(args.repeat):
            for mode in modes:
                out = work / f"salvo-{mode}.mcap"
                argv = ["track", str(rec), "--out", str(out)]
                log = work / f"track-{mode}-{i}.log"
                if mode == "before":
                    cpu[mode].append(run_before(old, argv, log))
                else:
                    extra = ["--no-registration"] if mode == "off" else []
                    cpu[mode].append(run_cli(argv + extra, log))
                print(f"track {mode} #{i + 1}: {cpu[mode][-1]:.1f} CPU s", flush=True)
        fig = {m: figures(work, work / f"salvo-{m}.mcap") for m in modes}
    on, off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    cost = on / off - 1.0
    verdict = "meets" if cost <= TARGET else "misses"
    table = (
        "| registration | track CPU s (runs) | median | midcourse RMSE | NEES mean |\n"
        "|---|---|---|---|---|\n"
        + "".join(
            f"| {m} | {', '.join(f'{c:.1f}' for c in cpu[m])} | {statistics.median(cpu[m]):.1f}"
            f" | {fig[m]['rmse']:.2f} m | {fig[m]['nees']:.2f} |\n"
            for m in modes
        )
    )
    if args.before:
        before = statistics.median(cpu["before"]) / off - 1.0
        table += f"\nCost with the estimator of {args.before}: {100 * before:+.1f} %.\n"
    print(table + f"cost of registration: {100 * cost:+.1f} % ({verdict} the <= 15 % target)")
    if not args.no_write:
        load1 = os.getloadavg()
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        dur = f"{args.duration:g} s" if args.duration else "full 2,400 s"
        append_results(
            f"\n## Registration cost on salvo (issue 12), {when}\n\n"
            f"{machine()}. Load average at start {load0[0]:.1f}, at end {load1[0]:.1f}. "
            f"salvo ({dur}); `tracklayer track` with and without registration, "
            f"alternating, {args.repeat} runs each (CPU = user + system, os.wait4).\n\n"
            f"{table}\nCost of registration: {100 * cost:+.1f} % of `tracklayer track` "
            f"(issue 12: <= 15 %, {verdict}). `benchmarks/bench_registration.py`.\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
