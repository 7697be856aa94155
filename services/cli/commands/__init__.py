"""One module per ``tracklayer`` subcommand.

Each module defines ``add_parser(subparsers) -> None``, which adds its
subparser and sets ``func`` (``argparse.Namespace -> int`` exit status).
:mod:`tracklayer.services.cli` discovers them; no central list to edit.
"""
