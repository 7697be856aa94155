"""FusionCore: validation + ordering + tracker, counters, flush semantics.

A small recording tracker double stands in for ``fusion.tracker.Tracker`` so these
tests check the joining logic alone: which frames reach the tracker, in what order,
and what the core reports and counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from tracker_double import RecordingTracker

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.core import FusionCore
from tracklayer.fusion.domain import NS_PER_S, FrameStatus, SensorFrame, TrackStatus

T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z


def at(sid: str, seq: int, t_s: float, n_det: int = 1, sigma: float = 20e-6) -> SensorFrame:
    return SensorFrame(
        sensor_id=sid,
        sequence=seq,
        time_ns=T0 + int(round(t_s * NS_PER_S)),
        position=[7.4e6, 0.0, 0.0],
        velocity=[0.0, 7.35e3, 0.0],
        los=np.tile([0.0, 0.6, 0.8], (n_det, 1)),
        sigma=np.full(n_det, sigma),
        intensity=np.ones(n_det),
    )


def core(**kw) -> FusionCore:
    kw.setdefault("tracker_factory", RecordingTracker)
    return FusionCore("fz", FusionConfig(), **kw)


def test_tracker_sees_frames_in_application_order_whatever_the_delivery_order():
    frames = [at("b", 1, 2.0), at("a", 2, 3.0), at("a", 1, 1.0), at("b", 2, 2.5)]
    orders = []
    for delivery in (frames, frames[::-1]):
        c = core(expected_sensors=["a", "b"])
        for f in delivery:
            c.submit(f)
        c.flush()
        orders.append([(f.sensor_id, f.sequence) for f in c.tracker.frames])
    assert orders[0] == orders[1] == [("a", 1), ("b", 1), ("b", 2), ("a", 2)]


def test_submit_returns_status_reason_and_released_reports():
    c = core(expected_sensors=["a"])
    status, reason, reports = c.submit(at("a", 1, 1.0))
    assert (status, reason, reports) == (FrameStatus.ACCEPTED, "", [])  # held by watermark
    status, reason, reports = c.submit(at("a", 2, 8.0))  # watermark 8 - 6 = 2 s
    assert status is FrameStatus.ACCEPTED
    assert [r.time_ns for r in reports] == [T0 + NS_PER_S]


def test_rejected_frame_names_the_field_and_never_reaches_the_tracker():
    c = core(expected_sensors=["a"])
    status, reason, _ = c.submit(at("a", 1, 1.0, sigma=20.0))
    assert status is FrameStatus.REJECTED
    assert reason.startswith("detections[0].angular_sigma:")
    c.flush()
    assert c.tracker.frames == []


def test_allow_list_rejects_other_sensors():
    c = core(allowed_sensors=["a"])
    status, reason, _ = c.submit(at("x", 1, 1.0))
    assert status is FrameStatus.REJECTED and "allow-list" in reason


def test_counters_use_the_prometheus_names_and_count_every_status():
    c = core(expected_sensors=["a"])
    c.submit(at("a", 1, 10.0, n_det=3))
    c.submit(at("a", 1, 10.0, n_det=3))  # duplicate
    c.submit(at("a", 2, 4.0))  # 10 - 6 = 4: late
    c.submit(at("a", 3, 11.0, sigma=0.0))  # rejected
    c.submit(at("a", 4, 11.0, n_det=0))  # heartbeat
    c.flush()
    n = c.counters
    assert n['frames_total{status="accepted"}'] == 2
    assert n['frames_total{status="duplicate"}'] == 1
    assert n['frames_total{status="late"}'] == n["late_frames_total"] == 1
    assert n['frames_total{status="rejected"}'] == 1
    assert n["detections_total"] == 3  # detections of accepted frames only
    assert n["reports_total"] == 3  # two frames applied + the flush's DELETED
    assert n["tracks_live"] == 0 and n["frames_buffered"] == 0


def test_flush_applies_everything_then_flushes_tracker_once():
    c = core(expected_sensors=["a", "b"])
    c.submit(at("a", 1, 1.0))
    reports = c.flush()
    assert [r.status for r in reports] == [TrackStatus.TENTATIVE, TrackStatus.DELETED]
    assert c.flush() == [] and c.tracker.flushes == 1


def test_last_stream_closing_is_the_same_flush_as_end_of_input():
    c = core()
    c.open_stream("a")
    c.open_stream("b")
    c.submit(at("a", 1, 1.0))
    c.submit(at("b", 1, 2.0))
    assert c.close_stream("a") == []
    reports = c.close_stream("b")
    assert [r.status for r in reports] == [TrackStatus.TENTATIVE] * 2 + [TrackStatus.DELETED]
    assert c.tracker.flushes == 1


def test_reports_carry_the_data_time_of_the_frame_that_produced_them():
    c = core(expected_sensors=["a"])
    c.submit(at("a", 1, 1.0))
    c.submit(at("a", 2, 2.0))
    emitted = c.flush_timed()
    t1, t2 = T0 + NS_PER_S, T0 + 2 * NS_PER_S
    assert [e.data_time_ns for e in emitted] == [t1, t2, t2]  # flush: last applied time


def test_idle_timeout_counts_and_releases():
    c = core(live=True)
    c.open_stream("a", now=0.0)
    c.open_stream("b", now=0.0)
    c.submit(at("a", 1, 1.0), now=1.0)
    c.submit(at("a", 2, 30.0), now=30.0)
    expired, reports = c.expire_idle(now=30.0, timeout_s=10.0)
    assert expired == ["b"] and len(reports) == 1
    assert c.counters["idle_timeouts_total"] == 1


def test_idle_timeout_needs_a_live_core():
    with pytest.raises(ValueError, match="^expire_idle:"):
        core().expire_idle(now=0.0, timeout_s=10.0)


def test_live_reports_come_from_the_tracker():
    c = core(expected_sensors=["a"])
    c.submit(at("a", 1, 1.0))
    c.submit(at("a", 2, 9.0))
    assert [r.revision for r in c.live_reports()] == [1]


def test_lateness_comes_from_the_config():
    c = FusionCore(
        "fz", FusionConfig(allowed_lateness_s=2.0), ["a"], tracker_factory=RecordingTracker
    )
    c.submit(at("a", 1, 10.0))
    assert c.submit(at("a", 2, 8.0))[0] is FrameStatus.LATE  # 10 - 2 = 8: at the bound


def test_unconvertible_frame_is_counted_rejected_and_changes_nothing():
    c = core(expected_sensors=["a"])
    status, reason, reports = c.reject("sensor_position_eci: not set")
    assert (status, reason, reports) == (FrameStatus.REJECTED, "sensor_position_eci: not set", [])
    assert c.counters['frames_total{status="rejected"}'] == 1
    assert c.orderer.buffered == 0 and c.orderer.latest_ns("a") is None
