"""``tracklayer layout``: shard cut longitudes balanced by a measured load (issue 14)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tracklayer.services.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "layout",
        help="cut longitudes for `fusion --nats --shards S --layout` from a tracks recording",
        description=(
            "Read the track reports of a recording (`tracklayer track` output, or a "
            "`fusion --record` file) and print S cut longitudes that split them into S "
            "contiguous longitude wedges of nearly equal load (reports at each wedge's "
            "sub-points), as the --layout flag of `tracklayer fusion --nats`, with each "
            "wedge's share. Deterministic: the same reports give the same cuts "
            "(docs/scaleout.md)."
        ),
    )
    p.add_argument("tracks", metavar="TRACKS.mcap", help="recording with a /tracks topic")
    p.add_argument("--shards", type=int, required=True, metavar="S", help="shards (2..12)")
    p.add_argument(
        "--resolution",
        type=float,
        default=0.1,
        metavar="DEG",
        help="longitude bins of the load (default: %(default)s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from tracklayer.fusion.cells import MAX_SHARDS, ShardMap, balanced_cuts, sub_point_lon_deg
    from tracklayer.fusion.domain import NS_PER_S
    from tracklayer.services.wire.recording import RecordingReader

    if not 2 <= args.shards <= MAX_SHARDS:
        raise UserError(f"--shards: must be 2..{MAX_SHARDS}, got {args.shards}")
    if not 0.001 <= args.resolution <= 30.0:
        raise UserError(f"--resolution: must be 0.001..30 degrees, got {args.resolution}")
    if not Path(args.tracks).is_file():
        raise UserError(f"{args.tracks}: no such file")
    pos, t_s = [], []
    for _, r in RecordingReader(Path(args.tracks)).tracks():
        pos.append(r.position[:3])
        t_s.append(r.time_ns / NS_PER_S)
    if not pos:
        raise UserError(f"{args.tracks}: no track reports (/tracks) to measure the load from")
    lon = sub_point_lon_deg(np.array(pos), np.array(t_s))
    try:
        cuts = balanced_cuts(lon, None, args.shards, args.resolution)
    except ValueError as exc:
        raise UserError(f"{args.tracks}: {exc}") from None
    share = np.bincount(ShardMap(args.shards, cuts).shard_of(np.zeros(lon.size), lon),
                        minlength=args.shards) / lon.size  # fmt: skip
    for k, (c, f) in enumerate(zip(cuts, share, strict=True)):
        print(f"shard {k}: from {c:g} deg east, {f:.1%} of {lon.size:,} reports")
    print(f"--layout={','.join(repr(c) for c in cuts)}")
    return 0
