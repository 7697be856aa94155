"""The fusion service's counters as Prometheus metrics: which are gauges, and help texts.

The counters themselves are :meth:`FusionEngine.counters` (the same dict ``GetStatus``
returns); names follow DESIGN §8.
"""

from __future__ import annotations

#: Gauges among the counters (the rest are monotonic counters).
GAUGES = frozenset(
    {
        "tracks_live",
        "outbox_depth",
        "journal_frames",
        "frames_buffered",
        "streams_open",
        "subscribers",
        "frames_pending",
        "outbox_rejected",
    }
)

#: Help text of the metric families that have one (others: the name, spaced out).
HELP = {
    "frames_total": "Frames received, by ack status",
    "detections_total": "Detections in accepted frames",
    "tracks_live": "Live (not deleted) tracks",
    "reports_total": "Track reports emitted",
    "outbox_depth": "Reports waiting for the track store's ack",
    "journal_frames": "Frames in the journal",
    "late_frames_total": "Frames acknowledged LATE",
}
