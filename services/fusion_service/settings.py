"""What a fusion service runs with: :class:`FusionSettings` and the default file paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.core import TrackerFactory


@dataclass(frozen=True)
class FusionSettings:
    """What a fusion service runs with (the first three are pinned in the journal)."""

    fusion_id: str = "fusion"
    config: FusionConfig = field(default_factory=FusionConfig)
    sensors: tuple[str, ...] = ()  # allow-list and initially expected; () = any sensor
    journal_path: Path = Path("fusion.journal.sqlite")
    outbox_path: Path = Path("fusion.outbox.sqlite")
    store_target: str | None = None  # HOST:PORT of the track store; None = keep in outbox
    idle_timeout_s: float = 10.0  # 0 = off
    max_pending_frames: int = 8192
    max_buffered_frames: int = 20_000  # accepted, waiting for the watermark (flood guard)
    tracker_factory: TrackerFactory | None = None  # tests; default fusion.tracker.Tracker
    synchronous: str = "FULL"  # SQLite durability of journal and outbox
    store_max_backoff_s: float = 5.0  # longest wait between two store reconnection tries
    # Checkpoints (issue 15: restart to SERVING within 5 s under the soak's load): every
    # ``checkpoint_every`` journal events, or every ``checkpoint_interval_s`` wall seconds
    # with events since the last one (0 = never, for either).
    checkpoint_every: int = 500
    checkpoint_interval_s: float = 15.0
    max_sensors: int = 10_000  # distinct sensors without an allow-list (0 = no cap)
    max_streams_per_client: int = 1_000  # open StreamFrames calls per client (0 = no cap)
    # The tracking core in a process of its own (tracking_remote; SQLite journal only):
    # ``tracklayer fusion`` sets it; False tracks on a thread of the engine's process.
    tracking_process: bool = False
    # Added to the tracking process's nice value (its CPU priority below the engine's:
    # under contention for the cores the acks' event loop runs first; DESIGN §8.7).
    # 0 = the engine's priority. ``tracklayer fusion --tracking-nice`` sets it.
    tracking_nice: int = 0
    store_credentials: Any = None  # grpc.ChannelCredentials for mTLS to the store; None = plaintext


def default_paths(fusion_id: str) -> tuple[Path, Path]:
    """DESIGN §8 defaults: ``./<id>.journal.sqlite`` and ``./<id>.outbox.sqlite``."""
    return Path(f"{fusion_id}.journal.sqlite"), Path(f"{fusion_id}.outbox.sqlite")
