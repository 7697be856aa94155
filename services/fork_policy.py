"""Whether this process may fork to encode checkpoints (a command-wide decision).

gRPC reads ``GRPC_ENABLE_FORK_SUPPORT`` when it is first imported; with its fork
handlers on, about one fork in four left a child that crashed at once (SIGSEGV). The
``tracklayer`` command calls :func:`allow_fork` first of all: it turns them off and
allows forks only if gRPC is not loaded yet, so a process that loaded gRPC first (a
test process calling the command in process) never forks. Read by
:mod:`tracklayer.services.fusion_service.forked_encode`.
"""

from __future__ import annotations

import os
import sys

_allowed = False


def allow_fork() -> None:
    """Turn gRPC's fork handlers off and allow forks, if gRPC is not loaded yet."""
    global _allowed
    if "grpc" in sys.modules:
        return
    os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"
    _allowed = True


def fork_allowed() -> bool:
    """:func:`allow_fork` ran before gRPC loaded and the fork handlers are still off."""
    flag = os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").strip().lower()
    return _allowed and flag in ("0", "false", "no", "off")
