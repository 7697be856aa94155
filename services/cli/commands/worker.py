"""``tracklayer worker``: hosts scale-out shards (fusion --nats) under leases."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import os
import signal
import socket
import sys

from tracklayer.services.cli.options import check_name
from tracklayer.services.errors import UserError
from tracklayer.services.rpc.tls import TlsConfig, add_tls_arguments

#: Seconds a stopping worker waits for its shards and leases before it exits anyway.
STOP_LIMIT_S = 10.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "worker",
        help="host scale-out shards: track the journal of `fusion --nats` (docs/scaleout.md)",
        description=(
            "Take shards of a scale-out deployment through leases in the broker, run each "
            "with the same fusion core and ordering as `tracklayer track` from its last "
            "checkpoint, and publish the reports for the front door to deliver. A dead "
            "worker's shards are taken over by another. Stops cleanly on SIGTERM/SIGINT "
            "(its leases are released)."
        ),
    )
    p.add_argument("--nats", required=True, metavar="URL", help="broker (nats://HOST:PORT)")
    p.add_argument("--id", metavar="NAME", help="worker name in the leases (default: HOST-PID)")
    p.add_argument(
        "--fusion",
        default="fusion",
        metavar="ID",
        help="fusion identity of the deployment (the front door's --id; default: %(default)s)",
    )
    p.add_argument(
        "--max-shards",
        type=int,
        default=0,
        metavar="N",
        help="host at most N shards (0 = as many as are free; default: %(default)s)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=3000,
        metavar="N",
        help="journal events between two checkpoints of a shard (0 = never by count; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--checkpoint-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="also checkpoint after this many seconds with new events (0 = never; "
        "default: %(default)s)",
    )
    add_tls_arguments(p, role="client")
    p.set_defaults(func=run)


def _validated(args: argparse.Namespace) -> str:
    name = check_name(args.id or f"{socket.gethostname()}-{os.getpid()}", "--id")
    check_name(args.fusion, "--fusion")
    if not args.nats.startswith(("nats://", "tls://")):
        raise UserError(f"--nats: expected nats://HOST:PORT or tls://HOST:PORT, got {args.nats!r}")
    if args.max_shards < 0:
        raise UserError(f"--max-shards: must be >= 0, got {args.max_shards}")
    if args.checkpoint_every < 0:
        raise UserError(f"--checkpoint-every: must be >= 0, got {args.checkpoint_every}")
    if not 0 <= args.checkpoint_interval < float("inf"):
        raise UserError(
            f"--checkpoint-interval: must be finite and >= 0, got {args.checkpoint_interval}"
        )
    return name


async def _serve(args: argparse.Namespace, name: str) -> int:
    from tracklayer.services.rpc.server import wait_for_shutdown_signal
    from tracklayer.services.scaleout.worker import Worker

    worker = Worker(
        args.nats, name, args.fusion, max_shards=args.max_shards,
        checkpoint_every=args.checkpoint_every, checkpoint_interval_s=args.checkpoint_interval,
        tls=TlsConfig.from_args(args),
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    print(f"tracklayer worker: {name} serving fusion {args.fusion} on {args.nats}", flush=True)
    signal_wait = asyncio.ensure_future(wait_for_shutdown_signal())
    await asyncio.wait({task, signal_wait}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    signal_wait.cancel()
    done, _ = await asyncio.wait({task}, timeout=STOP_LIMIT_S)
    if not done:  # a client library stuck on a vanished broker: leave without it
        print(f"tracklayer worker: {name} stopped (the broker did not answer)", flush=True)
        os._exit(0)
    await task  # re-raises a failure (UserError: one line, exit 2)
    print(f"tracklayer worker: {name} stopped", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    from tracklayer.services.rpc.server import configure_logging

    name = _validated(args)
    configure_logging()
    try:  # `kill -USR1 PID`: every thread's stack to stderr (a stuck broker client)
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__)
    except (AttributeError, ValueError, OSError):  # no real stderr (embedded, tests)
        pass
    return asyncio.run(_serve(args, name))
