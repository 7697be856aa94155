"""``tracklayer replay``: stream a recording's ``/sensor_frames`` into a running fusion service.

Frames go out in recorded (file = delivery) order, one stream per satellite as
live sensor nodes do, after the recording's sensors have been declared
(DESIGN §6 rule 2). Recorded bytes are sent as they are, so a recording with
bad frames replays them and the summary shows them REJECTED.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator

from google.protobuf.message import DecodeError

from tracklayer.fusion.domain import NS_PER_S
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


class RecordedFrames:
    """Iterates ``(log_time_ns, v1.SensorFrame)`` of a recording's ``/sensor_frames``.

    Keeps file order; selects by sensor and by log time relative to the first
    frame of the file (``[start_s, end_s]``). Frames that do not parse as a
    ``SensorFrame`` at all cannot be replayed (they carry no sensor id) and
    are counted in ``undecodable``.
    """

    def __init__(self, reader, sensors: set[str] | None, start_s: float, end_s: float | None):
        self.reader = reader
        self.sensors = sensors
        self.start_ns = int(round(start_s * NS_PER_S))
        self.end_ns = None if end_s is None else int(round(end_s * NS_PER_S))
        self.undecodable = 0

    def __iter__(self) -> Iterator[tuple[int, sensor_pb2.SensorFrame]]:
        from tracklayer.services.wire.recording import TOPIC_FRAMES

        first = None
        for _, log_time, data in self.reader.raw_messages([TOPIC_FRAMES]):
            if first is None:
                first = log_time
            rel = log_time - first
            if rel < self.start_ns or (self.end_ns is not None and rel > self.end_ns):
                continue
            try:
                msg = sensor_pb2.SensorFrame.FromString(data)
            except DecodeError:
                self.undecodable += 1
                continue
            if self.sensors is not None and msg.sensor_id not in self.sensors:
                continue
            yield log_time, msg


def run(args: argparse.Namespace) -> int:
    from tracklayer.services.cli.progress import ProgressLine
    from tracklayer.services.clients.frame_streamer import (
        FrameStreamer,
        StreamerError,
        StreamerOptions,
    )
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
    options = StreamerOptions(
        speed=None if args.max_speed else args.speed,
        window_s=args.window,
        connect_timeout_s=args.connect_timeout,
        reconnect_timeout_s=args.reconnect_timeout,
    )
    credentials = streamer_credentials(args, sensors)
    whole = args.satellites is None and args.start == 0 and args.end is None
    total = reader.message_count(TOPIC_FRAMES) if whole else None
    span = None if args.end is None else args.end - args.start
    bar = ProgressLine("replay", total_frames=total, total_s=span)
    streamer = FrameStreamer(args.fusion, options, progress=bar, credentials=credentials)
    try:
        result = asyncio.run(streamer.run(sensors, source))
    except StreamerError as exc:
        raise UserError(str(exc)) from None
    except RecordingError as exc:
        raise UserError(str(exc)) from None
    finally:
        bar.close()
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
