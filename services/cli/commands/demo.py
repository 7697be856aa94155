"""``tracklayer demo [SCENARIO] [--speed X] [--out DIR]``: the live system, then its evaluation."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from tracklayer.fusion.cells import MAX_SHARDS
from tracklayer.services.cli.options import check_positive, check_seed
from tracklayer.services.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run store, fusion and sensors live on this machine, then evaluate (make demo)",
        description=(
            "Start the track store, the fusion service and the simulated satellites as "
            "separate processes on free loopback ports, show the tracks live, then stop "
            "them, record the stored track reports beside the simulated truth "
            "(DIR/demo.mcap) and print the evaluation (GOSPA, RMSE, impact error) with "
            "the paths of its plots (DIR/report/). Ctrl-C stops every process."
        ),
    )
    p.add_argument(
        "scenario",
        nargs="?",
        default="single-icbm",
        metavar="SCENARIO",
        help="built-in scenario name or a .toml file (default: %(default)s)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        metavar="X",
        help="scenario seconds per wall second (default: the scenario's duration / 100 s, "
        "so the demo takes about two minutes)",
    )
    p.add_argument(
        "--out",
        default="demo-out",
        metavar="DIR",
        help="directory for the databases, logs, recording and report (default: %(default)s)",
    )
    p.add_argument(
        "--duration", type=float, default=None, metavar="S", help="override duration_s (s)"
    )
    p.add_argument("--seed", type=int, default=None, metavar="N", help="override the seed")
    p.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds each process gets to stop on SIGTERM before SIGKILL (default: %(default)s)",
    )
    p.add_argument("--no-plots", action="store_true", help="evaluate without writing plots")
    p.add_argument(
        "--http",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="where the track store serves the live map (printed at the start; "
        "default: %(default)s, a free loopback port)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="W",
        help="run the scale-out chain (docs/scaleout.md): a local broker, the front door "
        "(fusion --nats) and W workers (default: 0, the embedded fusion service)",
    )
    p.add_argument(
        "--shards",
        type=int,
        default=1,
        metavar="S",
        help="with --workers: shards of the front door (default: %(default)s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tracklayer.services.live_map.address import parse_http_address
    from tracklayer.services.ops.demo import Demo, DemoOptions

    parse_http_address(args.http)

    check_positive(args.speed, "--speed", finite=True)
    check_positive(args.duration, "--duration", " s", finite=True)
    check_seed(args.seed)
    if not (math.isfinite(args.grace) and args.grace >= 0):
        raise UserError(f"--grace: must be >= 0 s, got {args.grace:g}")
    if args.workers < 0:
        raise UserError(f"--workers: must be >= 0, got {args.workers}")
    if args.shards != 1 and not args.workers:
        raise UserError("--shards: only with --workers (the scale-out chain)")
    if not 1 <= args.shards <= MAX_SHARDS:
        raise UserError(f"--shards: must be 1..{MAX_SHARDS} (docs/scaleout.md), got {args.shards}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} exists and is not a directory")
    options = DemoOptions(
        scenario=args.scenario,
        speed=args.speed,
        out_dir=out,
        duration_s=args.duration,
        seed=args.seed,
        grace_s=args.grace,
        plots=not args.no_plots,
        http=args.http,
        workers=args.workers,
        shards=args.shards,
    )
    return Demo(options).run()
