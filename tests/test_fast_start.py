"""A restarting service answers SERVING sooner (issue 15 item 3): ``tracklayer fusion``
and ``tracklayer consumer``, run as processes the way a supervisor restarts them, import
before SERVING nothing they do not need then. Python's own import log of the real child
(``PYTHONPROFILEIMPORTTIME``) says what was imported.

What they no longer import at start, and what it cost (CPU s on this machine, quiet):
``cryptography`` without TLS files (~0.07), MCAP without ``--record`` (~0.07), the
other commands' modules (~0.06). The tracker's filterpy, and ``scipy.stats`` with it
(~0.8), are still imported: replacing filterpy by copies of its functions was tried
on branch uptime4 and left out (filterpy is the design card's filter library).
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from tracklayer.services.ops import processes

_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", re.MULTILINE)


def imported_before_serving(name: str, args: list[str], tmp_path: Path) -> set[str]:
    """Modules the child ``tracklayer ARGS`` imported by the time it answered SERVING."""
    child = processes.start_server(
        name, args, tmp_path / "logs", env={"PYTHONPROFILEIMPORTTIME": "1"}, cwd=tmp_path
    )
    try:
        text = child.log_path.read_text(errors="replace")
    finally:
        child.signal(signal.SIGKILL)
        child.wait(30)
    mods = set(_IMPORTED.findall(text))
    assert "grpc" in mods and "tracklayer.services.rpc.server" in mods  # the log was read
    return mods


def heavy(mods: set[str], prefixes: tuple[str, ...]) -> list[str]:
    """The modules in ``mods`` under any of the packages ``prefixes``."""
    return sorted(
        m for m in mods if m in prefixes or m.startswith(tuple(p + "." for p in prefixes))
    )


def test_fusion_imports_no_crypto_mcap_or_other_commands_before_serving(tmp_path):
    args = ["fusion", "--listen", "127.0.0.1:0", "--store", "127.0.0.1:1",
            "--journal", str(tmp_path / "f.journal.sqlite"),
            "--outbox", str(tmp_path / "f.outbox.sqlite")]  # fmt: skip
    mods = imported_before_serving("fusion", args, tmp_path)
    assert "tracklayer.fusion.tracker.tracker" in mods  # the tracker is built before SERVING
    # (the tracker's filterpy, and scipy.stats with it, is imported: the design card's
    # filter library, kept)
    assert heavy(mods, ("cryptography", "mcap")) == []
    # the other commands' modules (imported by importlib: not in the log themselves)
    other_commands = ("tracklayer.services.store_service", "tracklayer.services.ops.dev_certs",
                      "tracklayer.services.clients", "tracklayer.services.scaleout")  # fmt: skip
    assert heavy(mods, other_commands) == []


def test_consumer_imports_no_crypto_or_other_commands_before_serving(tmp_path):
    args = ["consumer", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "t.sqlite")]
    mods = imported_before_serving("consumer", args, tmp_path)
    assert heavy(mods, ("cryptography", "scipy", "filterpy", "mcap")) == []
    other_commands = ("tracklayer.services.fusion_service", "tracklayer.services.ops.dev_certs",
                      "tracklayer.services.clients", "tracklayer.services.scaleout")  # fmt: skip
    assert heavy(mods, other_commands) == []
