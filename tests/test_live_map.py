"""The live map's server without a browser: the track store with ``http`` on a free port,
its WebSocket read by aiohttp's client (which checks the frames), the picture it keeps,
the two encodings (a binary message of protobuf bytes for the page, JSON for
``/api/snapshot``), who may connect, and the errors of ``--http``."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp
import grpc
import pytest

from tracklayer.services.cli import main
from tracklayer.services.errors import UserError
from tracklayer.services.live_map import picture
from tracklayer.services.live_map.address import parse_http_address
from tracklayer.services.live_map.feed import PAGE_QUEUE, LiveMapFeed, Page
from tracklayer.services.live_map.server import ws_frame
from tracklayer.services.live_map.view import frame_reports, parse_message, report_text
from tracklayer.services.store_service.servicer import start_track_store_server
from tracklayer.v1 import track_pb2, track_store_service_pb2_grpc
from tracklayer.v1 import track_store_service_pb2 as ts

T0 = 1_767_225_600


def decoded(data: bytes) -> list[track_pb2.TrackReport]:
    """What the page gets, decoded by the protobuf runtime (independent of the encoder)."""
    return list(ts.ListTracksResponse.FromString(data).tracks)


def unpack(data: bytes) -> tuple[str, dict, list[track_pb2.TrackReport]]:
    """A message to the page: (kind, its JSON, its reports decoded)."""
    kind, text, reps = parse_message(data)
    return kind.decode(), json.loads(text), decoded(reps)


def report(tid: str, rev: int, lat: float = 10.0, lon: float = 20.0, status: int = 2):
    r = track_pb2.TrackReport(track_id=tid, revision=rev, status=status, phase=2)
    r.time.seconds = T0 + rev
    r.velocity_eci.x, r.velocity_eci.y = 6.0e3, 8.0e3
    r.covariance.extend([float(i == j) for i in range(6) for j in range(6)])
    r.latitude_deg, r.longitude_deg, r.altitude_m = lat, lon, 5.0e5
    r.sensor_ids.append("sat-1-1")
    r.impact.latitude_deg, r.impact.longitude_deg = 12.0, 25.0
    r.impact.time.seconds = T0 + 600
    r.impact.semi_major_m, r.impact.semi_minor_m, r.impact.orientation_deg = 3e3, 1e3, 20.0
    return r


async def messages(ws: aiohttp.ClientWebSocketResponse):
    """The page's WebSocket: yields (kind, JSON, reports) per binary message."""
    async for msg in ws:
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        yield unpack(msg.data)


def test_report_json_has_what_the_page_shows():
    d = json.loads(report_text(report("f-1", 3)))
    assert d["id"] == "f-1" and d["rev"] == 3 and d["status"] == "CONFIRMED"
    assert d["phase"] == "MIDCOURSE" and d["t"] == T0 + 3
    assert (d["lat"], d["lon"], d["alt"], d["speed"]) == (10.0, 20.0, 5.0e5, 1.0e4)
    assert d["impact"] == {"lat": 12.0, "lon": 25.0, "t": T0 + 600, "a": 3e3, "b": 1e3, "ori": 20.0}
    assert "launch" not in d and d["sensors"] == ["sat-1-1"] and d["emitted"] is None


def test_report_json_writes_null_for_numbers_that_are_not_finite_and_escapes_ids():
    r = report('f-"1"', 1, lat=float("nan"))
    r.altitude_m = float("inf")
    r.impact.semi_major_m = float("-inf")
    d = json.loads(report_text(r))  # strict JSON: no NaN or Infinity
    assert d["id"] == 'f-"1"' and d["lat"] is None and d["alt"] is None
    assert d["lon"] == 20.0 and d["impact"]["a"] is None and d["impact"]["b"] == 1e3


def test_the_page_gets_the_reports_own_bytes_in_order_whatever_their_size():
    small = track_pb2.TrackReport(track_id="f-4", revision=1)
    reps = [report("f-1", 1), report("f-2", 1), report('f-"3"', 2, lat=float("nan")), small]
    reps[0].covariance.extend([1.0] * 2100)
    p = reps[1].sensor_positions.add(sensor_id="sat-1-1", latitude_deg=1.5, altitude_m=8e5)
    p.time.seconds = T0
    sizes = [len(r.SerializeToString()) for r in reps]
    assert sizes[0] > 2**14 and 2**7 < sizes[1] < 2**14 and sizes[3] < 2**7  # 3-, 2-, 1-byte
    assert decoded(frame_reports(reps)) == reps
    assert decoded(frame_reports([])) == []


