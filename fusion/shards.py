"""S sharded fusion cores in one process: the reference semantics of scale-out.

Each shard is a :class:`~.core.FusionCore` whose tracker has a
:class:`~.tracker.region.Region`; every shard applies every input event, numbered
1, 2, ... (the journal's sequence in the service). Around event ``seq`` each shard
applies the hand-overs due before it, applies the event, then hands its new messages
to the others. The scale-out workers run the same three steps per event with the
messages going through the broker (``services/scaleout``); the reports are a function
of the events only, so both give the same reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .config import FusionConfig
from .core import FusionCore
from .domain import TrackReport
from .tracker.region import MARGIN_M, Handover, Region


def sharded_tracker_factory(
    shard: int, shards: int, delay: int, margin_m: float = MARGIN_M
) -> Callable[[str, FusionConfig], Any]:
    """A ``FusionCore`` tracker factory for shard ``shard`` of ``shards``."""

    def factory(fusion_id: str, config: FusionConfig) -> Any:
        from .tracker import Tracker  # lazily, as core._default_tracker

        return Tracker(fusion_id, config, region=Region(shard, shards, delay, margin_m))

    return factory


def region_of(core: FusionCore) -> Region:
    """The region of a sharded core's tracker."""
    return core.tracker.region  # type: ignore[attr-defined]


class ShardSet:
    """``shards`` cores, ``delay`` events between a transfer's decision and its effect;
    ``core_args`` as :class:`~.core.FusionCore`'s keyword arguments."""

    def __init__(
        self,
        fusion_id: str,
        config: FusionConfig,
        shards: int,
        delay: int = 128,
        margin_m: float = MARGIN_M,
        **core_args: Any,
    ) -> None:
        self.cores = [
            FusionCore(
                fusion_id,
                config,
                tracker_factory=sharded_tracker_factory(k, shards, delay, margin_m),
                **core_args,
            )
            for k in range(shards)
        ]
        self.seq = 0
        self.messages: list[Handover] = []  # every message so far, in send order

    def apply(
        self, event: Callable[[FusionCore], Iterable[TrackReport]]
    ) -> list[tuple[int, TrackReport]]:
        """Apply one event (``event(core)`` returns its reports) on every shard; returns
        (shard, report) pairs."""
        self.seq += 1
        out: list[tuple[int, TrackReport]] = []
        sent: list[Handover] = []
        for k, core in enumerate(self.cores):
            region = region_of(core)
            region.before_event(core.tracker, self.seq)
            out.extend((k, r) for r in event(core))
            sent.extend(region.after_event(core.tracker, self.seq))
        for core in self.cores:
            region_of(core).deliver(sent)
        self.messages.extend(sent)
        return out
