"""``tracklayer track IN.mcap --out OUT.mcap [--id NAME] [--config FILE.toml]``.

Tracks a recording offline (:func:`tracklayer.services.offline.track_recording`): the
fusion core over ``/sensor_frames`` in recorded order, OUT = IN's topics plus ``/tracks``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracklayer.services.cli.options import add_config_argument, config_from_args
from tracklayer.services.cli.progress import ProgressLine

PROGRESS_INTERVAL_S = 0.5  # wall seconds between two progress lines on a terminal


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "track",
        help="track a recording offline and write its track reports",
        description=(
            "Run the fusion core over IN's /sensor_frames in recorded (delivery) order "
            "and write OUT: IN's topics plus /tracks. Deterministic: the same input and "
            "settings give byte-identical /tracks."
        ),
    )
    p.add_argument("input", metavar="IN.mcap", help="recording with /sensor_frames")
    p.add_argument("--out", required=True, metavar="OUT.mcap", help="recording to write")
    p.add_argument(
        "--id",
        default="fusion",
        metavar="NAME",
        help="fusion identity: track ids are NAME-<n> (default: fusion, as the service)",
    )
    add_config_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tracklayer.services.offline import track_recording

    config = config_from_args(args)
    line = ProgressLine("track", interval_s=PROGRESS_INTERVAL_S)

    def progress(total_frames: int | None):
        line.total_frames = total_frames or None
        return line.tracked

    try:
        result = track_recording(
            Path(args.input), Path(args.out), args.id, config, progress, gc_freeze=True
        )
    finally:
        line.close()
    for warning in result.warnings():
        print(f"tracklayer track: warning: {warning}", file=sys.stderr)
    print(result.summary())
    return 0
