"""Benchmark: the cost of sensor registration (issue 12) in ``tracklayer track`` on salvo.

``tracklayer simulate salvo`` once, then ``--repeat`` pairs of ``tracklayer track`` on it,
with registration (the default) and with ``--no-registration``, the two of a pair started
together so they see the same machine. Two measures:

- **Attributed** (the verdict's): the run with registration times registration's own
  code in its own process (:mod:`registration_timed`: ``correct``, the tracker's feed
  with the window solves and Kalman updates, the consider widening per pair, the
  ``/sensor_bias`` snapshots; thread CPU, the timer's own cost taken out) against the
  rest of that process's CPU. Both halves are measured in one process at one time, so
  machine load and CPU speed scale them alike: the ratio is what a quiet machine reads,
  where separate runs of one mode spread by up to 37 % on this shared 2-core machine.
  It leaves out what registration changes in the tracker's own work (wider gates).
- **Whole process** (the issue's own words, "the same run with and without"): after each
  such pair, ``tracklayer track`` with and without registration through the same
  launcher with nothing timed (``registration_timed.py --plain``), started together
  (default) or, with ``--sequential``, one after the other, the order alternating from
  pair to pair (on, off, off, on, ...): the CPU (user + system) of the process with over
  the one without, minus one; the median over the pairs and their range. Started
  together, both runs see the same machine: on this shared 2-core VM at load 5-15 such
  pairs spread over 3-7 points (+10..+18 %) where sequential ones spread over 25 (+4
  .. +29 %; stop 23, RESULTS.md); sequential pairs are for a quiet machine. The launcher
  also reports the collector's counts per generation (``gc.get_stats``), printed beside
  them. (The timed
  pair's on over off, and the rest of its on run over its off run, are printed too:
  they carry the harness's timers.)

Rule: the median over the pairs of the attributed cost, against issue 12's <= 15 %, and
the median of the whole-process ratios beside it; with the range of each (one mode's
runs spread by 10-25 % on this shared machine, so a median within that of the bound
meets or misses by the noise).
Midcourse RMSE and NEES (``tracklayer evaluate --no-plots``) are printed beside it.
``--before REV`` runs the same pairs with the whole package as of git revision REV
(``git archive`` into the work directory, imported first through PYTHONPATH; its compiled
kernels warmed before timing), interleaved, so a change is measured before and after on
one machine state; ``--duration`` shortens the scene.

    .venv/bin/python benchmarks/bench_registration.py [--duration S] [--repeat 5]
        [--before REV] [--keep DIR] [--no-write] [--no-plain] [--sequential]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
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
    return wait_cpu(start([CLI, *argv], log, ENV), log, argv)


def start(cmd: list[str], log: Path, env: dict, cwd: Path | None = None) -> subprocess.Popen:
    """Start ``cmd`` with its output to ``log``."""
    with open(log, "w") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)


def wait_cpu(p: subprocess.Popen, log: Path, argv: list[str]) -> float:
    """Wait for ``p``; its CPU seconds (user + system, ``os.wait4``)."""
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise SystemExit(f"tracklayer {' '.join(argv)} failed (log {log})")
    return ru.ru_utime + ru.ru_stime


PACKAGES = ("fusion", "sensors", "services")  # the source folders under tracklayer/


def package_at(rev: str, work: Path) -> Path:
    """A directory holding the ``tracklayer`` package as of git revision ``rev`` (laid out
    as the editable install maps it), its kernels compiled once; for PYTHONPATH."""
    src, root = work / "before-src", work / "before-pkg"
    src.mkdir()
    tar = subprocess.run(["git", "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=tar, check=True)
    shutil.copytree(src / "tracklayer", root / "tracklayer")
    for name in PACKAGES:
        shutil.copytree(src / name, root / "tracklayer" / name)
    warm = (  # the registration's own loops too, where that revision has them
        "from tracklayer.fusion import kernels; kernels.warm()\n"
        "try:\n    from tracklayer.fusion import kernel_registration as r; r.warm()\n"
        "except ImportError:\n    pass"
    )
    env = {**ENV, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", warm], check=True, env=env, cwd=root)
    return root


TIMED = str(Path(__file__).resolve().parent / "registration_timed.py")


def run_pair(package: Path | None, argv: list[str], logs: tuple[Path, Path]) -> dict:
    """``tracklayer ARGV`` with registration on (in :mod:`registration_timed`, its own
    code timed) and with ``--no-registration``, started together so both see the same
    machine; the package of this checkout, or the one under ``package`` (PYTHONPATH).
    Returns the CPU s of both processes and the on run's parts (JSON of the harness)."""
    env = ENV if package is None else {**ENV, "PYTHONPATH": str(package)}
    cwd = None if package is None else package  # the checkout's folder would shadow it
    parts, plain = logs[0].with_suffix(".json"), logs[1].with_suffix(".json")
    on_argv = [*argv[:1], *argv[1:2], "--out", argv[2] + "-on.mcap"]
    off_argv = [*argv[:1], *argv[1:2], "--out", argv[2] + "-off.mcap", "--no-registration"]
    # both through the same launcher; CPU: the process's own count at the end of the run
    on = start([sys.executable, TIMED, str(parts), *on_argv], logs[0], env, cwd)
    off = start([sys.executable, TIMED, "--plain", str(plain), *off_argv], logs[1], env, cwd)
    wait_cpu(on, logs[0], on_argv)
    wait_cpu(off, logs[1], off_argv)
    cpu_off = json.loads(plain.read_text())["total_s"]
    timed = json.loads(parts.read_text())  # its total: before the timer's calibration
    own = sum(v[0] for v in timed["parts"].values())
    return {
        "on": timed["total_s"],
        "off": cpu_off,
        "own": own,
        "total": timed["total_s"],
        "parts": {k: v[0] for k, v in timed["parts"].items()},
        "missing": timed.get("missing", []),
    }


