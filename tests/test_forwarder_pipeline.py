"""The forwarder keeps two requests on their way to the track store (issue 13 item 6):
while the store works on one batch the next is already sent, each batch at most
``batch`` reports (the store's transaction); the store answers in order and every
outbox entry is delivered once and settled."""

from __future__ import annotations

import asyncio

import grpc
from test_fusion_service import run

from tracklayer.services.fusion_service import forwarder as fwd
from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.v1 import track_pb2, track_store_service_pb2, track_store_service_pb2_grpc

REPORTS = 1_000


class HeldStore(track_store_service_pb2_grpc.TrackStoreServiceServicer):
    """A store double: records each request as it arrives; answers (STORED) only once
    :attr:`go` is set, in order."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self.arrived = asyncio.Event()
        self.go = asyncio.Event()

    async def PublishTracks(self, request_iterator, context):  # noqa: N802 - gRPC name
        queue: asyncio.Queue = asyncio.Queue()

        async def read() -> None:
            async for req in request_iterator:
                self.requests.append([f"{r.track_id}/{r.revision}" for r in req.reports])
                self.arrived.set()
                await queue.put(req)
            await queue.put(None)

        reader = asyncio.create_task(read())
        try:
            while (req := await queue.get()) is not None:
                await self.go.wait()
                acks = [
                    track_pb2.PublishAck(
                        track_id=r.track_id,
                        revision=r.revision,
                        status=track_pb2.PUBLISH_STATUS_STORED,
                    )
                    for r in req.reports
                ]
                yield track_store_service_pb2.PublishTracksResponse(acks=acks)
        finally:
            reader.cancel()


def test_the_next_batch_is_sent_while_the_store_works_on_one(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    box.add(
        [
            track_pb2.TrackReport(track_id=f"t{i}", revision=1).SerializeToString()
            for i in range(REPORTS)
        ],
        1,
    )

    async def body():
        store = HeldStore()
        server = grpc.aio.server()
        track_store_service_pb2_grpc.add_TrackStoreServiceServicer_to_server(store, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

        async def db(fn, *args):
            return fn(*args)

        f = fwd.Forwarder(box, f"127.0.0.1:{port}", db, batch=400)
        f.start()
        try:
            for _ in range(200):  # the first answer is held: what else was sent meanwhile
                await asyncio.sleep(0.02)
                if len(store.requests) >= 2:
                    break
            await asyncio.sleep(0.2)
            held = [len(r) for r in store.requests]
            assert box.depth == REPORTS  # nothing settled yet
            store.go.set()
            for _ in range(250):
                await asyncio.sleep(0.02)
                if box.depth == 0:
                    break
        finally:
            await f.stop(1.0)
            await server.stop(0)
        return held, store.requests

    held, requests = run(body())
    assert held == [400, 400]  # two batches on their way at once, each <= batch
    sent = [key for req in requests for key in req]
    assert sent == [f"t{i}/1" for i in range(REPORTS)]  # every entry once, in order
    assert box.depth == 0 and box.delivered == REPORTS
    box.close()


def test_a_request_of_outbox_bytes_is_the_message_protobuf_writes():
    """The forwarder sends the outbox's report bytes as a ``PublishTracksRequest``
    without parsing them (``publish_request``): the bytes must be what protobuf itself
    writes for that message, and parse back to the same reports, for reports whose
    length needs one, two and three varint bytes."""
    reports = []
    for n, tid in ((0, "a"), (3, "b"), (200, "c"), (3_000, "d")):  # ~0.1, 0.3, 18, 270 kB
        r = track_pb2.TrackReport(track_id=tid, revision=n + 1)
        r.covariance.extend(float(i) * 0.25 for i in range(n * 11))
        reports.append(r)
    raw = [r.SerializeToString() for r in reports]
    assert {len(b).bit_length() // 7 for b in raw} >= {0, 1, 2}  # 1-, 2- and 3-byte lengths
    want = track_store_service_pb2.PublishTracksRequest(reports=reports)
    got = fwd.publish_request(raw)
    assert got == want.SerializeToString()
    assert track_store_service_pb2.PublishTracksRequest.FromString(got) == want
    assert fwd.publish_request([]) == b""
