"""Flags and checks that more than one command shares, and the ``--config`` loading.

Command modules import from here (and from :mod:`.streaming`), never from each other:
``--config`` (track, fusion), ``--metrics-port`` (fusion, consumer) and the one-line
checks of numeric flags. Every check raises :class:`UserError` naming the flag.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tomllib
from pathlib import Path

from tracklayer.fusion.config import FusionConfig
from tracklayer.services.errors import UserError

#: A service identity (fusion id, worker name): it names tracks, files and broker names.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(value: str | None, flag: str, what: str = "") -> str:
    """``value`` if it is a valid identity, else UserError naming ``flag``."""
    if not NAME.match(value or ""):
        raise UserError(f"{flag}: {value!r} must be 1-64 letters, digits, '.', '_' or '-'" + what)
    return str(value)


CONFIG_HELP = "fusion settings (flat TOML table of FusionConfig fields, SI units)"


# ------------------------------------------------------------------ --config


def add_config_argument(p: argparse.ArgumentParser) -> None:
    """``--config FILE.toml``: fusion settings, and ``--no-registration`` (read by
    :func:`config_from_args`)."""
    p.add_argument("--config", metavar="FILE.toml", help=CONFIG_HELP)
    p.add_argument(
        "--no-registration",
        action="store_true",
        help="do not estimate the sensors' pointing biases (setting registration = false)",
    )


def config_from_args(args: argparse.Namespace) -> FusionConfig:
    """The fusion settings of ``--config`` with ``--no-registration`` applied."""
    config = load_fusion_config(args.config)
    if getattr(args, "no_registration", False):
        config = config.replace(registration=False)
    return config


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