def run_plain(package: Path | None, argv: list[str], logs: tuple[Path, Path], first: str) -> dict:
    """``tracklayer ARGV`` with and without registration, both through
    :mod:`registration_timed` ``--plain`` (nothing timed), started together (``first``
    "together") or one after the other (``first``: "on" or "off" first): each process's
    CPU s and its collections per generation."""
    env = ENV if package is None else {**ENV, "PYTHONPATH": str(package)}
    cwd = None if package is None else package
    modes = ("on", "off") if first == "together" else (first, "off" if first == "on" else "on")
    started = []
    for mode in modes:
        log = logs[mode == "off"]
        extra = ["--no-registration"] if mode == "off" else []
        run = [*argv[:2], "--out", f"{argv[2]}-plain-{mode}.mcap", *extra]
        cmd = [sys.executable, TIMED, "--plain", str(log.with_suffix(".json")), *run]
        started.append((mode, start(cmd, log, env, cwd), log, run))
        if first != "together":
            wait_cpu(*started[-1][1:])
    out = {}
    for mode, p, log, run in started:
        if first == "together":
            wait_cpu(p, log, run)
        res = json.loads(log.with_suffix(".json").read_text())
        out[mode], out[f"gc_{mode}"] = res["total_s"], res.get("gc", [])
    return out


def figures(work: Path, tracked: Path) -> dict:
    """Midcourse RMSE and NEES of a tracked recording (``tracklayer evaluate``)."""
    report = work / (tracked.stem + "-report")
    run_cli(["evaluate", str(tracked), "--report", str(report), "--no-plots"], work / "ev.log")
    t = json.loads((report / "metrics.json").read_text())["truth"]
    return {"rmse": t["position_rmse_m"]["midcourse"], "nees": t["nees_midcourse_mean"]}


def _num(x: float | None, unit: str = "") -> str:
    """A figure for the table (``-`` when there is none, e.g. no midcourse yet)."""
    return "-" if x is None else f"{x:.2f}{unit}"


def _spread(xs: list[float]) -> str:
    """Median and range of ratios, as percentages."""
    med = statistics.median(xs)
    return f"{100 * med:+.1f} % (range {100 * min(xs):+.1f} .. {100 * max(xs):+.1f} %)"


def verdicts(runs: list[dict], plain: list[dict]) -> tuple[float, str, str]:
    """The attributed cost (median over the on runs of registration's own CPU over the
    rest of the same process), the verdict on it, and the whole-process measures' text
    (``plain``: the untimed pairs, :func:`run_plain`)."""
    own = [r["own"] / (r["total"] - r["own"]) for r in runs]
    pairs = [r["on"] / r["off"] - 1.0 for r in runs]
    rest = [(r["on"] - r["own"]) / r["off"] - 1.0 for r in runs]
    cost = statistics.median(own)
    verdict = "meets" if cost <= TARGET else "misses"
    if all(x <= TARGET for x in pairs) or all(x > TARGET for x in pairs):
        side = "meets" if pairs[0] <= TARGET else "misses"
        check = f"every pair {side} the bound"
    else:
        check = "the pairs fall on both sides of the bound: no verdict from them"
    missing = sorted({m for r in runs for m in r["missing"]})
    text = (
        (f"NOT TIMED (not found in this code): {', '.join(missing)};\n" if missing else "")
        + f"registration's own CPU over the rest of its process (attributed): {_spread(own)};\n"
        f"whole process, on over off started together: {_spread(pairs)}: {check};\n"
        f"the rest of the on process over the off process (registration's indirect cost"
        f" plus noise): {_spread(rest)}"
    )
    if plain:
        whole = [p["on"] / p["off"] - 1.0 for p in plain]
        side = "meets" if statistics.median(whole) <= TARGET else "misses"
        text += (
            f";\n**whole process, untimed pairs, on over off** (the issue's"
            f" measure): {_spread(whole)}: the median {side} the bound"
        )
    return cost, verdict, text


