"""The fusion service's counters as Prometheus metrics: which are gauges, and help texts.

The counters themselves are :meth:`FusionEngine.counters` (the same dict ``GetStatus``
returns); names follow DESIGN §8.
"""

from __future__ import annotations

from tracklayer.fusion.registration import SensorBias
from tracklayer.services.rpc.server import sample_key

#: Gauges among the counters (the rest are monotonic counters).
GAUGES = frozenset(
    {
        "tracks_live",
        "outbox_depth",
        "journal_frames",
        "frames_buffered",
        "frames_untracked",
        "tracker_behind_events",
        "tracker_behind_ms",
        "tracker_feed_events",
        "streams_open",
        "subscribers",
        "frames_pending",
        "outbox_rejected",
        "journal_events",
        "journal_bytes",
        "outbox_bytes",
        "journal_trimmed_through",
        "journal_last_trim_unix_seconds",
        "tracklayer_sensor_bias_urad",
        "tracklayer_sensor_bias_sigma_urad",
        # the scale-out front door's per-shard figures (services/scaleout/shard_status.py)
        "shard_owner",
        "shard_lag_events",
        "shard_tracks_owned",
        "shard_checkpoint_age_seconds",
    }
)

#: Help text of the metric families that have one (others: the name, spaced out).
HELP = {
    "frames_total": "Frames received, by ack status",
    "detections_total": "Detections in accepted frames",
    "tracks_live": "Live (not deleted) tracks",
    "reports_total": "Track reports emitted",
    "outbox_depth": "Reports waiting for the track store's ack",
    "journal_frames": "Frames journaled (also those since trimmed)",
    "journal_events": "Events kept in the journal (later than the trim point)",
    "journal_bytes": "Journal file size with its WAL (bytes)",
    "outbox_bytes": "Outbox file size with its WAL (bytes)",
    "journal_last_trim_unix_seconds": "Wall time of the last journal trim (0: never)",
    "late_frames_total": "Frames acknowledged LATE",
    "frames_untracked": "Frames acknowledged (journaled), waiting for the tracker",
    "tracker_behind_events": "Journal events committed, not yet applied by the tracker",
    "tracker_behind_ms": "Arrival time of the newest journaled event minus the tracker's",
    "tracker_feed_events": "Committed events held in memory for the tracker",
    "tracker_read_back_total": "Events the tracker read back from the journal (a backlog)",
    "tracklayer_sensor_bias_urad": "Pointing-bias estimate per sensor (rotation vector, ECI axes)",
    "tracklayer_sensor_bias_sigma_urad": "1-sigma of the pointing-bias estimate per axis",
    "registration_rejected_total": "Numerically broken registration updates, not applied",
    "shard_owner": "Scale-out: 1 for the worker running the shard",
    "shard_lag_events": "Scale-out: journal events the shard has not applied yet",
    "shard_tracks_owned": "Scale-out: live tracks the shard reports",
    "shard_checkpoint_age_seconds": "Scale-out: wall seconds since the shard's last checkpoint",
}


def since_start(core: dict[str, int], baseline: dict[str, int]) -> dict[str, int]:
    """The core's counters with its ``*_total`` counters counted from ``baseline`` (the
    values after the replay: totals count this process); gauges as they are."""
    out: dict[str, int] = {}
    for key, value in core.items():
        name = key.split("{", 1)[0]
        if name in GAUGES or not name.endswith("_total"):
            out[key] = int(value)
        else:
            out[key] = int(value) - int(baseline.get(key, 0))
    return out


def bias_samples(biases: list[SensorBias]) -> dict[str, float]:
    """Prometheus samples of the sensors' pointing-bias estimates (urad), labelled by
    sensor and axis (x, y, z of ECI)."""
    out: dict[str, float] = {}
    for b in biases:
        for axis, a, s in zip("xyz", b.angles_rad, b.sigma_rad, strict=True):
            out[sample_key("tracklayer_sensor_bias_urad", sensor=b.sensor_id, axis=axis)] = a * 1e6
            out[sample_key("tracklayer_sensor_bias_sigma_urad", sensor=b.sensor_id, axis=axis)] = (
                s * 1e6
            )
    return out
