"""What the soak (``bench_soak.py``) reads after its run: the store's integrity checks,
the delivery latency per minute, the fusion restarts' figures from its logs and the
disk samples (see ``bench_soak``'s docstring for what each check means)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np

NS = 1_000_000_000


def disk_at(samples: np.ndarray, t_s: float) -> float:
    """Journal + outbox MB of the first sample at or after ``t_s`` (the last if none)."""
    later = samples[samples[:, 0] >= t_s]
    return float((later if len(later) else samples[-1:])[0, 5])


_FIGURE = re.compile(r"event=(journal_replayed|checkpoint_written) .*?(?:events|seq)=(\d+)"
                     r"(?:.*?(?:seconds|encode_s)=([0-9.]+))?")  # fmt: skip
#: The INFO summary of checkpoints (since uptime4 each checkpoint is logged at DEBUG).
_SUMMARY = re.compile(r"event=checkpoints_written count=(\d+) .*?encode_s_median=([0-9.]+) "
                      r"encode_s_max=([0-9.]+)")  # fmt: skip


def restart_figures(logs: Path) -> str:
    """Replays (events, seconds) of the fusion restarts and the checkpoints written, from
    the service logs: ``journal_replayed`` lines; ``checkpoint_written`` lines of a
    revision that logs each checkpoint at INFO, else the ``checkpoints_written``
    summaries (they miss what a killed process wrote after its last summary; their encode
    median is the median of the summaries' medians, each counted as often as its count)."""
    replays, encodes, summaries = [], [], []
    for log in sorted(logs.glob("fusion*.log")):
        text = log.read_text(errors="replace")
        for m in _FIGURE.finditer(text):
            if m.group(1) == "journal_replayed":
                replays.append((int(m.group(2)), float(m.group(3) or 0)))
            elif m.group(3):
                encodes.append(float(m.group(3)))
        summaries += [(int(n), float(med), float(mx)) for n, med, mx in _SUMMARY.findall(text)]
    replays = replays[1:]  # the first start replays nothing
    out = []
    if replays:
        ev, sec = np.array(replays).T
        out.append(
            f"replays: events median {np.median(ev):.0f}, max {ev.max():.0f}; seconds "
            f"median {np.median(sec):.2f}, p99 {np.percentile(sec, 99):.2f}"
        )
    if encodes:
        out.append(
            f"{len(encodes)} checkpoints written, encode on the loop s median "
            f"{np.median(encodes):.3f}, max {max(encodes):.3f}"
        )
    elif summaries:
        n, med, mx = np.array(summaries).T
        out.append(
            f"{int(n.sum())} checkpoints in the logs' summaries, encode on the loop s median "
            f"{np.median(np.repeat(med, n.astype(int))):.3f}, max {mx.max():.3f}"
        )
    return "; ".join(out) or "no figures in the fusion logs"


def integrity(db: Path, live: dict[str, int]) -> dict[str, int]:
    """Store-side checks (see the module docstring) and the report count."""
    from tracklayer.v1 import track_pb2

    deleted = track_pb2.TRACK_STATUS_DELETED
    con = sqlite3.connect(db)
    rows = con.execute("SELECT track_id, revision, status FROM reports ORDER BY 1, 2").fetchall()
    con.close()
    tracks: dict[str, list[tuple[int, int]]] = {}
    for tid, rev, status in rows:
        tracks.setdefault(tid, []).append((rev, status))
    gaps = sum(
        1 for revs in tracks.values() if [r for r, _ in revs] != list(range(1, len(revs) + 1))
    )
    not_closed = sum(
        1
        for tid, revs in tracks.items()
        if (revs[-1][0] != live[tid] if tid in live else revs[-1][1] != deleted)
    )
    after_deleted = sum(1 for revs in tracks.values() if any(s == deleted for _, s in revs[:-1]))
    return {
        "reports": len(rows),
        "tracks": len(tracks),
        "tracks_with_gaps": gaps,
        "tracks_not_ending_deleted_or_live": not_closed,
        "live_tracks": len(live),
        "tracks_with_revisions_after_deleted": after_deleted,
    }


def latency_by_minute(db: Path) -> list[tuple[int, int, float, float]]:
    """(minute, n, p50 ms, p99 ms) of emitted_at -> stored_at_ns."""
    from tracklayer.v1 import track_pb2

    con = sqlite3.connect(db)
    rows = con.execute("SELECT report, stored_at_ns FROM reports").fetchall()
    con.close()
    pts = []
    for blob, stored in rows:
        r = track_pb2.TrackReport.FromString(blob)
        if r.HasField("emitted_at"):
            emitted = r.emitted_at.seconds * NS + r.emitted_at.nanos
            pts.append((emitted, (stored - emitted) / 1e6))
    if not pts:
        return []
    pts.sort()
    start = pts[0][0]
    out = []
    by_min: dict[int, list[float]] = {}
    for t, lat in pts:
        by_min.setdefault(int((t - start) // (60 * NS)), []).append(lat)
    for m in sorted(by_min):
        a = np.array(by_min[m])
        out.append((m, len(a), float(np.percentile(a, 50)), float(np.percentile(a, 99))))
    return out
