"""The shipped pytest plugin (``tracklayer.services.testing``) used as users will use it.

Simulated sensor frames go through real gRPC: client -> fusion service -> track
store -> a ``SubscribeTracks`` subscriber. The expected reports come from an
independent offline run of the same frames through one ``FusionCore``: DESIGN §6
makes the applied order (hence every report) independent of how the satellites'
concurrent streams interleave, so live and offline must agree byte for byte
(the wall-clock ``emitted_at`` aside).
"""

from __future__ import annotations

import signal
import textwrap

import pytest

from tracklayer.services.store_service.track_store import canonical_bytes
from tracklayer.services.wire.convert import frame_to_proto
from tracklayer.v1 import sensor_pb2

pytest_plugins = ["tracklayer.services.testing", "pytester"]

ACCEPTED = sensor_pb2.FRAME_STATUS_ACCEPTED
WINDOW_S = 120  # single-icbm: launch at 30 s, so 90 s of boost seen by the layer


@pytest.fixture(scope="module")
def boost_frames(sim_result):
    """The first 120 s of single-icbm's frames (delivery order) and the offline reports."""
    from tracklayer.fusion.core import FusionCore
    from tracklayer.services.wire.convert import report_to_proto

    sim = sim_result("single-icbm", duration_s=400.0)  # shared with test_simulation
    t_end = sim.frames[0].time_ns + WINDOW_S * 1_000_000_000
    frames = [f for f in sim.frames if f.time_ns < t_end]
    core = FusionCore("fusion", expected_sensors=sorted({f.sensor_id for f in frames}))
    offline = []
    for f in frames:
        offline += core.submit(f)[2]
    offline += core.flush()
    assert any(r.status.name == "CONFIRMED" for r in offline)  # the missile is tracked at all
    return frames, [report_to_proto(r) for r in offline]


def by_track(reports) -> list[bytes]:
    return [canonical_bytes(r) for r in sorted(reports, key=lambda r: (r.track_id, r.revision))]


@pytest.mark.parametrize("fixture", ["tracklayer_services", "tracklayer_services_inprocess"])
def test_store_subscriber_sees_exactly_the_reports_of_offline_tracking(
    request, fixture, boost_frames
):
    frames, offline = boost_frames
    services = request.getfixturevalue(fixture)
    client = services.client()
    sub = client.subscribe(include_current=False)

    acks = client.send_frames(frames)

    assert [(a.sensor_id, a.sequence) for a in acks] == [(f.sensor_id, f.sequence) for f in frames]
    assert {a.status for a in acks} == {ACCEPTED}
    received = sub.wait_for_count(len(offline), timeout=60.0)
    assert by_track(received) == by_track(offline)


def test_store_history_and_latest_picture_agree_with_the_subscription(
    tracklayer_services_inprocess, boost_frames
):
    frames, offline = boost_frames
    client = tracklayer_services_inprocess.client()
    sub = client.subscribe(include_current=False)
    client.send_frames(frames)
    received = sub.wait_for_count(len(offline), timeout=60.0)

    track_ids = sorted({r.track_id for r in received})
    for tid in track_ids:
        revisions = [r.revision for r in client.history(tid)]
        assert revisions == list(range(1, len(revisions) + 1))  # every revision, no gap
    latest = {r.track_id: r.revision for r in client.stored_tracks(include_deleted=True)}
    assert latest == {
        tid: max(r.revision for r in received if r.track_id == tid) for tid in track_ids
    }


def test_bad_frame_is_rejected_naming_the_field_and_later_frames_are_accepted(
    tracklayer_client, boost_frames
):
    frames, _ = boost_frames
    good = [f for f in frames if f.sensor_id == frames[0].sensor_id][:3]
    bad = sensor_pb2.SensorFrame()
    bad.CopyFrom(frame_to_proto(good[0]))
    bad.sequence += 10_000
    bad.detections.add(angular_sigma=20.0, intensity=1.0)  # microradians sent as radians
    bad.detections[-1].line_of_sight_eci.x = 1.0

    acks = tracklayer_client.send_frames([good[0], bad, *good[1:]])

    assert [a.status for a in acks] == [
        ACCEPTED,
        sensor_pb2.FRAME_STATUS_REJECTED,
        ACCEPTED,
        ACCEPTED,
    ]
    assert "angular_sigma" in acks[1].reason


def test_plugin_works_from_a_users_conftest_and_stops_services_cleanly(pytester):
    """A user's suite enabling the plugin by name gets running services and a client;
    the teardown's SIGTERM ends both subprocesses with status 0 (checked by the plugin)."""
    pytester.makeconftest('pytest_plugins = ["tracklayer.services.testing"]\n')
    pytester.makepyfile(
        test_user=textwrap.dedent(
            """
            def test_services_answer(tracklayer_services, tracklayer_client):
                assert tracklayer_client.stored_tracks() == []
                assert tracklayer_client.live_tracks() == []
                assert "reports_total" in tracklayer_client.status()
                assert tracklayer_services.fusion_process.alive()
                assert tracklayer_services.store_process.alive()
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_reports_made_while_the_store_is_down_are_stored_once_it_is_back(
    tracklayer_services, boost_frames
):
    """The subprocess helpers restart the store on its port; the fusion service's
    durable outbox then delivers every report exactly once (DESIGN §8)."""
    from tracklayer.services.wire.convert import report_to_proto

    frames, offline = boost_frames
    client = tracklayer_services.client()
    assert tracklayer_services.stop_store() == 0

    acks = client.send_frames(frames)
    assert {a.status for a in acks} == {ACCEPTED}
    tracklayer_services.start_store()

    stored = client.wait_for(
        lambda: len(reps := client.all_stored_reports()) >= len(offline) and reps, timeout=60.0
    )
    assert by_track(report_to_proto(r) for r in stored) == by_track(offline)


def test_a_service_that_does_not_exit_zero_on_sigterm_fails_the_test_with_its_log(tmp_path):
    from tracklayer.services.ops.processes import start_command
    from tracklayer.services.testing import ProcessServices

    services = ProcessServices(tmp_path)
    child = start_command("fusion", ["evaluate", str(tmp_path / "missing.mcap")], tmp_path)
    assert child.wait(60) == 2  # a user error: exit status 2
    services.stopped.append((child, 2, signal.SIGTERM))

    with pytest.raises(pytest.fail.Exception, match=r"(?s)exited with status 2.*missing\.mcap"):
        services.check_clean_exit()


def test_launcher_passes_fusion_id_and_config_to_the_service_process(
    tracklayer_launcher, boost_frames
):
    """A 5 s report interval and another fusion id, given to the launcher, give the
    reports an offline FusionCore with that id and config gives."""
    from tracklayer.fusion.config import FusionConfig
    from tracklayer.fusion.core import FusionCore
    from tracklayer.services.wire.convert import report_to_proto

    frames, _ = boost_frames
    config = {"report_interval_s": 5.0}
    core = FusionCore(
        "fu2", FusionConfig.from_mapping(config), expected_sensors={f.sensor_id for f in frames}
    )
    offline = []
    for f in frames:
        offline += core.submit(f)[2]
    offline = [report_to_proto(r) for r in offline + core.flush()]

    services = tracklayer_launcher(fusion_id="fu2", fusion_config=config)
    client = services.client()
    sub = client.subscribe(include_current=False)
    client.send_frames(frames)

    received = sub.wait_for_count(len(offline), timeout=60.0)
    assert {r.track_id.rpartition("-")[0] for r in received} == {"fu2"}
    assert by_track(received) == by_track(offline)
