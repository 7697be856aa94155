"""``tracklayer scenarios``: the built-in scenarios, one line each."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scenarios",
        help="list the built-in scenarios",
        description="List the built-in scenarios (name and one-line description).",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tracklayer.sensors.scenario import list_scenarios

    rows = list_scenarios()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0
