"""The ``tracklayer`` command line.

Each subcommand lives in its own module and registers itself through
``add_parser(subparsers)``; this module only assembles them. Errors a user
can fix (bad files, bad scenarios, unreachable services) are raised as
:class:`UserError` and printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tracklayer import __version__
from tracklayer.services.errors import UserError


def _command_modules() -> list[str]:
    """Names of the subcommand modules in :mod:`tracklayer.services.cli.commands`, sorted."""
    import pkgutil

    from tracklayer.services.cli import commands

    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.ispkg)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``tracklayer`` parser with every subcommand, or only with ``only`` (a
    subcommand's name): a command line naming its command imports that module alone,
    not every command's imports (a restarting service answers sooner, issue 15)."""
    parser = argparse.ArgumentParser(
        prog="tracklayer",
        description=(
            "Missile-tracking sensor fusion for a LEO infrared constellation: "
            "simulate scenarios, track them, run the live gRPC services."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tracklayer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    names = _command_modules()
    for name in [only] if only in names else names:
        importlib.import_module(f"tracklayer.services.cli.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Before gRPC is first imported: its fork handlers off, so that the fusion engine
    # may fork to encode a big checkpoint (services/fusion_service/forked_encode.py:
    # with them on, 1 fork in ~4 left a child that crashed at once).
    from tracklayer.services.fork_policy import allow_fork

    allow_fork()
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=words[0] if words else None)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return int(func(args) or 0)
    except UserError as exc:
        print(f"tracklayer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tracklayer {args.command}: interrupted", file=sys.stderr)
        return 130
