"""``tracklayer export FILE.mcap --czml OUT.czml``: a recording for Cesium and STK."""

from __future__ import annotations

import argparse
from pathlib import Path

from tracklayer.services.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a recording for other tools (CZML for Cesium and STK)",
        description=(
            "Write a recording's truth trajectories, tracks (time-tagged positions coloured "
            "by flight phase, available from first to last report), predicted impact points "
            "with their 1- and 3-sigma ellipses over time, launch-point estimates and the "
            "satellites as CZML, so that it opens in Cesium or STK with a time slider."
        ),
    )
    p.add_argument("recording", metavar="FILE.mcap", help="recording (simulate, track, demo)")
    p.add_argument(
        "--czml", required=True, metavar="OUT.czml", help="CZML file to write (overwritten)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tracklayer.services.evaluation.czml import write_czml

    src, out = Path(args.recording), Path(args.czml)
    if not src.is_file():
        raise UserError(f"{src}: no such recording")
    if out.is_dir():
        raise UserError(f"--czml: {out} is a directory")
    if not out.parent.is_dir():
        raise UserError(f"--czml: directory {out.parent} does not exist")
    n = write_czml(src, out)
    print(f"tracklayer export: {out} ({n} CZML packets)")
    return 0
