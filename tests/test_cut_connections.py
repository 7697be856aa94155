"""Cut connections with both processes alive (issue 15 item 4).

A TCP proxy (``chaos_proxy``) sits between the sensors and the fusion service and
between the fusion service and the store, and drops, resets, half-closes and stalls
connections at seeded moments. The sensors (the real ``FrameStreamer``) resume by
themselves, and the store ends with exactly the reports of an uncut run: a cut
stream stays open in the fusion core until its sensor reconnects (as after a crash),
so a flaky link is not the end of the input.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import grpc
import grpc.aio
import pytest
from chaos_proxy import ChaosProxy
from test_fusion_service import Services, Stream, content, frame, run

from tracklayer.services.clients.frame_streamer import FrameStreamer
from tracklayer.services.clients.stream_options import CHANNEL_OPTIONS, StreamerOptions
from tracklayer.services.limits import KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS
from tracklayer.services.rpc.server import GRPC_OPTIONS
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc

SENSORS = ["sat-1-1", "sat-2-1", "sat-3-1"]
LOOKS = 40


def _source():
    for k in range(LOOKS):
        for i, sid in enumerate(SENSORS):
            f = frame(sid, k, k * 1.0 + 0.2 * i)
            yield (f.time.seconds * 1_000_000_000 + f.time.nanos, f)


def _expected_reports() -> int:
    return LOOKS * len(SENSORS) + 1  # one per frame and the flush's DELETED


async def _stream(address: str, speed: float | None):
    streamer = FrameStreamer(
        address, StreamerOptions(speed=speed, connect_timeout_s=30, reconnect_timeout_s=60)
    )
    return await streamer.run(SENSORS, _source())


async def _uncut(tmp) -> list[bytes]:
    async with Services(tmp) as s:
        result = await _stream(s.fusion.address, None)
        assert result.counts["ACCEPTED"] == LOOKS * len(SENSORS)
        return content(await s.stored(_expected_reports()))


async def _with_cuts(tmp, seed: int) -> tuple[list[bytes], list[str], int]:
    s = Services(tmp)
    await s.start_store()
    to_store = ChaosProxy(int(s.store_address.rsplit(":", 1)[1]))
    await to_store.start()
    s.store_address, direct = to_store.address, s.store_address
    await s.start_fusion()
    s.store_address = direct
    to_fusion = ChaosProxy(int(s.fusion.address.rsplit(":", 1)[1]))
    await to_fusion.start()
    rng = random.Random(seed)
    moments = sorted(rng.uniform(0.5, 9.0) for _ in range(8))

    async def faults() -> None:
        t0 = time.monotonic()
        for at in moments:
            await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
            proxy = rng.choice([to_fusion, to_store])
            action = rng.choice(["drop", "reset", "half_close", "stall"])
            if action == "stall":
                proxy.stall(1.5)
            else:
                getattr(proxy, action)()

    chaos = asyncio.create_task(faults())
    result = await _stream(to_fusion.address, speed=4.0)  # 40 s of looks in ~10 s
    await chaos
    stored = content(await s.stored(_expected_reports(), timeout=30))
    # The store may hold every report before the forwarder has its last ack (an ack lost
    # in a cut of the store link: that batch is sent again and answered then).
    deadline = time.monotonic() + 30
    while (counters := await s.counters())["outbox_depth"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    cuts = to_fusion.cuts + to_store.cuts
    await s.stop_fusion()
    await s.stop_store()
    await to_fusion.close()
    await to_store.close()
    assert counters["outbox_depth"] == 0 and counters["outbox_rejected"] == 0, counters
    assert result.counts["ACCEPTED"] + result.counts["DUPLICATE"] == result.frames
    return stored, cuts, result.reconnects


@pytest.mark.parametrize("seed", [3, 11])
def test_cuts_on_both_links_end_with_exactly_the_uncut_reports(tmp_path, seed):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    expected = run(_uncut(tmp_path / "a"))
    got, cuts, reconnects = run(_with_cuts(tmp_path / "b", seed), timeout=120)
    assert len(cuts) == 8
    assert got == expected, (cuts, reconnects)


@pytest.mark.parametrize("action", ["drop", "reset", "half_close"])
def test_every_stream_of_a_cut_connection_stays_open_in_the_core(tmp_path, action):
    """grpc.aio ends a call's requests the same way for a client's half-close and for a
    lost connection (the cancellation follows one event-loop turn later): the streams of
    a connection cut with no ack on its way must stay open in the core, not close (which,
    for every sensor at once, would be the end of the input: a flush, every track
    DELETED). Eight rounds, each cutting all three sensors' streams at once."""

    async def body() -> None:
        async with Services(tmp_path, store=False) as s:
            proxy = ChaosProxy(int(s.fusion.address.rsplit(":", 1)[1]))
            await proxy.start()
            core = s.fusion.engine.core
            for k in range(8):
                async with grpc.aio.insecure_channel(proxy.address) as channel:
                    stub = fs_grpc.FusionServiceStub(channel)
                    for i, sid in enumerate(SENSORS):
                        await Stream(stub, sid).send(frame(sid, k, k * 1.0 + 0.2 * i))
                    getattr(proxy, action)()
                    await asyncio.sleep(0.6)
                core = s.fusion.engine.core
                assert core.orderer.open_streams == tuple(SENSORS), (k, action)
                assert core.tracker.flushes == 0, (k, action)
            await proxy.close()

    run(body(), timeout=60)


def test_keepalive_notices_a_dead_peer_within_30_s():
    """Every channel and server pings: a peer that stops answering is dead after
    KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS, well within the 30 s asked."""
    assert KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS <= 30_000
    for opts in (dict(CHANNEL_OPTIONS), dict(GRPC_OPTIONS)):
        assert opts["grpc.keepalive_time_ms"] == KEEPALIVE_TIME_MS
        assert opts["grpc.keepalive_timeout_ms"] == KEEPALIVE_TIMEOUT_MS
        assert opts["grpc.keepalive_permit_without_calls"] == 1


def test_a_black_holed_sensor_link_is_noticed_and_the_sensor_resumes(tmp_path, caplog):
    """The proxy black-holes the sensors' connection for good (sockets stay open,
    nothing answers): the sensor's keepalive gives up within 30 s,
    it reconnects through a new connection, and every frame ends acknowledged."""

    async def body():
        async with Services(tmp_path) as s:
            proxy = ChaosProxy(int(s.fusion.address.rsplit(":", 1)[1]))
            await proxy.start()

            async def black_hole() -> float:
                await asyncio.sleep(1.0)
                proxy.black_hole()
                return time.time()

            hole = asyncio.create_task(black_hole())
            result = await _stream(proxy.address, speed=8.0)  # ~5 s of pacing
            assert result.counts["ACCEPTED"] + result.counts["DUPLICATE"] == result.frames
            assert result.reconnects >= 1
            await proxy.close()
            return await hole, content(await s.stored(_expected_reports()))

    with caplog.at_level(logging.WARNING, logger="tracklayer.services.frame_streamer"):
        holed_at, stored = run(body(), timeout=150)
    noticed = [
        r.created
        for r in caplog.records
        if "failed (UNAVAILABLE" in r.getMessage() and r.created > holed_at
    ]
    assert noticed and min(noticed) - holed_at < 30, (noticed, holed_at)
    assert len(stored) == _expected_reports()
