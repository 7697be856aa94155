"""Benchmark: how much of a fusion restart is process start, how much is the state
(issue 15 item 3).

Starts ``tracklayer fusion`` again and again, alternating two cases, and times each from
process start to health SERVING (``ops.processes.start_server``), then SIGKILLs it:

- ``empty``: a new journal and outbox (imports, SQLite, gRPC server, health: the floor);
- ``state``: a copy of a soak's journal and outbox (``soak.journal.sqlite`` and
  ``soak.outbox.sqlite`` of a ``bench_soak.py`` work folder, kept after its run), so
  checkpoint load and journal replay come on top.

Alternating puts both cases under the same machine load; the load average at each
start is printed beside it.

    python benchmarks/bench_restart_floor.py SOAK_WORK_DIR [--reps 8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

FILES = ("soak.journal.sqlite", "soak.outbox.sqlite")
_REPLAYED = re.compile(r"event=journal_replayed .*?events=(\d+) .*?seconds=([0-9.]+)")


def restart_once(state: Path | None, store: str, work: Path) -> tuple[float, str]:
    """(seconds from process start to SERVING, the replay its log reports)."""
    from tracklayer.services.ops import processes as p

    run = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    for name in FILES if state is not None else ():
        shutil.copy2(state / name, run / name)
    args = ["fusion", "--listen", "127.0.0.1:0", "--store", store, "--id", "soak",
            "--journal", str(run / FILES[0]), "--outbox", str(run / FILES[1]),
            "--idle-timeout", "0"]  # fmt: skip
    t = time.monotonic()
    child = p.start_server("fusion", args, work / "logs", cwd=work)
    took = time.monotonic() - t
    child.signal(9)
    child.wait(30)
    m = _REPLAYED.search(child.log_path.read_text(errors="replace"))
    shutil.rmtree(run)
    return took, (f"{m.group(1)} events, {m.group(2)} s" if m else "?")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state", type=Path, help="a bench_soak work folder (its journal, outbox)")
    ap.add_argument("--reps", type=int, default=8)
    args = ap.parse_args()
    for name in FILES:
        if not (args.state / name).is_file():
            raise SystemExit(f"{args.state / name}: no such file (a bench_soak work folder?)")
    from tracklayer.services.ops import processes as p

    work = Path(tempfile.mkdtemp(prefix="restart-floor-"))
    store = p.start_server("store", ["consumer", "--listen", "127.0.0.1:0", "--db",
                                     str(work / "t.sqlite")], work / "logs", cwd=work)  # fmt: skip
    times: dict[str, list[float]] = {"empty": [], "state": []}
    try:
        for _ in range(args.reps):
            for case, state in (("empty", None), ("state", args.state)):
                load = os.getloadavg()[0]
                took, replay = restart_once(state, store.address, work)
                times[case].append(took)
                print(f"{case}: {took:.2f} s to SERVING (replay {replay}), load {load:.1f}")
    finally:
        p.stop_all([store])
        shutil.rmtree(work, ignore_errors=True)
    for case, v in times.items():
        print(f"{case}: median {statistics.median(v):.2f} s, max {max(v):.2f} s ({len(v)} starts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
