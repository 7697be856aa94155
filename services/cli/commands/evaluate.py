"""``tracklayer evaluate FILE.mcap [--report DIR] [--baseline FILE.json]``.

Arguments only: the work is :func:`tracklayer.services.evaluation.evaluate_recording`
(read the recording, DESIGN §7 metrics, table, metrics.json, plots, baselines).
Without truth (a live ``--record`` recording) only track statistics are computed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``tracklayer evaluate`` and its flags."""
    p = subparsers.add_parser(
        "evaluate",
        help="measure the tracks of a recording against its truth; metrics.json and plots",
        description=(
            "Evaluate the /tracks of a recording (from tracklayer track or a live --record) "
            "against its /truth and /detection_truth (DESIGN §7: GOSPA, RMSE per phase, NEES, "
            "completeness, false tracks, ID switches, impact and launch points). Prints a "
            "table, writes DIR/metrics.json and PNG plots. Without truth: track statistics "
            "only. Exit status: 0 ok, 1 worse than --baseline beyond tolerance, 2 bad input."
        ),
    )
    p.add_argument("input", metavar="FILE.mcap", help="recording with /tracks")
    p.add_argument(
        "--report",
        metavar="DIR",
        help="directory for metrics.json and the plots (default: FILE-report/ beside FILE)",
    )
    p.add_argument(
        "--baseline",
        metavar="FILE.json",
        help="compare with this baseline's figures; exit 1 if one is worse beyond tolerance",
    )
    p.add_argument(
        "--save-baseline",
        metavar="FILE.json",
        help="write this run's main figures with default tolerances as a new baseline",
    )
    p.add_argument(
        "--truth",
        metavar="SIM.mcap",
        help="take /truth and /detection_truth from this recording (e.g. the simulation a "
        "live --record session was replayed from) instead of FILE",
    )
    p.add_argument("--no-plots", action="store_true", help="write metrics.json only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate ``args.input``; the exit status (0, or 1 when worse than the baseline)."""
    # imported here: every other command (tracklayer track above all) skips its import
    from tracklayer.services.evaluation import evaluate_recording

    return evaluate_recording(
        Path(args.input),
        report_dir=Path(args.report) if args.report else None,
        truth_path=Path(args.truth) if args.truth else None,
        baseline=args.baseline,
        save_baseline=args.save_baseline,
        plots=not args.no_plots,
    ).exit_code
