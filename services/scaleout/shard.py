"""One shard run by a worker: the journal stream through the fusion core, reports out.

A shard applies every journal event with
:func:`~tracklayer.services.fusion_service.inputs.apply_input`, exactly as the
embedded service replays its journal, so its reports are those of the embedded
service and of ``tracklayer track`` (for one shard). It starts from its last
checkpoint (or a fresh core), reads the stream from the next event, publishes each
batch's reports to the REPORTS stream (Msg-Id ``<track_id>:<revision>``) and waits for
the broker's acks, and every ``checkpoint_every`` events or ``checkpoint_interval_s``
seconds saves a checkpoint covering only events whose reports are acknowledged. A
shard taken over replays from that checkpoint: the reports it publishes again are
byte-identical, dropped by the broker's duplicate window or by the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tracklayer.fusion.cells import check_cuts
from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.core import FusionCore
from tracklayer.fusion.domain import FrameStatus
from tracklayer.fusion.shards import region_of, sharded_tracker_factory
from tracklayer.services.fusion_service.inputs import apply_input, input_from_event
from tracklayer.services.fusion_service.journal import EventKind
from tracklayer.services.fusion_service.live_picture import report_message
from tracklayer.services.fusion_service.sensor_positions import SensorPositions
from tracklayer.services.rpc.server import kv
from tracklayer.services.scaleout.events import decode_event
from tracklayer.services.scaleout.handovers import ACK_TIMEOUT_S, HandoverLink
from tracklayer.services.scaleout.names import Names
from tracklayer.services.scaleout.shard_checkpoints import ShardCheckpoints
from tracklayer.services.scaleout.stream_reader import StreamReader

log = logging.getLogger("tracklayer.services.scaleout")

#: Seconds a shard waits for the broker's acks of one batch of reports.
PUBLISH_TIMEOUT_S = ACK_TIMEOUT_S
#: Longest stretch of tracking between two yields to the event loop (lease renewals).
YIELD_S = 0.05


class ShardError(RuntimeError):
    """A shard that cannot run; the message says why (the worker logs it)."""


@dataclass(frozen=True)
class ShardSpec:
    """What every shard of a deployment runs with (pinned by the front door)."""

    fusion_id: str
    config: FusionConfig
    sensors: tuple[str, ...]
    shards: int
    handover_delay: int = 128  # K: journal events from a transfer's decision to its effect
    layout: tuple[float, ...] = ()  # cut longitudes (deg, fusion --layout); () interleaved

    @classmethod
    def from_pinned(cls, data: Mapping[str, object]) -> ShardSpec:
        """From the settings bucket's document; ValueError naming a bad key."""
        try:
            config = FusionConfig.from_mapping(data["config"])  # type: ignore[arg-type]
            shards = int(data.get("shards", 1))  # type: ignore[arg-type]
            sensors = tuple(str(s) for s in data.get("sensors", ()))  # type: ignore[union-attr]
            fusion_id = str(data["fusion_id"])
            delay = int(data.get("handover_delay", 128))  # type: ignore[arg-type]
            layout = tuple(data.get("layout", ()))  # type: ignore[arg-type]
            if layout:
                layout = check_cuts(layout, shards)
        except KeyError as exc:
            raise ValueError(f"settings: missing {exc.args[0]}") from None
        if shards < 1:
            raise ValueError(f"settings: shards must be >= 1, got {shards}")
        if delay < 1:
            raise ValueError(f"settings: handover_delay must be >= 1, got {delay}")
        return cls(fusion_id, config, sensors, shards, delay, layout)

    def new_core(self, shard: int = 0) -> FusionCore:
        """A fresh core of shard ``shard`` as the embedded service builds it (live: idle
        timeouts replay); with S > 1 its tracker has the shard's region."""
        factory = None
        if self.shards > 1:
            factory = sharded_tracker_factory(
                shard, self.shards, self.handover_delay, layout=self.layout
            )
        return FusionCore(
            self.fusion_id, self.config, live=True, allowed_sensors=self.sensors or None,
            tracker_factory=factory,
        )  # fmt: skip


@dataclass
class ShardStatus:
    """Figures of one running shard (worker log and status)."""

    applied_seq: int = 0
    reports: int = 0
    checkpoint_seq: int = 0
    checkpoint_at: float = 0.0  # monotonic
    checkpoint_unix_s: float = 0.0  # wall clock of the last checkpoint written here (0: none)
    started_from: int = 0
    tracks_owned: int = 0
    handovers_in: int = 0
    handovers_out: int = 0
    handover_waits: int = 0  # times the shard waited for another's progress
    counters: dict[str, int] = field(default_factory=dict)


