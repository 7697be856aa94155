"""Scale-out with mutual TLS on every link (issue 14: workers and broker on several
machines): the broker (``tracklayer broker --tls-*``) takes only clients with a
certificate of the deployment's CA; the front door reaches it with its own
certificate (``fusion --nats tls://... --tls-*``), the worker with one too; sensors,
front door and store talk mTLS as today. The store ends with ``tracklayer track``'s
reports."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from scaleout_chain import offline_reports, wait_stored

from tracklayer.services.cli import main
from tracklayer.services.ops import processes
from tracklayer.services.rpc.tls import TlsConfig

pytest.importorskip("nats")
pytest.importorskip("tracklayer.fusion.tracker")

#: A regression recording (one SRBM, 130 s, frames out of order), 28 satellites.
RECORDING = Path(__file__).parent / "data" / "regression" / "srbm-short.mcap"
SENSORS = ",".join(f"sat-{p}-{s}" for p in range(1, 5) for s in range(1, 8))


def tls_args(certs, name: str) -> list[str]:
    return ["--tls-cert", str(certs / f"{name}.crt"), "--tls-key", str(certs / f"{name}.key"),
            "--tls-ca", str(certs / "ca.crt")]  # fmt: skip


def test_every_link_mutual_tls_broker_refuses_plaintext_and_reports_match(tracked_mcap, tmp_path):
    import nats

    from tracklayer.services.scaleout.broker import start_broker

    rec = RECORDING
    expected = offline_reports(tracked_mcap(str(rec)))
    certs = tmp_path / "certs"
    argv = ["certs", str(certs), "--sensors", SENSORS, "--fusion", "fusion", "--node", "replay"]
    assert main(argv) == 0
    broker = start_broker(
        "127.0.0.1:0", tmp_path / "broker", tls=TlsConfig.from_dir(certs, "store")
    )
    assert broker.url.startswith("tls://")
    logs, kids = tmp_path / "logs", []
    try:

        async def plaintext_refused() -> bool:
            try:
                nc = await nats.connect(f"nats://{broker.address}", max_reconnect_attempts=0,
                                        allow_reconnect=False, connect_timeout=3)  # fmt: skip
            except Exception:  # noqa: BLE001 - refused, whatever the client calls it
                return True
            await nc.close()
            return False

        assert asyncio.run(plaintext_refused())
        store = processes.start_command(
            "store", ["consumer", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "t.sqlite"),
                      *tls_args(certs, "store")], logs,
        )  # fmt: skip
        kids.append(store)
        store_address = processes.wait_listening(store)
        front = processes.start_command(
            "fusion", ["fusion", "--listen", "127.0.0.1:0", "--store", store_address,
                       "--nats", broker.url, "--idle-timeout", "0",
                       *tls_args(certs, "fusion-fusion")], logs,
        )  # fmt: skip
        kids.append(front)
        address = processes.wait_listening(front)
        worker = processes.start_command(
            "w1", ["worker", "--nats", broker.url, "--id", "w1",
                   *tls_args(certs, "fusion-fusion")], logs,
        )  # fmt: skip
        kids.append(worker)
        replay = processes.start_command(
            "replay", ["replay", str(rec), "--fusion", address, "--max-speed",
                       *tls_args(certs, "node-replay")], logs,
        )  # fmt: skip
        assert replay.wait(120) == 0, replay.log_tail()
        got = wait_stored(tmp_path / "t.sqlite", len(expected))
    finally:
        codes = processes.stop_all(kids, grace_s=20)
        broker.stop()
    assert codes == {"store": 0, "fusion": 0, "w1": 0}
    assert sorted(got.values()) == sorted(expected)
