"""``tracklayer replay``: stream a recording's ``/sensor_frames`` into a running fusion service.

Frames go out in recorded (file = delivery) order, one stream per satellite as
live sensor nodes do, after the recording's sensors have been declared
(DESIGN §6 rule 2). Recorded bytes are sent as they are, so a recording with
bad frames replays them and the summary shows them REJECTED.
"""

from __future__ import annotations

import argparse
import sys

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
        "replay",
        help="stream a recording's /sensor_frames into a running fusion service",
        description=(
            "Stream the /sensor_frames of an MCAP recording into a running fusion service "
            "(tracklayer.v1.FusionService), one stream per satellite, in recorded order, "
            "honouring the recorded log-time spacing divided by --speed. The recording's "
            "sensors are declared first; every frame is kept until acknowledged and resent "
            "after a reconnect. Ends with a summary of acknowledgements by status."
        ),
    )
    p.add_argument("file", metavar="FILE.mcap", help="recording from simulate or fusion --record")
    add_stream_target_arguments(
        p,
        speed_help="log-time seconds per wall-clock second (default: %(default)s)",
        max_speed_help=(
            "no pacing: as fast as the service acknowledges, streams on a shared virtual clock"
        ),
    )
    p.add_argument(
        "--satellites",
        metavar="ID,...",
        help="replay only these sensors (comma-separated; default: all)",
    )
    p.add_argument(
        "--start",
        type=float,
        default=0.0,
        metavar="S",
        help="skip frames logged earlier than S seconds after the first frame (default: 0)",
    )
    p.add_argument(
        "--end",
        type=float,
        default=None,
        metavar="S",
        help="stop at frames logged later than S seconds after the first frame (default: all)",
    )
    p.add_argument(
        "--window",
        type=float,
        default=30.0,
        metavar="S",
        help=(
            "log-time seconds a stream may run ahead of the slowest unacknowledged frame "
            "(default: %(default)s)"
        ),
    )
    add_connection_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tracklayer.services.clients.sources import RecordedFrames
    from tracklayer.services.wire.recording import (
        TOPIC_FRAMES,
        RecordingError,
        RecordingReader,
        require_topic,
    )

    check_stream_arguments(args)
    if args.start < 0:
        raise UserError(f"--start: must be >= 0 s, got {args.start:g}")
    if args.end is not None and args.end <= args.start:
        raise UserError(f"--end: must be after --start ({args.start:g} s), got {args.end:g}")
    check_positive(args.window, "--window", " s")

    try:
        reader = RecordingReader(args.file)
        require_topic(reader, TOPIC_FRAMES)
        known = [s for s in reader.sensor_ids() if s]
    except RecordingError as exc:
        raise UserError(str(exc)) from None
    if reader.truncated:
        print(
            f"tracklayer replay: warning: {args.file} is truncated (no MCAP footer); "
            "replaying its readable part",
            file=sys.stderr,
        )
    sensors = parse_satellites(args.satellites, known)
    source = RecordedFrames(reader, set(sensors) if args.satellites else None, args.start, args.end)
    whole = args.satellites is None and args.start == 0 and args.end is None
    total = reader.message_count(TOPIC_FRAMES) if whole else None
    span = None if args.end is None else args.end - args.start
    bar = ProgressLine("replay", total_frames=total, total_s=span)
    result = stream_from_args(
        args, sensors, source, bar, window_s=args.window, errors=(RecordingError,)
    )
    if reader.truncated:
        print(
            f"tracklayer replay: warning: {args.file} ends in a truncated chunk; replayed the "
            f"{result.frames} frames before it",
            file=sys.stderr,
        )
    if source.undecodable:
        print(
            f"tracklayer replay: warning: {source.undecodable} /sensor_frames messages are not "
            "SensorFrames and were skipped",
            file=sys.stderr,
        )
    if result.frames == 0:
        raise UserError(f"{args.file}: no /sensor_frames in the selected sensors and time range")
    print(f"replay: {result.summary()}", flush=True)
    return 0
