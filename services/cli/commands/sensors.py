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
import asyncio
from collections.abc import Iterator

from tracklayer.services.cli.options import (
    add_connection_arguments,
    add_stream_target_arguments,
    check_positive,
    check_stream_arguments,
    parse_satellites,
    streamer_credentials,
)
from tracklayer.services.errors import UserError
from tracklayer.v1 import sensor_pb2


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


def simulated_frames(
    scenario, seed: int | None, duration_s: float | None, satellites: set[str] | None
) -> Iterator[tuple[int, sensor_pb2.SensorFrame]]:
    """``(delivery log time ns, v1.SensorFrame)`` of the hosted satellites, in delivery order."""
    from tracklayer.fusion.domain import SensorFrame
    from tracklayer.sensors.simulation import simulate
    from tracklayer.services.wire.convert import frame_to_proto

    for log_time, item in simulate(scenario, seed=seed, duration_s=duration_s):
        if isinstance(item, SensorFrame) and (satellites is None or item.sensor_id in satellites):
            yield log_time, frame_to_proto(item)


def run(args: argparse.Namespace) -> int:
    from tracklayer.sensors.scenario import ScenarioError, load_scenario
    from tracklayer.services.cli.progress import ProgressLine
    from tracklayer.services.clients.frame_streamer import (
        FrameStreamer,
        StreamerError,
        StreamerOptions,
    )

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
    options = StreamerOptions(
        speed=None if args.max_speed else args.speed,
        connect_timeout_s=args.connect_timeout,
        reconnect_timeout_s=args.reconnect_timeout,
    )
    credentials = streamer_credentials(args, sensors)
    bar = ProgressLine(f"sensors {scenario.name}", total_s=duration)
    streamer = FrameStreamer(
        args.fusion, options, progress=bar, credentials=credentials, origin_ns=scenario.epoch_ns
    )
    try:
        result = asyncio.run(streamer.run(sensors, source))
    except (StreamerError, ScenarioError) as exc:
        raise UserError(str(exc)) from None
    finally:
        bar.close()
    print(f"sensors: {result.summary()}", flush=True)
    return 0
