"""Caps without an allow-list (issue 15 item 6): at most N distinct sensors and M open
streams per client; beyond them RESOURCE_EXHAUSTED naming the limit, counted, and
nothing already accepted affected."""

from __future__ import annotations

import grpc
import pytest
from test_fusion_service import ACCEPTED, Services, Stream, frame, run

from tracklayer.services.fusion_service.caps import client_identity
from tracklayer.v1 import fusion_service_pb2 as fs


async def _ended(st: Stream, *frames) -> tuple[grpc.StatusCode, str]:
    """Send one request that the service refuses; the stream's end code and details."""
    try:
        await st.call.write(fs.StreamFramesRequest(frames=frames, sensor_id=st.sensor_id))
        assert await st.call.read() is grpc.aio.EOF
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details()
    return await st.call.code(), await st.call.details()


def test_one_sensor_more_than_max_sensors_is_refused_and_the_others_go_on(tmp_path):
    async def body():
        async with Services(tmp_path, store=False, max_sensors=3) as s:
            await s.stub.DeclareSensors(fs.DeclareSensorsRequest(sensor_ids=["a", "b"]))
            a, c = Stream(s.stub, "a"), Stream(s.stub, "c")
            assert [x.status for x in await a.send(frame("a", 1, 0.0))] == [ACCEPTED]
            assert [x.status for x in await c.send(frame("c", 1, 0.0))] == [ACCEPTED]
            code, details = await _ended(Stream(s.stub, "d"), frame("d", 1, 0.0))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-sensors" in details and "'d'" in details
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await s.stub.DeclareSensors(fs.DeclareSensorsRequest(sensor_ids=["b", "e"]))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-sensors" in err.value.details()
            # an unnamed stream whose frame names a new sensor: refused before it lands
            code, _ = await _ended(Stream(s.stub, ""), frame("f", 1, 0.0))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            # the known sensors are not affected
            assert [x.status for x in await a.send(frame("a", 2, 1.0))] == [ACCEPTED]
            b = Stream(s.stub, "b")
            assert [x.status for x in await b.send(frame("b", 1, 1.0))] == [ACCEPTED]
            c_ = await s.counters()
            assert c_['resource_exhausted_total{limit="max_sensors"}'] == 3
            assert c_["sensors_known"] == 3
            assert c_['frames_total{status="accepted"}'] == 4
            for st in (a, b, c):
                await st.close()

    run(body())


def test_one_stream_more_than_max_streams_per_client_is_refused(tmp_path):
    async def body():
        async with Services(tmp_path, store=False, max_streams_per_client=2) as s:
            a, b = Stream(s.stub, "a"), Stream(s.stub, "b")
            await a.send(frame("a", 1, 0.0))
            await b.send(frame("b", 1, 0.0))
            code, details = await _ended(Stream(s.stub, "c"))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-streams-per-client" in details
            assert [x.status for x in await a.send(frame("a", 2, 1.0))] == [ACCEPTED]
            await b.close()
            again = Stream(s.stub, "c")  # a slot is free again
            assert [x.status for x in await again.send(frame("c", 1, 1.0))] == [ACCEPTED]
            c = await s.counters()
            assert c['resource_exhausted_total{limit="max_streams_per_client"}'] == 1
            await a.close()
            await again.close()

    run(body())


def test_client_identity_is_the_certificate_else_the_address_without_port():
    assert client_identity("ipv4:127.0.0.1:5123", None) == "ipv4:127.0.0.1"
    assert client_identity("ipv6:[::1]:5123", None) == "ipv6:[::1]"
    assert client_identity("ipv4:10.0.0.1:1", frozenset({"s2", "s1"})) == "cert:s1,s2"
    assert client_identity("unix:/tmp/x", None) == "unix:/tmp/x"
