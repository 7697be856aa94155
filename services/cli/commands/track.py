"""``tracklayer track IN.mcap --out OUT.mcap [--id NAME] [--config FILE.toml]``.

Runs the fusion core (:class:`tracklayer.fusion.core.FusionCore`: validation,
ordering, tracker) over ``/sensor_frames`` in recorded (delivery) order, the same code
the live fusion service runs, and writes OUT with every recorded topic of IN copied
unchanged plus the new ``/tracks`` (an input ``/tracks`` is replaced). A report's log
time is the data time of the frame whose application produced it, so the same input
and settings give a byte-identical ``/tracks``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

from google.protobuf.message import DecodeError

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.core import STATUS_LABELS, Emitted, FusionCore, frames_counter
from tracklayer.fusion.domain import NS_PER_S, FrameStatus, TrackStatus
from tracklayer.services.errors import UserError
from tracklayer.services.wire import convert
from tracklayer.services.wire.recording import (
    TOPIC_FRAMES,
    TOPIC_TRACKS,
    TOPICS,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    require_topic,
)
from tracklayer.v1 import sensor_pb2

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
    p.add_argument(
        "--config",
        metavar="FILE.toml",
        help="fusion settings (flat TOML table of FusionConfig fields, SI units)",
    )
    p.set_defaults(func=run)


def load_fusion_config(path: str | os.PathLike[str] | None) -> FusionConfig:
    """FusionConfig from a flat TOML file of settings (None: the defaults).

    Raises :class:`UserError` naming the file (and the key, for a bad setting)."""
    if path is None:
        return FusionConfig()
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{p}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise UserError(f"{p}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: not valid TOML: {exc}") from None
    try:
        return FusionConfig.from_mapping(data)
    except ValueError as exc:
        raise UserError(f"{p}: {exc}") from None


class _Progress:
    """One self-overwriting status line on stderr, only when stderr is a terminal."""

    def __init__(self, total_frames: int | None) -> None:
        self.enabled = sys.stderr.isatty()
        self.total = total_frames or None
        self._next = 0.0
        self._shown = False

    def update(self, frames: int, data_s: float, reports: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self._next and not force:
            return
        self._next = now + PROGRESS_INTERVAL_S
        done = f"{100.0 * frames / self.total:5.1f}% " if self.total else ""
        sys.stderr.write(
            f"\rtrack: {done}{frames} frames, {data_s:8.1f} s of data, {reports} reports"
        )
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    config = load_fusion_config(args.config)
    in_path, out_path = Path(args.input), Path(args.out)
    # OUT is written under a temporary name and renamed at the end: a run that fails midway
    # (a corrupt input chunk) leaves no complete-looking OUT holding part of the tracks
    tmp = out_path.with_name(f".{out_path.name}.partial-{os.getpid()}")
    if not args.id:
        raise UserError("--id: empty fusion id")
    try:
        reader = RecordingReader(in_path)
        require_topic(reader, TOPIC_FRAMES)
        same = out_path.exists() and out_path.resolve() == in_path.resolve()
        if same:
            raise UserError(f"{out_path}: --out must differ from the input file")
        sensors = [s for s in reader.sensor_ids() if s]
        metadata = dict(reader.metadata)
        metadata["fusion_config"] = json.dumps(config.to_mapping(), sort_keys=True)
        metadata["fusion_id"] = args.id
        core = FusionCore(args.id, config, expected_sensors=sensors)
        try:
            with RecordingWriter(tmp, metadata) as writer:
                stats = _track(reader, core, writer)
            os.replace(tmp, out_path)
        except OSError as exc:
            raise UserError(f"{out_path}: cannot write: {exc.strerror}") from None
        finally:
            tmp.unlink(missing_ok=True)
    except RecordingError as exc:  # name the file asked for, not the temporary one
        raise UserError(str(exc).replace(str(tmp), str(out_path))) from None
    if reader.truncated:
        print(
            f"tracklayer track: warning: {in_path} is truncated; tracked its readable part",
            file=sys.stderr,
        )
    if stats.undecodable:
        print(
            f"tracklayer track: warning: {stats.undecodable} {TOPIC_FRAMES} messages are not "
            "SensorFrames and were skipped",
            file=sys.stderr,
        )
    _print_summary(in_path, out_path, args.id, core, stats)
    return 0


class _Stats:
    def __init__(self) -> None:
        self.frames = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.tracks: set[str] = set()
        self.confirmed: set[str] = set()
        self.skipped_topics: Counter[str] = Counter()
        self.undecodable = 0
        self.wall_s = 0.0


def _track(reader: RecordingReader, core: FusionCore, writer: RecordingWriter) -> _Stats:
    """One streaming pass: copy every message, feed frames to the core, write reports."""
    stats = _Stats()
    progress = _Progress(reader.message_count(TOPIC_FRAMES))
    started = time.perf_counter()
    n_reports = 0
    span = 0.0

    def write(emitted: list[Emitted]) -> None:
        nonlocal n_reports
        for data_time_ns, report in emitted:
            writer.write_track(report, data_time_ns)
            stats.tracks.add(report.track_id)
            if report.status == TrackStatus.CONFIRMED:
                stats.confirmed.add(report.track_id)
        n_reports += len(emitted)

    try:
        for topic, log_time_ns, data in reader.raw_messages():
            if topic == TOPIC_TRACKS:
                continue  # replaced by this run's reports
            if topic not in TOPICS:
                stats.skipped_topics[topic] += 1
                continue
            writer.write_raw(topic, data, log_time_ns)
            if topic != TOPIC_FRAMES:
                continue
            try:
                msg = sensor_pb2.SensorFrame.FromString(data)
            except DecodeError:
                stats.undecodable += 1  # no sensor id: replay skips these too
                continue
            stats.frames += 1
            try:
                frame = convert.frame_from_proto(msg)
            except ValueError as exc:  # a required wire field unset: REJECTED, as live
                core.reject(str(exc))
                continue
            status, _, emitted = core.submit_timed(frame)
            write(emitted)
            if status is FrameStatus.ACCEPTED:
                t = frame.time_ns
                stats.first_ns = t if stats.first_ns is None else min(stats.first_ns, t)
                stats.last_ns = t if stats.last_ns is None else max(stats.last_ns, t)
            span = 0.0 if stats.first_ns is None else (stats.last_ns - stats.first_ns) / NS_PER_S
            progress.update(stats.frames, span, n_reports)
        write(core.flush_timed())
        progress.update(stats.frames, span, n_reports, force=True)
    finally:
        progress.close()
    stats.wall_s = time.perf_counter() - started
    return stats


def _print_summary(
    in_path: Path, out_path: Path, fusion_id: str, core: FusionCore, stats: _Stats
) -> None:
    c = core.counters
    by_status = ", ".join(f"{c[frames_counter(s)]} {label}" for s, label in STATUS_LABELS.items())
    span_s = 0.0 if stats.first_ns is None else (stats.last_ns - stats.first_ns) / NS_PER_S
    speed = span_s / stats.wall_s if stats.wall_s > 0 else math.inf
    lines = [
        f"tracked {in_path} -> {out_path} (fusion id {fusion_id!r})",
        f"frames:  {stats.frames} ({by_status}); detections {c['detections_total']}",
        f"tracks:  {len(stats.tracks)} ({len(stats.confirmed)} confirmed); "
        f"reports {c['reports_total']}",
        f"time:    {stats.wall_s:.2f} s for {span_s:.1f} s of data ({speed:.0f}x real time)",
    ]
    if stats.skipped_topics:
        skipped = ", ".join(f"{t} ({n})" for t, n in sorted(stats.skipped_topics.items()))
        lines.append(f"skipped: topics that are not tracklayer's: {skipped}")
    print("\n".join(lines))
