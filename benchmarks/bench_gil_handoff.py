"""Benchmark: how long the fusion service's event loop waits while the tracker thread tracks.

The live fusion service tracks on a thread of its own (issue 13 item 6); its event loop
(gRPC, ordering, journal, acks) shares the GIL with it. This measures the loop's wait in
one process: a thread tracks the frames of ``--window`` seconds of a recording from
``--at`` seconds on (real tracker; the state up to ``--at`` is built once and restored from
a checkpoint for each variant, so every variant tracks the same work), while an asyncio
loop wakes every 2 ms and records how late it woke (its wait for the GIL plus the OS
scheduler's). Variants, interleaved ``--rounds`` times: the loop alone (no tracker: the
scheduler's share), the tracker with the default 5 ms switch interval, with 1 ms (what
``tracklayer fusion`` sets), and with 1 ms plus ``time.sleep(0)`` between frames (a
voluntary hand-off of the GIL). Prints the lateness p50/p99/p99.9/max and the tracker's
CPU s per variant.

    .venv/bin/python benchmarks/bench_gil_handoff.py RECORDING [--at 60] [--window 6]
        [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections import Counter

import numpy as np

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.core import FusionCore
from tracklayer.services.fusion_service.checkpoint import (
    allowed_modules,
    decode_checkpoint,
    encode_checkpoint,
)
from tracklayer.services.wire.recording import RecordingReader

PROBE_S = 0.002  # the loop's wake period


def variant(
    blob: bytes, allowed: tuple[str, ...], frames: list, switch_s: float | None, yield_: bool
) -> tuple[np.ndarray, float]:
    """Loop lateness (s) while a restored core tracks ``frames`` on a thread (None: no
    tracker, the loop alone for 3 s); and the tracker thread's CPU s."""
    core, _ = decode_checkpoint(blob, allowed)
    sys.setswitchinterval(switch_s or 0.005)
    done = threading.Event()
    cpu = [0.0]

    def track() -> None:
        t = time.thread_time()
        if switch_s is None:
            time.sleep(3.0)
        for f in frames if switch_s is not None else ():
            core.submit(f)
            if yield_:
                time.sleep(0)
        cpu[0] = time.thread_time() - t
        done.set()

    late: list[float] = []

    async def probe() -> None:
        th = threading.Thread(target=track)
        th.start()
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            late.append(time.perf_counter() - t - PROBE_S)
        th.join()

    asyncio.run(probe())
    sys.setswitchinterval(0.005)
    return np.asarray(late), cpu[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recording")
    ap.add_argument("--at", type=float, default=60.0, help="data seconds before the window")
    ap.add_argument("--window", type=float, default=6.0, help="data seconds tracked per variant")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    frames = [f for _, f in RecordingReader(args.recording).frames()]
    t0 = frames[0].time_ns + args.at * 1e9
    t1 = t0 + args.window * 1e9
    core = FusionCore("fusion", FusionConfig())
    c0 = time.process_time()
    for f in frames:
        if f.time_ns >= t0:
            break
        core.submit(f)
    window = [f for f in frames if t0 <= f.time_ns < t1]
    print(
        f"state of {args.at:g} s built in {time.process_time() - c0:.1f} CPU s; window "
        f"{len(window)} frames; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    blob, allowed = encode_checkpoint(core, Counter()), allowed_modules(core)
    variants = ((None, False), (0.005, False), (0.001, False), (0.001, True))
    for r in range(args.rounds):
        for switch_s, yield_ in variants:
            late, cpu = variant(blob, allowed, window, switch_s, yield_)
            ms = late * 1e3
            name = (
                "loop alone"
                if switch_s is None
                else (f"switch {switch_s * 1e3:.0f} ms" + (" + sleep(0)" if yield_ else ""))
            )
            print(
                f"round {r} {name:22s} tracker {cpu:4.1f} CPU s | loop late ms p50 "
                f"{np.percentile(ms, 50):.2f} p99 {np.percentile(ms, 99):.2f} p99.9 "
                f"{np.percentile(ms, 99.9):.1f} max {ms.max():.1f} (n {ms.size}) | load "
                f"{os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
