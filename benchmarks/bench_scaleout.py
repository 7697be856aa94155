"""Benchmark: scale-out on NATS JetStream (issue 14) against the embedded service.

A scenario recording is replayed with ``--max-speed`` into (a) ``tracklayer fusion``
(embedded: journal, tracker and outbox in one process) and (b) the scale-out chain:
``tracklayer broker``, ``fusion --nats`` (front door) and one ``tracklayer worker``
(S = 1, W = 1). Measured per run: the front door's ingest (replay wall time until every
frame is acknowledged), the time until the store holds every report, and each
process's CPU seconds (from /proc), so the broker's share shows beside the others.

Usage::

    .venv/bin/python benchmarks/bench_scaleout.py [--scenario salvo] [--duration 300]
        [--append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import sys
import time
from pathlib import Path

from common import append_results, machine, work_dir

from tracklayer.services.cli import main as cli
from tracklayer.services.ops import processes
from tracklayer.services.scaleout.broker import start_broker


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_reports(db: Path) -> int:
    try:
        con = sqlite3.connect(db)
        try:
            return con.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def run(work: Path, rec: Path, expected: int, scaleout: bool) -> dict[str, float]:
    """One replay into the embedded service or the scale-out chain; the figures."""
    logs, db = work / "logs", work / "t.sqlite"
    store = processes.start_server("store", ["consumer", "--listen", "127.0.0.1:0",
                                             "--db", str(db)], logs)  # fmt: skip
    fusion_args = ["fusion", "--listen", "127.0.0.1:0", "--store", store.address,
                   "--idle-timeout", "0"]  # fmt: skip
    broker, kids = None, [store]
    if scaleout:
        broker = start_broker("127.0.0.1:0", work / "broker")
        fusion_args += ["--nats", broker.url]
    else:
        fusion_args += ["--journal", str(work / "f.journal.sqlite"),
                        "--outbox", str(work / "f.outbox.sqlite")]  # fmt: skip
    fusion = processes.start_server("fusion", fusion_args, logs)
    kids.append(fusion)
    if broker is not None:
        kids.append(processes.start_command("worker", ["worker", "--nats", broker.url], logs))
    try:
        t0 = time.monotonic()
        replay = processes.start_command(
            "replay", ["replay", str(rec), "--fusion", fusion.address, "--max-speed"], logs
        )
        assert replay.wait(3600) == 0, replay.log_tail()
        acked = time.monotonic() - t0
        while count_reports(db) < expected and time.monotonic() - t0 < 3600:
            time.sleep(0.2)
        stored = time.monotonic() - t0
        cpu = {k.name: cpu_s(k.pid) for k in kids}
        if broker is not None:
            cpu["broker"] = cpu_s(broker.pid)
    finally:
        processes.stop_all(kids, grace_s=20)
        if broker is not None:
            broker.stop()
    return {"acked_s": acked, "stored_s": stored, **{f"cpu_{k}": v for k, v in cpu.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="salvo")
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--keep", metavar="DIR")
    ap.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    with work_dir(args.keep, "bench-scaleout-") as work:
        rec, tracked = work / "rec.mcap", work / "off.mcap"
        argv = ["simulate", args.scenario, "--out", str(rec), "--duration", str(args.duration)]
        assert cli(argv) == 0
        assert cli(["track", str(rec), "--out", str(tracked)]) == 0
        from tracklayer.services.wire.recording import TOPIC_TRACKS, RecordingReader

        expected = sum(1 for _ in RecordingReader(tracked).raw_messages([TOPIC_TRACKS]))
        frames = sum(1 for _ in RecordingReader(rec).raw_messages(["/sensor_frames"]))
        load0 = os.getloadavg()[0]
        embedded = run(work / "embedded", rec, expected, scaleout=False)
        scaled = run(work / "scaleout", rec, expected, scaleout=True)
        load1 = os.getloadavg()[0]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for name, r in (("embedded `fusion`", embedded), ("`fusion --nats` + 1 worker", scaled)):
        cpus = ", ".join(f"{k[4:]} {v:.1f}" for k, v in r.items() if k.startswith("cpu_"))
        rows.append(
            f"| {name} | {r['acked_s']:.1f} | {frames / r['acked_s']:,.0f} | "
            f"{r['stored_s']:.1f} | {frames / r['stored_s']:,.0f} | {cpus} |"
        )
    text = (
        f"\n### bench_scaleout: {args.scenario} {args.duration:g} s — {now}\n\n"
        f"Machine: {machine()}. Recording: {frames} frames, {expected} reports offline. "
        f"Load average (1 min) at start / end: {load0:.1f} / {load1:.1f}.\n\n"
        "| run | all acked s | frames/s acked | all stored s | frames/s tracked | "
        "CPU s per process |\n|---|---:|---:|---:|---:|---|\n" + "\n".join(rows) + "\n"
    )
    print(text)
    if args.append:
        append_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
