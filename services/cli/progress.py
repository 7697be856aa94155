"""A one-line terminal progress bar for the frame streamer (``sensors``, ``replay``).

Draws on stderr only when it is a terminal; elsewhere it stays silent so that
logs and pipes get only the final summary.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tracklayer.services.clients.frame_streamer import StreamProgress

BAR_WIDTH = 24


class ProgressLine:
    """Callable progress sink: ``ProgressLine(label, total_frames=..., total_s=...)(progress)``.

    The bar fills by acknowledged frames when ``total_frames`` is known, else by
    log time over ``total_s`` (seconds), else shows counts only.
    """

    def __init__(
        self,
        label: str,
        total_frames: int | None = None,
        total_s: float | None = None,
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.label = label
        self.total_frames = total_frames or None
        self.total_s = total_s if total_s and total_s > 0 else None
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._started = time.monotonic()
        self._drawn = False

    def render(self, p: StreamProgress) -> str:
        """The line for one snapshot (no carriage return)."""
        if self.total_frames:
            frac = p.acked / self.total_frames
        elif self.total_s:
            frac = p.log_time_s / self.total_s
        else:
            frac = None
        elapsed = time.monotonic() - self._started
        parts = [self.label]
        if frac is not None:
            frac = min(max(frac, 0.0), 1.0)
            filled = int(round(frac * BAR_WIDTH))
            parts.append(f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {frac * 100:5.1f}%")
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
        if not self.enabled:
            return
        self.stream.write("\r" + self.render(p) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line so that the summary starts on a fresh one."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
