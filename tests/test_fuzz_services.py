"""Fuzzing the live services with random and malformed messages (issue 7 item 3).

One fusion service (real tracker) forwarding to one track store runs in this
process for the whole module; hypothesis sends every RPC random and broken
input: NaN and infinite numbers, empty and huge lists, extreme timestamps,
duplicate and reordered sequences, very long strings, random bytes on the
wire. After each example the services must still answer (no crash, no hang:
every call has a deadline), every frame must get exactly one ack in order,
every frame that breaks a DESIGN §4 rule must be REJECTED, and every ack must
be counted. ``TRACKLAYER_FUZZ_EXAMPLES=N`` runs N examples per test with
fresh randomness (default: a fixed, derandomized set, so the suite is
reproducible).
"""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracklayer.services.fusion_service.servicer import start_fusion_server
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.store_service.servicer import start_track_store_server
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
from tracklayer.v1 import sensor_pb2, track_pb2
from tracklayer.v1 import track_store_service_pb2 as ts
from tracklayer.v1 import track_store_service_pb2_grpc as ts_grpc

REJECTED = sensor_pb2.FRAME_STATUS_REJECTED
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
R_SAT = 7.378e6  # m, a 1,000 km orbit radius
CALL_TIMEOUT_S = 20.0  # any call slower than this on a tiny input counts as a hang

_EXAMPLES = os.environ.get("TRACKLAYER_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES) if _EXAMPLES else 30,
    derandomize=_EXAMPLES is None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Env:
    """Store + fusion service on one private event loop, kept across examples. ``mode``
    "nats": the scale-out front door (``fusion --nats``) on a broker of its own, whose
    answers to bad input must be exactly the embedded service's (issue 14, proof 5)."""

    def __init__(self, tmp: Path, mode: str = "embedded") -> None:
        self.loop = asyncio.new_event_loop()
        self.tmp, self.mode = tmp, mode
        self.broker = self.link = None
        self.run(self._start())

    def run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, CALL_TIMEOUT_S * 3))

    async def _start(self) -> None:
        self.store = await start_track_store_server(self.tmp / "store.sqlite")
        settings = FusionSettings(
            fusion_id="fz",
            journal_path=self.tmp / "fz.journal.sqlite",
            outbox_path=self.tmp / "fz.outbox.sqlite",
            store_target=self.store.address,
            # Random declarations leave sensors that never stream: a short idle
            # timeout bounds how long they may hold the watermark (DESIGN §6 rule 2).
            idle_timeout_s=0.5,
            synchronous="OFF",
            store_max_backoff_s=0.2,
        )
        if self.mode == "nats":
            from tracklayer.services.scaleout.broker import start_broker
            from tracklayer.services.scaleout.front_door import start_front_door_server

            self.broker = start_broker("127.0.0.1:0", self.tmp / "broker")
            self.fusion, self.link = await start_front_door_server(
                settings, "127.0.0.1:0", self.broker.url
            )
        else:
            self.fusion = await start_fusion_server(settings)
        self.fchan = grpc.aio.insecure_channel(self.fusion.address)
        self.schan = grpc.aio.insecure_channel(self.store.address)
        self.fstub = fs_grpc.FusionServiceStub(self.fchan)
        self.sstub = ts_grpc.TrackStoreServiceStub(self.schan)

    async def alive(self) -> None:
        """Both services answer health and status within the deadline."""
        for chan in (self.fchan, self.schan):
            resp = await health_pb2_grpc.HealthStub(chan).Check(
                health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S
            )
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        await self.fstub.GetStatus(fs.GetStatusRequest(), timeout=CALL_TIMEOUT_S)
        await self.sstub.ListTracks(ts.ListTracksRequest(), timeout=CALL_TIMEOUT_S)

    async def frame_counts(self) -> dict[str, int]:
        status = await self.fstub.GetStatus(fs.GetStatusRequest(), timeout=CALL_TIMEOUT_S)
        return {k: v for k, v in status.counters.items() if k.startswith("frames_total")}

    async def _stop(self) -> None:
        await self.fchan.close()
        await self.schan.close()
        await self.fusion.stop(grace=0.5, drain_timeout_s=0.5)
        await self.store.stop(0.5)
        if self.link is not None:
            self.link.close()
        if self.broker is not None:
            self.broker.stop(5.0)

    def close(self) -> None:
        self.run(self._stop())
        self.loop.close()


