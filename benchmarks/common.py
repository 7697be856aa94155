"""What the benchmark scripts share: the machine line of a RESULTS.md section, a work
folder (kept with ``--keep DIR``, else temporary) and appending a section to RESULTS.md.

Imported as ``common`` by the scripts (they run as ``python benchmarks/bench_NAME.py``,
so this folder is first on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def machine() -> str:
    """CPU model, CPU count, Python version and OS, for a RESULTS.md section."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


@contextlib.contextmanager
def work_dir(keep: str | None, prefix: str) -> Iterator[Path]:
    """``keep`` (created if missing, left in place) or a temporary folder removed after."""
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as d:
            yield Path(d)


def append_results(text: str) -> Path:
    """Append one section to benchmarks/RESULTS.md; returns the file's path."""
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write(text)
    return RESULTS
