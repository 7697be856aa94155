"""Reading one stream subject in sequence order from a given sequence.

An ephemeral pull consumer without acknowledgements (the reader keeps its own
position); if the consumer is lost (the broker restarted), it is created again at the
next sequence, so a reader never skips or repeats a message.
"""

from __future__ import annotations

import asyncio
import logging

from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.scaleout")

#: Seconds a reader waits for its consumer to be removed.
CLOSE_TIMEOUT_S = 2.0


class StreamReader:
    """Messages of ``subject`` in ``stream`` from sequence ``start_seq`` on."""

    def __init__(self, js, stream: str, subject: str, start_seq: int, batch: int = 256) -> None:  # noqa: ANN001
        self._js, self.stream, self.subject = js, stream, subject
        self.next_seq = max(1, int(start_seq))
        self._batch = batch
        self._sub = None

    async def _subscribe(self) -> None:
        from nats.js import api

        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.next_seq,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
        )
        self._sub = await self._js.pull_subscribe(self.subject, stream=self.stream, config=config)

    async def next_batch(self, timeout: float = 1.0) -> list:
        """The next messages in order (possibly none within ``timeout``)."""
        import nats.errors
        import nats.js.errors

        try:
            if self._sub is None:
                await self._subscribe()
            msgs = await self._sub.fetch(self._batch, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            if isinstance(exc, nats.errors.ConnectionClosedError):  # shutting down
                raise asyncio.CancelledError from None
            log.warning(kv("stream_reader_reset", stream=self.stream, error=repr(exc)))
            await self.close()
            await asyncio.sleep(0.2)
            return []
        out = []
        for m in msgs:
            seq = m.metadata.sequence.stream
            if seq < self.next_seq:  # redelivered after a reset: already seen
                continue
            if seq != self.next_seq:  # a gap: read again from the expected sequence
                log.warning(
                    kv("stream_reader_gap", stream=self.stream, want=self.next_seq, got=seq)
                )
                await self.close()
                break
            out.append(m)
            self.next_seq = seq + 1
        return out

    async def close(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:  # bounded: with the broker restarting, an unsubscribe may never answer
                await asyncio.wait_for(sub.unsubscribe(), CLOSE_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - the consumer may be gone with the broker
                pass
