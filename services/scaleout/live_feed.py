"""The front door's live picture from the REPORTS stream (``ListLiveTracks``,
``SubscribeLiveTracks``), so that clients of the front door see what clients of the
embedded service see.

A task on the NATS link's loop reads the whole REPORTS stream in order (an ephemeral
reader: it needs no acknowledgements and does not depend on the store being up) and
hands each batch to the front door's event loop, which keeps the latest report of
every track until its DELETED report (the tracker reports every track it drops, DESIGN
§6) and publishes the reports newer than the front door's start to the live
subscribers. A shard's republished reports after a takeover are byte-identical and
dropped by the broker, so subscribers see each revision once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tracklayer.services.rpc.server import kv
from tracklayer.services.scaleout.link import NatsLink
from tracklayer.services.scaleout.stream_reader import StreamReader
from tracklayer.v1 import track_pb2

log = logging.getLogger("tracklayer.services.fusion")

Publish = Callable[[list[track_pb2.TrackReport]], None]


class LiveFeed:
    """Latest report of each live track, fed from the REPORTS stream of ``link``."""

    def __init__(self, link: NatsLink, publish: Publish) -> None:
        self._link, self._publish = link, publish
        self._latest: dict[str, track_pb2.TrackReport] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future = None

    def start(self) -> None:
        """Start reading (call on the front door's event loop)."""
        self._loop = asyncio.get_running_loop()
        self._future = self._link.submit(self._run())

    def stop(self) -> None:
        if self._future is not None:
            self._future.cancel()

    async def _run(self) -> None:
        names = self._link.names
        try:
            info = await self._link.js.stream_info(names.reports_stream)
            history = int(info.state.last_seq)  # reports before the start: picture only
            reader = StreamReader(self._link.js, names.reports_stream, names.reports_subject, 1)
            while True:
                msgs = await reader.next_batch(1.0)
                if not msgs:
                    continue
                live = msgs[-1].metadata.sequence.stream > history
                protos = [track_pb2.TrackReport.FromString(m.data) for m in msgs]
                self._loop.call_soon_threadsafe(self._apply, protos, live)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the picture stops; acks and reports go on
            log.error(kv("live_feed_failed", error=repr(exc)))

    def _apply(self, protos: list[track_pb2.TrackReport], live: bool) -> None:
        for p in protos:
            if p.status == track_pb2.TRACK_STATUS_DELETED:
                self._latest.pop(p.track_id, None)
            else:
                self._latest[p.track_id] = p
        if live:
            self._publish(protos)

    def tracks(self) -> list[track_pb2.TrackReport]:
        """Latest report of each live track, ordered by track id (as ListLiveTracks)."""
        return [self._latest[k] for k in sorted(self._latest)]
