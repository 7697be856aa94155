"""The one terminal progress line of the CLI (``simulate``, ``track``, ``sensors``, ``replay``).

It draws on stderr only when stderr is a terminal; elsewhere it stays silent so
that logs and pipes get only the final summary.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # (gRPC behind it: `tracklayer track` and `simulate` never load it)
    from tracklayer.services.clients.stream_options import StreamProgress

BAR_WIDTH = 24


def bar_fill(frac: float, width: int = BAR_WIDTH) -> str:
    """``####....``: ``frac`` (clamped to [0, 1]) of ``width`` characters filled."""
    filled = int(round(min(max(frac, 0.0), 1.0) * width))
    return "#" * filled + "." * (width - filled)


class ProgressLine:
    """One self-overwriting status line: ``ProgressLine(label, total_frames=..., total_s=...)``.

    Three readings feed it: a frame streamer's :class:`StreamProgress` (call the
    line with it), a simulation's scenario seconds (:meth:`seconds`) and an
    offline tracking pass (:meth:`tracked`). The bar fills by acknowledged frames
    when ``total_frames`` is known, else by log time over ``total_s`` (seconds),
    else shows counts only. A line is redrawn at most every ``interval_s`` wall
    seconds (the last one of a run is always drawn); :meth:`close` ends it.
    """

    def __init__(
        self,
        label: str,
        total_frames: int | None = None,
        total_s: float | None = None,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        *,
        interval_s: float = 0.0,
        bar_width: int = BAR_WIDTH,
    ) -> None:
        self.label = label
        self.total_frames = total_frames or None
        self.total_s = total_s if total_s and total_s > 0 else None
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval_s = interval_s
        self.bar_width = bar_width
        self._started = time.monotonic()
        self._next = 0.0
        self._drawn = False

    def _bar(self, frac: float) -> str:
        frac = min(max(frac, 0.0), 1.0)
        return f"[{bar_fill(frac, self.bar_width)}] {frac * 100:5.1f}%"

    def render(self, p: StreamProgress) -> str:
        """The line for one frame-streamer snapshot (no carriage return)."""
        if self.total_frames:
            frac = p.acked / self.total_frames
        elif self.total_s:
            frac = p.log_time_s / self.total_s
        else:
            frac = None
        elapsed = time.monotonic() - self._started
        parts = [self.label]
        if frac is not None:
            parts.append(self._bar(frac))
        parts.append(f"t={p.log_time_s:7.1f} s")
        parts.append(f"frames {p.acked}/{p.released} acked")
        bad = {k: v for k, v in p.counts.items() if v and k not in ("ACCEPTED", "UNSPECIFIED")}
        if bad:
            parts.append(" ".join(f"{k} {v}" for k, v in bad.items()))
        if p.reconnects:
            parts.append(f"reconnects {p.reconnects}")
        parts.append(f"{elapsed:6.1f} s")
        return "  ".join(parts)

    def __call__(self, p: StreamProgress) -> None:
        self.draw(self.render(p))

    def seconds(self, done_s: float, total_s: float) -> None:
        """A simulation's progress: ``done_s`` of ``total_s`` scenario seconds."""
        if not self.enabled:
            return
        frac = done_s / total_s if total_s > 0 else 1.0
        self.draw(
            f"{self.label} {self._bar(frac)} t={done_s:7.1f}/{total_s:.0f} s",
            force=done_s >= total_s,
        )

    def tracked(self, frames: int, data_s: float, reports: int, force: bool = False) -> None:
        """An offline tracking pass: frames read (of ``total_frames``), data span, reports."""
        if not self.enabled:
            return
        done = f"{100.0 * frames / self.total_frames:5.1f}% " if self.total_frames else ""
        self.draw(
            f"{self.label}: {done}{frames} frames, {data_s:8.1f} s of data, {reports} reports",
            force=force,
        )

    def draw(self, text: str, force: bool = False) -> None:
        """Overwrite the line with ``text`` (unless drawn less than ``interval_s`` ago)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self._next and not force:
            return
        self._next = now + self.interval_s
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line so that the summary starts on a fresh one."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
