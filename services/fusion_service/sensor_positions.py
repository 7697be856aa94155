"""Where the sensors are: each sensor's position at its latest accepted frame, attached to
the reports the fusion service emits (``TrackReport.sensor_positions``) so that displays
downstream (the track store's live map) can draw the satellites and their lines of sight.

A display aid, not tracking state: not journaled or checkpointed (after a restart it
fills again from the next frames), and not part of a report's content.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tracklayer.fusion import geodesy
from tracklayer.fusion.domain import NS_PER_S, SensorFrame, SensorPosition
from tracklayer.services.wire.convert import sensor_position_to_proto
from tracklayer.v1 import track_pb2


class SensorPositions:
    """The latest accepted frame's position of each sensor; geodetic on first use."""

    def __init__(self) -> None:
        self._frames: dict[str, tuple[int, np.ndarray]] = {}
        self._geodetic: dict[str, SensorPosition] = {}
        self._messages: dict[str, track_pb2.SensorPosition] = {}

    def seen(self, frame: SensorFrame) -> None:
        """Note an accepted frame (an older one than the sensor's latest changes nothing)."""
        old = self._frames.get(frame.sensor_id)
        if old is None or frame.time_ns > old[0]:
            self._frames[frame.sensor_id] = (frame.time_ns, frame.position)
            self._geodetic.pop(frame.sensor_id, None)
            self._messages.pop(frame.sensor_id, None)

    def of(self, sensor_ids: Iterable[str]) -> tuple[SensorPosition, ...]:
        """Positions of those of ``sensor_ids`` seen so far, in the given order."""
        out = []
        for sid in sensor_ids:
            pos = self._geodetic.get(sid)
            if pos is None:
                frame = self._frames.get(sid)
                if frame is None:
                    continue
                t_ns, r = frame
                lat, lon, alt = geodesy.teme_to_geodetic(r, t_ns / NS_PER_S)
                pos = self._geodetic[sid] = SensorPosition(
                    sid, t_ns, float(lat), float(lon), float(alt)
                )
            out.append(pos)
        return tuple(out)

    def messages(self, sensor_ids: Iterable[str]) -> list[track_pb2.SensorPosition]:
        """:meth:`of` as wire messages, each made once per sensor position (issue 13: at
        raid scale ~1,000 reports a second each carry several)."""
        out = []
        for sid in sensor_ids:
            msg = self._messages.get(sid)
            if msg is None:
                pos = self.of((sid,))
                if not pos:
                    continue
                msg = self._messages[sid] = sensor_position_to_proto(pos[0])
            out.append(msg)
        return out

    def __len__(self) -> int:
        return len(self._frames)
