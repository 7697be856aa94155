"""Per-shard figures for ``GetStatus`` and Prometheus of the front door (issue 14 item 4).

Each worker writes, at every lease renewal, one JSON document per shard it runs to key
``status.shard-<k>`` of the settings bucket (``tl_<ID>``): owner, last applied journal
seq, reports published, tracks owned, checkpoint seq and wall time, hand-overs in and
out and waits for the other shards (S > 1). The front door reads them (at most once a second,
in the background) and shows them as labelled counters (the gauges among them are
listed in ``fusion_service/metrics.GAUGES``):

=====================================  ==========================================
``shard_owner{shard,worker}``          1 for the worker that last reported the shard
``shard_lag_events{shard}``            journal events not yet applied by the shard
``shard_tracks_owned{shard}``          live tracks the shard reports
``shard_checkpoint_age_seconds{shard}``  wall seconds since its last checkpoint
``shard_reports_total{shard}``         reports published by its current owner
``shard_handovers_in_total{shard}``    tracks received from a neighbour
``shard_handovers_out_total{shard}``   tracks handed to a neighbour
``shard_handover_waits_total{shard}``  times its owner's thread stopped before a frame
                                       for another shard's progress or a transfer's
                                       state (S > 1; a shard far behind the others
                                       never waits, one ahead waits often)
=====================================  ==========================================
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from tracklayer.services.rpc.server import sample_key
from tracklayer.services.scaleout.link import NatsLink
from tracklayer.services.scaleout.names import shard_key
from tracklayer.services.scaleout.shard import ShardStatus

#: Seconds between two reads of the status documents by the front door.
REFRESH_S = 1.0


def status_key(shard: int) -> str:
    return f"status.{shard_key(shard)}"


def status_document(worker: str, status: ShardStatus) -> bytes:
    """The JSON a worker writes for one running shard."""
    return json.dumps(
        {
            "owner": worker,
            "applied_seq": status.applied_seq,
            "reports": status.reports,
            "tracks_owned": status.tracks_owned,
            "checkpoint_seq": status.checkpoint_seq,
            "checkpoint_unix_s": status.checkpoint_unix_s,
            "handovers_in": status.handovers_in,
            "handovers_out": status.handovers_out,
            "handover_waits": status.handover_waits,
        },
        sort_keys=True,
    ).encode()


class ShardStatusView:
    """The front door's cached view of every shard's document (a counter source)."""

    def __init__(self, link: NatsLink, shards: int, committed_seq: Callable[[], int]) -> None:
        self._link, self._shards, self._committed = link, shards, committed_seq
        self._docs: dict[int, dict] = {}
        self._read_at = float("-inf")
        self._reading: asyncio.Future | None = None

    async def _read(self) -> None:
        import nats.js.errors

        docs = {}
        try:
            bucket = await self._link.js.key_value(self._link.names.settings_bucket)
            for shard in range(self._shards):
                try:
                    docs[shard] = json.loads((await bucket.get(status_key(shard))).value)
                except nats.js.errors.NotFoundError:
                    continue
        except Exception:  # noqa: BLE001 - broker away: keep showing the last read
            return
        self._docs = docs

    def counters(self) -> dict[str, int]:
        """The figures of the table above, from the last read (a new read is started in
        the background when the last one is older than :data:`REFRESH_S`)."""
        if time.monotonic() - self._read_at > REFRESH_S and (
            self._reading is None or self._reading.done()
        ):
            self._read_at = time.monotonic()
            self._reading = asyncio.ensure_future(self._link.run(self._read))
        out: dict[str, int] = {}
        now = time.time()
        for shard, d in sorted(self._docs.items()):
            s = str(shard)
            out[sample_key("shard_owner", shard=s, worker=str(d.get("owner", "")))] = 1
            lag = max(0, int(self._committed()) - int(d.get("applied_seq", 0)))
            out[sample_key("shard_lag_events", shard=s)] = lag
            out[sample_key("shard_tracks_owned", shard=s)] = int(d.get("tracks_owned", 0))
            at = float(d.get("checkpoint_unix_s", 0.0))
            age = int(now - at) if at > 0 else 0
            out[sample_key("shard_checkpoint_age_seconds", shard=s)] = max(0, age)
            out[sample_key("shard_reports_total", shard=s)] = int(d.get("reports", 0))
            out[sample_key("shard_handovers_in_total", shard=s)] = int(d.get("handovers_in", 0))
            out[sample_key("shard_handovers_out_total", shard=s)] = int(d.get("handovers_out", 0))
            waits = int(d.get("handover_waits", 0))
            out[sample_key("shard_handover_waits_total", shard=s)] = waits
        return out
