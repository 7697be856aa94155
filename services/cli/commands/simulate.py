"""``tracklayer simulate SCENARIO --out FILE.mcap [--seed N] [--duration S]``.

Simulates a built-in scenario (``tracklayer scenarios``) or a scenario file and records
``/sensor_frames`` (delivery order, log time = simulated delivery time), ``/truth``,
``/detection_truth`` and the ``tracklayer`` metadata record. The file is written under a
temporary name and renamed at the end, so a failed run leaves no output file behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tracklayer.services.errors import UserError

BAR_WIDTH = 30


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a scenario and record it to MCAP",
        description=(
            "Simulate a scenario (a built-in name from `tracklayer scenarios`, or a TOML "
            "file) and write its sensor frames, truth and detection truth to an MCAP file."
        ),
    )
    p.add_argument("scenario", metavar="SCENARIO", help="built-in scenario name or .toml path")
    p.add_argument("--out", required=True, metavar="FILE.mcap", help="recording to write")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="random seed (default: the scenario's)")  # fmt: skip
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="simulated seconds (default: the scenario's duration_s)")  # fmt: skip
    p.set_defaults(func=run)


class _Bar:
    """A progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self._next = 0.0
        self._shown = False

    def __call__(self, done_s: float, total_s: float) -> None:
        now = time.monotonic()
        if not self.enabled or (now < self._next and done_s < total_s):
            return
        self._next = now + 0.2
        frac = min(max(done_s / total_s, 0.0), 1.0) if total_s > 0 else 1.0
        fill = int(round(frac * BAR_WIDTH))
        sys.stderr.write(
            f"\r{self.label} [{'#' * fill}{'.' * (BAR_WIDTH - fill)}] {frac * 100:5.1f}% "
            f"t={done_s:7.1f}/{total_s:.0f} s"
        )
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from tracklayer.fusion.domain import DetectionTruth, SensorFrame
    from tracklayer.sensors.constellation import ConstellationError
    from tracklayer.sensors.scenario import ScenarioError, load_scenario
    from tracklayer.sensors.simulation import run_metadata, simulate
    from tracklayer.services.wire.recording import (
        RecordingError,
        RecordingWriter,
        format_sensor_ids,
    )

    if args.duration is not None and not args.duration > 0:
        raise UserError(f"--duration: must be > 0 s, got {args.duration:g}")
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed: must be >= 0, got {args.seed}")
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"{out}: --out is a directory")
    if not out.parent.is_dir():
        raise UserError(f"{out}: --out directory {out.parent} does not exist")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None
    started = time.perf_counter()
    bar = _Bar(f"simulate {scenario.name}")
    try:
        stream = simulate(scenario, args.seed, args.duration, progress=bar)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None
    meta = run_metadata(scenario, args.seed, args.duration)
    metadata = {
        "scenario": meta["scenario"],
        "scenario_file": meta["scenario_file"],
        "seed": str(meta["seed"]),
        "sensor_ids": format_sensor_ids(meta["sensor_ids"]),
        "duration_s": f"{meta['duration_s']:g}",
        "epoch": str(scenario.epoch_ns),
        "object_ids": ",".join(meta["object_ids"]),
    }
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    frames = detections = clutter = 0
    try:
        with RecordingWriter(tmp, metadata) as writer:
            for log_ns, item in stream:
                if isinstance(item, SensorFrame):
                    writer.write_frame(item, log_ns)
                    frames += 1
                    detections += item.n_detections
                elif isinstance(item, DetectionTruth):
                    writer.write_detection_truth(item, log_ns)
                    clutter += sum(1 for oid in item.object_ids if not oid)
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
        bar.close()
        tmp.unlink(missing_ok=True)
    took = time.perf_counter() - started
    share = clutter / detections if detections else 0.0
    print(
        f"simulated {scenario.name} (seed {meta['seed']}, {meta['duration_s']:g} s) -> {out}\n"
        f"objects {len(meta['object_ids'])}, satellites {len(meta['sensor_ids'])}, "
        f"frames {frames}, detections {detections} "
        f"(clutter {100 * share:.1f}%), {took:.1f} s taken"
    )
    return 0
