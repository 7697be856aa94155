"""A recording test double of ``fusion.tracker.Tracker`` (process / flush / live_reports).

It lets the pipeline and ``tracklayer track`` tests check the joining logic alone:
which frames reach the tracker, in what order, and where its reports go.
"""

from __future__ import annotations

import time

import numpy as np

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import SensorFrame, TrackReport, TrackStatus


class RecordingTracker:
    """Test double: one report per applied frame (TENTATIVE for the first two, then
    CONFIRMED; it names the frame's sensor), a DELETED report per flush."""

    def __init__(self, fusion_id: str, config: FusionConfig) -> None:
        self.fusion_id, self.config = fusion_id, config
        self.frames: list[SensorFrame] = []
        self.flushes = 0
        self._latest: TrackReport | None = None

    def _report(self, t_ns: int, status: TrackStatus, sensors: tuple[str, ...] = ()) -> TrackReport:
        rev = 1 if self._latest is None else self._latest.revision + 1
        r = TrackReport(
            track_id=f"{self.fusion_id}-1",
            revision=rev,
            status=status,
            time_ns=t_ns,
            position=np.zeros(3),
            velocity=np.zeros(3),
            covariance=np.eye(6),
            latitude_deg=0.0,
            longitude_deg=0.0,
            altitude_m=0.0,
            sensor_ids=sensors,
            update_count=len(self.frames),
        )
        self._latest = r
        return r

    def process(self, frame: SensorFrame) -> list[TrackReport]:
        self.frames.append(frame)
        status = TrackStatus.CONFIRMED if len(self.frames) >= 3 else TrackStatus.TENTATIVE
        return [self._report(frame.time_ns, status, (frame.sensor_id,))]

    def flush(self) -> list[TrackReport]:
        self.flushes += 1
        return [self._report(self._latest.time_ns, TrackStatus.DELETED)] if self._latest else []

    def live_reports(self) -> list[TrackReport]:
        live = self._latest is not None and self._latest.status != TrackStatus.DELETED
        return [self._latest] if live else []


class SlowTracker(RecordingTracker):
    """:class:`RecordingTracker` that takes ``DELAY_S`` per frame, blocking as the real
    tracker's work does (a raid's frame costs ~4 ms)."""

    DELAY_S = 0.02

    def process(self, frame: SensorFrame) -> list[TrackReport]:
        time.sleep(self.DELAY_S)
        return super().process(frame)
