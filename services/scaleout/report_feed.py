"""The shards' reports, from the REPORTS stream to the store, through the one forwarder.

:class:`ReportFeed` is what ``fusion_service.forwarder.Forwarder`` reads instead of the
SQLite outbox: :meth:`peek` gives the oldest unsettled reports of a durable pull
consumer (``forwarder``), :meth:`settle` acknowledges them to the broker once the store
answered. Unacknowledged reports are redelivered (to this process after a reconnect,
or to the next front door after a crash): at least once, and the store keeps each
(track_id, revision) once. To the engine it is also the outbox (``depth`` is the
backlog; its ordering-only core never adds reports itself).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from tracklayer.services.rpc.server import kv
from tracklayer.services.scaleout.link import NatsLink

log = logging.getLogger("tracklayer.services.forwarder")

#: Name of the durable consumer the front door's forwarder reads.
CONSUMER = "forwarder"


class ReportFeed:
    """Duck-typed outbox over the REPORTS stream of ``link`` (see the module docstring)."""

    def __init__(self, link: NatsLink, poll_s: float = 0.5) -> None:
        self.link, self.names = link, link.names
        self.path = f"{link.url} stream {self.names.reports_stream}"
        self.depth = 0  # reports held or still in the stream for the forwarder
        self.rejected = 0
        self.delivered = 0
        self.journal_mark = 2**62  # the front door's core emits nothing to re-outbox
        self.items_mark = 2**62
        self.size_bytes = 0
        self.closing = False
        self._poll_s = poll_s
        self._held: list = []  # fetched, not yet settled, in stream order
        self._sub = None

    # ---- the engine's outbox interface (nothing to do here) --------------------------
    def add(
        self, reports: Sequence[bytes], journal_mark: int, items_mark: int | None = None
    ) -> None:
        if reports:
            raise RuntimeError("the front door's ordering-only core emitted reports")

    def probe(self) -> None:
        return None

    def reclaim(self, pages: int) -> None:
        return None

    def close(self) -> None:
        self.closing = True

    # ---- the forwarder's interface ---------------------------------------------------
    async def run(self, fn, *args):  # noqa: ANN001, ANN201 - the forwarder's ``db`` runner
        """Run one of :meth:`peek` / :meth:`settle` on the link's loop."""
        return await self.link.run(fn, *args)

    async def _subscribe(self) -> None:
        from nats.js import api

        config = api.ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=60.0,
            max_ack_pending=8192,
        )
        self._sub = await self.link.js.pull_subscribe(
            self.names.reports_subject, durable=CONSUMER, stream=self.names.reports_stream,
            config=config,
        )  # fmt: skip

    async def peek(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest ``limit`` unsettled reports as (stream seq, bytes); waits for some
        (polling every ``poll_s``) unless closing."""
        import nats.errors

        while not self._held and not self.closing:
            try:
                if self._sub is None:
                    await self._subscribe()
                msgs = await self._sub.fetch(limit, timeout=self._poll_s)
            except (TimeoutError, nats.errors.TimeoutError):
                self.depth = 0
                continue
            except Exception as exc:  # noqa: BLE001 - broker away: try again
                log.warning(kv("report_feed_retry", error=repr(exc)))
                self._sub = None
                raise ConnectionError(f"report stream: {exc!r}") from None
            if not msgs:
                continue
            self._held = msgs
            self.depth = len(msgs) + int(msgs[-1].metadata.num_pending)
        return [(m.metadata.sequence.stream, m.data) for m in self._held[:limit]]

    async def settle(
        self, delivered: Iterable[int], rejected: Iterable[tuple[int, str]] = ()
    ) -> None:
        """Acknowledge delivered (and rejected: logged by the forwarder, counted here)
        reports to the broker."""
        done = set(delivered)
        bad = dict(rejected)
        keep = []
        for m in self._held:
            seq = m.metadata.sequence.stream
            if seq in done or seq in bad:
                await m.ack()
            else:
                keep.append(m)
        self.depth -= len(self._held) - len(keep)
        self._held = keep
        self.delivered += len(done)
        self.rejected += len(bad)

    def counters(self) -> dict[str, int]:
        """GetStatus figures of the feed."""
        return {"reports_forwarded_total": self.delivered}