@pytest.fixture(scope="module", params=["embedded", "nats"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if request.param == "nats":
        pytest.importorskip("nats")
    e = Env(tmp_path_factory.mktemp("fuzz"), request.param)
    yield e
    e.close()


# ---------------------------------------------------------------- strategies

any_float = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324]
)
sensor_ids = st.sampled_from(["sat-1-1", "sat-1-2", "sat-2-1"]) | st.sampled_from(
    ["", " ", "sat-1-1\x00", "\u00e9\u4e2d\U0001f680", "x" * 70_000]
)
sequences = st.integers(0, 12) | st.sampled_from([2**63, 2**64 - 1])


@st.composite
def unit_vectors(draw) -> tuple[float, float, float]:
    """An exact unit vector (|u| - 1 ~ 1e-16), or a clearly broken one."""
    x, y, z = (draw(st.floats(-1, 1)) for _ in range(3))
    n = math.sqrt(x * x + y * y + z * z)
    if draw(st.integers(0, 5)) == 0 or n < 1e-3:  # broken: garbage or |u| far from 1
        return (draw(any_float), draw(any_float), draw(any_float))
    return (x / n, y / n, z / n)


@st.composite
def detections(draw, n: int) -> list[sensor_pb2.Detection]:
    sigma = st.sampled_from([2e-5, 1e-3, 1e-2]) | any_float
    out = []
    for _ in range(n):
        u = draw(unit_vectors())
        d = sensor_pb2.Detection(angular_sigma=draw(sigma), intensity=draw(any_float))
        d.line_of_sight_eci.x, d.line_of_sight_eci.y, d.line_of_sight_eci.z = u
        out.append(d)
    return out


@st.composite
def frames(draw) -> sensor_pb2.SensorFrame:
    f = sensor_pb2.SensorFrame(sensor_id=draw(sensor_ids), sequence=draw(sequences))
    if draw(st.integers(0, 7)) == 0:  # extreme timestamps, valid or not for Timestamp
        f.time.seconds = draw(st.integers(-(2**63), 2**63 - 1))
        f.time.nanos = draw(st.integers(-(2**31), 2**31 - 1))
    else:
        f.time.seconds = T0 + draw(st.integers(0, 900))
        f.time.nanos = draw(st.integers(0, 999_999_999))
    pos = (R_SAT, 0.0, 0.0) if draw(st.booleans()) else tuple(draw(any_float) for _ in "xyz")
    f.sensor_position_eci.x, f.sensor_position_eci.y, f.sensor_position_eci.z = pos
    f.sensor_velocity_eci.y = 7.35e3 if draw(st.booleans()) else draw(any_float)
    size = draw(st.sampled_from([0, 1, 3, 10]) | st.integers(0, 40))
    f.detections.extend(draw(detections(size)))
    if draw(st.integers(0, 15)) == 0:
        # A huge list (vectorised validation): 5,000 copies, the last one broken.
        bad = sensor_pb2.Detection(angular_sigma=2e-5)
        bad.line_of_sight_eci.x = math.nan
        good = sensor_pb2.Detection(angular_sigma=2e-5)
        good.line_of_sight_eci.z = 1.0
        f.detections.extend([good] * 4_999 + [bad])
    return f


def must_reject(f: sensor_pb2.SensorFrame) -> bool:
    """DESIGN §4 rules that reject a frame whatever came before it (independent check)."""
    if not f.sensor_id:
        return True
    vectors = [f.sensor_position_eci, f.sensor_velocity_eci]
    if not all(math.isfinite(c) for v in vectors for c in (v.x, v.y, v.z)):
        return True
    for d in f.detections:
        u = d.line_of_sight_eci
        if not all(math.isfinite(c) for c in (u.x, u.y, u.z)):
            return True
        if abs(math.sqrt(u.x * u.x + u.y * u.y + u.z * u.z) - 1.0) > 1e-6:
            return True
        if not (0.0 < d.angular_sigma <= 1e-2):  # NaN fails too
            return True
    return False


requests = st.lists(
    st.builds(
        lambda fr, named: (fr, named),
        st.lists(frames(), min_size=0, max_size=6),
        st.sampled_from(["", "sat-1-1", "sat-2-1"]),
    ),
    min_size=1,
    max_size=4,
)


# ---------------------------------------------------------------- FusionService


@FUZZ
@given(reqs=requests)
def test_random_frames_get_one_ack_each_in_order_and_bad_ones_are_rejected(env, reqs):
    async def body():
        before = await env.frame_counts()
        call = env.fstub.StreamFrames(timeout=CALL_TIMEOUT_S)
        sent = 0
        for frs, named in reqs:
            await call.write(fs.StreamFramesRequest(frames=frs, sensor_id=named))
            resp = await call.read()
            assert resp is not grpc.aio.EOF
            assert [(a.sensor_id, a.sequence) for a in resp.acks] == [
                (f.sensor_id, f.sequence) for f in frs
            ]
            for f, ack in zip(frs, resp.acks, strict=True):
                if must_reject(f):
                    assert ack.status == REJECTED, (ack.status, ack.reason)
                    assert ack.reason.split(":")[0]  # names the field
            sent += len(frs)
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK  # bad frames never end the stream
        after = await env.frame_counts()
        assert sum(after.values()) - sum(before.values()) == sent  # every ack counted
        await env.alive()

    env.run(body())


