"""Benchmark: the live services (issue 5 speed goals; issue 13 item 6 at raid scale) on loopback.

1. ingest ceiling: the fusion service in this process with a tracker that does
   nothing, so only gRPC, conversion, validation, ordering, the journal's group
   commit and the acks are measured; 4 streams x 50 frames per request x 10
   detections, and 1 stream x 1 frame per request.
2. live run (``live_run.py``): ``tracklayer consumer`` and ``tracklayer fusion``
   (real tracker) as processes; the scenario, simulated once into an MCAP file
   (``tracklayer simulate``, cached in ``--cache DIR``), is streamed into them by
   the client of ``tracklayer sensors`` / ``replay``, one stream per satellite,
   paced at ``--speed`` x the scenario clock (delivery order and times as
   simulated), from ``--clients`` processes. Measured:
   - ack latency: frame sent -> its FrameAck back (journaled, applied as far
     as the watermark allows, reports handed on); the ordering delay of the
     frame itself is not in it;
   - delivery latency: report emitted (``emitted_at``, right after the journal
     commit of the frame that released it) -> stored by the store
     (``stored_at_ns``, read from the store's file after the run);
   - every second: RSS and CPU of fusion, consumer and client(s), the fusion's
     backlog gauges (``frames_pending``, ``frames_buffered``, ``outbox_depth``)
     and the load average; reported per ``--bucket`` seconds of the run, with the
     RSS slope, so a growing backlog or memory shows as a trend;
   - how far the client's releases fell behind the pace (a client too slow).

Usage::

    .venv/bin/python benchmarks/bench_services.py [--scenario salvo] [--duration 600]
        [--speed 4] [--clients 1] [--cache DIR] [--bucket 60] [--no-ingest]
        [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import live_run
import numpy as np
from common import machine


# ----------------------------------------------------------------------------- ingest
async def ingest(n_streams: int, per_stream: int, batch: int, dets: int) -> tuple[float, float]:
    """(frames/s, detections/s) into an in-process service with a null tracker."""
    import grpc

    from tracklayer.services.fusion_service.servicer import start_fusion_server
    from tracklayer.services.fusion_service.settings import FusionSettings
    from tracklayer.v1 import fusion_service_pb2 as fs
    from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
    from tracklayer.v1 import sensor_pb2

    class NullTracker:
        def __init__(self, fusion_id, config):
            pass

        def process(self, frame):
            return []

        def flush(self):
            return []

        def live_reports(self):
            return []

    def frame(sensor: str, seq: int) -> sensor_pb2.SensorFrame:
        f = sensor_pb2.SensorFrame(sensor_id=sensor, sequence=seq)
        f.time.seconds = 1_767_225_600 + seq // 10
        f.time.nanos = (seq % 10) * 100_000_000
        f.sensor_position_eci.x = 7.0e6
        f.sensor_velocity_eci.y = 7.5e3
        for _ in range(dets):
            d = f.detections.add(angular_sigma=2e-5, intensity=1.0)
            d.line_of_sight_eci.x, d.line_of_sight_eci.y = 0.6, 0.8
        return f

    tmp = Path(tempfile.mkdtemp())
    settings = FusionSettings(
        fusion_id="bench",
        journal_path=tmp / "j.sqlite",
        outbox_path=tmp / "o.sqlite",
        idle_timeout_s=0.0,
        tracker_factory=NullTracker,
    )
    server = await start_fusion_server(settings)
    reqs = {
        s: [
            fs.StreamFramesRequest(
                sensor_id=f"s{s}", frames=[frame(f"s{s}", i) for i in range(k, k + batch)]
            )
            for k in range(0, per_stream, batch)
        ]
        for s in range(n_streams)
    }
    async with grpc.aio.insecure_channel(server.address) as ch:
        stub = fs_grpc.FusionServiceStub(ch)

        async def one(s: int) -> int:
            return sum([len(r.acks) async for r in stub.StreamFrames(iter(reqs[s]))])

        t = time.perf_counter()
        total = sum(await asyncio.gather(*(one(s) for s in range(n_streams))))
        wall = time.perf_counter() - t
    await server.stop(0.5)
    return total / wall, total * dets / wall


# ----------------------------------------------------------------------------- report
def pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if a.size else float("nan")


def db_busy(smp: dict, s: np.ndarray, span: float) -> float:
    """Share (%) of the bucket's wall time the fusion's database thread ran calls
    (journal commits, outbox, checkpoints, trims: fsyncs included)."""
    b = smp["db_busy_ms_total"][s]
    if span <= 0 or not np.isfinite(b).any():
        return float("nan")
    return 100.0 * (np.nanmax(b) - np.nanmin(b)) / 1e3 / span


def bucket_rows(live: dict, deliver_at: np.ndarray, deliver: np.ndarray, bucket_s: float) -> list:
    """One markdown row per ``bucket_s`` of the run (from the paced start)."""
    smp = live["samples"]
    t0 = live["start_at"]
    t = smp["t"] - t0
    ack_t = live["ack_at"] - t0
    rows = []
    end = max(t.max(initial=0.0), ack_t.max(initial=0.0))
    names = sorted(k[4:] for k in smp if k.startswith("cpu_") and k[4:].startswith("client"))
    for lo in np.arange(0.0, end, bucket_s):
        hi = lo + bucket_s
        a = live["ack_s"][(ack_t >= lo) & (ack_t < hi)]
        d = deliver[(deliver_at - t0 >= lo) & (deliver_at - t0 < hi)]
        s = (t >= lo) & (t < hi)
        if s.sum() < 2:
            continue
        span = t[s][-1] - t[s][0]

        def share(name: str, s=s, span=span) -> float:
            c = smp[f"cpu_{name}"][s]
            return 100.0 * (np.nanmax(c) - np.nanmin(c)) / span if span > 0 else float("nan")

        client = sum(share(n) for n in names)
        cells = [
            f"{lo:.0f}-{min(hi, end):.0f}",
            f"{a.size}",
            f"{pct(a, 50) * 1e3:.1f}",
            f"{pct(a, 99) * 1e3:.1f}",
            f"{d.size}",
            f"{pct(d, 99) * 1e3:.1f}",
            f"{share('fusion'):.0f}",
            f"{db_busy(smp, s, span):.0f}",
            f"{share('consumer'):.0f}",
            f"{client:.0f}",
            f"{np.nanmean(smp['rss_fusion'][s]):.0f}",
            f"{np.nanmax(smp['frames_pending'][s]):.0f}",
            f"{np.nanmax(smp['frames_buffered'][s]):.0f}",
            f"{np.nanmax(smp['frames_untracked'][s]):.0f}",
            f"{np.nanmax(smp['tracker_behind_ms'][s]) / 1e3:.1f}",
            f"{np.nanmax(smp['outbox_depth'][s]):.0f}",
            f"{np.nanmean(smp['load'][s]):.1f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def behind_text(smp: dict) -> str:
    """How far the tracker fell behind the journal (``tracker_behind_ms``, stop 20; ""
    for a service without the gauge)."""
    behind = smp.get("tracker_behind_ms")
    if behind is None or not np.isfinite(behind).any():
        return ""
    return f", {np.nanmax(behind) / 1e3:.1f} s of input at most"


def tracking_text(live: dict, total: dict, wall: float) -> str:
    """The fusion's tracking process (stop 22), counted in the fusion's figures: its own
    share of them, and the engine process's CPU s per 1,000 acknowledged frames, over
    the run and while the frames streamed (up to the last ack: what the acks compete
    for; stop 23) ("" when the fusion tracks in process)."""
    smp = live["samples"]
    rss = smp.get("rss_tracking")
    if rss is None or not np.isfinite(rss).any():
        return ""
    cpu = total.get("tracking", float("nan"))
    engine = smp["cpu_fusion"] - smp["cpu_tracking"]
    streaming = engine[(smp["t"] - live["start_at"] <= wall) & np.isfinite(engine)]
    per_k = 1000.0 / max(live["frames"], 1)
    eng_stream = float(np.max(streaming) - np.nanmin(engine)) if streaming.size else float("nan")
    return (
        f"; of which the tracking process {100 * cpu / wall:.0f}% of a core "
        f"({cpu:.0f} CPU s), the engine process {100 * (total['fusion'] - cpu) / wall:.0f}%; "
        f"tracking process RSS max {np.nanmax(rss):.0f} MB (counted in the fusion's RSS); "
        f"engine process CPU s per 1,000 frames: {(total['fusion'] - cpu) * per_k:.3f} over "
        f"the run, {eng_stream * per_k:.3f} up to the last ack; tracking process "
        f"{cpu * per_k:.3f}"
    )


def rss_trend(live: dict) -> str:
    """Fusion RSS: first vs last minute and the slope after the first minute (MB/min)."""
    smp = live["samples"]
    t = smp["t"] - live["start_at"]
    rss = smp["rss_fusion"]
    ok = np.isfinite(rss) & (t >= 0)
    t, rss = t[ok], rss[ok]
    if rss.size < 10:
        return "Fusion RSS: too few samples."
    first = rss[t < 60].mean()
    last = rss[t >= t.max() - 60].mean()
    late = t >= min(60.0, t.max() / 2)
    slope = np.polyfit(t[late] / 60.0, rss[late], 1)[0] if late.sum() > 2 else float("nan")
    return (
        f"Fusion RSS: first minute {first:.0f} MB, last minute {last:.0f} MB, max "
        f"{rss.max():.0f} MB; slope after the first minute {slope:+.1f} MB/min "
        f"({rss.size} samples, 1 s apart)."
    )


def live_section(args, rec, live: dict, deliver: np.ndarray, deliver_at: np.ndarray) -> list:
    ack = live["ack_s"]
    smp = live["samples"]
    sim = (
        f"recording reused from `{rec.path.name}`"
        if rec.cached
        else f"simulated into `{rec.path.name}` by `tracklayer simulate` in {rec.sim_wall_s:.0f} s "
        f"wall, {rec.sim_cpu_s:.0f} CPU s, peak RSS {rec.sim_peak_mb:.0f} MB"
    )
    wall = live["wall_s"]
    cpu = {k[4:]: v for k, v in smp.items() if k.startswith("cpu_")}
    total = {k: float(np.nanmax(v) - np.nanmin(v)) for k, v in cpu.items()}
    clients = sum(v for k, v in total.items() if k.startswith("client"))
    counts = ", ".join(f"{k} {v}" for k, v in live["counts"].items() if v)
    return [
        f"Live: {args.scenario}, {args.duration:g} s of scenario at {args.speed:g}x ({sim}); "
        f"{live['frames']} frames, {live['sensors']} streams from {args.clients} client "
        f"process(es) (the `tracklayer sensors`/`replay` client) into `tracklayer fusion` "
        f"(real tracker) + `tracklayer consumer`, separate processes; streamed in {wall:.1f} s; "
        f"acks: {counts}; client releases at most {live['max_behind_s'] * 1e3:.0f} ms behind "
        f"the pace; {live['reconnects']} reconnects.",
        "",
        "| latency | n | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        f"| frame sent -> ack (journaled, ordered) | {ack.size} | {pct(ack, 50) * 1e3:.1f} | "
        f"{pct(ack, 99) * 1e3:.1f} | {ack.max(initial=0) * 1e3:.1f} |",
        f"| report emitted -> stored | {deliver.size} | {pct(deliver, 50) * 1e3:.1f} | "
        f"{pct(deliver, 99) * 1e3:.1f} | {deliver.max(initial=0) * 1e3:.1f} |",
        "",
        f"CPU over the run (share of one core, sampled): fusion "
        f"{100 * total['fusion'] / wall:.0f}%, consumer {100 * total['consumer'] / wall:.0f}%, "
        f"client(s) {100 * clients / wall:.0f}%. Fusion CPU demand: {total['fusion']:.0f} CPU s "
        f"(forked checkpoint encoders included) for {args.duration:g} s of scenario = "
        f"{total['fusion'] * args.speed / args.duration:.2f} of a core at {args.speed:g}x"
        f"{tracking_text(live, total, wall)}.",
        f"Backlog: the last frame was acknowledged {wall - args.duration / args.speed:.1f} s "
        "after its paced release time would end the run (0 = kept up); everything was "
        f"tracked and stored {live['drain_s']:.1f} s after the last ack; frames pending "
        f"at most {np.nanmax(smp['frames_pending']):.0f}; frames acknowledged and waiting for "
        f"the tracker at most {np.nanmax(smp['frames_untracked']):.0f}"
        f"{behind_text(smp)}.",
        rss_trend(live),
        "",
        f"Over time ({args.bucket:g} s buckets from the paced start; CPU in % of one core; "
        "pending = frames admitted, not yet applied and acknowledged (the backlog); "
        "buffered = held by the ordering watermark; untracked = acknowledged (journaled), "
        "waiting for the tracker; behind = input seconds the tracker is behind the journal; "
        "outbox = reports not yet stored):",
        "",
        "| s | acks | ack p50 ms | ack p99 ms | stored | store p99 ms | fusion CPU % | "
        "fusion db thread busy % | consumer CPU % | client CPU % | fusion RSS MB | "
        "pending max | buffered max | untracked max | behind max s | outbox max | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *bucket_rows(live, deliver_at, deliver, args.bucket),
    ]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        live_run.client_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="salvo")
    ap.add_argument("--duration", type=float, default=600.0, help="scenario seconds")
    ap.add_argument("--speed", type=float, default=4.0, help="scenario seconds per wall second")
    ap.add_argument("--seed", type=int, default=None, help="scenario seed (default: its own)")
    ap.add_argument("--clients", type=int, default=1, help="client processes (satellites split)")
    ap.add_argument("--cache", type=Path, help="keep/reuse the simulated MCAP in this folder")
    ap.add_argument("--bucket", type=float, default=60.0, help="seconds per row over time")
    ap.add_argument("--keep", type=Path, help="keep the services' files and logs here")
    ap.add_argument("--no-ingest", action="store_true", help="skip the ingest ceiling")
    ap.add_argument(
        "--fusion-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more `tracklayer fusion` argument (repeat: --fusion-arg=--checkpoint-every=0)",
    )
    ap.add_argument("--append", type=Path, help="append the results to this markdown file")
    args = ap.parse_args()
    if args.clients < 1:
        ap.error("--clients: must be >= 1")

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load0 = os.getloadavg()
    lines = [f"### bench_services: {args.scenario} at {args.speed:g}x — {now}", ""]
    ingest_lines = []
    if not args.no_ingest:
        batched = asyncio.run(ingest(4, 3000, 50, 10))
        single = asyncio.run(ingest(1, 3000, 1, 10))
        ingest_lines = [
            "Ingest ceiling (service in-process, null tracker: gRPC + convert + validate + order"
            " + journal group commit + acks):",
            "",
            "| streams x frames/request x detections | frames/s | detections/s |",
            "|---|---:|---:|",
            f"| 4 x 50 x 10 | {batched[0]:,.0f} | {batched[1]:,.0f} |",
            f"| 1 x 1 x 10 | {single[0]:,.0f} | {single[1]:,.0f} |",
            "",
        ]

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) if args.keep is None else args.keep
        tmp.mkdir(parents=True, exist_ok=True)
        rec = live_run.recording(args.scenario, args.duration, args.cache or tmp, args.seed)
        t_stream = time.perf_counter()
        store, store_addr = live_run.start(
            ["consumer", "--listen", "127.0.0.1:0", "--db", "t.sqlite"], tmp
        )
        fusion, fusion_addr = live_run.start(
            ["fusion", "--listen", "127.0.0.1:0", "--store", store_addr, "--idle-timeout", "0"]
            + args.fusion_arg,
            tmp,
        )
        pids = {"fusion": fusion.pid, "consumer": store.pid}
        live = asyncio.run(
            live_run.run_live(rec.path, fusion_addr, pids, args.speed, args.clients, tmp)
        )
        time.sleep(1.0)  # run_live waited for the drain; the store's last commit
        for p in (fusion, store):
            p.terminate()
            p.wait(60)
        stream_wall = time.perf_counter() - t_stream
        deliver, deliver_at = live_run.delivery(tmp / "t.sqlite")
    load1 = os.getloadavg()
    lines += [
        f"Machine: {machine()}; load average (1/5/15 min) at start "
        f"{load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f}, at end "
        f"{load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f}. `benchmarks/bench_services.py "
        + " ".join(sys.argv[1:])
        + f"` (live part {stream_wall:.0f} s wall).",
        "",
        *ingest_lines,
        *live_section(args, rec, live, deliver, deliver_at),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
