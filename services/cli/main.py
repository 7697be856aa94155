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


def build_parser() -> argparse.ArgumentParser:
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

    for name in _command_modules():
        importlib.import_module(f"tracklayer.services.cli.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
