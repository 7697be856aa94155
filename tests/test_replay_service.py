"""``tracklayer replay`` and the frame streamer against the real fusion service.

The service runs in this process on an ephemeral port with the recording
tracker double (tests/tracker_double.py), so what is checked is the service
contract — acks, validation, journal, restart — not the tracking physics.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from test_replay_cli import N_PER_SENSOR, SENSORS, _frames, write_recording
from tracker_double import RecordingTracker

from tracklayer.services.cli import main
from tracklayer.services.clients.frame_streamer import FrameStreamer, StreamerOptions
from tracklayer.services.fusion_service.servicer import start_fusion_server
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.store_service.track_store import canonical_bytes
from tracklayer.services.wire.recording import TOPIC_FRAMES, TOPIC_TRACKS, RecordingReader
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
from tracklayer.v1 import sensor_pb2, track_pb2


def settings(tmp_path) -> FusionSettings:
    return FusionSettings(
        fusion_id="fu",
        journal_path=tmp_path / "fu.journal.sqlite",
        outbox_path=tmp_path / "fu.outbox.sqlite",
        idle_timeout_s=0.0,
        tracker_factory=RecordingTracker,
    )


async def counters(address: str) -> dict[str, int]:
    async with grpc.aio.insecure_channel(address) as ch:
        resp = await fs_grpc.FusionServiceStub(ch).GetStatus(fs.GetStatusRequest())
        return dict(resp.counters)


def test_bad_recorded_frames_replay_as_they_are_and_the_summary_shows_them_rejected(
    tmp_path, capsys
):
    path = tmp_path / "bad.mcap"
    write_recording(path, bad=True)

    async def run() -> int:
        server = await start_fusion_server(settings(tmp_path))
        try:
            argv = ["replay", str(path), "--fusion", server.address, "--max-speed"]
            return await asyncio.to_thread(main, argv)
        finally:
            await server.stop(0.5)

    assert asyncio.run(run()) == 0
    out = capsys.readouterr().out
    # Three invalid frames (empty sensor id, |u| = 2, sigma 20 rad), each named by field.
    assert "REJECTED 3" in out and f"ACCEPTED {len(SENSORS) * N_PER_SENSOR}" in out
    for field in ("sensor_id", "line_of_sight", "angular_sigma"):
        assert field in out


def test_replay_survives_a_fusion_crash_and_every_frame_is_journaled_once(tmp_path):
    path = tmp_path / "rec.mcap"
    write_recording(path)
    total = len(_frames())
    journaled_before_kill = 0

    async def run():
        nonlocal journaled_before_kill
        server = await start_fusion_server(settings(tmp_path))
        address = server.address
        # 4 s of recording at speed 4: about a second of streaming.
        opts = StreamerOptions(speed=4.0, reconnect_timeout_s=20.0)
        frames = [
            (t, sensor_pb2.SensorFrame.FromString(b))
            for _, t, b in RecordingReader(path).raw_messages([TOPIC_FRAMES])
        ]
        task = asyncio.create_task(FrameStreamer(address, opts).run(SENSORS, frames))
        while (await counters(address)).get("journal_frames", 0) < total // 3:
            await asyncio.sleep(0.02)
        await server.kill()  # as SIGKILL: the journal keeps what was committed
        await asyncio.sleep(0.3)
        server = await start_fusion_server(settings(tmp_path), address)
        try:
            result = await asyncio.wait_for(task, 30)
            after = await counters(address)
        finally:
            await server.stop(0.5)
        return result, after

    result, after = asyncio.run(run())
    assert result.reconnects >= 1
    # Every frame journaled exactly once: what the dead service had is answered
    # DUPLICATE on resend, the rest ACCEPTED.
    assert after["journal_frames"] == total
    assert result.counts["ACCEPTED"] + result.resent_duplicates == total
    assert result.counts["DUPLICATE"] == result.resent_duplicates
    assert result.counts["LATE"] == result.counts["REJECTED"] == 0


def test_max_speed_replay_gives_exactly_the_offline_track_reports(simulated_mcap, tmp_path):
    """DESIGN §6: a recording replayed live (concurrent per-satellite streams, fresh
    journal, no idle timeout) gives the reports `tracklayer track` gives, field for field
    (wall-clock emitted_at aside). `dropout` has latency up to 5 s and drops, so every
    satellite's frames arrive out of order."""
    pytest.importorskip("tracklayer.fusion.tracker")
    rec = simulated_mcap("dropout", duration_s=150)  # shared with test_track_determinism
    offline = tmp_path / "offline.mcap"
    assert main(["track", str(rec), "--out", str(offline)]) == 0
    expected = [
        canonical_bytes(track_pb2.TrackReport.FromString(d))
        for _, _, d in RecordingReader(offline).raw_messages([TOPIC_TRACKS])
    ]
    assert expected

    async def run() -> list[bytes]:
        live = FusionSettings(
            journal_path=tmp_path / "fusion.journal.sqlite",
            outbox_path=tmp_path / "fusion.outbox.sqlite",
            idle_timeout_s=0.0,
        )
        server = await start_fusion_server(live)
        got: list = []
        async with grpc.aio.insecure_channel(server.address) as ch:
            call = fs_grpc.FusionServiceStub(ch).SubscribeLiveTracks(
                fs.SubscribeLiveTracksRequest()
            )

            async def collect() -> None:
                async for resp in call:
                    got.extend(resp.reports)

            collector = asyncio.create_task(collect())
            try:
                argv = ["replay", str(rec), "--fusion", server.address, "--max-speed"]
                assert await asyncio.to_thread(main, argv) == 0
                for _ in range(600):  # the end-of-data flush follows the last ack
                    if len(got) >= len(expected):
                        break
                    await asyncio.sleep(0.05)
            finally:
                call.cancel()
                await asyncio.gather(collector, return_exceptions=True)
                await server.stop(0.5)
        return [canonical_bytes(r) for r in got]

    got = asyncio.run(run())
    assert len(got) == len(expected)
    assert got == expected
