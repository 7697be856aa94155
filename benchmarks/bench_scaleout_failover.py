"""Benchmark: worker fail-over in the scale-out chain (issue 14 figures).

Broker, store, front door (``fusion --nats``) and two workers; a recording streams in
paced (``--speed``) so that reports keep coming. Twenty times: SIGKILL the worker that
holds the shard (by PID), measure the time until the other worker's shard publishes a
*new* report (the REPORTS stream grows again: republished reports are dropped by the
broker's duplicate window and do not count), then start the killed worker again as the
standby. Prints p50 and max.

Usage::

    .venv/bin/python benchmarks/bench_scaleout_failover.py [--kills 20] [--append]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

from common import append_results, machine, work_dir

from tracklayer.services.cli import main as cli
from tracklayer.services.ops import processes
from tracklayer.services.scaleout.broker import start_broker
from tracklayer.services.scaleout.names import Names


def holder(logs: Path, workers: dict[str, processes.ChildProcess]) -> str:
    """The worker whose log last says it started the shard."""
    best, when = "", ""
    for name, child in workers.items():
        for line in child.log_path.read_text().splitlines():
            if "event=shard_started" in line and line > when and child.alive():
                best, when = name, line
    return best


async def reports_last_seq(url: str) -> int:
    import nats

    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(Names("fusion").reports_stream)).state.last_seq
    finally:
        await nc.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--keep", metavar="DIR")
    args = ap.parse_args()
    with work_dir(args.keep, "bench-failover-") as work:
        rec, logs = work / "rec.mcap", work / "logs"
        assert cli(["simulate", "salvo", "--out", str(rec), "--duration", "2400"]) == 0
        broker = start_broker("127.0.0.1:0", work / "broker")
        store = processes.start_server(
            "store", ["consumer", "--listen", "127.0.0.1:0", "--db", str(work / "t.sqlite")], logs
        )
        front = processes.start_server(
            "fusion", ["fusion", "--listen", "127.0.0.1:0", "--store", store.address,
                       "--nats", broker.url, "--idle-timeout", "0"], logs,
        )  # fmt: skip
        argv = {n: ["worker", "--nats", broker.url, "--id", n] for n in ("a", "b")}
        workers = {n: processes.start_command(n, argv[n], logs) for n in argv}
        replay = processes.start_command(
            "replay", ["replay", str(rec), "--fusion", front.address, "--speed", "8"], logs
        )
        times: list[float] = []
        try:
            time.sleep(8.0)
            for _ in range(args.kills):
                victim = holder(logs, workers)
                before = asyncio.run(reports_last_seq(broker.url))
                workers[victim].signal(9)
                t0 = time.monotonic()
                workers[victim].wait(10)
                while asyncio.run(reports_last_seq(broker.url)) == before:
                    assert time.monotonic() - t0 < 60, "no report within 60 s of the kill"
                    time.sleep(0.05)
                times.append(time.monotonic() - t0)
                workers[victim] = processes.start_command(victim, argv[victim], logs)
                time.sleep(2.0)
                assert replay.alive(), "the replay ended: use a longer recording"
        finally:
            processes.stop_all([replay, *workers.values(), front, store], grace_s=20)
            broker.stop()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"\n### bench_scaleout_failover — {now}\n\nMachine: {machine()}. Salvo replayed at "
        f"8x into `fusion --nats` with two workers (S = 1); {len(times)} SIGKILLs of the "
        "worker holding the shard, time until the standby publishes a new report: "
        f"p50 {statistics.median(times):.2f} s, max {max(times):.2f} s "
        f"(lease {4.0:g} s + renewal period 1 s + checkpoint load and replay).\n"
    )
    print(text)
    if args.append:
        append_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
