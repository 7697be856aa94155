"""``tracklayer simulate SCENARIO --out FILE.mcap [--seed N] [--duration S]``.

Simulates a built-in scenario (``tracklayer scenarios``) or a scenario file and records
it (:func:`tracklayer.services.offline.record_simulation`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tracklayer.services.cli.options import check_positive, check_seed
from tracklayer.services.cli.progress import ProgressLine
from tracklayer.services.errors import UserError

BAR_WIDTH = 30
PROGRESS_INTERVAL_S = 0.2  # wall seconds between two progress lines on a terminal


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a scenario and record it to MCAP",
        description=(
            "Simulate a scenario (a built-in name from `tracklayer scenarios`, or a TOML "
            "file) and write its sensor frames, truth and detection truth to an MCAP file."
        ),
    )
    p.add_argument("scenario", metavar="SCENARIO", help="built-in scenario name or .toml path")
    p.add_argument("--out", required=True, metavar="FILE.mcap", help="recording to write")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="random seed (default: the scenario's)")  # fmt: skip
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="simulated seconds (default: the scenario's duration_s)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tracklayer.sensors.scenario import ScenarioError, load_scenario
    from tracklayer.services.offline import record_simulation

    check_positive(args.duration, "--duration", " s")
    check_seed(args.seed)
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"{out}: --out is a directory")
    if not out.parent.is_dir():
        raise UserError(f"{out}: --out directory {out.parent} does not exist")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None
    bar = ProgressLine(
        f"simulate {scenario.name}", interval_s=PROGRESS_INTERVAL_S, bar_width=BAR_WIDTH
    )
    try:
        result = record_simulation(scenario, out, args.seed, args.duration, bar.seconds)
    finally:
        bar.close()
    print(result.summary())
    return 0
