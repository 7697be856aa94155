"""What ``tracklayer sensors`` and ``tracklayer replay`` share: the flags of their link
to the fusion service, their checks, and one run of a frame streamer from those flags.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable

from tracklayer.services.cli.options import check_positive
from tracklayer.services.cli.progress import ProgressLine
from tracklayer.services.errors import UserError
from tracklayer.services.rpc.tls import SENSOR_KIND, TlsConfig, add_tls_arguments


def add_stream_target_arguments(
    p: argparse.ArgumentParser, speed_help: str, max_speed_help: str
) -> None:
    """``--fusion HOST:PORT`` and the pacing pair ``--speed X`` | ``--max-speed``."""
    p.add_argument(
        "--fusion", required=True, metavar="HOST:PORT", help="address of the fusion service"
    )
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, metavar="X", help=speed_help)
    pace.add_argument("--max-speed", action="store_true", help=max_speed_help)


def add_connection_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of a frame streamer's link to the fusion service (replay and sensors):
    ``--connect-timeout``, ``--reconnect-timeout`` (seconds) and the client ``--tls-*``."""
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for the fusion service (default: %(default)s)",
    )
    p.add_argument(
        "--reconnect-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help=(
            "give up when a lost fusion service makes no progress for S seconds "
            "(default: %(default)s)"
        ),
    )
    add_tls_arguments(p, role="client")


def check_stream_arguments(args: argparse.Namespace) -> None:
    """UserError for a bad ``--fusion`` address, ``--reconnect-timeout`` or ``--speed``."""
    from tracklayer.services.clients.stream_options import check_address

    try:
        check_address(args.fusion)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_positive(args.reconnect_timeout, "--reconnect-timeout", " s")
    if not args.max_speed:
        check_positive(args.speed, "--speed")


def parse_satellites(text: str | None, known: list[str], flag: str = "--satellites") -> list[str]:
    """Comma-separated ids -> list in the given order; unknown ids raise UserError."""
    if text is None:
        return list(known)
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    if not wanted:
        raise UserError(f"{flag}: no sensor ids given")
    unknown = [s for s in wanted if s not in set(known)]
    if unknown:
        shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        raise UserError(f"{flag}: unknown sensor ids {', '.join(unknown)} (known: {shown})")
    return list(dict.fromkeys(wanted))


def streamer_credentials(args: argparse.Namespace, sensors: list[str]):
    """Channel credentials from ``--tls-*`` (None: plaintext). With mTLS the certificate
    must name every streamed sensor (``urn:tracklayer:sensor:<id>``; one sensor's
    ``sensor-<id>.crt``, or ``node-<name>.crt`` naming many): the service ends a stream
    whose frames name another sensor with PERMISSION_DENIED, so refuse at start-up."""
    tls = TlsConfig.from_args(args)
    if tls is None:
        return None
    tls.require_identities(SENSOR_KIND, sensors)
    return tls.channel_credentials()


def stream_from_args(
    args: argparse.Namespace,
    sensors: list[str],
    source: Iterable,
    bar: ProgressLine,
    *,
    window_s: float | None = None,
    origin_ns: int | None = None,
    errors: tuple[type[Exception], ...] = (),
):  # -> StreamResult
    """Stream ``source`` into ``--fusion`` as the flags say (pace, timeouts, TLS), drawing
    ``bar``; the streamer's errors and ``errors`` become one-line UserErrors."""
    from tracklayer.services.clients.frame_streamer import (
        FrameStreamer,
        StreamerError,
        StreamerOptions,
    )

    options = StreamerOptions(
        speed=None if args.max_speed else args.speed,
        connect_timeout_s=args.connect_timeout,
        reconnect_timeout_s=args.reconnect_timeout,
        **({} if window_s is None else {"window_s": window_s}),
    )
    credentials = streamer_credentials(args, sensors)
    streamer = FrameStreamer(
        args.fusion, options, progress=bar, credentials=credentials, origin_ns=origin_ns
    )
    try:
        return asyncio.run(streamer.run(sensors, source))
    except (StreamerError, *errors) as exc:
        raise UserError(str(exc)) from None
    finally:
        bar.close()