@FUZZ
@given(ids=st.lists(sensor_ids | st.text(max_size=300), max_size=60))
def test_random_declarations_are_answered_ok_or_invalid_argument(env, ids):
    async def body():
        try:
            resp = await env.fstub.DeclareSensors(
                fs.DeclareSensorsRequest(sensor_ids=ids), timeout=CALL_TIMEOUT_S
            )
            assert set(i for i in ids) <= set(resp.expected_sensor_ids)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert exc.details().startswith("sensor_ids[")
            assert any(not i or len(i) > 256 for i in ids)
        await env.alive()

    env.run(body())


# Every RPC of both services, called with random bytes instead of a message.
RPCS = [
    ("fusion", "/tracklayer.v1.FusionService/StreamFrames", "stream"),
    ("fusion", "/tracklayer.v1.FusionService/DeclareSensors", "unary"),
    ("fusion", "/tracklayer.v1.FusionService/ListLiveTracks", "unary"),
    ("fusion", "/tracklayer.v1.FusionService/GetStatus", "unary"),
    ("fusion", "/tracklayer.v1.FusionService/SubscribeLiveTracks", "server_stream"),
    ("store", "/tracklayer.v1.TrackStoreService/PublishTracks", "stream"),
    ("store", "/tracklayer.v1.TrackStoreService/ListTracks", "unary"),
    ("store", "/tracklayer.v1.TrackStoreService/GetTrackHistory", "unary"),
    ("store", "/tracklayer.v1.TrackStoreService/SubscribeTracks", "server_stream"),
]


def _raw(b: bytes) -> bytes:
    return b


@FUZZ
@given(
    rpc=st.sampled_from(RPCS),
    payloads=st.lists(st.binary(max_size=2_000), min_size=1, max_size=5),
)
def test_random_bytes_on_the_wire_end_at_most_that_call(env, rpc, payloads):
    service, method, kind = rpc
    chan = env.fchan if service == "fusion" else env.schan
    ok_codes = {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,  # bytes that are not the RPC's message
        grpc.StatusCode.NOT_FOUND,  # GetTrackHistory of a random (parsed) track id
        grpc.StatusCode.DEADLINE_EXCEEDED,  # subscriptions run until the client stops
        grpc.StatusCode.CANCELLED,
    }

    async def body():
        code = grpc.StatusCode.OK
        write_failed = False
        try:
            if kind == "unary":
                fn = chan.unary_unary(method, request_serializer=_raw, response_deserializer=_raw)
                await fn(payloads[0], timeout=CALL_TIMEOUT_S)
            elif kind == "server_stream":
                fn = chan.unary_stream(method, request_serializer=_raw, response_deserializer=_raw)
                call = fn(payloads[0], timeout=0.5)
                async for _ in call:
                    pass
            else:
                fn = chan.stream_stream(method, request_serializer=_raw, response_deserializer=_raw)
                call = fn(timeout=CALL_TIMEOUT_S)
                for p in payloads:
                    write_failed = True  # until it returns: a write racing the server's end
                    await call.write(p)
                    write_failed = False
                await call.done_writing()
                async for _ in call:
                    pass
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else grpc.StatusCode.OK
        # A write that races the server ending the call fails in the client, which then
        # reports INTERNAL itself: that says nothing about the server.
        assert code in ok_codes or (write_failed and code == grpc.StatusCode.INTERNAL)
        await env.alive()

    env.run(body())


@pytest.mark.parametrize("rpc", RPCS, ids=[m.rsplit("/", 1)[1] for _, m, _ in RPCS])
def test_undecodable_request_is_invalid_argument_naming_the_message_type(env, rpc):
    service, method, kind = rpc
    chan = env.fchan if service == "fusion" else env.schan
    garbage = b"\x00"  # field number 0: never valid protobuf

    async def body():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            if kind == "unary":
                fn = chan.unary_unary(method, request_serializer=_raw, response_deserializer=_raw)
                await fn(garbage, timeout=CALL_TIMEOUT_S)
            elif kind == "server_stream":
                fn = chan.unary_stream(method, request_serializer=_raw, response_deserializer=_raw)
                async for _ in fn(garbage, timeout=CALL_TIMEOUT_S):
                    pass
            else:
                fn = chan.stream_stream(method, request_serializer=_raw, response_deserializer=_raw)
                call = fn(timeout=CALL_TIMEOUT_S)
                await call.write(garbage)
                async for _ in call:
                    pass
        return err.value

    err = env.run(body())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    expected = method.split("/")[2] + "Request"
    assert err.details().startswith(f"request: not a valid tracklayer.v1.{expected}")