def test_a_message_is_kind_text_length_text_then_the_reports_and_bad_ones_are_refused():
    reps = [report("f-1", 1), report("f-2", 4)]
    data = picture.snapshot_message(reps, {"f-1": []}, '{"live":2}')
    n = int.from_bytes(data[1:5], "little")  # RFC-free layout: kind, uint32 LE, text
    assert data[:1] == b"S" and json.loads(data[5 : 5 + n]) == {
        "trails": {"f-1": []},
        "status": {"live": 2},
    }
    assert decoded(data[5 + n :]) == reps
    for bad in (b"", b"S\x00\x00", b"X\x00\x00\x00\x00", b"U\x09\x00\x00\x00{}"):
        with pytest.raises(ValueError, match="live map message"):
            parse_message(bad)


def test_websocket_frames_carry_the_length_as_rfc_6455_says():
    for n, head in (
        (0, b"\x82\x00"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (65535, b"\x82\x7e\xff\xff"),
        (65536, b"\x82\x7f" + (65536).to_bytes(8, "big")),
    ):
        frame = ws_frame(b"x" * n)
        assert frame[: len(head)] == head and len(frame) == len(head) + n


def test_trails_come_from_the_stored_history_none_newer_than_the_snapshot():
    history = [report("f-1", r, lon=float(r)) for r in range(1, 6)]
    history[1].latitude_deg = float("nan")  # no sub-point: no trail point
    history[2].altitude_m = float("inf")
    live = [report("f-1", 4), report("f-2", 1)]
    tails = picture.trails(live, {"f-1": history, "f-2": []})
    assert [p[2] for p in tails["f-1"]] == [1.0, 3.0, 4.0]  # rev 5 came after the snapshot
    assert tails["f-1"][1] == [T0 + 3, 10.0, 3.0, None] and tails["f-2"] == []
    assert picture.trail_length(24) == 120 and picture.trail_length(1000) == 20
    assert picture.trail_length(10**6) == picture.MIN_TRAIL_POINTS


def test_the_snapshot_has_the_live_tracks_bytes_their_trails_and_the_satellites():
    a, b = report("f-1", 7), report("f-2", 1)
    p = a.sensor_positions.add(sensor_id="sat-1-1", latitude_deg=1.23456, altitude_m=8e5)
    p.longitude_deg, p.time.seconds = float("nan"), T0 + 6
    b.sensor_positions.add(sensor_id="sat-1-1").time.seconds = T0 + 5  # older: not kept
    b.sensor_positions.add(sensor_id="sat-2-1").time.seconds = T0 - 601  # 10 min older
    status = picture.Rates().status_text(2)
    kind, page, reps = unpack(
        picture.snapshot_message([a, b], {"f-1": [[T0, 1.0, 2.0, 3.0]]}, status)
    )
    assert kind == "S" and reps == [a, b] and page["trails"]["f-1"] == [[T0, 1.0, 2.0, 3.0]]
    assert page["status"]["live"] == 2 and page["status"]["rate"] == 0.0
    readable = picture.snapshot([a, b], {"f-1": [[T0, 1.0, 2.0, 3.0]]}, status)
    assert [(t["id"], t["rev"], len(t["trail"])) for t in readable["tracks"]] == [
        ("f-1", 7, 1),
        ("f-2", 1, 0),
    ]
    here = {"id": "sat-1-1", "lat": 1.2346, "lon": None, "alt": 8e5, "t": T0 + 6}
    assert readable["satellites"] == [here]


class FakeStore:
    """The track store as the live map sees it (``feed.LiveFeed``)."""

    def __init__(self) -> None:
        self.calls: list = []
        self.live: dict[str, track_pb2.TrackReport] = {}

    def open_feed(self, on_batch):
        self.calls.append(on_batch)
        return lambda: self.calls.remove(on_batch)

    def publish(self, *reps: track_pb2.TrackReport) -> None:
        for r in reps:
            self.live[r.track_id] = r
        for call in self.calls:
            call(list(reps), [r.SerializeToString() for r in reps])

    def live_reports(self):
        return [self.live[k] for k in sorted(self.live)]

    def live_count(self) -> int:
        return len(self.live)


class Clock:
    """An event loop that never runs, whose time is set by hand: its timers are looked
    at, or run by hand."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.time = lambda: self.t  # type: ignore[method-assign]
        self.t = 100.0

    def timers(self) -> list[float]:
        """Due times of the timers armed and not cancelled."""
        scheduled = self.loop._scheduled  # type: ignore[attr-defined]
        return sorted(round(h.when(), 6) for h in scheduled if not h.cancelled())

    def advance(self, to: float) -> None:
        """Set the clock to ``to``, running the timers due by then."""
        scheduled = self.loop._scheduled  # type: ignore[attr-defined]
        due = [h for h in scheduled if not h.cancelled() and h.when() <= to + 1e-9]
        self.t = to
        for handle in due:
            handle._run()
            handle.cancel()


def test_without_a_page_a_batch_is_only_counted_no_timer_runs_and_nothing_is_kept(monkeypatch):
    from tracklayer.services.live_map import feed as feed_module

    encoded: list = []
    monkeypatch.setattr(feed_module, "frame_raws", lambda raws: encoded.append(raws) or b"")
    clock, store = Clock(), FakeStore()
    feed = LiveMapFeed(clock.loop, store)
    store.publish(report("f-1", 1), report("f-1", 2, lon=21.0))
    clock.t += 1.0
    store.publish(report("f-2", 1))
    assert encoded == [] and clock.timers() == [] and feed.pending == []
    assert feed.rates.reports_seen == 3
    page = feed.open_page()
    assert clock.timers() == [106.0] and page.queue.empty() and feed.pending == []
    feed.close_page(page)  # the last page gone: no timer left
    assert clock.timers() == []
    feed.close()
    assert store.calls == []
    clock.loop.close()


def sent(data: bytes) -> tuple[list[tuple[str, int]], dict]:
    """A flush's message: the (track, revision) of its reports, its status."""
    kind, status, reps = unpack(data)
    assert kind == "U"
    return [(m.track_id, m.revision) for m in reps], status


def test_with_a_page_publishes_bring_the_flushes_and_a_timer_only_ends_a_burst():
    clock, store = Clock(), FakeStore()
    feed = LiveMapFeed(clock.loop, store)
    page = feed.open_page()
    assert clock.timers() == [105.0]  # a status in 5 s if nothing is published
    store.publish(report("f-1", 1))  # the first flush is due at once
    assert sent(page.queue.get_nowait())[0] == [("f-1", 1)] and clock.timers() == [105.0]
    clock.t = 100.3
    store.publish(report("f-1", 2, lon=21.0))  # too early: a timer 1.5 s after it came
    assert page.queue.empty() and clock.timers() == [101.8]
    clock.t = 101.0
    store.publish(report("f-3", 1))  # still too early (1.2 s since the flush): it waits
    assert page.queue.empty() and clock.timers() == [101.8]
    clock.t = 101.3
    store.publish(report("f-2", 1), report("f-1", 3))  # due: this publish flushes
    reps, status = sent(page.queue.get_nowait())
    assert reps == [("f-1", 3), ("f-3", 1), ("f-2", 1)] and clock.timers() == [106.3]
    assert status["live"] == 3 and status["seen"] == 5
    clock.t = 101.5
    store.publish(report("f-2", 2, status=4))  # the end of a burst: nothing after it
    assert page.queue.empty() and clock.timers() == [103.0]
    clock.advance(103.0)  # the timer sends it 1.5 s after it was stored
    assert sent(page.queue.get_nowait())[0] == [("f-2", 2)] and clock.timers() == [108.0]
    clock.advance(108.0)  # quiet: a status alone
    reps, status = sent(page.queue.get_nowait())
    assert reps == [] and status["seen"] == 6
    assert status["rate"] == 1.2  # wall clock: the 6 reports came within the last 5 s
    feed.close()
    assert page.queue.get_nowait() is None and clock.timers() == []
    clock.loop.close()


def test_batches_waiting_for_a_flush_stay_bounded_and_keep_each_tracks_latest(monkeypatch):
    from tracklayer.services.live_map import feed as feed_module

    monkeypatch.setattr(feed_module, "MAX_PENDING_BATCHES", 3)
    clock, store = Clock(), FakeStore()
    feed = LiveMapFeed(clock.loop, store)
    feed.open_page()
    store.publish(report("f-0", 1))  # flushed at once: then not for 1 s
    for rev in range(1, 8):
        store.publish(report("f-1", rev), report(f"f-{rev + 1}", 1))
        assert len(feed.pending) <= 3
    msgs, raws = feed_module.latest(feed.pending)
    assert {m.track_id: m.revision for m in msgs} == {"f-1": 7} | {f"f-{i}": 1 for i in range(2, 9)}
    assert raws == [m.SerializeToString() for m in msgs]
    clock.loop.close()


def test_a_page_that_reads_too_slowly_is_cut_off():
    page = Page()
    for i in range(PAGE_QUEUE + 1):
        page.offer(b"x%d" % i)
    assert page.too_slow and page.queue.get_nowait() is None


def test_a_page_whose_connection_refuses_an_event_ends_and_gets_no_more():
    page, written = Page(), []
    page.sink = lambda data: written.append(data) or len(written) < 2  # the 2nd overflows
    for i in range(4):
        page.offer(b"e%d" % i)
    assert written == [b"e0", b"e1"] and page.ended.is_set()
    assert page.outcome == "too_slow_or_gone" and page.queue.empty()


def test_http_addresses_default_to_loopback_and_bad_ones_name_the_flag():
    assert parse_http_address("8080") == ("127.0.0.1", 8080)
    assert parse_http_address(":0") == ("127.0.0.1", 0)
    assert parse_http_address("0.0.0.0:80") == ("0.0.0.0", 80)
    for bad in ("nonsense", "host:99999", "1.2.3.4:"):
        with pytest.raises(UserError, match="--http"):
            parse_http_address(bad)


def test_consumer_with_a_bad_http_address_exits_2_naming_the_flag(tmp_path: Path, capsys):
    args = ["consumer", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "t.sqlite")]
    assert main([*args, "--http", "no-port"]) == 2
    assert "--http: expected HOST:PORT" in capsys.readouterr().err