class ShardRunner:
    """Runs shard ``shard`` until cancelled; ``still_owner()`` guards checkpoint writes."""

    def __init__(
        self,
        js,  # noqa: ANN001 - JetStreamContext
        names: Names,
        spec: ShardSpec,
        shard: int,
        still_owner: Callable[[], bool],
        *,
        checkpoint_every: int = 3000,
        checkpoint_interval_s: float = 10.0,
    ) -> None:
        self._js, self.names, self.spec, self.shard = js, names, spec, shard
        self._still_owner = still_owner
        self._every, self._interval = checkpoint_every, checkpoint_interval_s
        self.checkpoints = ShardCheckpoints(js, names)
        self.status = ShardStatus()
        # Where each sensor was at its latest applied frame (reports carry it, for displays).
        self.sensor_positions = SensorPositions()
        self._handover: HandoverLink | None = None
        if spec.shards > 1:
            self._handover = HandoverLink(js, names, shard, spec.shards)

    async def run(self) -> None:
        core, opens, seq = await self._restore()
        first = await self._first_seq(self.names.journal_stream)
        if seq + 1 < first:  # the events after the checkpoint were purged: cannot replay
            raise ShardError(
                f"shard {self.shard}: the journal starts at event {first} but the usable "
                f"checkpoint covers only up to {seq}: restore a checkpoint or start a new --id"
            )
        st = self.status
        st.applied_seq = st.checkpoint_seq = st.started_from = seq
        st.checkpoint_at = time.monotonic()
        more = {}
        if self._handover is not None:
            await self._check_handover_stream()
            more["handover_from"] = self._handover.start_seq
        log.info(kv("shard_started", shard=self.shard, from_seq=seq, **more))
        reader = StreamReader(
            self._js, self.names.journal_stream, self.names.journal_subject, seq + 1
        )
        try:
            while True:
                msgs = await reader.next_batch(1.0)
                if msgs:
                    await self._apply(core, opens, msgs)
                if self._checkpoint_due():
                    await self._checkpoint(core, opens)
        finally:
            await reader.close()
            if self._handover is not None:
                await self._handover.close()

    async def _first_seq(self, stream: str) -> int:
        """The first sequence ``stream`` still holds (the next one when it is empty)."""
        info = await self._js.stream_info(stream)
        return int(info.state.first_seq) or int(info.state.last_seq) + 1

    async def _check_handover_stream(self) -> None:
        """ShardError when the HANDOVER stream was purged past where this shard must read."""
        first = await self._first_seq(self.names.handover_stream)
        if self._handover.start_seq < first:
            raise ShardError(
                f"shard {self.shard}: the handover stream starts at {first} but the usable "
                f"checkpoint read it only up to {self._handover.start_seq - 1}: restore a "
                "checkpoint or start a new --id"
            )

    async def _restore(self) -> tuple[FusionCore, Counter, int]:
        fresh = self.spec.new_core(self.shard)
        loaded = await self.checkpoints.load(self.shard, fresh)
        if loaded is None:
            return fresh, Counter(), 0
        seq, core, opens, handover = loaded
        if self._handover is not None:
            try:
                self._handover.resume(handover)
            except ValueError as exc:
                log.warning(kv("checkpoint_refused", shard=self.shard, reason=str(exc)))
                return fresh, Counter(), 0
        log.info(kv("checkpoint_loaded", shard=self.shard, seq=seq))
        return core, opens, seq

    async def _apply(self, core: FusionCore, opens: Counter, msgs: list) -> None:
        """Apply a batch of journal messages; publish their reports and await the acks."""
        events = [decode_event(m.metadata.sequence.stream, m.data) for m in msgs]
        link = self._handover
        if link is None:
            out = []
            yielded = time.monotonic()
            for ev in events:
                if time.monotonic() - yielded > YIELD_S:  # let the lease renewals run
                    await asyncio.sleep(0)
                    yielded = time.monotonic()
                out.append(self._apply_one(core, opens, ev))
        else:  # S > 1: in a thread that may wait for the other shards' hand-overs
            region = region_of(core)
            out = await link.run_batch(
                region, lambda: [self._apply_one(core, opens, ev) for ev in events]
            )
        js, subject = self._js, self.names.reports_subject
        futures = []
        for batch in out:
            for report_id, data in batch:
                headers = {"Nats-Msg-Id": report_id}
                futures.append(await js.publish_async(subject, data, headers=headers))
        sent = link.take_sent() if link is not None else []
        if futures or sent:  # a broker that does not answer fails the shard: it restarts
            # from its checkpoint (the worker releases the lease and takes it again)
            await asyncio.wait_for(asyncio.gather(*futures, *sent), PUBLISH_TIMEOUT_S)
            self.status.reports += len(futures)
        if events:  # applied = its reports are on the broker (status, checkpoints)
            self.status.applied_seq = events[-1].seq
        self.status.counters = core.counters
        self.status.tracks_owned = self.status.counters.get("tracks_live", 0)
        if link is not None:
            region = region_of(core)
            self.status.tracks_owned = len(region.reportable(core.tracker.tracks))
            self.status.handovers_in = region.handovers_in
            self.status.handovers_out = region.handovers_out
            self.status.handover_waits = link.waits

    def _apply_one(self, core: FusionCore, opens: Counter, ev) -> list[tuple[str, bytes]]:  # noqa: ANN001
        """Apply one journal event; its reports as (Msg-Id, message bytes)."""
        applied = apply_input(core, opens, input_from_event(ev), replay=True)
        status, reports = applied.status, applied.reports
        if ev.kind == EventKind.FRAME and status is not FrameStatus.ACCEPTED:
            log.error(kv("shard_mismatch", seq=ev.seq, status=status.name, reason=applied.reason))
        if applied.frame is not None:
            self.sensor_positions.seen(applied.frame)
        now_ns = time.time_ns()
        return [
            (
                f"{r.track_id}:{r.revision}",
                report_message(
                    r, now_ns, self.sensor_positions.of(r.sensor_ids)
                ).SerializeToString(),
            )
            for r in reports
        ]

    def _checkpoint_due(self) -> bool:
        st = self.status
        since = st.applied_seq - st.checkpoint_seq
        if since <= 0:
            return False
        if self._every > 0 and since >= self._every:
            return True
        return self._interval > 0 and time.monotonic() - st.checkpoint_at >= self._interval

    async def _checkpoint(self, core: FusionCore, opens: Counter) -> None:
        st = self.status
        if not self._still_owner():
            return
        link = self._handover
        position = link.position() if link is not None else None
        size = await self.checkpoints.save(self.shard, st.applied_seq, core, opens, position)
        st.checkpoint_seq, st.checkpoint_at = st.applied_seq, time.monotonic()
        st.checkpoint_unix_s = time.time()
        log.info(kv("checkpoint_written", shard=self.shard, seq=st.applied_seq, bytes=size))