# ---------------------------------------------------------------- TrackStoreService


@st.composite
def track_reports(draw) -> track_pb2.TrackReport:
    r = track_pb2.TrackReport(
        track_id=draw(st.sampled_from(["fz-1", "fz-2", "other-7"]) | sensor_ids),
        revision=draw(st.integers(0, 4) | st.sampled_from([2**64 - 1])),
        status=draw(st.integers(0, 5) | st.sampled_from([2**31 - 1, -1])),
    )
    r.time.seconds = draw(st.integers(-(2**63), 2**63 - 1) | st.just(T0))
    r.time.nanos = draw(st.integers(-(2**31), 2**31 - 1) | st.just(0))
    r.position_eci.x, r.position_eci.y, r.position_eci.z = (draw(any_float) for _ in "xyz")
    r.velocity_eci.x = draw(any_float)
    n = draw(st.sampled_from([0, 36, 35, 37, 10_000]))
    r.covariance.extend([draw(any_float)] * n)
    r.latitude_deg, r.longitude_deg, r.altitude_m = (draw(any_float) for _ in range(3))
    r.sensor_ids.extend(draw(st.lists(sensor_ids, max_size=3)))
    if draw(st.booleans()):
        r.impact.latitude_deg = draw(any_float)
        r.impact.semi_major_m = draw(any_float)
    return r


def store_must_reject(r: track_pb2.TrackReport) -> bool:
    """Reports the store can never take: no id, revision 0, no finite position."""
    p = r.position_eci
    return (
        not r.track_id
        or r.revision < 1
        or not all(math.isfinite(c) for c in (p.x, p.y, p.z))
        or r.status not in (1, 2, 3, 4)
    )


@FUZZ
@given(batches=st.lists(st.lists(track_reports(), max_size=5), min_size=1, max_size=3))
def test_random_reports_get_one_ack_each_and_impossible_ones_are_rejected(env, batches):
    async def body():
        call = env.sstub.PublishTracks(timeout=CALL_TIMEOUT_S)
        for batch in batches:
            await call.write(ts.PublishTracksRequest(reports=batch))
            resp = await call.read()
            assert resp is not grpc.aio.EOF
            assert [(a.track_id, a.revision) for a in resp.acks] == [
                (r.track_id, r.revision) for r in batch
            ]
            for r, ack in zip(batch, resp.acks, strict=True):
                if store_must_reject(r):
                    assert ack.status == track_pb2.PUBLISH_STATUS_REJECTED, ack
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
        await env.alive()

    env.run(body())


@FUZZ
@given(track_id=sensor_ids | st.text(max_size=500))
def test_random_history_queries_answer_found_not_found_or_invalid(env, track_id):
    async def body():
        try:
            resp = await env.sstub.GetTrackHistory(
                ts.GetTrackHistoryRequest(track_id=track_id), timeout=CALL_TIMEOUT_S
            )
            assert all(r.track_id == track_id for r in resp.reports) and resp.reports
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
        await env.alive()

    env.run(body())


# ---------------------------------------------------------------- bounded memory


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_stays_bounded_under_a_stream_of_bad_frames(env):
    """20,000 rejected frames (100 detections each) leave no state behind."""
    bad = sensor_pb2.SensorFrame(sensor_id="sat-9-9", sequence=1)
    bad.time.seconds = T0
    bad.sensor_position_eci.x = R_SAT
    for _ in range(100):
        d = bad.detections.add(angular_sigma=2e-5)
        d.line_of_sight_eci.x = math.inf
    batch = fs.StreamFramesRequest(frames=[bad] * 100)

    async def send(n_requests: int) -> int:
        call = env.fstub.StreamFrames(timeout=120)
        rejected = 0
        for _ in range(n_requests):
            await call.write(batch)
            resp = await call.read()
            rejected += sum(a.status == REJECTED for a in resp.acks)
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        return rejected

    env.run(send(20))  # warm-up: allocator pools, gRPC buffers
    start = _rss_bytes()
    rejected = env.run(send(200))
    grown = _rss_bytes() - start
    assert rejected == 20_000
    # Keeping each rejected frame (2.2 kB on the wire, several times that as Python objects)
    # would add well over 44 MB for 20,000 frames; 32 MB leaves room for allocator slack.
    assert bad.ByteSize() * 20_000 > 40e6
    assert grown < 32 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"
