"""S sharded fusion cores in one process: the reference semantics of scale-out.

Each shard is a :class:`~.core.FusionCore` whose tracker has a
:class:`~.tracker.region.Region`; every shard applies every input event, numbered
in a thread of its own; the tracker's region applies the hand-overs due before each
frame (waiting, where one may still come, for the other shards' messages: a pipeline K
frames deep) and queues the messages each frame decides for the others. The
scale-out workers run the same regions with the messages going through the broker
(``services/scaleout``), waiting where a message may still be on its way; the reports
are a function of the applied frames only, so both give the same reports.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .config import FusionConfig
from .core import FusionCore
from .domain import TrackReport
from .tracker.region import MARGIN_M, Handover, Region


def sharded_tracker_factory(
    shard: int,
    shards: int,
    delay: int,
    margin_m: float = MARGIN_M,
    layout: tuple[float, ...] = (),
) -> Callable[[str, FusionConfig], Any]:
    """A ``FusionCore`` tracker factory for shard ``shard`` of ``shards`` (``layout``: the
    cut longitudes of :class:`~.cells.ShardMap`, deg; () the interleaved sectors)."""

    def factory(fusion_id: str, config: FusionConfig) -> Any:
        from .tracker import Tracker  # lazily, as core._default_tracker

        region = Region(shard, shards, delay, margin_m, tuple(layout))
        return Tracker(fusion_id, config, region=region)

    return factory


def region_of(core: FusionCore) -> Region:
    """The region of a sharded core's tracker."""
    return core.tracker.region  # type: ignore[attr-defined]


class ShardSet:
    """``shards`` cores, ``delay`` events between a transfer's decision and its effect;
    ``layout`` the cut longitudes of :class:`~.cells.ShardMap` (() interleaved sectors);
    ``core_args`` as :class:`~.core.FusionCore`'s keyword arguments."""

    def __init__(
        self,
        fusion_id: str,
        config: FusionConfig,
        shards: int,
        delay: int = 128,
        margin_m: float = MARGIN_M,
        layout: tuple[float, ...] = (),
        **core_args: Any,
    ) -> None:
        self.cores = [
            FusionCore(
                fusion_id,
                config,
                tracker_factory=sharded_tracker_factory(k, shards, delay, margin_m, layout),
                **core_args,
            )
            for k in range(shards)
        ]
        self.delay = delay
        self.messages: list[Handover] = []  # every message so far, in send order
        self._cond = threading.Condition()
        self._inbox: list[list[Handover]] = [[] for _ in range(shards)]
        self._progress = [0] * shards  # frames up to which each shard sent its messages
        self._failed = False

    def apply(
        self, event: Callable[[FusionCore], Iterable[TrackReport]]
    ) -> list[tuple[int, TrackReport]]:
        """Apply one event (``event(core)`` returns its reports) on every shard, each in a
        thread of its own (a shard waits where another's message may still come);
        returns (shard, report) pairs, by shard."""
        results: list[list[TrackReport]] = [[] for _ in self.cores]
        errors: list[BaseException] = []

        def run(k: int) -> None:
            region = region_of(self.cores[k])
            region.waiter = functools.partial(self._wait, k)
            try:
                results[k] = list(event(self.cores[k]))
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                errors.append(exc)
                with self._cond:
                    self._failed = True
                    self._cond.notify_all()
            finally:
                region.waiter = None
                with self._cond:
                    self._send(k)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(len(self.cores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return [(k, r) for k, rs in enumerate(results) for r in rs]

    def _send(self, k: int) -> None:
        """Shard ``k``'s queued messages to every shard's inbox (lock held)."""
        region = region_of(self.cores[k])
        sent = region.take_outbox()
        self.messages.extend(sent)
        for inbox in self._inbox:
            inbox.extend(sent)
        self._progress[k] = region.frames
        self._cond.notify_all()

    def _wait(self, k: int, m: int) -> None:
        """Shard ``k`` is about to apply frame ``m``: until every message it may need is
        in its region."""
        region = region_of(self.cores[k])
        with self._cond:
            self._send(k)
            while True:
                region.deliver(self._inbox[k])
                self._inbox[k].clear()
                need, missing = region.needs(m)
                others = [p for j, p in enumerate(self._progress) if j != k]
                if not missing and all(p >= need for p in others):
                    return
                if self._failed:
                    raise RuntimeError(f"shard {k}: another shard failed")
                self._cond.wait()
