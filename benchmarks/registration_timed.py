"""``tracklayer ARGV`` in this process with registration's own code timed (for
``bench_registration.py``): CPU seconds of the calling thread (``time.thread_time``)
inside ``Registration.correct``, the tracker's feed (``Tracker._feed_registration``:
which looks are evidence, ``Registration.observe``, the window solves and the batched
Kalman updates), the consider widening per pair (``Registration.pair_sigma`` and the
tracker's ``_ballistic_looks``) and the ``/sensor_bias`` snapshots, against the whole
process's CPU (user + system, ``getrusage``, imports included). The ratio of the two is
measured in one process at one time, so machine load scales both alike. What a timed call
of nothing reads (the timer's own cost inside each interval, measured at the end) is
taken out of each part, once per call.

    python benchmarks/registration_timed.py [--plain] OUT.json track REC --out TRACKED.mcap

(``--plain``: nothing timed, only the process's CPU: the run without registration is
launched the same way, and so are both runs of the benchmark's untimed pairs.)

Writes ``{"total_s": .., "parts": {name: [CPU s, calls]}, "bias_s": .., "missing": [..],
"gc": [collections per generation]}`` to OUT.json (``gc.get_stats``, at the end of the
run: what the collector did, to compare a run with registration and one without).
Imports ``tracklayer`` from ``sys.path`` (PYTHONPATH may point at another revision); a
part missing in that revision is left out and named in ``missing`` (the
benchmark prints it: a renamed function must not drop out of the count unseen).
"""

from __future__ import annotations

import functools
import gc
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

#: part name -> (module, owner class or None for a module function, attribute)
PARTS = {
    "correct": ("tracklayer.fusion.registration", "Registration", "correct"),
    "feed": ("tracklayer.fusion.tracker.tracker", "Tracker", "_feed_registration"),
    "pair_sigma": ("tracklayer.fusion.registration", "Registration", "pair_sigma"),
    "looks": ("tracklayer.fusion.tracker.tracker", None, "_ballistic_looks"),
    "snapshots": ("tracklayer.services.offline", None, "_write_biases"),
}


def _timed(f: Callable[..., Any], acc: list[float]) -> Callable[..., Any]:
    """``f`` adding its thread CPU seconds and calls to ``acc``."""

    @functools.wraps(f)
    def g(*a: Any, **k: Any) -> Any:
        t = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            acc[0] += time.thread_time() - t
            acc[1] += 1

    return g


def main(argv: list[str]) -> int:
    import importlib

    plain = argv[0] == "--plain"  # nothing timed: the same launcher for the run without
    out, args = argv[int(plain)], argv[int(plain) + 1 :]
    acc: dict[str, list[float]] = {}
    missing = []
    for name, (mod, cls, attr) in {} if plain else PARTS.items():
        owner: Any = importlib.import_module(mod)
        owner = getattr(owner, cls, None) if cls else owner
        if owner is not None and hasattr(owner, attr):
            acc[name] = [0.0, 0]
            setattr(owner, attr, _timed(getattr(owner, attr), acc[name]))
        else:
            missing.append(name)
    from tracklayer.services.cli import main as cli

    rc = cli(args)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    total = ru.ru_utime + ru.ru_stime
    collections = [g["collections"] for g in gc.get_stats()]
    bias = 0.0 if plain else _timer_bias()
    for v in acc.values():  # the timer's own share inside each interval, taken out
        v[0] = max(v[0] - bias * v[1], 0.0)
    with open(out, "w") as fh:
        json.dump(
            {"total_s": total, "parts": acc, "bias_s": bias, "missing": missing, "gc": collections},
            fh,
        )
    return rc


def _timer_bias(n: int = 20_000) -> float:
    """CPU seconds a timed call of nothing reads (the timer's own cost inside the
    interval: ~1 us a call, 0.1-0.2 s over a salvo's calls), the median of 5 tries."""
    tries = []
    for _ in range(5):
        acc = [0.0, 0]
        f = _timed(lambda: None, acc)
        for _ in range(n):
            f()
        tries.append(acc[0] / n)
    return sorted(tries)[2]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
