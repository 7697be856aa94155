"""Benchmark (issue 11, "Speed"): ``tracklayer track`` on the built-in ``glide`` (x real
time, target >= 50x on one core) and on ``salvo`` before and after the GLIDE mode
(target: not more than 10% slower), in the same run.

"Before" is the tree of ``--base`` (default: a23d6b8, the branch point of the GLIDE
mode), extracted with ``git archive`` and put first on ``sys.path`` of its child
process; "after" is this checkout. The runs alternate (before, after, before, ...), each
a separate process whose CPU seconds (user + system, from its rusage) are taken, MCAP
reading and writing included. BLAS is pinned to one thread (DESIGN §9). A section is
appended to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_glide.py [--reps 2] [--salvo-duration 600]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from common import ROOT, append_results, machine, work_dir

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
#: a child that runs the CLI with ``site`` first on sys.path, then prints its own rusage
RUNNER = (
    "import resource, sys; site = sys.argv[1];"
    "site and sys.path.insert(0, site);"
    "from tracklayer.services.cli import main; rc = main(sys.argv[2:]);"
    "u = resource.getrusage(resource.RUSAGE_SELF);"
    "print('CPU', u.ru_utime + u.ru_stime); sys.exit(rc)"
)


def before_tree(work: Path, base: str) -> Path:
    """``base``'s tree laid out as an importable ``tracklayer`` package; returns the folder
    to put first on ``sys.path``."""
    src = work / "before-src"
    site = work / "before-site"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", base], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    shutil.copytree(src / "tracklayer", site / "tracklayer")
    for sub in ("fusion", "sensors", "services"):
        (site / "tracklayer" / sub).symlink_to(src / sub)
    return site


def cpu_seconds(site: str, argv: list[str]) -> float:
    """CPU s (user + system) of one CLI run in a child process."""
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, site, *argv],
        env=ENV, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1].split()[1])


def simulate(work: Path, scenario: str, duration: float | None) -> Path:
    """Recording of ``scenario`` (written once by this checkout's simulator)."""
    out = work / f"{scenario}-{duration}.mcap"
    if not out.exists():
        argv = ["simulate", scenario, "--out", str(out)]
        if duration is not None:
            argv += ["--duration", str(duration)]
        cpu_seconds("", argv)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--salvo-duration", type=float, default=600.0)
    ap.add_argument("--base", default="a23d6b8")
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    with work_dir(args.keep, "bench-glide-") as work:
        site = str(before_tree(work, args.base))
        runs: dict[tuple[str, str], list[float]] = {}
        cases = {
            "salvo": (simulate(work, "salvo", args.salvo_duration), args.salvo_duration),
            "glide": (simulate(work, "glide", None), 1800.0),
        }
        for _ in range(args.reps):
            for name, (rec, _) in cases.items():
                for label, path in (("before", site), ("after", "")):
                    argv = ["track", str(rec), "--out", str(work / f"{name}-{label}.tracks.mcap")]
                    runs.setdefault((name, label), []).append(cpu_seconds(path, argv))
                    print(name, label, runs[(name, label)][-1], flush=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "\n### bench_glide: `tracklayer track` on glide and salvo, before/after GLIDE"
        f" -- {stamp}\n",
        f"\nMachine: {machine()}. `benchmarks/bench_glide.py --reps {args.reps} "
        f"--salvo-duration {args.salvo_duration:g}`; before = `{args.base}`, runs "
        "alternate in one session, CPU s of each `track` process (MCAP read/write included).\n",
        "\n| scenario | data s | code | track CPU s (median; runs) | x real time "
        "| after/before |\n",
        "|---|---:|---|---:|---:|---:|\n",
    ]
    for name, (_, data_s) in cases.items():
        med = {lab: statistics.median(runs[(name, lab)]) for lab in ("before", "after")}
        for lab in ("before", "after"):
            each = ", ".join(f"{v:.2f}" for v in runs[(name, lab)])
            ratio = f"{med['after'] / med['before']:.3f}" if lab == "after" else ""
            lines.append(
                f"| {name} | {data_s:g} | {lab} | {med[lab]:.2f} ({each}) | "
                f"{data_s / med[lab]:.1f} | {ratio} |\n"
            )
    print(append_results("".join(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