def table(code: str, runs: list[dict], plain: list[dict], fig: dict) -> str:
    """Markdown rows of one code's pairs (timed, and untimed when there are)."""
    names = sorted({k for r in runs for k in r["parts"]})
    rows = ""
    for i, r in enumerate(runs):
        parts = ", ".join(f"{k} {r['parts'][k]:.2f}" for k in names if k in r["parts"])
        p = plain[i] if i < len(plain) else None
        whole = (
            "| |"
            if p is None
            else (
                f"| {p['on']:.1f} / {p['off']:.1f} | **{100 * (p['on'] / p['off'] - 1):+.1f} %**"
                f" (gc on {p['gc_on']}, off {p['gc_off']}) |"
            )
        )
        rows += (
            f"| {code} #{i + 1} | {r['on']:.1f} | {r['off']:.1f}"
            f" | {100 * (r['on'] / r['off'] - 1):+.1f} %"
            f" | {r['own']:.2f} ({parts}) | {100 * r['own'] / (r['total'] - r['own']):+.1f} %"
            f" {whole}\n"
        )
    on, off = fig["on"], fig["off"]
    return rows + (
        f"| {code}: midcourse RMSE / NEES | {_num(on['rmse'], ' m')} / {_num(on['nees'])}"
        f" | {_num(off['rmse'], ' m')} / {_num(off['nees'])} | | | | | |\n"
    )


HEAD = (
    "| run | on CPU s | off CPU s | on / off - 1 | registration's own CPU s (parts) |"
    " own / rest | untimed on / off CPU s | untimed on / off - 1 (collections per"
    " generation) |\n|---|---:|---:|---:|---|---:|---:|---|\n"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=None, help="simulated s (default full)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", default=None)
    ap.add_argument("--before", default=None, help="git revision of the estimator to compare")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-plain", action="store_true", help="no untimed whole-process pairs")
    ap.add_argument(
        "--sequential",
        dest="together",
        action="store_false",
        help="untimed pairs one after the other (on, off / off, on): for a quiet machine",
    )
    args = ap.parse_args()
    load0 = os.getloadavg()
    with work_dir(args.keep, "bench-registration-") as work:
        work = work.resolve()  # the before modes run in their package's folder
        rec = work / "salvo.mcap"
        sim = ["simulate", "salvo", "--out", str(rec)]
        if args.duration:
            sim += ["--duration", f"{args.duration:g}"]
        run_cli(sim, work / "sim.log")
        codes: dict[str, Path | None] = {"now": None}
        if args.before:
            codes[args.before] = package_at(args.before, work)
        runs: dict[str, list[dict]] = {c: [] for c in codes}
        plain: dict[str, list[dict]] = {c: [] for c in codes}
        for i in range(args.repeat):
            for j, (code, pkg) in enumerate(codes.items()):
                argv = ["track", str(rec), str(work / f"salvo-{j}")]
                logs = (work / f"track-{j}-on-{i}.log", work / f"track-{j}-off-{i}.log")
                r = run_pair(pkg, argv, logs)
                runs[code].append(r)
                line = f"{code} #{i + 1}: on {r['on']:.1f} off {r['off']:.1f} own {r['own']:.2f}"
                if not args.no_plain:
                    logs = (work / f"plain-{j}-on-{i}.log", work / f"plain-{j}-off-{i}.log")
                    order = "on" if i % 2 == 0 else "off"
                    p = run_plain(pkg, argv, logs, "together" if args.together else order)
                    plain[code].append(p)
                    line += f"; untimed on {p['on']:.1f} off {p['off']:.1f}"
                print(line + " CPU s", flush=True)
        fig = {
            c: {m: figures(work, work / f"salvo-{j}-{m}.mcap") for m in ("on", "off")}
            for j, c in enumerate(codes)
        }
    rows = HEAD + "".join(table(c, runs[c], plain[c], fig[c]) for c in codes)
    cost, verdict, text = verdicts(runs["now"], plain["now"])
    if args.before:
        text += f"\nat {args.before}: " + verdicts(runs[args.before], plain[args.before])[2]
    whole = [p["on"] / p["off"] - 1.0 for p in plain["now"]]
    if whole:
        verdict += f"; whole process (untimed pairs) {_spread(whole)}"
    print(rows + text + f"\nattributed cost {100 * cost:+.1f} %: {verdict} (bound <= 15 %)")
    if not args.no_write:
        load1 = os.getloadavg()
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        dur = f"{args.duration:g} s" if args.duration else "full 2,400 s"
        append_results(
            f"\n## Registration cost on salvo (issue 12), {when}\n\n"
            f"{machine()}. Load average at start {load0[0]:.1f}, at end {load1[0]:.1f}. "
            f"salvo ({dur}); {args.repeat} pairs of `tracklayer track` with and without "
            f"registration started together (CPU = user + system, os.wait4); the on run "
            f"times registration's own code in process (`benchmarks/registration_timed.py`);"
            f" after each pair, untimed on and off "
            f"{'started together' if args.together else 'one after the other (order alternating)'}."
            f"\n\n{rows}\n{text}.\n\n**Verdict** (rule: the median attributed cost, which "
            f"machine load scales out, against issue 12's <= 15 %; the untimed "
            f"whole-process median beside it): {100 * cost:+.1f} %, {verdict}. "
            f"`benchmarks/bench_registration.py`.\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
