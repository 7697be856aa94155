"""How the suite runs on two pytest-xdist workers (``make test``: ``-n 2 --dist loadfile``);
a plain ``pytest tests/test_x.py`` is not touched by any of it. Wired in ``conftest.py``.

1. One test file is one unit of work (xdist's ``loadfile``), so its module-scoped
   fixtures are built once; the files of a :data:`SHARED` group are one unit, run on one
   worker, where they share a costly session fixture (``tracked_mcap`` and friends).
   (xdist's own ``loadgroup`` cannot do this on pytest 9.2: it renames node ids, which
   pytest 9.2 no longer lets a plugin do; pytest-xdist issue 1386.)
2. Units are handed out longest first (:data:`LONGEST`, measured), so that the two
   workers finish at about the same time; the rest follow in file order.
3. A test marked ``alone`` runs with no test beside it (its figures are load sensitive):
   it waits for the other worker's current test to end, and the other worker waits at
   its next test until it is done (:class:`Turnstile`).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xdist.scheduler import LoadFileScheduling

#: Files that share an expensive session fixture: one unit of work each group.
SHARED: dict[str, tuple[str, ...]] = {
    # tracked_mcap of all seven regression cases (~40 s of tracking on one core): the
    # digests of /tracks and of metrics.json are taken from the same files
    "digests": ("test_track_digests.py", "test_metrics_digests.py", "test_kernel_tolerance.py"),
}

#: Units of work started first, longest first, from ``--durations`` of a whole run on one
#: worker (2026-12-06, main 694b7a9; share of the suite's 2,818 s summed over tests, setup
#: included, measured on a loaded machine): only the balance of the two workers depends
#: on it, never a result. The rest follows in file order.
LONGEST: tuple[str, ...] = (
    "test_registration_scenario.py",  # 13.3 %
    "test_tracker_nees_seeds.py",  # 12.3 %
    "test_scaleout_shards.py",  # 10.9 %
    "test_glide_tracking.py",  # 7.0 %
    "test_tracker_scenarios.py",  # 5.6 %
    "test_demo.py",  # 5.5 %
    "test_testing_fixtures.py",  # 4.3 %
    "test_dense_scene.py",  # 4.3 %
    "digests",  # 3.3 %
    "test_tracker_dropout.py",  # 3.2 %
    "test_simulation.py",  # 2.4 %
    "test_scaleout_faults.py",  # 2.0 %
    "test_scaleout.py",  # 1.8 %
    "test_cut_connections.py",  # 1.8 %
    "test_fuzz_services.py",  # 1.7 %
)


def unit_of(nodeid: str) -> str:
    """The unit of work of a test: its :data:`SHARED` group or its file's name."""
    name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    for group, files in SHARED.items():
        if name in files:
            return group
    return name


class FileGroupScheduling(LoadFileScheduling):
    """xdist's ``loadfile`` with rules 1 and 2: units by :func:`unit_of`, the
    :data:`LONGEST` first."""

    _ordered = False

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _assign_work_unit(self, node) -> None:  # noqa: ANN001 (xdist's WorkerController)
        if not self._ordered:  # the first call: the queue is complete, nothing sent yet
            self._ordered = True
            rank = {unit: i for i, unit in enumerate(LONGEST)}
            units = sorted(self.workqueue.items(), key=lambda kv: rank.get(kv[0], len(rank)))
            self.workqueue.clear()
            self.workqueue.update(units)
        super()._assign_work_unit(node)


class Turnstile:
    """Rule 3 with two ``flock`` files shared by the run's workers: every test holds
    ``run`` shared; an ``alone`` test holds it exclusively. The ``gate`` (taken shared
    for a moment before ``run``, exclusively by an ``alone`` test for its whole length)
    stops the other worker from taking ``run`` again while an ``alone`` test waits."""

    def __init__(self, basetemp: str | None, run_id: str) -> None:
        """``basetemp``: the worker's (``.../pytest-N/popen-gwK``); the files go beside
        the workers' folders, where pytest's clean-up of old runs removes them."""
        folder = Path(basetemp).parent if basetemp else Path(tempfile.gettempdir())
        paths = (folder / f"turnstile-{run_id}.gate", folder / f"turnstile-{run_id}.run")
        self._gate, self._run = (os.open(p, os.O_RDWR | os.O_CREAT, 0o600) for p in paths)

    @contextmanager
    def hold(self, alone: bool) -> Iterator[None]:
        """Around one test's setup, call and teardown."""
        if alone:
            fcntl.flock(self._gate, fcntl.LOCK_EX)
            fcntl.flock(self._run, fcntl.LOCK_EX)
        else:
            fcntl.flock(self._gate, fcntl.LOCK_SH)
            fcntl.flock(self._run, fcntl.LOCK_SH)
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self._run, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(self._gate, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._gate)
        os.close(self._run)
