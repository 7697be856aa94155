"""The fusion engine's journal on a JetStream stream (``tracklayer fusion --nats``).

:class:`StreamJournal` offers what ``FusionEngine`` uses of
:class:`~tracklayer.services.fusion_service.journal.Journal`, so the engine, its
ordering and its acknowledgements stay exactly as they are: events are buffered by
:meth:`append`, and :meth:`commit` (the group commit) publishes them in order and
returns only once the broker acknowledged every one. Each message carries
``Nats-Expected-Last-Sequence``: the stream sequence *is* the journal seq, and a second
front door writing the same journal fails its commit instead of interleaving.

A commit the broker does not acknowledge raises :class:`JournalUnavailable`, which the
engine treats like a full disk (``disk_full.ride_out``): nothing is acknowledged,
streams end ``UNAVAILABLE``, and once the broker answers the state is rebuilt from the
stream (whatever of the failed commit reached it is answered DUPLICATE on resend).
A restart loads the front door's checkpoint (the ordering-only core, in the object
store) and replays the stream after it. After each front-door checkpoint the trimmer
purges the events every checkpoint covers (the front door's and every shard's), so
the stream stays bounded; a journal purged past a checkpoint that cannot be used
refuses to start, as the SQLite journal does.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping

from tracklayer.services.fusion_service.checkpoint import CheckpointError
from tracklayer.services.fusion_service.journal import Event, EventKind, JournalError
from tracklayer.services.rpc.server import kv
from tracklayer.services.scaleout.events import decode_event, encode_event
from tracklayer.services.scaleout.link import NatsLink
from tracklayer.services.scaleout.names import shard_key
from tracklayer.services.scaleout.shard_checkpoints import FRONT_DOOR, CheckpointObjects
from tracklayer.services.scaleout.stream_reader import StreamReader

log = logging.getLogger("tracklayer.services.fusion")

#: Seconds a group commit waits for the broker's acknowledgements.
COMMIT_TIMEOUT_S = 5.0
COMMITS_KEPT = 100_000  # commits whose frame count a checkpoint may still ask for
_EXPECTED_LAST = "Nats-Expected-Last-Sequence"


class JournalUnavailable(OSError):
    """The broker did not take a commit (or cannot be reached); ``journal_unwritable``
    tells ``disk_full.is_disk_full`` to ride it out like a full disk."""

    journal_unwritable = True

    def __init__(self, message: str) -> None:
        super().__init__(errno.EAGAIN, message)


class StreamJournal:
    """Duck-typed :class:`~tracklayer.services.fusion_service.journal.Journal` on the
    ``names.journal_stream`` stream of ``link``."""

    CHECKPOINTS_KEPT = 2

    def __init__(self, link: NatsLink) -> None:
        self.link, self.names = link, link.names
        self.path = f"{link.url} stream {self.names.journal_stream}"
        first, last = self._stream_bounds()
        self.last_seq = self.committed_seq = last
        self.frames = 0  # FRAME events read back by the replay plus those appended since
        self.trimmed_through = max(0, first - 1)  # purged: covered by every checkpoint
        self.trimmed_frames = self.last_trim_ns = 0
        self.shards = 1  # whose checkpoints bound the trimming (set by the front door)
        self.handover_trimmed_through = 0  # HANDOVER stream purged up to (S > 1)
        self._buffer: list[tuple[int, bytes, bool]] = []  # (seq, body, is a frame)
        self._objects = CheckpointObjects(link.js, self.names)
        self._frames_at: dict[int, int] = {}  # checkpoint seq -> frames journaled up to it
        # FRAME events with seq <= committed_seq, and that count at each recent commit
        # (a checkpoint of seq S records the count at S, whenever it is written)
        self.committed_frames = 0
        self._commits: OrderedDict[int, int] = OrderedDict()  # seq -> committed_frames
        self._commits_lock = threading.Lock()  # commits: db thread; writes: checkpoint thread

    def _stream_bounds(self) -> tuple[int, int]:
        """(first, last) sequence of the stream (first = last + 1 when it is empty)."""
        try:
            info = self.link.call(self.link.js.stream_info(self.names.journal_stream), 10.0)
        except Exception as exc:  # noqa: BLE001 - any broker failure
            raise JournalUnavailable(f"{self.path}: {exc!r}") from None
        last = int(info.state.last_seq)
        return (int(info.state.first_seq) or last + 1), last

    def _stream_last_seq(self) -> int:
        return self._stream_bounds()[1]

    # ---- settings ---------------------------------------------------------------
    def check_settings(self, settings: Mapping[str, object]) -> None:
        """Pin ``settings`` in the deployment's settings bucket (workers build their
        cores from them); a restart with other values raises JournalError naming one."""
        self.link.call(self._check_settings(dict(settings)), 15.0)

    async def _check_settings(self, settings: dict[str, object]) -> None:
        import nats.js.errors

        bucket = await self.link.js.key_value(self.names.settings_bucket)
        wanted = json.dumps(settings, sort_keys=True).encode()
        try:
            await bucket.create("settings", wanted)
            return
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        stored = json.loads((await bucket.get("settings")).value)
        # with the front door's whole pin (the engine checks a part), the layout counts
        # also where one side has none (absent: the interleaved map)
        whole = "shards" in settings
        for key in sorted(set(settings) | ({"layout"} if whole else set())):
            value = settings.get(key)
            if (key in stored or key == "layout") and json.dumps(
                stored.get(key), sort_keys=True
            ) != json.dumps(value, sort_keys=True):
                raise JournalError(
                    f"{self.path}: written with {key} = {json.dumps(stored.get(key))}, now "
                    f"{json.dumps(value)}; the shards would diverge: restart with the same "
                    f"{key} or use another --id"
                )

    # ---- writing ----------------------------------------------------------------
    def append(
        self, kind: EventKind, sensor_id: str = "", now: float | None = None, payload: bytes = b""
    ) -> int:
        """Buffer one event; returns its seq (= its stream sequence once committed)."""
        self.last_seq += 1
        body = encode_event(kind, sensor_id, now, payload)
        self._buffer.append((self.last_seq, body, kind == EventKind.FRAME))
        if kind == EventKind.FRAME:
            self.frames += 1
        return self.last_seq

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def commit(self) -> int:
        """Publish the buffered events in order and wait for every broker ack (called on
        the engine's database thread); raises :class:`JournalUnavailable` if not taken."""
        if not self._buffer:
            return self.committed_seq
        rows, self._buffer = self._buffer, []
        try:
            self.link.call(self._publish(rows), COMMIT_TIMEOUT_S + 1.0)
        except JournalUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - timeout, lost connection, wrong sequence
            raise JournalUnavailable(f"{self.path}: commit not acknowledged: {exc!r}") from None
        self._committed(rows[-1][0], self.committed_frames + sum(f for _, _, f in rows))
        return self.committed_seq

    def _committed(self, seq: int, frames: int) -> None:
        """``seq`` is committed with ``frames`` FRAME events up to it; remember the pair
        for a checkpoint of ``seq`` written later (at most ``COMMITS_KEPT`` pairs)."""
        with self._commits_lock:
            self.committed_seq, self.committed_frames = seq, frames
            self._commits[seq] = frames
            while len(self._commits) > COMMITS_KEPT:
                self._commits.popitem(last=False)  # the oldest commit

    def frames_through(self, seq: int) -> int:
        """FRAME events journaled with seq <= ``seq``, a committed seq (of the last
        ``COMMITS_KEPT`` commits); raises :class:`JournalError` for another."""
        with self._commits_lock:
            if seq == self.committed_seq:
                return self.committed_frames
            if seq in self._commits:
                return self._commits[seq]
        raise JournalError(f"{self.path}: no frame count kept for seq {seq}")

    async def _publish(self, rows: list[tuple[int, bytes, bool]]) -> None:
        js, subject = self.link.js, self.names.journal_subject
        futures = [
            await js.publish_async(subject, body, headers={_EXPECTED_LAST: str(seq - 1)})
            for seq, body, _ in rows
        ]
        acks = await asyncio.wait_for(asyncio.gather(*futures), COMMIT_TIMEOUT_S)
        for (seq, _, _), ack in zip(rows, acks, strict=True):
            if ack.seq != seq:
                raise JournalUnavailable(f"{self.path}: event {seq} stored as {ack.seq}")

    def reset_to_committed(self) -> None:
        """After a failed commit: forget the buffer; the stream's last sequence (which may
        hold part of the failed commit) is read again by :meth:`probe`."""
        self._buffer = []
        self.last_seq = self.committed_seq

    def probe(self) -> None:
        """Raises :class:`JournalUnavailable` while the broker cannot be reached; else
        takes the stream's last sequence as the committed one (the reload replays it)."""
        self.last_seq = self._stream_last_seq()
        self.frames = 0  # counted again by the replay
        self._committed(self.last_seq, 0)  # recounted by the replay too

    # ---- reading ----------------------------------------------------------------
    def events(self, after_seq: int = 0) -> Iterator[Event]:
        """Committed events with seq > ``after_seq``, in order, read from the stream."""
        if after_seq in self._frames_at or after_seq == 0:  # a replay: count them again
            self.frames = self._frames_at.get(after_seq, 0)
        reader = StreamReader(
            self.link.js, self.names.journal_stream, self.names.journal_subject, after_seq + 1
        )
        try:
            yield from self._read_back(reader)
            self._committed(self.committed_seq, self.frames)  # all read back are committed
        finally:
            self.link.call(reader.close(), 10.0)

    def _read_back(self, reader: StreamReader) -> Iterator[Event]:
        """The committed events from ``reader``'s position on, counting the frames."""
        while reader.next_seq <= self.committed_seq:
            for msg in self.link.call(reader.next_batch(2.0), 30.0):
                ev = decode_event(msg.metadata.sequence.stream, msg.data)
                if ev.seq > self.committed_seq:
                    return
                if ev.kind == EventKind.FRAME:
                    self.frames += 1
                yield ev

    # ---- checkpoints (the ordering state, in the object store) -----------------------
    def checkpoints(self) -> list[tuple[int, str, bytes]]:
        """The front door's checkpoint as (seq, version, state), if any (one is kept; a
        refused one means a replay from the stream's start, refused in turn by
        ``recovery`` when the stream was purged)."""
        try:
            found = self.link.call(self._objects.get(FRONT_DOOR), 30.0)
        except CheckpointError as exc:
            log.warning(kv("checkpoint_refused", file=self.path, reason=str(exc)))
            return []
        if found is None:
            return []
        seq, version, state, frames = found
        self._frames_at[seq] = frames
        return [(seq, version, state)]

    def latest_checkpoint(self) -> tuple[int, str, bytes] | None:
        kept = self.checkpoints()
        return kept[0] if kept else None

    def write_checkpoint(self, seq: int, version: str, state: bytes) -> int:
        """Keep the engine's state after ``seq``; returns ``seq`` (the trimmer also waits
        for every shard's checkpoint, :meth:`trim`)."""
        put = self._objects.put(FRONT_DOOR, seq, state, version, self.frames_through(seq))
        self.link.call(put, 30.0)
        return seq

    # ---- retention: purge what every checkpoint covers ---------------------------------
    def trim(self, through_seq: int, limit: int = 2000) -> int:
        """Purge the events up to ``through_seq`` (the front door's checkpoint) that every
        shard's checkpoint covers too; returns how many were purged (all at once: a
        purge is one broker call)."""
        floor, handover = self.link.call(self._trim_floor(int(through_seq)), 30.0)
        if handover > self.handover_trimmed_through:  # S > 1: what every shard has read
            stream = self.names.handover_stream
            self.link.call(self.link.js.purge_stream(stream, seq=handover + 1), 30.0)
            self.handover_trimmed_through = handover
            log.info(kv("handover_trimmed", journal=self.path, through_seq=handover))
        if floor <= self.trimmed_through:
            return 0
        js, stream = self.link.js, self.names.journal_stream
        self.link.call(js.purge_stream(stream, seq=floor + 1), 30.0)
        done, self.trimmed_through = floor - self.trimmed_through, floor
        self.last_trim_ns = time.time_ns()
        log.info(kv("journal_trimmed", journal=self.path, through_seq=floor))
        return done

    async def _trim_floor(self, through_seq: int) -> tuple[int, int]:
        """The highest journal seq every checkpoint covers (0 while a shard has none) and,
        with S > 1, the highest HANDOVER stream seq every shard's checkpoint has read (0
        while one has no position). Reads the checkpoints' descriptions only."""
        floor = min(through_seq, self.committed_seq)
        handover = None if self.shards > 1 else 0
        for shard in range(self.shards):
            head = await self._objects.head(shard_key(shard))
            if head is None:
                return 0, 0
            floor = min(floor, int(head["seq"]))
            if self.shards > 1:
                read = int((head.get("handover") or {}).get("seq", 1)) - 1
                handover = read if handover is None else min(handover, read)
        return floor, max(0, handover or 0)

    @property
    def events_kept(self) -> int:
        return self.committed_seq

    def reclaim(self, pages: int) -> None:
        return None

    @property
    def size_bytes(self) -> int:
        return 0

    def close(self) -> None:
        """Nothing to close: the link is closed by its owner."""
