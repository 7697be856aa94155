"""Evaluating a recording end to end: what ``tracklayer evaluate`` and the demo run.

:func:`evaluate_recording` streams ``/tracks``, ``/truth``, ``/sensor_frames`` and
``/detection_truth`` of an MCAP recording into the DESIGN §7 metrics
(:mod:`tracklayer.fusion.evaluation`), prints the table, writes ``metrics.json`` and the
PNG plots, optionally writes a new baseline and compares with a given one, and returns
a :class:`RecordingEvaluation`. Text goes to the streams the caller passes (default
the process's stdout and stderr); unusable inputs raise :class:`UserError` with one line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tracklayer.fusion.evaluation import EvaluationResult, MetricsAccumulator
from tracklayer.services.errors import UserError
from tracklayer.services.evaluation.baseline import (
    BaselineError,
    Comparison,
    compare,
    load_baseline,
    make_baseline,
)
from tracklayer.services.evaluation.registration import format_biases, read_biases
from tracklayer.services.evaluation.table import (
    format_comparison,
    format_per_object,
    format_table,
)
from tracklayer.services.wire.recording import (
    TOPIC_DETECTION_TRUTH,
    TOPIC_FRAMES,
    TOPIC_TRACKS,
    TOPIC_TRUTH,
    RecordingError,
    RecordingReader,
)

EXIT_WORSE = 1  # exit status: a figure is worse than the baseline beyond its tolerance


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


@dataclass(slots=True)
class RecordingEvaluation:
    """What :func:`evaluate_recording` did: the ``result`` with its series, ``metrics``
    (the dict written to ``metrics_path``), the metrics ``table`` and all ``text`` it
    printed, the ``plots`` written, the baseline ``comparison`` (None without one) and
    the ``exit_code`` of ``tracklayer evaluate`` (0, or 1 when worse than the baseline)."""

    result: EvaluationResult
    metrics: dict[str, Any]
    table: str
    report_dir: Path
    metrics_path: Path
    plots: list[Path] = field(default_factory=list)
    czml: Path | None = None  # scene.czml beside the plots (Cesium, STK)
    comparison: list[Comparison] | None = None
    exit_code: int = 0
    text: str = ""


class _Printer:
    """Prints lines to a stream and keeps them."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        print(text, file=self.out)
        self.lines.append(text)


def _metrics_dict(
    result: EvaluationResult, meta: dict[str, str], path: Path, truth_path: Path | None
) -> dict[str, Any]:
    d = result.to_dict()
    d["recording"] = {"file": path.name, **{k: v for k, v in meta.items() if k != "fusion_config"}}
    if truth_path is not None:
        d["recording"]["truth_file"] = truth_path.name
    return d


def _write_metrics(d: dict[str, Any], out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics_path = out_dir / "metrics.json"
        metrics_path.write_text(json.dumps(d, indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot write the report: {exc.strerror}") from None
    return metrics_path


def _write_scene(
    path: Path, out_dir: Path, name: str, say: Callable[[str], None], err: TextIO | None
) -> Path | None:
    """``out_dir/scene.czml`` of the recording ``path``; a scene that cannot be written
    is reported in one line on ``err`` (a by-product: the figures and plots stand)."""
    from tracklayer.services.evaluation.czml import write_czml

    czml_path = out_dir / "scene.czml"
    try:
        write_czml(path, czml_path, name)
    except ValueError as exc:
        reason = str(exc).splitlines()[-1].strip() or type(exc).__name__
        print(f"czml:    not written ({reason})", file=sys.stderr if err is None else err)
        return None
    say(f"czml:    {czml_path}")
    return czml_path


def evaluate_recording(
    path: Path,
    *,
    report_dir: Path | None = None,
    truth_path: Path | None = None,
    baseline: str | Path | None = None,
    save_baseline: str | Path | None = None,
    plots: bool = True,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> RecordingEvaluation:
    """Evaluate the recording at ``path`` (see the module text).

    ``report_dir`` defaults to ``FILE-report/`` beside the file; ``truth_path`` takes
    the truth from another recording; ``baseline`` is a baseline JSON file to compare
    with and ``save_baseline`` where to write this run's baseline (both named in the
    text as given); ``plots=False`` writes metrics.json only. ``out``/``err`` default to
    ``sys.stdout``/``sys.stderr`` at call time.
    """
    say = _Printer(sys.stdout if out is None else out)
    figures = None
    if baseline:
        try:
            figures = load_baseline(Path(baseline))
        except BaselineError as exc:
            raise UserError(str(exc)) from None
    result, meta = read_recording(path, truth_path)
    d = _metrics_dict(result, meta, path, truth_path)
    biases = read_biases(path, meta)
    if biases is not None:
        d["registration"] = biases.to_dict()
    say(f"tracklayer evaluate: {path}")
    if not result.has_truth:
        say(f"no truth in {path}: track statistics only")
    table = format_table(d)
    say(table)
    per = format_per_object(d)
    if per:
        say("per object:")
        say(per)
    if biases is not None:
        say(format_biases(biases))
    out_dir = report_dir if report_dir is not None else path.with_name(path.stem + "-report")
    run = RecordingEvaluation(result, d, table, out_dir, _write_metrics(d, out_dir))
    say(f"metrics: {run.metrics_path}")
    if plots:
        from tracklayer.services.evaluation.plots import write_plots

        for p in write_plots(result, out_dir, meta.get("scenario") or path.stem):
            run.plots.append(p)
            say(f"plot:    {p}")
        run.czml = _write_scene(path, out_dir, meta.get("scenario") or path.stem, say, err)
        if biases is not None:
            from tracklayer.services.evaluation.plots.registration import plot_biases

            p = plot_biases(biases, out_dir / "sensor_bias.png", meta.get("scenario") or path.stem)
            if p is not None:
                run.plots.append(p)
                say(f"plot:    {p}")
    if save_baseline:
        bl = make_baseline(d, path.name)
        Path(save_baseline).write_text(json.dumps(bl, indent=2) + "\n")
        say(f"baseline written: {save_baseline} ({len(bl['figures'])} figures)")
    if figures is not None:
        run.comparison = compare(d, figures)
        say(format_comparison(run.comparison, str(baseline)))
        worse = [r.key for r in run.comparison if r.verdict == "WORSE"]
        if worse:
            line = f"WORSE than the baseline beyond tolerance: {', '.join(worse)}"
            print(line, file=sys.stderr if err is None else err)
            run.exit_code = EXIT_WORSE
        else:
            say("no figure worse than the baseline beyond its tolerance")
    run.text = "\n".join(say.lines) + "\n"
    return run
