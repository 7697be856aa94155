"""Errors a user can fix, shared by every layer of ``services/``.

Servers, clients and commands raise :class:`UserError` for a bad file, a bad flag or
an unreachable peer; the command line prints it as one line with exit status 2 (no
traceback). Defined here, not in the CLI, so that servers never import the CLI.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2, no traceback."""
