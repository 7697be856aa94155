"""What a frame streamer run is given and gives back: options, progress, result, errors.

Shared by :class:`~tracklayer.services.clients.frame_streamer.FrameStreamer`, the
``sensors`` and ``replay`` commands (options, summary) and the progress line
(:class:`StreamProgress`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from tracklayer.services.limits import KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS
from tracklayer.v1 import sensor_pb2

#: Status codes after which a stream is reopened and its unacknowledged frames resent.
#: Not ABORTED: the service ends a stream so when a newer stream of the same sensor
#: replaced it (DESIGN §6 rule 5), i.e. another client is streaming this sensor.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

#: Channel options: reconnect quickly after a fusion-service restart (gRPC's
#: default back-off starts at 1 s and grows to 120 s).
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    # a silently dead connection (half-open, black-holed) is noticed within 20 s and the
    # streams reopen by themselves (issue 15)
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),  # newer gRPC: default 60 s
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),  # default 5 min: too late
)

STATUS_NAMES = {
    v: sensor_pb2.FrameStatus.Name(v).removeprefix("FRAME_STATUS_")
    for v in sensor_pb2.FrameStatus.values()
}


class StreamerError(Exception):
    """The fusion service cannot be reached or refused the run; one line, names the address."""


def check_address(address: str, flag: str = "--fusion") -> str:
    """Validate ``HOST:PORT`` (IPv6 as ``[::1]:PORT``); return it unchanged or raise ValueError."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{flag}: expected HOST:PORT (e.g. 127.0.0.1:50051), got {address!r}")
    return address


@dataclass(frozen=True, slots=True)
class StreamerOptions:
    """How frames are paced and batched.

    ``speed``: log-time seconds per wall second; ``None`` streams as fast as the
    service acknowledges (``--max-speed``). ``window_s``: how far (log time, s)
    a released frame may be ahead of the oldest unacknowledged frame of any
    stream. ``max_in_flight``: unacknowledged frames per stream.
    """

    speed: float | None = 1.0
    window_s: float = 30.0
    max_in_flight: int = 512
    max_batch_frames: int = 100
    max_batch_bytes: int = 1 << 20
    connect_timeout_s: float = 10.0
    reconnect_timeout_s: float = 60.0
    progress_interval_s: float = 0.25
    source_chunk: int = 512

    def __post_init__(self) -> None:
        if self.speed is not None and not self.speed > 0:
            raise ValueError(f"speed: must be > 0, got {self.speed}")
        if not self.window_s > 0:
            raise ValueError(f"window_s: must be > 0, got {self.window_s}")
        if self.max_in_flight < 1 or self.max_batch_frames < 1:
            raise ValueError("max_in_flight and max_batch_frames: must be >= 1")


@dataclass(slots=True)
class StreamProgress:
    """A snapshot for progress displays; ``log_time_s`` is seconds since the first frame."""

    released: int
    acked: int
    log_time_s: float
    counts: dict[str, int]
    reconnects: int
    source_done: bool


@dataclass(slots=True)
class StreamResult:
    """What a run did: acks by status (names as ``ACCEPTED`` ...), resends and timing."""

    frames: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {n: 0 for n in STATUS_NAMES.values()})
    resent: int = 0
    resent_duplicates: int = 0
    reconnects: int = 0
    sensors: int = 0
    wall_s: float = 0.0
    log_span_s: float = 0.0
    max_behind_s: float = 0.0  # paced runs: worst lateness of a frame's release (source too slow)
    reasons: dict[str, int] = field(default_factory=dict)
    per_sensor: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def acked(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """Human summary: one line of totals, then up to five distinct rejection/late reasons."""
        rate = self.frames / self.wall_s if self.wall_s > 0 else 0.0
        parts = [f"{name} {n}" for name, n in self.counts.items() if n or name != "UNSPECIFIED"]
        line = (
            f"{self.frames} frames on {self.sensors} streams in {self.wall_s:.2f} s "
            f"({rate:.0f} frames/s, {self.log_span_s:.1f} s of log time); acks: " + ", ".join(parts)
        )
        if self.resent_duplicates:
            line += (
                f" ({self.resent_duplicates} DUPLICATE were resends of frames the service "
                "already held)"
            )
        if self.reconnects:
            line += f"; {self.reconnects} reconnects, {self.resent} frames resent"
        if self.max_behind_s > 1.0:
            line += f"; fell up to {self.max_behind_s:.1f} s behind the requested pace"
        lines = [line]
        for reason, n in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  {n} x {reason}")
        return "\n".join(lines)