def test_http_port_in_use_is_a_user_error_naming_the_flag(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]

        async def body():
            with pytest.raises(UserError, match=f"--http: cannot listen on 127.0.0.1:{port}"):
                await start_track_store_server(tmp_path / "t.sqlite", http=f"127.0.0.1:{port}")

        asyncio.run(body())


def test_the_websocket_starts_with_a_snapshot_then_streams_changes_and_status(tmp_path: Path):
    async def body():
        server = await start_track_store_server(tmp_path / "t.sqlite", http="127.0.0.1:0")
        try:
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = track_store_service_pb2_grpc.TrackStoreServiceStub(ch)

                async def publish(*reps):
                    call = stub.PublishTracks()
                    await call.write(ts.PublishTracksRequest(reports=reps))
                    await call.read()
                    await call.done_writing()

                # 200 tracks: a snapshot over 64 KiB (a frame with a 64-bit length)
                await publish(report("f-1", 1), *(report(f"g-{i}", 1) for i in range(199)))
                url = server.live_map.url
                async with aiohttp.ClientSession() as http:
                    async with http.get(url) as page:
                        assert page.status == 200 and "livemap.js" in await page.text()
                    async with http.get(url + "static/land-110m.json") as land:
                        assert (await land.json())["type"] == "Topology"
                    async with http.ws_connect(url + "live", origin=url.rstrip("/")) as ws:
                        stream = messages(ws)
                        kind, snap, reps = await anext(stream)
                        assert kind == "S" and len(reps) == 200 and reps[0].track_id == "f-1"
                        assert [p[2] for p in snap["trails"]["f-1"]] == [20.0]
                        assert snap["status"]["live"] == 200
                        await publish(report("f-1", 2, lon=21.0), report("f-2", 1))
                        seen: dict[str, track_pb2.TrackReport] = {}
                        status = None
                        while "f-2" not in seen:
                            kind, status, reps = await asyncio.wait_for(anext(stream), 3)
                            assert kind == "U"
                            seen.update({r.track_id: r for r in reps})
                        assert seen["f-1"].revision == 2 and seen["f-1"].longitude_deg == 21.0
                        assert status["live"] == 201 and status["seen"] == 202
                        async with http.get(url + "api/snapshot") as snapshot:
                            readable = await snapshot.json()
                        assert [(t["id"], t["rev"]) for t in readable["tracks"]][:2] == [
                            ("f-1", 2),
                            ("f-2", 1),
                        ]
                        # the server stops with this page still connected: it says so
                        stopping = asyncio.ensure_future(server.stop(0.5))
                        rest = [k async for k, _, _ in stream]
                        assert all(k == "U" for k in rest)
                        assert ws.close_code == 1001  # going away
                        await asyncio.wait_for(stopping, 5)
        finally:
            await server.stop(0.5)

    asyncio.run(asyncio.wait_for(body(), 30))


