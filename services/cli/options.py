"""Flags and checks that more than one command shares, and the ``--config`` loading.

Command modules import from here, never from each other: ``--config`` (track,
fusion), the fusion-link flags of the frame streamers (sensors, replay),
``--metrics-port`` (fusion, consumer) and the one-line checks of numeric flags.
Every check raises :class:`UserError` naming the flag.
"""

from __future__ import annotations

import argparse
import math
import os
import tomllib
from pathlib import Path

from tracklayer.fusion.config import FusionConfig
from tracklayer.services.errors import UserError
from tracklayer.services.rpc.tls import SENSOR_KIND, TlsConfig, add_tls_arguments

CONFIG_HELP = "fusion settings (flat TOML table of FusionConfig fields, SI units)"


# ------------------------------------------------------------------ --config


def add_config_argument(p: argparse.ArgumentParser) -> None:
    """``--config FILE.toml``: fusion settings (read by :func:`load_fusion_config`)."""
    p.add_argument("--config", metavar="FILE.toml", help=CONFIG_HELP)


def load_fusion_config(path: str | os.PathLike[str] | None) -> FusionConfig:
    """FusionConfig from a flat TOML file of settings (None: the defaults).

    Raises :class:`UserError` naming the file (and the key, for a bad setting)."""
    if path is None:
        return FusionConfig()
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{p}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise UserError(f"{p}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: not valid TOML: {exc}") from None
    try:
        return FusionConfig.from_mapping(data)
    except ValueError as exc:
        raise UserError(f"{p}: {exc}") from None


# ------------------------------------------------------------------ servers


def add_metrics_port_argument(p: argparse.ArgumentParser) -> None:
    """``--metrics-port N``: serve Prometheus metrics (fusion, consumer)."""
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="N",
        help="serve Prometheus metrics on this port (0 = a free port; default: off)",
    )


# ------------------------------------------------------------------ frame streamers


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


# ------------------------------------------------------------------ numeric checks


def check_positive(value: float | None, flag: str, unit: str = "", finite: bool = False) -> None:
    """UserError unless ``value`` (None: not given) is > 0 (and finite, with ``finite``)."""
    if value is None:
        return
    if not value > 0 or (finite and not math.isfinite(value)):
        raise UserError(f"{flag}: must be > 0{unit}, got {value:g}")


def check_seed(seed: int | None) -> None:
    """UserError for a negative ``--seed``."""
    if seed is not None and seed < 0:
        raise UserError(f"--seed: must be >= 0, got {seed}")
