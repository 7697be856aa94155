"""Sources of frames for the frame streamer: ``(log_time_ns, v1.SensorFrame)`` in
delivery order, from a recording (``tracklayer replay``) or a live simulation
(``tracklayer sensors``)."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import DecodeError

from tracklayer.fusion.domain import NS_PER_S, SensorFrame
from tracklayer.services.wire.convert import frame_to_proto
from tracklayer.services.wire.recording import TOPIC_FRAMES
from tracklayer.v1 import sensor_pb2


class RecordedFrames:
    """Iterates ``(log_time_ns, v1.SensorFrame)`` of a recording's ``/sensor_frames``.

    Keeps file order; selects by sensor and by log time relative to the first
    frame of the file (``[start_s, end_s]``). Frames that do not parse as a
    ``SensorFrame`` at all cannot be replayed (they carry no sensor id) and
    are counted in ``undecodable``.
    """

    def __init__(self, reader, sensors: set[str] | None, start_s: float, end_s: float | None):
        self.reader = reader
        self.sensors = sensors
        self.start_ns = int(round(start_s * NS_PER_S))
        self.end_ns = None if end_s is None else int(round(end_s * NS_PER_S))
        self.undecodable = 0

    def __iter__(self) -> Iterator[tuple[int, sensor_pb2.SensorFrame]]:
        first = None
        for _, log_time, data in self.reader.raw_messages([TOPIC_FRAMES]):
            if first is None:
                first = log_time
            rel = log_time - first
            if rel < self.start_ns or (self.end_ns is not None and rel > self.end_ns):
                continue
            try:
                msg = sensor_pb2.SensorFrame.FromString(data)
            except DecodeError:
                self.undecodable += 1
                continue
            if self.sensors is not None and msg.sensor_id not in self.sensors:
                continue
            yield log_time, msg


def simulated_frames(
    scenario, seed: int | None, duration_s: float | None, satellites: set[str] | None
) -> Iterator[tuple[int, sensor_pb2.SensorFrame]]:
    """``(delivery log time ns, v1.SensorFrame)`` of the hosted satellites, in delivery order."""
    from tracklayer.sensors.simulation import simulate

    for log_time, item in simulate(scenario, seed=seed, duration_s=duration_s):
        if isinstance(item, SensorFrame) and (satellites is None or item.sensor_id in satellites):
            yield log_time, frame_to_proto(item)
