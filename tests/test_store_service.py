"""Track store (TrackStoreService) through real gRPC clients on ephemeral ports."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tracklayer.services.store_service.servicer import start_track_store_server
from tracklayer.v1 import track_pb2, track_store_service_pb2_grpc
from tracklayer.v1 import track_store_service_pb2 as ts

STORED = track_pb2.PUBLISH_STATUS_STORED
DUPLICATE = track_pb2.PUBLISH_STATUS_DUPLICATE
REJECTED = track_pb2.PUBLISH_STATUS_REJECTED


def report(track_id: str, revision: int, *, x: float = 7.0e6, status: int = 2, emitted: int = 0):
    """A small valid report; ``x`` varies the content, ``emitted`` the wall-clock field."""
    r = track_pb2.TrackReport(track_id=track_id, revision=revision, status=status)
    r.time.seconds = 1_767_225_600 + revision
    r.position_eci.x, r.position_eci.y, r.position_eci.z = x, 1.0e5, 2.0e5
    r.velocity_eci.x = 7.0e3
    r.covariance.extend([float(i == j) for i in range(6) for j in range(6)])
    r.latitude_deg, r.longitude_deg, r.altitude_m = 10.0, 20.0, 3.0e5
    r.sensor_ids.extend(["sat-1-1", "sat-2-3"])
    if emitted:
        r.emitted_at.seconds = emitted
    return r


async def publish(stub, batches):
    """Publish each batch as one request on one stream; returns the acks per batch."""
    call = stub.PublishTracks()
    out = []
    for batch in batches:
        await call.write(ts.PublishTracksRequest(reports=batch))
        resp = await call.read()
        out.append(list(resp.acks))
    await call.done_writing()
    assert await call.read() is grpc.aio.EOF
    return out


class _Store:
    def __init__(self, db):
        self.db = db

    async def __aenter__(self):
        self.server = await start_track_store_server(self.db)
        self.channel = grpc.aio.insecure_channel(self.server.address)
        self.stub = track_store_service_pb2_grpc.TrackStoreServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc):
        await self.channel.close()
        await self.server.stop(0.5)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tracks.sqlite"


def test_publish_acks_each_report_in_order_as_stored(db):
    async def body():
        async with _Store(db) as s:
            reps = [report("f-1", 1), report("f-2", 1), report("f-1", 2)]
            (acks,) = await publish(s.stub, [reps])
            assert [(a.track_id, a.revision, a.status) for a in acks] == [
                ("f-1", 1, STORED),
                ("f-2", 1, STORED),
                ("f-1", 2, STORED),
            ]

    run(body())


def test_true_duplicate_differing_only_in_emitted_at_is_acked_duplicate(db):
    async def body():
        async with _Store(db) as s:
            first = await publish(s.stub, [[report("f-1", 1, emitted=100)]])
            again = await publish(s.stub, [[report("f-1", 1, emitted=200)]])
            assert first[0][0].status == STORED
            assert again[0][0].status == DUPLICATE
            hist = await s.stub.GetTrackHistory(ts.GetTrackHistoryRequest(track_id="f-1"))
            # The first copy is kept as received: its wall clock, not the duplicate's.
            assert [r.emitted_at.seconds for r in hist.reports] == [100]

    run(body())


def test_sensor_positions_are_not_content_a_republished_report_is_a_duplicate(db):
    """Where the sensors were is a display aid set on emission (a fusion service's replay
    after a restart may know fewer positions): it never makes a report conflict."""

    def placed(lat: float):
        r = report("f-1", 1)
        r.sensor_positions.add(sensor_id="sat-1-1", latitude_deg=lat, altitude_m=8e5)
        return r

    async def body():
        async with _Store(db) as s:
            first = await publish(s.stub, [[placed(10.0)]])
            again = await publish(s.stub, [[placed(11.0)], [report("f-1", 1)]])
            assert first[0][0].status == STORED
            assert [a[0].status for a in again] == [DUPLICATE, DUPLICATE]
            hist = await s.stub.GetTrackHistory(ts.GetTrackHistoryRequest(track_id="f-1"))
            assert [p.latitude_deg for p in hist.reports[0].sensor_positions] == [10.0]

    run(body())


def test_conflicting_content_for_a_stored_revision_is_rejected_naming_the_field(db):
    async def body():
        async with _Store(db) as s:
            await publish(s.stub, [[report("f-1", 1)]])
            (acks,) = await publish(s.stub, [[report("f-1", 1, x=7.1e6)]])
            assert acks[0].status == REJECTED
            assert "position_eci" in acks[0].reason and "f-1 revision 1" in acks[0].reason
            hist = await s.stub.GetTrackHistory(ts.GetTrackHistoryRequest(track_id="f-1"))
            assert hist.reports[0].position_eci.x == 7.0e6  # the stored one is untouched

    run(body())


def test_invalid_report_is_rejected_naming_the_field_and_stream_continues(db):
    async def body():
        async with _Store(db) as s:
            bad_id = report("", 1)
            bad_rev = report("f-9", 0)
            bad_cov = report("f-8", 1)
            del bad_cov.covariance[3:]
            acks = await publish(s.stub, [[bad_id, bad_rev, bad_cov], [report("f-1", 1)]])
            assert [a.status for a in acks[0]] == [REJECTED] * 3
            assert acks[0][0].reason.startswith("track_id:")
            assert acks[0][1].reason.startswith("revision:")
            assert acks[0][2].reason.startswith("covariance:")
            assert acks[1][0].status == STORED

    run(body())


def test_list_tracks_gives_latest_revision_and_deleted_only_on_request(db):
    async def body():
        async with _Store(db) as s:
            await publish(
                s.stub,
                [
                    [
                        report("f-1", 1),
                        report("f-1", 2),
                        report("f-2", 1),
                        report("f-2", 2, status=4),
                    ]
                ],
            )
            live = await s.stub.ListTracks(ts.ListTracksRequest())
            every = await s.stub.ListTracks(ts.ListTracksRequest(include_deleted=True))
            assert [(r.track_id, r.revision) for r in live.tracks] == [("f-1", 2)]
            assert [(r.track_id, r.revision) for r in every.tracks] == [("f-1", 2), ("f-2", 2)]

    run(body())


def test_history_lists_every_revision_in_order(db):
    async def body():
        async with _Store(db) as s:
            await publish(s.stub, [[report("f-1", 1), report("f-2", 1)], [report("f-1", 2)]])
            await publish(s.stub, [[report("f-1", 3)]])
            hist = await s.stub.GetTrackHistory(ts.GetTrackHistoryRequest(track_id="f-1"))
            assert [r.revision for r in hist.reports] == [1, 2, 3]

    run(body())


def test_history_of_empty_id_is_invalid_argument_and_unknown_id_not_found(db):
    async def body():
        async with _Store(db) as s:
            with pytest.raises(grpc.aio.AioRpcError) as empty:
                await s.stub.GetTrackHistory(ts.GetTrackHistoryRequest(track_id=""))
            assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "track_id" in empty.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await s.stub.GetTrackHistory(ts.GetTrackHistoryRequest(track_id="f-404"))
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    run(body())


def test_subscription_starts_with_current_picture_then_streams_new_reports_once(db):
    async def body():
        async with _Store(db) as s:
            await publish(
                s.stub, [[report("f-1", 1), report("f-2", 1), report("f-2", 2, status=4)]]
            )
            call = s.stub.SubscribeTracks(ts.SubscribeTracksRequest(include_current=True))
            first = await call.read()
            assert [(r.track_id, r.revision) for r in first.reports] == [("f-1", 1)]
            # A duplicate is not stored again, so subscribers do not see it twice.
            await publish(s.stub, [[report("f-1", 1), report("f-1", 2)]])
            nxt = await call.read()
            assert [(r.track_id, r.revision) for r in nxt.reports] == [("f-1", 2)]
            call.cancel()

    run(body())


def test_reports_and_duplicate_detection_survive_a_restart(db):
    async def body():
        async with _Store(db) as s:
            await publish(s.stub, [[report("f-1", 1), report("f-1", 2)]])
        async with _Store(db) as s:
            hist = await s.stub.GetTrackHistory(ts.GetTrackHistoryRequest(track_id="f-1"))
            assert [r.revision for r in hist.reports] == [1, 2]
            (acks,) = await publish(s.stub, [[report("f-1", 2), report("f-1", 2, x=1.0)]])
            assert [a.status for a in acks] == [DUPLICATE, REJECTED]
            current = await s.stub.ListTracks(ts.ListTracksRequest())
            assert [(r.track_id, r.revision) for r in current.tracks] == [("f-1", 2)]

    run(body())


def test_health_serves_and_reflection_lists_the_store_service(db):
    async def body():
        async with _Store(db) as s:
            health = health_pb2_grpc.HealthStub(s.channel)
            resp = await health.Check(
                health_pb2.HealthCheckRequest(service="tracklayer.v1.TrackStoreService")
            )
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
            refl = reflection_pb2_grpc.ServerReflectionStub(s.channel)
            call = refl.ServerReflectionInfo()
            await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
            answer = await call.read()
            await call.done_writing()
            names = {svc.name for svc in answer.list_services_response.service}
            assert {"tracklayer.v1.TrackStoreService", "grpc.health.v1.Health"} <= names

    run(body())


def test_metrics_endpoint_reports_the_publish_counters(db, tmp_path):
    async def body():
        server = await start_track_store_server(db, metrics_port=0)
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = track_store_service_pb2_grpc.TrackStoreServiceStub(ch)
                await publish(stub, [[report("f-1", 1), report("f-1", 1)]])
            url = f"http://127.0.0.1:{server.metrics.port}/metrics"
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
        finally:
            await server.stop(0.5)
        assert 'publish_total{status="stored"} 1.0' in text
        assert 'publish_total{status="duplicate"} 1.0' in text
        assert "reports_stored 1.0" in text

    run(body())


def test_consumer_process_exits_zero_promptly_on_sigterm(db):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracklayer.services.cli",
            "consumer",
            "--listen",
            "127.0.0.1:0",
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        assert m, line + proc.stderr.read()
        with grpc.insecure_channel(m.group(1)) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        # "Within a few seconds" (issue 5): idle server, so well under the 2 s grace.
        assert code == 0 and time.monotonic() - t0 < 3.0
        assert "server_stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
