"""Children that end with their supervising parent (Linux ``PR_SET_PDEATHSIG``).

:mod:`tracklayer.services.ops.processes` sets ``TRACKLAYER_PARENT_PID`` for children
that must not outlive it (``tracklayer demo``'s store, fusion and sensors run in
process groups of their own, out of reach of the terminal's Ctrl-C). Such a
child, started as ``python -m tracklayer.services.cli``, calls
:func:`exit_with_parent` first: the kernel then sends it SIGTERM (a graceful
stop) when the parent dies, even by SIGKILL. Elsewhere this is a no-op.
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "TRACKLAYER_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def exit_with_parent() -> None:
    """If ``TRACKLAYER_PARENT_PID`` is set: SIGTERM this process when that parent dies
    (exit now if it already has). The variable is removed, so it is not inherited."""
    text = os.environ.pop(ENV, "")
    if not text.isdigit() or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):
        return
    if os.getppid() != int(text):  # the parent died before the request took effect
        sys.exit(128 + int(signal.SIGTERM))
