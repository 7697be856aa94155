"""``tracklayer evaluate FILE.mcap [--report DIR] [--baseline FILE.json]``.

Reads ``/tracks``, ``/truth``, ``/sensor_frames`` and ``/detection_truth`` of a recording
in one streaming pass, computes the DESIGN §7 metrics (:mod:`tracklayer.fusion.evaluation`),
prints a table, writes ``DIR/metrics.json`` and PNG plots
(:mod:`tracklayer.services.evaluation.plots`) and optionally compares figures with a
baseline (:mod:`tracklayer.services.evaluation.baseline`).
Without truth (a live ``--record`` recording) only track statistics are computed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from tracklayer.fusion.evaluation import EvaluationResult, MetricsAccumulator
from tracklayer.services.errors import UserError
from tracklayer.services.evaluation.baseline import (
    BaselineError,
    compare,
    load_baseline,
    make_baseline,
)
from tracklayer.services.wire.recording import (
    TOPIC_DETECTION_TRUTH,
    TOPIC_FRAMES,
    TOPIC_TRACKS,
    TOPIC_TRUTH,
    RecordingError,
    RecordingReader,
)

EXIT_WORSE = 1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
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


def _open(path: Path) -> RecordingReader:
    reader = RecordingReader(path)
    if reader.truncated:
        raise UserError(
            f"{path}: truncated recording (no MCAP footer: the writer was killed); "
            "evaluate needs a complete file"
        )
    return reader


def _feed(acc: MetricsAccumulator, reader: RecordingReader, topics: list[str]) -> None:
    for topic, _log_ns, obj in reader.messages(topics):
        if topic == TOPIC_TRACKS:
            acc.add_report(obj)
        elif topic == TOPIC_TRUTH:
            acc.add_truth(obj)
        elif topic == TOPIC_FRAMES:
            acc.add_frame(obj)
        else:
            acc.add_detection_truth(obj)
    if reader.truncated:
        raise UserError(f"{reader.path}: truncated recording (cut inside its data)")


def read_recording(
    path: Path, truth_path: Path | None = None
) -> tuple[EvaluationResult, dict[str, str]]:
    """Stream a recording into the metrics; truth (``/truth``, ``/detection_truth`` with its
    ``/sensor_frames``) from ``truth_path`` when given, else from the same file. Returns the
    result and the metadata of ``path``; raises UserError for unusable files."""
    try:
        reader = _open(path)
        if not reader.has_topic(TOPIC_TRACKS):
            raise UserError(f"{path}: no /tracks in this recording: run tracklayer track first")
        truth_reader = reader if truth_path is None else _open(truth_path)
        if truth_path is not None and not truth_reader.has_topic(TOPIC_TRUTH):
            raise UserError(f"{truth_path}: no /truth in this recording")
        truth_topics = [TOPIC_TRUTH]
        if truth_reader.has_topic(TOPIC_DETECTION_TRUTH):
            truth_topics += [TOPIC_FRAMES, TOPIC_DETECTION_TRUTH]
        acc = MetricsAccumulator()
        if truth_path is None:
            _feed(acc, reader, [TOPIC_TRACKS, *truth_topics])
        else:
            _feed(acc, reader, [TOPIC_TRACKS])
            _feed(acc, truth_reader, truth_topics)
        return acc.finish(), reader.metadata
    except RecordingError as exc:
        raise UserError(str(exc)) from None


# ------------------------------------------------------------------ table


def _num(v: Any, unit: str = "", digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v}{(' ' + unit) if unit else ''}"
    if unit == "m" and abs(v) >= 10_000:
        return f"{v / 1e3:.2f} km"
    if unit in ("m", "s") and abs(v) >= 1000:
        return f"{v:.0f} {unit}"
    if unit == "%":
        return f"{100 * v:.2g} %" if 0 < 100 * abs(v) < 1 else f"{100 * v:.1f} %"
    return f"{v:.{digits}g}{(' ' + unit) if unit else ''}"


def format_table(d: dict[str, Any]) -> str:
    """The human-readable metrics table of a metrics.json dict."""
    s = d["tracks"]
    rows: list[tuple[str, str]] = [
        ("tracks (confirmed)", f"{s['n_tracks']} ({s['n_confirmed']})"),
        ("reports", _num(s["n_reports"])),
        (
            "confirmed lifetime median / max",
            f"{_num(s['confirmed_lifetime_median_s'], 's', 4)}"
            f" / {_num(s['confirmed_lifetime_max_s'], 's', 4)}",
        ),
        ("update rate, median track", _num(s["update_rate_median_hz"], "Hz")),
        ("report interval, median", _num(s["report_interval_median_s"], "s")),
        ("sensors per update, mean", _num(s["sensors_per_update_mean"])),
    ]
    t = d.get("truth")
    if t:
        pr, vr = t["position_rmse_m"], t["velocity_rmse_mps"]
        rows += [
            ("objects", _num(t["n_objects"])),
            ("GOSPA mean / max", f"{_num(t['gospa_mean_m'], 'm')} / {_num(t['gospa_max_m'], 'm')}"),
            ("position RMSE boost", _num(pr["boost"], "m")),
            ("position RMSE midcourse", _num(pr["midcourse"], "m")),
            ("position RMSE reentry", _num(pr["reentry"], "m")),
            (
                "velocity RMSE boost / midcourse / reentry",
                " / ".join(_num(vr[p], "m/s") for p in ("boost", "midcourse", "reentry")),
            ),
            ("NEES midcourse mean (6-D; ideal 6)", _num(t["nees_midcourse_mean"])),
            (
                f"NEES midcourse above {t['nees_threshold']:g}",
                _num(t["nees_midcourse_share_above"], "%"),
            ),
            ("completeness (stereo-visible, after 20 s)", _num(t["completeness"], "%")),
            ("false-track share of confirmed time", _num(t["false_track_share"], "%")),
            ("longest track run on no object", _num(t["false_run_max_s"], "s")),
            ("tracks on no object for > 10 s", _num(t["tracks_unassigned_over_10s"])),
            ("ID switches", _num(t["id_switches"])),
            ("track breaks while in stereo", _num(t["track_breaks_in_stereo"])),
            ("first stereo -> first track, max", _num(t["detection_delay_max_s"], "s")),
            ("objects never tracked", ", ".join(t["objects_never_tracked"]) or "none"),
            (
                "impact error median / 95 % (burnout+300 s)",
                f"{_num(t['impact_error_median_m'], 'm')} / {_num(t['impact_error_p95_m'], 'm')}",
            ),
            ("impact truth inside 3-sigma", _num(t["impact_inside_3sigma_share"], "%")),
            ("launch error median", _num(t["launch_error_median_m"], "m")),
            ("reported phase agrees with truth", _num(t["phase_agreement_share"], "%")),
        ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)


def format_per_object(d: dict[str, Any], limit: int = 30) -> str:
    t = d.get("truth")
    if not t or not t["per_object"]:
        return ""
    head = (
        f"  {'object':<10} {'tracks':<22} {'switch':>6} {'compl.':>7} {'mid RMSE':>10} "
        f"{'delay':>7} {'impact':>10}"
    )
    lines = [head]
    for o in t["per_object"][:limit]:
        lines.append(
            f"  {o['object_id']:<10} {','.join(o['track_ids'])[:22]:<22} {o['id_switches']:>6} "
            f"{_num(o['completeness'], '%'):>7} {_num(o['position_rmse_midcourse_m'], 'm'):>10} "
            f"{_num(o['detection_delay_s'], 's'):>7} {_num(o['impact_error_median_m'], 'm'):>10}"
        )
    if len(t["per_object"]) > limit:
        lines.append(f"  ... {len(t['per_object']) - limit} more in metrics.json")
    return "\n".join(lines)


# ------------------------------------------------------------------ command


def run(args: argparse.Namespace) -> int:
    path = Path(args.input)
    baseline = None
    if getattr(args, "baseline", None):
        try:
            baseline = load_baseline(Path(args.baseline))
        except BaselineError as exc:
            raise UserError(str(exc)) from None
    truth = getattr(args, "truth", None)  # callers building a Namespace may omit it
    truth_path = Path(truth) if truth else None
    result, meta = read_recording(path, truth_path)
    d = result.to_dict()
    d["recording"] = {"file": path.name, **{k: v for k, v in meta.items() if k != "fusion_config"}}
    if truth_path is not None:
        d["recording"]["truth_file"] = truth_path.name
    name = meta.get("scenario") or path.stem

    print(f"tracklayer evaluate: {path}")
    if not result.has_truth:
        print(f"no truth in {path}: track statistics only")
    print(format_table(d))
    per = format_per_object(d)
    if per:
        print("per object:")
        print(per)

    report = getattr(args, "report", None)
    out_dir = Path(report) if report else path.with_name(path.stem + "-report")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics_path = out_dir / "metrics.json"
        metrics_path.write_text(json.dumps(d, indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot write the report: {exc.strerror}") from None
    print(f"metrics: {metrics_path}")
    if not getattr(args, "no_plots", False):
        from tracklayer.services.evaluation.plots import write_plots

        for p in write_plots(result, out_dir, name):
            print(f"plot:    {p}")
    if getattr(args, "save_baseline", None):
        bl = make_baseline(d, path.name)
        Path(args.save_baseline).write_text(json.dumps(bl, indent=2) + "\n")
        print(f"baseline written: {args.save_baseline} ({len(bl['figures'])} figures)")
    if baseline is None:
        return 0
    return _print_comparison(d, baseline, args.baseline)


def _print_comparison(d: dict[str, Any], figures: dict[str, dict[str, Any]], src: str) -> int:
    rows = compare(d, figures)
    print(f"baseline {src}:")
    w = max(len(r.key) for r in rows)
    for r in rows:
        cur = "missing" if r.current is None else f"{r.current:.6g}"
        print(
            f"  {r.key:<{w}}  baseline {r.baseline:<10.6g} now {cur:<10} "
            f"({r.better} is better, tolerance {r.tolerance:.3g})  {r.verdict}"
        )
    worse = [r.key for r in rows if r.verdict == "WORSE"]
    if worse:
        print(f"WORSE than the baseline beyond tolerance: {', '.join(worse)}", file=sys.stderr)
        return EXIT_WORSE
    print("no figure worse than the baseline beyond its tolerance")
    return 0
