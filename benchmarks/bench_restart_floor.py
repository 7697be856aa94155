"""Benchmark: how much of a fusion restart is process start, how much is the state
(issue 15 item 3), and one revision against another in the same run.

Starts ``tracklayer fusion`` again and again, alternating the cases, and times each from
process start to health SERVING (``ops.processes.start_server``), then SIGKILLs it:

- ``empty``: a new journal and outbox (imports, SQLite, gRPC server, health: the floor);
- ``state``: a copy of a soak's journal and outbox (``soak.journal.sqlite`` and
  ``soak.outbox.sqlite`` of a ``bench_soak.py`` work folder, kept after its run), so
  checkpoint load and journal replay come on top.

Besides the wall time it reads the child's CPU time (user + system, ``/proc``) the moment
it answers SERVING: on a shared machine the wall time follows the load, the CPU time
much less. ``--python EXE`` adds a second interpreter (e.g. a virtual environment whose
``tracklayer`` is main, as for ``bench_soak.py --python``): each case then alternates
between the two, so both see the same load, and the ratios this / other are printed.

    python benchmarks/bench_restart_floor.py [SOAK_WORK_DIR] [--reps 8] [--python EXE]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

FILES = ("soak.journal.sqlite", "soak.outbox.sqlite")
_REPLAYED = re.compile(r"event=journal_replayed .*?events=(\d+) .*?seconds=([0-9.]+)")
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime (fields 14, 15)


def restart_once(
    python: str, state: Path | None, store: str, work: Path
) -> tuple[float, float, str]:
    """(seconds from process start to SERVING, CPU seconds then, the replay its log
    reports) of one start of ``python -m tracklayer.services.cli fusion``."""
    from tracklayer.services.ops import processes as p

    run = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    for name in FILES if state is not None else ():
        shutil.copy2(state / name, run / name)
    args = ["fusion", "--listen", "127.0.0.1:0", "--store", store, "--id", "soak",
            "--journal", str(run / FILES[0]), "--outbox", str(run / FILES[1]),
            "--idle-timeout", "0"]  # fmt: skip
    sys.executable = python  # what ops.processes starts the child with
    t = time.monotonic()
    child = p.start_server("fusion", args, work / "logs", cwd=work)
    took = time.monotonic() - t
    cpu = cpu_seconds(child.pid)
    child.signal(9)
    child.wait(30)
    m = _REPLAYED.search(child.log_path.read_text(errors="replace"))
    shutil.rmtree(run)
    return took, cpu, (f"{m.group(1)} events, {m.group(2)} s" if m else "?")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state", type=Path, nargs="?",
                    help="a bench_soak work folder (its journal, outbox); without it only "
                    "the empty case runs")  # fmt: skip
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--python", default=None, metavar="EXE",
                    help="a second interpreter to alternate with this one (another "
                    "revision's environment)")  # fmt: skip
    args = ap.parse_args()
    for name in FILES if args.state is not None else ():
        if not (args.state / name).is_file():
            raise SystemExit(f"{args.state / name}: no such file (a bench_soak work folder?)")
    from tracklayer.services.ops import processes as p

    pythons = {"this": sys.executable}
    if args.python:
        pythons["other"] = args.python
    cases = [("empty", None)] + ([("state", args.state)] if args.state is not None else [])
    work = Path(tempfile.mkdtemp(prefix="restart-floor-"))
    store = p.start_server("store", ["consumer", "--listen", "127.0.0.1:0", "--db",
                                     str(work / "t.sqlite")], work / "logs", cwd=work)  # fmt: skip
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    loads: list[float] = []
    try:
        for _ in range(args.reps):
            for case, state in cases:
                for who, python in pythons.items():
                    load = os.getloadavg()[0]
                    loads.append(load)
                    took, cpu, replay = restart_once(python, state, store.address, work)
                    times.setdefault((who, case), []).append((took, cpu))
                    print(f"{who} {case}: {took:.2f} s to SERVING, {cpu:.2f} CPU s "
                          f"(replay {replay}), load {load:.1f}", flush=True)  # fmt: skip
    finally:
        p.stop_all([store])
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at the starts: median {statistics.median(loads):.1f}, "
          f"min {min(loads):.1f}, max {max(loads):.1f}")  # fmt: skip
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in times.items()}  # fmt: skip
    for (who, case), v in times.items():
        print(f"{who} ({pythons[who]}) {case}: wall median {med[who, case][0]:.2f} s, "
              f"max {max(w for w, _ in v):.2f} s; CPU median {med[who, case][1]:.2f} s "
              f"({len(v)} starts)")  # fmt: skip
    if "other" in pythons:
        for case, _ in cases:
            (tw, tc), (ow, oc) = med["this", case], med["other", case]
            print(f"{case}: this / other wall {tw / ow:.2f}, CPU {tc / oc:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
