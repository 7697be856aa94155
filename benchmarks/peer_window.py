"""bench_peer's ``--window A:B``: both trackers over one window of a long recording.

Stone Soup's cost grows with tracks x frames: on a 100-object raid under the
proliferated layer it did not get through the run (> 120 ms per frame once its ~100
truth-seeded tracks were up; stop 18). So on a raid both are compared over the same
window of data, the frames *delivered* (MCAP log time) in (first + A, first + B] s:

- tracklayer: the code ``tracklayer track`` runs (``services.offline.track_recording``,
  MCAP read and write included, GC freezing as the CLI) over the whole recording in
  this process; its cost for the window is the process CPU time between the progress
  callbacks after the frame before the window and after the window's last frame
  (start-up, compile and the tracking before A are left out). Its reports are those
  of that run timed inside the window.
- Stone Soup: the same frames in time order, its tracks seeded from truth at the
  window's first frame (objects due later when due), timed over the window only.

Both midcourse RMSEs come from tracklayer's evaluation code fed the whole truth and
only the reports timed inside the window, so both are scored on the same samples.
"""

from __future__ import annotations

import time
from pathlib import Path

from tracklayer.fusion.domain import NS_PER_S, TrackReport
from tracklayer.services.offline import track_recording
from tracklayer.services.wire.recording import TOPIC_FRAMES, RecordingReader


def parse_window(text: str) -> tuple[float, float]:
    """``"A:B"`` (seconds after the first frame, 0 <= A < B) as (A, B); ValueError else."""
    a, sep, b = text.partition(":")
    try:
        lo, hi = float(a), float(b)
    except ValueError:
        lo = hi = float("nan")
    if not sep or not (0.0 <= lo < hi):
        raise ValueError(f"--window: want A:B seconds with 0 <= A < B, got {text!r}")
    return lo, hi


def first_log_ns(rec: Path) -> int:
    """Log time (ns) of the recording's first frame."""
    for _, log_ns, _ in RecordingReader(rec).raw_messages([TOPIC_FRAMES]):
        return log_ns
    raise SystemExit(f"{rec}: no /sensor_frames")


def window_frames(rec: Path, lo_ns: int, hi_ns: int) -> list:
    """The frames logged in (lo_ns, hi_ns], in time order (Stone Soup's input)."""
    got = [f for log_ns, f in RecordingReader(rec).frames() if lo_ns < log_ns <= hi_ns]
    return sorted(got, key=lambda f: f.time_ns)


def window_reports(tracked: Path, lo_ns: int, hi_ns: int) -> list[TrackReport]:
    """tracklayer's reports timed in (lo_ns, hi_ns] (data time), from its output."""
    return [r for _, r in RecordingReader(tracked).tracks() if lo_ns < r.time_ns <= hi_ns]


def window_indices(rec: Path, lo_ns: int, hi_ns: int) -> tuple[int, int]:
    """(frames logged at or before ``lo_ns``, frames logged at or before ``hi_ns``), in
    file order: the window is frames i0 + 1 .. i1 of the pass."""
    i0 = i1 = 0
    for _, log_ns, _ in RecordingReader(rec).raw_messages([TOPIC_FRAMES]):
        i0 += log_ns <= lo_ns
        i1 += log_ns <= hi_ns
    return i0, i1


def tracklayer_window(rec: Path, work: Path, lo_s: float, hi_s: float, say) -> dict:
    """tracklayer's CPU s, frames and detections for the window, and its reports there."""
    t0 = first_log_ns(rec)
    lo_ns, hi_ns = t0 + int(lo_s * NS_PER_S), t0 + int(hi_s * NS_PER_S)
    i0, i1 = window_indices(rec, lo_ns, hi_ns)
    if i1 <= i0:
        raise SystemExit(f"--window: no frames logged {lo_s:g}-{hi_s:g} s after the first")
    cpu: dict[int, float] = {}

    def progress(total: int | None):
        def show(frames: int, span_s: float, reports: int, final: bool) -> None:
            if frames in (i0, i1) and frames not in cpu:
                cpu[frames] = time.process_time()

        return show

    say(f"tracklayer: track in this process, window = frames {i0 + 1:,}..{i1:,} ...")
    if i0 == 0:
        cpu[0] = time.process_time()
    out = work / "track.mcap"
    track_recording(rec, out, progress=progress, gc_freeze=True)
    frames = window_frames(rec, lo_ns, hi_ns)
    times = [f.time_ns for f in frames]
    say(f"tracklayer: {cpu[i1] - cpu[i0]:.1f} CPU s for the window's {i1 - i0:,} frames")
    return {
        "cpu_s": cpu[i1] - cpu[i0],
        "frames": len(frames),
        "detections": sum(f.n_detections for f in frames),
        "reports": window_reports(out, min(times), max(times)),
        "lo_ns": lo_ns,
        "hi_ns": hi_ns,
        "data_lo_ns": min(times),
        "data_hi_ns": max(times),
    }
