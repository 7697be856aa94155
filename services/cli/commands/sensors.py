"""``tracklayer sensors``: simulated satellites streaming live into a fusion service.

The scenario is simulated as it streams (in a worker thread); each frame is
released at its simulated delivery time on the scenario clock divided by
``--speed`` (scenario epoch = start of streaming), so the scenario's latency,
drops and outages reach the service as they would live. One stream per
satellite; the satellites are declared first (DESIGN §6 rule 2); every frame
is kept until acknowledged and resent after a reconnect. ``--satellites``
hosts only some satellites, so a constellation can be spread over processes.
"""

from __future__ import annotations

import argparse

from tracklayer.services.cli.options import check_positive
from tracklayer.services.cli.progress import ProgressLine
from tracklayer.services.cli.streaming import (
    add_connection_arguments,
    add_stream_target_arguments,
    check_stream_arguments,
    parse_satellites,
    stream_from_args,
)
from tracklayer.services.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sensors",
        help="run simulated satellites streaming frames live into a fusion service",
        description=(
            "Simulate SCENARIO's satellites and stream their frames live into a running "
            "fusion service (tracklayer.v1.FusionService), one stream per satellite, paced "
            "by the scenario clock times --speed, with the scenario's latency, drops and "
            "outages. Declares its satellites first, keeps every frame until acknowledged, "
            "resends after a reconnect, and exits 0 once every frame is acknowledged."
        ),
    )
    p.add_argument("scenario", metavar="SCENARIO", help="built-in scenario name or a .toml file")
    add_stream_target_arguments(
        p,
        speed_help="scenario seconds per wall-clock second (default: %(default)s)",
        max_speed_help="no pacing: as fast as simulated and acknowledged (shared virtual clock)",
    )
    p.add_argument(
        "--satellites",
        metavar="ID,...",
        help="host only these satellites (comma-separated; default: all of the scenario)",
    )
    p.add_argument("--seed", type=int, default=None, metavar="N", help="override the seed")
    p.add_argument(
        "--duration", type=float, default=None, metavar="S", help="override duration_s (s)"
    )
    add_connection_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tracklayer.sensors.scenario import ScenarioError, load_scenario
    from tracklayer.services.clients.sources import simulated_frames

    check_stream_arguments(args)
    check_positive(args.duration, "--duration", " s")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None
    sensors = parse_satellites(args.satellites, scenario.sensor_ids())
    duration = scenario.duration_s if args.duration is None else args.duration
    source = simulated_frames(
        scenario, args.seed, args.duration, set(sensors) if args.satellites else None
    )
    bar = ProgressLine(f"sensors {scenario.name}", total_s=duration)
    result = stream_from_args(
        args, sensors, source, bar, origin_ns=scenario.epoch_ns, errors=(ScenarioError,)
    )
    print(f"sensors: {result.summary()}", flush=True)
    return 0
