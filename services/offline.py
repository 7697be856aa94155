"""Offline runs: recordings made and tracked on this machine, without the services.

- :func:`record_simulation` (``tracklayer simulate``): simulates a scenario and writes
  ``/sensor_frames`` (delivery order, log time = simulated delivery time), ``/truth``,
  ``/detection_truth`` and the ``tracklayer`` metadata record.
- :func:`track_recording` (``tracklayer track``): runs the fusion core
  (:class:`tracklayer.fusion.core.FusionCore`: validation, ordering, tracker) over a
  recording's ``/sensor_frames`` in recorded (delivery) order, the same code the live
  fusion service runs, and writes every recorded topic unchanged plus the new
  ``/tracks`` (an input ``/tracks`` is replaced). A report's log time is the data time
  of the frame whose application produced it, so the same input and settings give a
  byte-identical ``/tracks``. With ``gc_freeze`` (the ``track`` command) the objects
  that survive are frozen out of the cyclic collector once a second
  (:class:`tracklayer.services.gc_policy.GcFreezer`): a raid-size state is not rescanned
  by every full collection (0.92x CPU on ``raid-proliferated`` 120 s, same ``/tracks``).

Both write under a temporary name and rename at the end, so a failed run leaves no
complete-looking output behind. Errors a user can fix are :class:`UserError`. May
import ``fusion``, ``sensors``, ``services.wire`` and ``services.errors``; not the CLI.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.core import STATUS_LABELS, Emitted, FusionCore, frames_counter
from tracklayer.fusion.domain import NS_PER_S, FrameStatus, TrackStatus
from tracklayer.services.errors import UserError
from tracklayer.services.gc_policy import GcFreezer
from tracklayer.services.wire import convert
from tracklayer.services.wire.recording import (
    TOPIC_FRAMES,
    TOPIC_SENSOR_BIAS,
    TOPIC_TRACKS,
    TOPICS,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    format_sensor_ids,
    require_topic,
)
from tracklayer.v1 import sensor_pb2

#: ``progress(frames, data_s, reports, final)`` during :func:`track_recording`.
TrackProgress = Callable[[int, float, int, bool], None]
#: ``progress(done_s, total_s)`` during :func:`record_simulation` (scenario seconds).
SimulationProgress = Callable[[float, float], None]


def _partial_path(out: Path) -> Path:
    """Where ``out`` is written before the final rename (hidden, names this process)."""
    return out.with_name(f".{out.name}.partial-{os.getpid()}")


# ------------------------------------------------------------------ simulate


@dataclass
class SimulationRun:
    """What :func:`record_simulation` wrote: counts for the summary line."""

    name: str
    out: Path
    seed: int
    duration_s: float
    objects: int
    satellites: int
    frames: int = 0
    detections: int = 0
    clutter: int = 0
    took_s: float = 0.0

    def summary(self) -> str:
        """The two lines ``tracklayer simulate`` prints."""
        share = self.clutter / self.detections if self.detections else 0.0
        return (
            f"simulated {self.name} (seed {self.seed}, {self.duration_s:g} s) -> {self.out}\n"
            f"objects {self.objects}, satellites {self.satellites}, "
            f"frames {self.frames}, detections {self.detections} "
            f"(clutter {100 * share:.1f}%), {self.took_s:.1f} s taken"
        )


def record_simulation(
    scenario,
    out: Path,
    seed: int | None = None,
    duration_s: float | None = None,
    progress: SimulationProgress | None = None,
) -> SimulationRun:
    """Simulate ``scenario`` (a loaded :class:`~tracklayer.sensors.scenario.Scenario`)
    into the recording ``out``; ``seed`` / ``duration_s`` override the scenario's."""
    from tracklayer.fusion.domain import DetectionTruth, SensorFrame
    from tracklayer.sensors.constellation import ConstellationError
    from tracklayer.sensors.scenario import ScenarioError
    from tracklayer.sensors.simulation import run_metadata, simulate

    started = time.perf_counter()
    try:
        stream = simulate(scenario, seed, duration_s, progress=progress)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None
    meta = run_metadata(scenario, seed, duration_s)
    metadata = {
        "scenario": meta["scenario"],
        "scenario_file": meta["scenario_file"],
        "seed": str(meta["seed"]),
        "sensor_ids": format_sensor_ids(meta["sensor_ids"]),
        "duration_s": f"{meta['duration_s']:g}",
        "epoch": str(scenario.epoch_ns),
        "object_ids": ",".join(meta["object_ids"]),
    }
    if "sensor_bias" in meta:  # DESIGN §5: the true pointing biases (JSON)
        metadata["sensor_bias"] = json.dumps(meta["sensor_bias"], sort_keys=True)
    run = SimulationRun(
        scenario.name,
        out,
        meta["seed"],
        meta["duration_s"],
        len(meta["object_ids"]),
        len(meta["sensor_ids"]),
    )
    tmp = _partial_path(out)
    try:
        with RecordingWriter(tmp, metadata) as writer:
            for log_ns, item in stream:
                if isinstance(item, SensorFrame):
                    writer.write_frame(item, log_ns)
                    run.frames += 1
                    run.detections += item.n_detections
                elif isinstance(item, DetectionTruth):
                    writer.write_detection_truth(item, log_ns)
                    run.clutter += sum(1 for oid in item.object_ids if not oid)
                else:
                    writer.write_truth(item, log_ns)
        os.replace(tmp, out)
    except RecordingError as exc:  # name the file the user asked for, not the temporary one
        raise UserError(str(exc).replace(str(tmp), str(out))) from None
    except ConstellationError as exc:  # e.g. a TLE that SGP4 cannot propagate that far
        raise UserError(f"{scenario.source}: constellation: {exc}") from None
    except OSError as exc:
        raise UserError(f"{out}: cannot write: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    run.took_s = time.perf_counter() - started
    return run


# ------------------------------------------------------------------ track


@dataclass
class TrackingRun:
    """What :func:`track_recording` did: frames, tracks, the core's counters, timing."""

    in_path: Path
    out_path: Path
    fusion_id: str
    counters: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    tracks: set[str] = field(default_factory=set)
    confirmed: set[str] = field(default_factory=set)
    skipped_topics: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0
    truncated: bool = False
    wall_s: float = 0.0

    @property
    def span_s(self) -> float:
        """Seconds of data between the first and last accepted frame."""
        if self.first_ns is None or self.last_ns is None:
            return 0.0
        return (self.last_ns - self.first_ns) / NS_PER_S

    def warnings(self) -> list[str]:
        """Problems with the input worth a line on stderr (without the command's prefix)."""
        out = []
        if self.truncated:
            out.append(f"{self.in_path} is truncated; tracked its readable part")
        if self.undecodable:
            out.append(
                f"{self.undecodable} {TOPIC_FRAMES} messages are not SensorFrames and were skipped"
            )
        return out

    def summary(self) -> str:
        """The lines ``tracklayer track`` prints."""
        c = self.counters
        by_status = ", ".join(
            f"{c[frames_counter(s)]} {label}" for s, label in STATUS_LABELS.items()
        )
        speed = self.span_s / self.wall_s if self.wall_s > 0 else math.inf
        lines = [
            f"tracked {self.in_path} -> {self.out_path} (fusion id {self.fusion_id!r})",
            f"frames:  {self.frames} ({by_status}); detections {c['detections_total']}",
            f"tracks:  {len(self.tracks)} ({len(self.confirmed)} confirmed); "
            f"reports {c['reports_total']}",
            f"time:    {self.wall_s:.2f} s for {self.span_s:.1f} s of data "
            f"({speed:.0f}x real time)",
        ]
        if self.skipped_topics:
            skipped = ", ".join(f"{t} ({n})" for t, n in sorted(self.skipped_topics.items()))
            lines.append(f"skipped: topics that are not tracklayer's: {skipped}")
        return "\n".join(lines)


def track_recording(
    in_path: Path,
    out_path: Path,
    fusion_id: str = "fusion",
    config: FusionConfig | None = None,
    progress: Callable[[int | None], TrackProgress] | None = None,
    gc_freeze: bool = False,
) -> TrackingRun:
    """Track the recording ``in_path`` into ``out_path`` (see the module docstring).

    ``progress``: given the number of frames in the input (None if unknown), returns
    the callback that sees the pass advance. ``gc_freeze``: freeze surviving objects
    out of the collector (a process that only tracks; it changes the whole process's
    collector, so library callers leave it off).
    """
    config = config or FusionConfig()
    # OUT is written under a temporary name and renamed at the end: a run that fails midway
    # (a corrupt input chunk) leaves no complete-looking OUT holding part of the tracks
    tmp = _partial_path(out_path)
    if not fusion_id:
        raise UserError("--id: empty fusion id")
    run = TrackingRun(in_path, out_path, fusion_id)
    try:
        reader = RecordingReader(in_path)
        require_topic(reader, TOPIC_FRAMES)
        if out_path.exists() and out_path.resolve() == in_path.resolve():
            raise UserError(f"{out_path}: --out must differ from the input file")
        sensors = [s for s in reader.sensor_ids() if s]
        metadata = dict(reader.metadata)
        metadata["fusion_config"] = json.dumps(config.to_mapping(), sort_keys=True)
        metadata["fusion_id"] = fusion_id
        core = FusionCore(fusion_id, config, expected_sensors=sensors)
        show = progress(reader.message_count(TOPIC_FRAMES)) if progress else None
        try:
            with RecordingWriter(tmp, metadata) as writer:
                freezer = GcFreezer() if gc_freeze else None
                try:
                    _track(reader, core, writer, run, show, freezer)
                finally:
                    if freezer is not None:
                        freezer.release()
            os.replace(tmp, out_path)
        except OSError as exc:
            raise UserError(f"{out_path}: cannot write: {exc.strerror}") from None
        finally:
            tmp.unlink(missing_ok=True)
    except RecordingError as exc:  # name the file asked for, not the temporary one
        raise UserError(str(exc).replace(str(tmp), str(out_path))) from None
    run.truncated = reader.truncated
    run.counters = dict(core.counters)
    return run


def _track(
    reader: RecordingReader,
    core: FusionCore,
    writer: RecordingWriter,
    run: TrackingRun,
    progress: TrackProgress | None,
    freezer: GcFreezer | None = None,
) -> None:
    """One streaming pass: copy every message, feed frames to the core, write reports."""
    started = time.perf_counter()
    n_reports = 0
    next_bias_ns: int | None = 0

    def write(emitted: list[Emitted]) -> None:
        nonlocal n_reports
        for data_time_ns, report in emitted:
            writer.write_track(report, data_time_ns)
            run.tracks.add(report.track_id)
            if report.status == TrackStatus.CONFIRMED:
                run.confirmed.add(report.track_id)
        n_reports += len(emitted)

    parse = sensor_pb2.SensorFrame.FromString
    from_proto = convert.frame_from_proto
    submit = core.submit_timed
    copy = writer.write_raw
    accepted = FrameStatus.ACCEPTED
    tick = freezer.tick if freezer is not None else None
    for topic, log_time_ns, data in reader.raw_messages():
        if topic != TOPIC_FRAMES:
            if topic in (TOPIC_TRACKS, TOPIC_SENSOR_BIAS):
                continue  # replaced by this run's reports and estimates
            if topic not in TOPICS:
                run.skipped_topics[topic] += 1
                continue
            copy(topic, data, log_time_ns)  # the recorded bytes, not decoded
            continue
        copy(topic, data, log_time_ns)
        try:
            msg = parse(data)
        except DecodeError:
            run.undecodable += 1  # no sensor id: replay skips these too
            continue
        run.frames += 1
        try:
            frame = from_proto(msg, data)  # (the detections read from the bytes at once)
        except ValueError as exc:  # a required wire field unset: REJECTED, as live
            core.reject(str(exc))
            continue
        status, _, emitted = submit(frame)
        if emitted:
            write(emitted)
        next_bias_ns = _write_biases(core, writer, next_bias_ns)
        if status is accepted:
            t = frame.time_ns
            if run.first_ns is None or t < run.first_ns:
                run.first_ns = t
            if run.last_ns is None or t > run.last_ns:
                run.last_ns = t
        if progress is not None:
            progress(run.frames, run.span_s, n_reports, False)
        if tick is not None:
            tick()
    write(core.flush_timed())
    _write_biases(core, writer, None)
    if progress is not None:
        progress(run.frames, run.span_s, n_reports, True)
    run.wall_s = time.perf_counter() - started


BIAS_INTERVAL_NS = 10 * NS_PER_S  # data time between two /sensor_bias snapshots


def _write_biases(core: FusionCore, writer: RecordingWriter, next_ns: int | None) -> int | None:
    """``/sensor_bias``: every sensor's estimate once per ``BIAS_INTERVAL_NS`` of data time
    (and at the end: ``next_ns`` None). Returns the next due time."""
    t_ns = core.sensor_bias_time_ns()  # checked first: the estimates are built when due
    if t_ns is None or (next_ns is not None and t_ns < next_ns):
        return next_ns
    biases = core.sensor_biases()
    if not biases:
        return next_ns
    for b in biases:
        writer.write_raw(TOPIC_SENSOR_BIAS, convert.bias_to_proto(b).SerializeToString(), t_ns)
    return (t_ns // BIAS_INTERVAL_NS + 1) * BIAS_INTERVAL_NS
