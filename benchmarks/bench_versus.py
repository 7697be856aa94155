"""Benchmark: ``tracklayer track`` of this checkout against an earlier revision, same run.

Checks out REV into a git worktree with its own virtual environment (kept under
``--keep DIR`` for the next run, else temporary), simulates each scenario once with
this checkout, then runs ``tracklayer track`` of the old and the new code alternately
(``--reps`` each, as child processes, so both see the same machine load; with
``--together`` each pair at the same time, fairer on a machine whose load drifts) and reports
the CPU seconds (user + system) of each, their medians and the ratio new/old, and
whether ``/tracks`` are byte-identical. Appends to benchmarks/RESULTS.md.

    python benchmarks/bench_versus.py --against REV [--scenarios salvo,single-icbm]
        [--duration S] [--reps 3] [--keep DIR] [--no-write] [--together]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from common import ROOT, append_results, machine, work_dir

NEW_CLI = Path(sys.executable).with_name("tracklayer")


def _old_checkout(rev: str, work: Path) -> Path:
    """A worktree of ``rev`` with its venv installed; returns its tracklayer CLI."""
    tree = work / f"tree-{rev[:12]}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                       check=True, capture_output=True)  # fmt: skip
    cli = tree / ".venv" / "bin" / "tracklayer"
    if not cli.exists():
        print(f"installing {rev} into {tree}/.venv ...", file=sys.stderr)
        subprocess.run(["make", "-C", str(tree), "venv"], check=True, capture_output=True)
    return cli


def _cpu_run(cmd: list[str]) -> float:
    """CPU s (user + system) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, capture_output=True,
                   env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu_pair(cmds: dict[str, list[str]], work: Path) -> dict[str, float]:
    """CPU s (user + system) of each command, all started at once (each sees the same
    machine load: a fairer pair on a shared machine than one after the other); each
    one's output goes to ``work/<label>.log``."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    procs = {}
    for label, cmd in cmds.items():
        with open(work / f"{label}.log", "w") as log:
            procs[subprocess.Popen(cmd, stdout=log, stderr=log, env=env).pid] = label
    out: dict[str, float] = {}
    while procs:
        pid, status, usage = os.wait4(-1, 0)
        label = procs.pop(pid, None)
        if label is None:
            continue
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{label} run failed: see {work / f'{label}.log'}")
        out[label] = usage.ru_utime + usage.ru_stime
    return out


def _digest(path: Path) -> str:
    """SHA-256 of the ``/tracks`` messages (log time, length, bytes) in file order: the
    tracking output, not the metadata (which lists every setting, so a new setting
    would make whole files differ)."""
    from tracklayer.services.wire.recording import TOPIC_TRACKS, RecordingReader

    h = hashlib.sha256()
    for _, log_ns, data in RecordingReader(path).raw_messages([TOPIC_TRACKS]):
        h.update(log_ns.to_bytes(8, "little", signed=True))
        h.update(len(data).to_bytes(4, "little"))
        h.update(data)
    return h.hexdigest()[:12]


def run_scenario(
    name: str, old_cli: Path, duration: float | None, reps: int, work: Path, together: bool
) -> dict:
    sim = work / f"{name}.mcap"
    cmd = [str(NEW_CLI), "simulate", name, "--out", str(sim)]
    if duration is not None:
        cmd += ["--duration", f"{duration:g}"]
    print(f"{name}: simulating ...", file=sys.stderr)
    subprocess.run(cmd, check=True, capture_output=True)
    cpu: dict[str, list[float]] = {"old": [], "new": []}
    out = {}
    clis = {"old": old_cli, "new": NEW_CLI}
    for label in clis:
        out[label] = work / f"{name}.{label}.tracks.mcap"
    cmds = {k: [str(c), "track", str(sim), "--out", str(out[k])] for k, c in clis.items()}
    for rep in range(reps):
        if together:
            for label, s in _cpu_pair(cmds, work).items():
                cpu[label].append(s)
        else:
            for label in clis:
                cpu[label].append(_cpu_run(cmds[label]))
        for label in clis:
            print(f"{name}: rep {rep + 1} {label}: {cpu[label][-1]:.2f} CPU s", file=sys.stderr)
    same = _digest(out["old"]) == _digest(out["new"])
    return {"name": name, "cpu": cpu, "same": same, "diff": None if same else _diff(out)}


def _diff(out: dict[str, Path]) -> str:
    """How the new ``/tracks`` differ from the old (compare_tracks: decisions, largest
    differences of the numbers)."""
    from tracklayer.services.evaluation.compare_tracks import compare_reports
    from tracklayer.services.wire.recording import RecordingReader

    def reports(path: Path) -> list:
        with RecordingReader(path) as reader:
            return [r for _, r in reader.tracks()]

    d = compare_reports(reports(out["old"]), reports(out["new"]))
    return f"{'same' if d.same_decisions else 'NOT the same'} decisions; {d.summary()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", required=True, help="git revision to compare with")
    ap.add_argument("--scenarios", default="salvo", help="comma-separated built-ins or TOMLs")
    ap.add_argument("--duration", type=float, default=None, help="simulated s (default full)")
    ap.add_argument("--reps", type=int, default=3, help="track runs per side (default 3)")
    ap.add_argument("--keep", default=None, help="keep the worktree and files in this folder")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument(
        "--together",
        action="store_true",
        help="run old and new at the same time (pairs that see the same load) instead of "
        "one after the other",
    )
    args = ap.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    load0 = os.getloadavg()
    with work_dir(args.keep, "bench_versus-") as work:
        old_cli = _old_checkout(args.against, work)
        try:
            rows = [run_scenario(s, old_cli, args.duration, args.reps, work, args.together)
                    for s in args.scenarios.split(",")]  # fmt: skip
        finally:
            if args.keep is None:  # the temporary folder goes: unregister its worktree
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(old_cli.parents[2])], capture_output=True)  # fmt: skip
    lines = ["| scenario | old CPU s | new CPU s | median new/old | /tracks identical |",
             "|---|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        o, n = statistics.median(r["cpu"]["old"]), statistics.median(r["cpu"]["new"])
        lines.append(
            f"| {r['name']} | {', '.join(f'{x:.1f}' for x in r['cpu']['old'])} | "
            f"{', '.join(f'{x:.1f}' for x in r['cpu']['new'])} | {n / o:.3f} | "
            f"{'yes' if r['same'] else 'no'} |"
        )
    notes = [f"- {r['name']}: /tracks differ: {r['diff']}" for r in rows if r["diff"]]
    load1 = os.getloadavg()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    dur = "full duration" if args.duration is None else f"{args.duration:g} s"
    text = (
        f"\n### bench_versus: tracklayer track, {head} against {args.against}, {dur} -- {when}\n\n"
        f"Machine: {machine()}; load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.1f}' for x in load0)}, at end {'/'.join(f'{x:.1f}' for x in load1)}. "
        f"`benchmarks/bench_versus.py --against {args.against} "
        f"--scenarios {args.scenarios} --reps {args.reps}"
        f"{'' if args.duration is None else f' --duration {args.duration:g}'}"
        f"{' --together' if args.together else ''}`; old and new "
        f"{'run at the same time' if args.together else 'alternate'}, CPU s of "
        "each child process (MCAP read and write included).\n\n"
        + "\n".join(lines)
        + "\n"
        + ("\n" + "\n".join(notes) + "\n" if notes else "")
    )
    print(text)
    if not args.no_write:
        print(f"appended to {append_results(text)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
