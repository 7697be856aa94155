"""Mutual TLS on the live services, through real gRPC clients (issue 7 item 1).

The fusion service tracks with ``tracker_double.RecordingTracker`` (one report
per applied frame, naming its sensor), so which frames were applied is visible
in the reports; the physics is not under test here, identities are.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from tracker_double import RecordingTracker

from tracklayer.services.cli import main as cli_main
from tracklayer.services.clients.frame_streamer import FrameStreamer, StreamerError, StreamerOptions
from tracklayer.services.fusion_service.servicer import start_fusion_server
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.ops.dev_certs import write_dev_certs
from tracklayer.services.rpc.tls import TlsConfig, create_channel
from tracklayer.services.store_service.servicer import start_track_store_server
from tracklayer.v1 import fusion_service_pb2 as fs
from tracklayer.v1 import fusion_service_pb2_grpc as fs_grpc
from tracklayer.v1 import sensor_pb2, track_pb2
from tracklayer.v1 import track_store_service_pb2 as ts
from tracklayer.v1 import track_store_service_pb2_grpc as ts_grpc

ACCEPTED = sensor_pb2.FRAME_STATUS_ACCEPTED
STORED = track_pb2.PUBLISH_STATUS_STORED
REJECTED = track_pb2.PUBLISH_STATUS_REJECTED
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, s since the Unix epoch
FUSION = "fu"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    write_dev_certs(d, ["sat-1-1", "sat-1-2"], [FUSION, "other"], node="pair")
    return d


def cfg(certs: Path, name: str) -> TlsConfig:
    return TlsConfig.from_dir(certs, name)


def frame(sensor: str, seq: int, t_s: float) -> sensor_pb2.SensorFrame:
    """A valid wire frame ``t_s`` after T0 (one detection, 20 urad)."""
    f = sensor_pb2.SensorFrame(sensor_id=sensor, sequence=seq)
    ns = T0 * 1_000_000_000 + round(t_s * 1e9)
    f.time.seconds, f.time.nanos = divmod(ns, 1_000_000_000)
    f.sensor_position_eci.x = 7.0e6
    f.sensor_velocity_eci.y = 7.5e3
    d = f.detections.add(angular_sigma=2e-5, intensity=1.0)
    d.line_of_sight_eci.x, d.line_of_sight_eci.y = 0.6, 0.8
    return f


def report(track_id: str, revision: int = 1) -> track_pb2.TrackReport:
    r = track_pb2.TrackReport(track_id=track_id, revision=revision, status=2)
    r.time.seconds = T0 + revision
    r.position_eci.x = 7.0e6
    r.velocity_eci.y = 7.0e3
    r.covariance.extend([float(i == j) for i in range(6) for j in range(6)])
    return r


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------- track store


class Store:
    """An mTLS track store in this process; ``channel(name)`` dials it with DIR/name.crt."""

    def __init__(self, certs: Path, tmp: Path):
        self.certs, self.tmp = certs, tmp

    async def __aenter__(self):
        creds = cfg(self.certs, "store").server_credentials()
        self.server = await start_track_store_server(self.tmp / "store.sqlite", credentials=creds)
        return self

    def stub(self, name: str) -> ts_grpc.TrackStoreServiceStub:
        channel = create_channel(self.server.address, cfg(self.certs, name))
        return ts_grpc.TrackStoreServiceStub(channel)

    async def __aexit__(self, *exc):
        await self.server.stop(0.2)


async def publish_once(stub, reports) -> list:
    call = stub.PublishTracks()
    await call.write(ts.PublishTracksRequest(reports=reports))
    resp = await call.read()
    await call.done_writing()
    assert resp is not grpc.aio.EOF, "stream ended"
    return list(resp.acks)


def test_store_accepts_reports_from_a_fusion_identity(certs, tmp_path):
    async def body():
        async with Store(certs, tmp_path) as s:
            acks = await publish_once(s.stub(f"fusion-{FUSION}"), [report("fu-1")])
            return [a.status for a in acks]

    assert run(body()) == [STORED]


def test_store_denies_publishing_to_a_sensor_identity(certs, tmp_path):
    async def body():
        async with Store(certs, tmp_path) as s:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await publish_once(s.stub("sensor-sat-1-1"), [report("fu-1")])
            return err.value, s.server.servicer.counters()

    err, counters = run(body())
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "urn:tracklayer:fusion" in err.details()
    assert counters["permission_denied_total"] == 1
    assert counters["reports_stored"] == 0


def test_store_rejects_tracks_of_another_fusion_and_stores_its_own(certs, tmp_path):
    async def body():
        async with Store(certs, tmp_path) as s:
            # "fu-x-1" is a track of a fusion "fu-x", not of "fu".
            batch = [report("other-1"), report("fu-1"), report("fu-x-1"), report("fu-2")]
            return await publish_once(s.stub(f"fusion-{FUSION}"), batch)

    acks = run(body())
    assert [(a.track_id, a.status) for a in acks] == [
        ("other-1", REJECTED),
        ("fu-1", STORED),
        ("fu-x-1", REJECTED),
        ("fu-2", STORED),
    ]
    assert acks[0].reason.startswith("track_id:") and "fu" in acks[0].reason


def test_store_serves_reads_to_any_certificate_of_the_ca(certs, tmp_path):
    async def body():
        async with Store(certs, tmp_path) as s:
            await publish_once(s.stub(f"fusion-{FUSION}"), [report("fu-1")])
            listed = await s.stub("sensor-sat-1-2").ListTracks(ts.ListTracksRequest(), timeout=5)
            return [t.track_id for t in listed.tracks]

    assert run(body()) == ["fu-1"]


# ---------------------------------------------------------------- fusion service


class Fusion:
    """An mTLS fusion service (optionally forwarding to an mTLS store) in this process."""

    def __init__(self, certs: Path, tmp: Path, store_address: str | None = None, client="fu"):
        self.certs, self.tmp = certs, tmp
        self.settings = FusionSettings(
            fusion_id=FUSION,
            journal_path=tmp / "fu.journal.sqlite",
            outbox_path=tmp / "fu.outbox.sqlite",
            idle_timeout_s=0.0,
            tracker_factory=RecordingTracker,
            store_target=store_address,
            store_max_backoff_s=0.2,
            store_credentials=cfg(certs, f"fusion-{client}").channel_credentials(),
        )

    async def __aenter__(self):
        creds = cfg(self.certs, f"fusion-{FUSION}").server_credentials()
        self.server = await start_fusion_server(self.settings, credentials=creds)
        self.address = self.server.address
        return self

    def stub(self, name: str) -> fs_grpc.FusionServiceStub:
        return fs_grpc.FusionServiceStub(create_channel(self.address, cfg(self.certs, name)))

    async def counters(self) -> dict[str, int]:
        return self.server.engine.counters()

    async def __aexit__(self, *exc):
        await self.server.stop(grace=0.5)


async def send(call, *frames, sensor_id: str = ""):
    """Write one request; its response, or None when the service ended the call instead."""
    try:
        await call.write(fs.StreamFramesRequest(frames=frames, sensor_id=sensor_id))
        resp = await call.read()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return None
    return None if resp is grpc.aio.EOF else resp


def frames_total(counters: dict[str, int]) -> int:
    return sum(v for k, v in counters.items() if k.startswith("frames_total"))


def test_fusion_accepts_frames_of_the_certificates_sensor(certs, tmp_path):
    async def body():
        async with Fusion(certs, tmp_path) as f:
            call = f.stub("sensor-sat-1-1").StreamFrames()
            resp = await send(call, frame("sat-1-1", 1, 0.0), sensor_id="sat-1-1")
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            return [a.status for a in resp.acks], await call.code()

    assert run(body()) == ([ACCEPTED], grpc.StatusCode.OK)


def test_frame_of_another_sensor_ends_the_stream_permission_denied_unapplied(certs, tmp_path):
    async def body():
        async with Fusion(certs, tmp_path) as f:
            call = f.stub("sensor-sat-1-1").StreamFrames()
            first = await send(call, frame("sat-1-1", 1, 0.0), sensor_id="sat-1-1")
            # A request mixing an own frame with a forged one is refused whole.
            forged = await send(call, frame("sat-1-1", 2, 1.0), frame("sat-1-2", 1, 1.0))
            return first, forged, await call.code(), await call.details(), await f.counters()

    first, forged, code, details, counters = run(body())
    assert [a.status for a in first.acks] == [ACCEPTED]
    assert forged is None
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details.startswith("sensor_id: 'sat-1-2'") and "sat-1-1" in details
    assert frames_total(counters) == 1  # neither frame of the refused request was taken
    assert counters["permission_denied_total"] == 1


def test_stream_naming_another_sensor_cannot_replace_that_sensors_stream(certs, tmp_path):
    async def body():
        async with Fusion(certs, tmp_path) as f:
            real = f.stub("sensor-sat-1-2").StreamFrames()
            await send(real, frame("sat-1-2", 1, 0.0), sensor_id="sat-1-2")
            rogue = f.stub("sensor-sat-1-1").StreamFrames()
            assert await send(rogue, sensor_id="sat-1-2") is None
            rogue_code = await rogue.code()
            # The real stream was not replaced (that would end it ABORTED): it goes on.
            again = await send(real, frame("sat-1-2", 2, 1.0))
            await real.done_writing()
            assert await real.read() is grpc.aio.EOF
            return rogue_code, [a.status for a in again.acks], await real.code()

    assert run(body()) == (grpc.StatusCode.PERMISSION_DENIED, [ACCEPTED], grpc.StatusCode.OK)


def test_client_may_declare_only_the_sensors_its_certificate_names(certs, tmp_path):
    # A declared sensor holds the ordering watermark back: a forged one would stall tracking.
    async def body():
        async with Fusion(certs, tmp_path) as f:
            stub = f.stub("sensor-sat-1-1")
            ok = await stub.DeclareSensors(fs.DeclareSensorsRequest(sensor_ids=["sat-1-1"]))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.DeclareSensors(fs.DeclareSensorsRequest(sensor_ids=["sat-1-2"]))
            return list(ok.expected_sensor_ids), err.value, await f.counters()

    expected, err, counters = run(body())
    assert expected == ["sat-1-1"]
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith("sensor_ids[0]: 'sat-1-2' is not named by the client")
    assert counters["permission_denied_total"] == 1


def test_certificate_without_sensor_identity_cannot_stream_frames(certs, tmp_path):
    async def body():
        async with Fusion(certs, tmp_path) as f:
            call = f.stub(f"fusion-{FUSION}").StreamFrames()
            assert await send(call, frame("sat-1-1", 1, 0.0)) is None
            return await call.code()

    assert run(body()) == grpc.StatusCode.PERMISSION_DENIED


def test_frame_with_empty_sensor_id_is_still_rejected_not_denied(certs, tmp_path):
    # An empty sensor_id claims no identity: it is a bad frame (REJECTED, DESIGN §4).
    async def body():
        async with Fusion(certs, tmp_path) as f:
            call = f.stub("sensor-sat-1-1").StreamFrames()
            resp = await send(call, frame("", 1, 0.0))
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            return [a.status for a in resp.acks], await call.code()

    assert run(body()) == ([sensor_pb2.FRAME_STATUS_REJECTED], grpc.StatusCode.OK)


def test_unary_calls_need_only_a_certificate_of_the_ca(certs, tmp_path):
    async def body():
        async with Fusion(certs, tmp_path) as f:
            status = await f.stub("fusion-other").GetStatus(fs.GetStatusRequest(), timeout=5)
            return dict(status.counters)

    assert "permission_denied_total" in run(body())


def test_server_only_store_certificate_is_refused_as_a_client_certificate(certs, tmp_path):
    # store.crt has extendedKeyUsage serverAuth only; the handshake checks the purpose.
    async def body():
        async with Fusion(certs, tmp_path) as f:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await f.stub("store").GetStatus(fs.GetStatusRequest(), timeout=5)
            return err.value.code()

    assert run(body()) == grpc.StatusCode.UNAVAILABLE


def test_reports_reach_the_store_over_mtls_end_to_end(certs, tmp_path):
    async def body():
        async with Store(certs, tmp_path) as s, Fusion(certs, tmp_path, s.server.address) as f:
            call = f.stub("sensor-sat-1-1").StreamFrames()
            await send(
                call, *(frame("sat-1-1", i, float(i)) for i in range(1, 4)), sensor_id="sat-1-1"
            )
            await call.done_writing()  # all streams closed: flush, reports to the outbox
            assert await call.read() is grpc.aio.EOF
            reader = s.stub("sensor-sat-1-2")
            deadline = time.monotonic() + 10
            while s.server.servicer.counters()["reports_stored"] < 4:
                assert time.monotonic() < deadline, "reports did not reach the store"
                await asyncio.sleep(0.05)
            hist = await reader.GetTrackHistory(ts.GetTrackHistoryRequest(track_id="fu-1"))
            return hist, s.server.servicer.counters()

    hist, counters = run(body())
    # RecordingTracker: one report per applied frame (3) and a DELETED one at the flush.
    assert [r.revision for r in hist.reports] == [1, 2, 3, 4]
    assert counters["permission_denied_total"] == 0


def test_fusion_dialling_the_store_with_a_foreign_fusion_identity_stores_nothing(certs, tmp_path):
    # A fusion service holding the certificate of fusion "other" may not publish "fu-<n>".
    async def body():
        async with (
            Store(certs, tmp_path) as s,
            Fusion(certs, tmp_path, s.server.address, client="other") as f,
        ):
            call = f.stub("sensor-sat-1-1").StreamFrames()
            await send(call, frame("sat-1-1", 1, 0.0), sensor_id="sat-1-1")
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            deadline = time.monotonic() + 10
            while f.server.engine.outbox.rejected < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return s.server.servicer.counters(), f.server.engine.outbox.rejected

    counters, rejected = run(body())
    assert counters["reports_stored"] == 0
    assert rejected == 2  # one report per frame + the DELETED one, both refused


# ---------------------------------------------------------------- streaming clients


def two_sensor_source():
    for i in range(1, 6):
        for sid in ("sat-1-1", "sat-1-2"):
            f = frame(sid, i, float(i))
            yield T0 * 1_000_000_000 + i * 1_000_000_000, f


def test_frame_streamer_streams_many_sensors_with_one_node_certificate(certs, tmp_path):
    async def body():
        async with Fusion(certs, tmp_path) as f:
            streamer = FrameStreamer(
                f.address,
                StreamerOptions(speed=None, connect_timeout_s=5),
                credentials=cfg(certs, "node-pair").channel_credentials(),
            )
            return await streamer.run(["sat-1-1", "sat-1-2"], two_sensor_source())

    result = run(body())
    assert result.counts["ACCEPTED"] == 10 and result.acked == 10


def test_frame_streamer_with_a_single_sensor_certificate_is_denied_the_other(certs, tmp_path):
    async def body():
        async with Fusion(certs, tmp_path) as f:
            streamer = FrameStreamer(
                f.address,
                StreamerOptions(speed=None, connect_timeout_s=5),
                credentials=cfg(certs, "sensor-sat-1-1").channel_credentials(),
            )
            with pytest.raises(StreamerError) as err:
                await streamer.run(["sat-1-1", "sat-1-2"], two_sensor_source())
            return str(err.value)

    message = run(body())
    assert "PERMISSION_DENIED" in message and "sat-1-2" in message


def tls_flags(certs: Path, name: str) -> list[str]:
    return ["--tls-cert", str(certs / f"{name}.crt"), "--tls-key", str(certs / f"{name}.key"),
            "--tls-ca", str(certs / "ca.crt")]  # fmt: skip


def test_sensors_command_refuses_a_certificate_not_naming_its_satellites(certs, capsys):
    argv = ["sensors", "single-icbm", "--fusion", "127.0.0.1:1", "--satellites", "sat-1-1,sat-1-2"]
    assert cli_main([*argv, *tls_flags(certs, "sensor-sat-1-1")]) == 2
    err = capsys.readouterr().err
    assert "--tls-cert" in err and "sat-1-2" in err and "urn:tracklayer:sensor:sat-1-2" in err


def test_fusion_command_refuses_a_certificate_of_another_fusion_id(certs, tmp_path, capsys):
    files = ["--journal", str(tmp_path / "j.sqlite"), "--outbox", str(tmp_path / "o.sqlite")]
    argv = ["fusion", "--listen", "127.0.0.1:0", "--store", "127.0.0.1:1", "--id", FUSION, *files]
    assert cli_main([*argv, *tls_flags(certs, "sensor-sat-1-1")]) == 2
    assert "urn:tracklayer:fusion:fu" in capsys.readouterr().err


def test_partial_tls_flags_are_an_error_naming_the_missing_ones(certs, tmp_path, capsys):
    argv = ["consumer", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "t.sqlite")]
    assert cli_main([*argv, "--tls-cert", str(certs / "store.crt")]) == 2
    assert "--tls-key, --tls-ca: required together" in capsys.readouterr().err


def start_consumer(tmp_path: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """``tracklayer consumer`` as a process; returns it and its first stdout line."""
    argv = [sys.executable, "-m", "tracklayer.services.cli", "consumer", "--listen",
            "127.0.0.1:0", "--db", str(tmp_path / "t.sqlite"), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    return proc, proc.stdout.readline()


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return err


def test_consumer_says_plaintext_in_its_start_up_lines(tmp_path):
    proc, line = start_consumer(tmp_path, [])
    err = stop(proc)
    assert re.search(r"listening on \S+ \(plaintext: no TLS\)", line)
    assert 'transport="plaintext: no TLS"' in err


def test_consumer_serves_mtls_with_tls_flags(certs, tmp_path):
    proc, line = start_consumer(tmp_path, tls_flags(certs, "store"))
    try:
        address = re.search(r"listening on (\S+)", line).group(1)

        async def probe():
            stub = ts_grpc.TrackStoreServiceStub(create_channel(address, cfg(certs, "fusion-fu")))
            acks = await publish_once(stub, [report("fu-1")])
            plain = ts_grpc.TrackStoreServiceStub(grpc.aio.insecure_channel(address))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await plain.ListTracks(ts.ListTracksRequest(), timeout=3)
            return [a.status for a in acks], err.value.code()

        statuses, plain_code = run(probe())
    finally:
        err = stop(proc)
    assert "(mTLS cert=" in line and "transport=mTLS" in err
    assert statuses == [STORED]
    assert plain_code == grpc.StatusCode.UNAVAILABLE


# ---------------------------------------------------------------- the commands end to end


def test_replay_fusion_and_store_commands_run_end_to_end_over_mtls(simulated_mcap, tmp_path):
    """`tracklayer consumer`, `fusion` and `replay` as processes, every hop mutual TLS."""
    from tracklayer.services.ops import processes

    rec = simulated_mcap("dropout", duration_s=150)  # shared with test_replay_service
    d = tmp_path / "certs"
    assert cli_main(["certs", str(d), "--scenario", "dropout", "--node", "all"]) == 0
    logs = tmp_path / "logs"
    store = processes.start_command(
        "store",
        ["consumer", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "t.sqlite"),
         *tls_flags(d, "store")],
        logs,
    )  # fmt: skip
    children = [store]
    try:
        store_addr = processes.wait_listening(store)
        fusion = processes.start_command(
            "fusion",
            ["fusion", "--listen", "127.0.0.1:0", "--store", store_addr, "--idle-timeout", "0",
             "--journal", str(tmp_path / "j.sqlite"), "--outbox", str(tmp_path / "o.sqlite"),
             *tls_flags(d, "fusion-fusion")],
            logs,
        )  # fmt: skip
        children.append(fusion)
        fusion_addr = processes.wait_listening(fusion)
        replay = processes.start_command(
            "replay",
            ["replay", str(rec), "--fusion", fusion_addr, "--max-speed",
             *tls_flags(d, "node-all")],
            logs,
        )  # fmt: skip
        children.append(replay)
        assert replay.wait(120) == 0, replay.log_tail()

        async def stored() -> int:
            stub = ts_grpc.TrackStoreServiceStub(create_channel(store_addr, cfg(d, "node-all")))
            deadline = time.monotonic() + 30
            while True:
                tracks = await stub.ListTracks(ts.ListTracksRequest(include_deleted=True))
                if tracks.tracks or time.monotonic() > deadline:
                    return len(tracks.tracks)
                await asyncio.sleep(0.2)

        n_tracks = run(stored())
    finally:
        processes.stop_all(children, grace_s=10)
    assert n_tracks > 0  # reports made it fusion -> store over mTLS
    assert "(mTLS cert=" in fusion.log_path.read_text()
    assert "ACCEPTED" in replay.log_path.read_text()