def test_the_websocket_refuses_pages_of_other_sites_and_a_page_closing_ends_cleanly(
    tmp_path: Path, caplog
):
    async def body():
        server = await start_track_store_server(tmp_path / "t.sqlite", http="127.0.0.1:0")
        try:
            url = server.live_map.url
            port = server.live_map.port
            async with aiohttp.ClientSession() as http:
                for origin in (
                    "http://evil.example",
                    f"http://localhost.evil:{port}",
                    "null",
                    f"file://127.0.0.1:{port}",
                ):
                    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                        await http.ws_connect(url + "live", origin=origin)
                    assert refused.value.status == 403, origin
                # the page's own origin, and a client that is not a browser (no Origin)
                for origin in (f"http://127.0.0.1:{port}", None):
                    async with http.ws_connect(url + "live", origin=origin) as ws:
                        msg = await ws.receive(3)
                        assert unpack(msg.data)[0] == "S"
                        assert len(server.live_map.feed.pages) == 1
                    for _ in range(100):  # the page closed: the store forgets it
                        if not server.live_map.feed.pages:
                            break
                        await asyncio.sleep(0.02)
                    assert not server.live_map.feed.pages
        finally:
            await server.stop(0.5)

    with caplog.at_level("INFO", logger="tracklayer.services.live_map"):
        asyncio.run(asyncio.wait_for(body(), 30))
    assert caplog.text.count("live_map_refused") == 4
    assert caplog.text.count("outcome=closed") == 2


