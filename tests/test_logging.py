"""Server log lines go to the stderr of the moment: a server thread that outlives a
swapped stderr (pytest's capture of an earlier test, an embedding program) keeps logging
instead of failing on a closed stream."""

from __future__ import annotations

import io
import logging
import sys

from tracklayer.services.rpc.server import configure_logging, kv


def test_log_lines_follow_a_swapped_stderr(monkeypatch):
    root = logging.getLogger()
    before = list(root.handlers), root.level
    first, second = io.StringIO(), io.StringIO()
    try:
        for h in [h for h in root.handlers if getattr(h, "_tracklayer", False)]:
            root.removeHandler(h)
        monkeypatch.setattr(sys, "stderr", first)
        configure_logging()
        logging.getLogger("tracklayer.test").info(kv("one", n=1))
        first.close()  # the stream the handler was installed with is gone
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("tracklayer.test").info(kv("two", n=2))
        assert "logger=tracklayer.test event=two n=2" in second.getvalue()
        assert "Logging error" not in second.getvalue()
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])
