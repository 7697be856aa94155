"""Benchmark: cost of ``tracklayer fusion --record`` on a ``--max-speed`` replay.

Replays one simulated recording into a fresh ``tracklayer fusion`` (``--idle-timeout
0``) + ``tracklayer consumer``, first without and then with ``--record``, and reports
the replay wall time, frames/s, the size of the live recording, and what a SIGTERM
left in it (frames, reports, drops). Every service is a separate process, as in use.
Usage::

    .venv/bin/python benchmarks/bench_record.py [--scenario dropout] [--duration 300]
        [--repeat 2] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracklayer.services.ops.processes import start_server, stop_all
from tracklayer.services.testing import FUSION_SERVICE, STORE_SERVICE
from tracklayer.services.wire.recording import TOPIC_FRAMES, TOPIC_TRACKS, RecordingReader

BIN = Path(sys.executable).with_name("tracklayer")


def replay_once(rec: Path, work: Path, record: Path | None) -> dict:
    work.mkdir(parents=True)
    store = start_server(
        "store",
        ["consumer", "--listen", "127.0.0.1:0", "--db", str(work / "store.sqlite")],
        work,
        health_service=STORE_SERVICE,
    )
    args = ["fusion", "--listen", "127.0.0.1:0", "--store", store.address, "--idle-timeout", "0"]
    args += ["--journal", str(work / "j.sqlite"), "--outbox", str(work / "o.sqlite")]
    if record is not None:
        args += ["--record", str(record)]
    fusion = start_server("fusion", args, work, health_service=FUSION_SERVICE)
    t = time.perf_counter()
    out = subprocess.run(
        [str(BIN), "replay", str(rec), "--fusion", fusion.address, "--max-speed"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = time.perf_counter() - t
    codes = stop_all([fusion, store], 30.0)
    frames = int(re.search(r"replay: (\d+) frames", out).group(1))
    row = {"wall_s": wall, "frames": frames, "fps": frames / wall, "codes": codes}
    if record is not None:
        r = RecordingReader(record)
        row["recorded_frames"] = r.message_count(TOPIC_FRAMES)
        row["recorded_reports"] = r.message_count(TOPIC_TRACKS)
        row["bytes"] = record.stat().st_size
        log = (work / "fusion.log").read_text()
        m = re.search(r"event=record_closed .*dropped=(\d+)", log)
        row["dropped"] = int(m.group(1)) if m else None
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="dropout")
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--append", metavar="RESULTS.md")
    a = ap.parse_args()
    rows: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "sim.mcap"
        subprocess.run(
            [str(BIN), "simulate", a.scenario, "--duration", str(a.duration), "--out", str(rec)],
            check=True,
            capture_output=True,
        )
        for i in range(a.repeat):
            for mode in ("plain", "record"):
                live = Path(tmp) / f"live-{i}.mcap" if mode == "record" else None
                row = replay_once(rec, Path(tmp) / f"{mode}-{i}", live)
                rows.append((mode, row))
                print(mode, row, flush=True)
    lines = [
        f"\n## fusion --record (benchmarks/bench_record.py), "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}. `{a.scenario}` {a.duration:g} s replayed with "
        "`--max-speed` into a fresh fusion service (`--idle-timeout 0`) and store, "
        "each a process; wall time from replay start to its last ack.\n",
        "| run | frames | wall s | frames/s | recording | recorded frames / reports | dropped |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, r in rows:
        rec_cols = (
            f"{r['bytes'] / 1e6:.2f} MB | {r['recorded_frames']} / {r['recorded_reports']} | "
            f"{r['dropped']}"
            if mode == "record"
            else "- | - | -"
        )
        lines.append(
            f"| {mode} | {r['frames']} | {r['wall_s']:.2f} | {r['fps']:.0f} | {rec_cols} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if a.append:
        with open(a.append, "a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