def test_the_store_feeds_only_the_latest_it_stored_with_its_bytes_a_failing_feed_is_harmless(
    tmp_path: Path,
):
    async def body():
        server = await start_track_store_server(tmp_path / "t.sqlite")
        seen: list = []
        try:
            stop = server.servicer.open_feed(lambda msgs, raws: seen.append((msgs, raws)))
            server.servicer.open_feed(lambda msgs, raws: 1 / 0)  # a broken reader
            async with grpc.aio.insecure_channel(server.address) as ch:
                stub = track_store_service_pb2_grpc.TrackStoreServiceStub(ch)
                call = stub.PublishTracks()
                first = report("f-1", 1)
                first.emitted_at.seconds = T0 + 9
                gone = report("f-2", 3, status=4)  # DELETED, then an older revision comes late
                for reps in (
                    [first, report("f-2", 1)],
                    [report("f-1", 1), report("f-1", 2)],
                    [gone],
                    [report("f-2", 2), report("f-1", 2)],
                ):
                    await call.write(ts.PublishTracksRequest(reports=reps))
                    acks = (await call.read()).acks
                    assert len(acks) == len(reps)
                stop()
                await call.write(ts.PublishTracksRequest(reports=[report("f-1", 3)]))
                await call.read()
                await call.done_writing()
            assert [[(m.track_id, m.revision) for m in msgs] for msgs, _ in seen] == [
                [("f-1", 1), ("f-2", 1)],
                [("f-1", 2)],  # the duplicate of revision 1 was not stored again
                [("f-2", 3)],  # f-2 deleted; its late revision 2 is stored, but not shown
            ]
            assert seen[0][1][0] == first.SerializeToString()  # the bytes as stored
            live = [(r.track_id, r.revision) for r in server.servicer.live_reports()]
            assert live == [("f-1", 3)]  # f-2 stays deleted
            recent = await server.servicer.recent_reports(["f-1", "f-9"], 2)
            assert [r.revision for r in recent["f-1"]] == [2, 3] and recent["f-9"] == []
        finally:
            await server.stop(0.5)

    asyncio.run(asyncio.wait_for(body(), 30))
