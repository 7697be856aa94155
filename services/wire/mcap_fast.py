"""MCAP messages written and read without mcap's per-message Python objects: part of the
recording layer (:mod:`tracklayer.services.wire.recording` is its only caller).
``tracklayer track`` reads and copies every recorded message (two per frame); mcap's
pure-Python ``add_message`` and chunk reader cost ~6 and ~5 us a message, ~8% of a sparse
run. The same files and the same messages (tests/test_mcap_fast.py)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from io import BytesIO
from itertools import chain
from pathlib import Path

from mcap.data_stream import ReadDataStream, RecordBuilder
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Message, MessageIndex, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import Writer as McapWriter

try:  # as mcap imports them (a chunk in a codec it lacks fails there too)
    import zstandard
except ImportError:  # pragma: no cover - a dependency of mcap's zstd support
    zstandard = None  # type: ignore[assignment]
try:
    import lz4.frame as lz4
except ImportError:  # pragma: no cover
    lz4 = None  # type: ignore[assignment]

#: An MCAP Message record's head: opcode, record length, channel id, sequence, log time,
#: publish time (the data follow); the length counts the 22 bytes after it plus the data.
_MESSAGE_HEAD = struct.Struct("<BQHIQQ")
_MESSAGE_OPCODE = 0x05
_MESSAGE_FIXED = 22


class MessageAppender:
    """What mcap's ``Writer.add_message`` does for a chunked writer (statistics, the
    chunk's time range and message index, the record, a full chunk written out), with the
    record packed at once instead of through a ``Message`` object and six method calls:
    the same file, byte for byte (tests/test_mcap_fast.py), at ~1/4 of the CPU per
    message (``tracklayer track`` copies every recorded message). It reaches into the
    writer's private state; :meth:`of` returns None when that is not laid out as in the
    mcap versions it was written against (then ``add_message`` is used)."""

    def __init__(self, writer: McapWriter) -> None:
        self._stats = writer._Writer__statistics  # type: ignore[attr-defined]
        self._chunk = writer._Writer__chunk_builder  # type: ignore[attr-defined]
        self._chunk_size = int(writer._Writer__chunk_size)  # type: ignore[attr-defined]
        self._finalize = writer._Writer__finalize_chunk  # type: ignore[attr-defined]
        for name in ("message_count", "message_start_time", "message_end_time"):
            getattr(self._stats, name)
        for name in ("num_messages", "message_start_time", "message_end_time", "count"):
            getattr(self._chunk, name)
        if not isinstance(self._chunk.message_indices, dict) or not isinstance(
            self._stats.channel_message_counts, dict
        ):
            raise TypeError("mcap writer: unknown layout")
        self._chunk.record_writer._buffer.tell()

    @classmethod
    def of(cls, writer: McapWriter) -> MessageAppender | None:
        """The appender of ``writer``, or None when its private layout is not known."""
        try:
            return cls(writer)
        except (AttributeError, TypeError, ValueError):
            return None

    def add(self, channel_id: int, log_time: int, data: bytes, sequence: int) -> None:
        """``add_message(channel_id, log_time, data, publish_time=log_time, sequence)``."""
        st, cb = self._stats, self._chunk
        if st.message_count == 0:
            st.message_start_time = log_time
        elif log_time < st.message_start_time:
            st.message_start_time = log_time
        if log_time > st.message_end_time:
            st.message_end_time = log_time
        st.channel_message_counts[channel_id] += 1
        st.message_count += 1
        if cb.num_messages == 0:
            cb.message_start_time = log_time
        elif log_time < cb.message_start_time:
            cb.message_start_time = log_time
        if log_time > cb.message_end_time:
            cb.message_end_time = log_time
        index = cb.message_indices.get(channel_id)
        if index is None:
            index = cb.message_indices[channel_id] = PackedMessageIndex(channel_id, [])
        buffer = cb.record_writer._buffer  # (a new one after each chunk)
        at = buffer.tell()
        index.records.append((log_time, at))
        cb.num_messages += 1
        head = (_MESSAGE_OPCODE, _MESSAGE_FIXED + len(data), channel_id, sequence, log_time)
        buffer.write(_MESSAGE_HEAD.pack(*head, log_time))
        buffer.write(data)
        if at + _MESSAGE_HEAD.size + len(data) > self._chunk_size:
            self._finalize()


class PackedMessageIndex(MessageIndex):
    """mcap's ``MessageIndex`` written with one ``struct.pack`` of all its entries
    instead of two calls per entry (the same bytes; a chunk holds thousands)."""

    def write(self, stream: RecordBuilder) -> None:
        records = self.records
        stream.start_record(Opcode.MESSAGE_INDEX)
        stream.write(
            struct.pack(
                f"<HI{2 * len(records)}Q",
                self.channel_id,
                16 * len(records),
                *chain.from_iterable(records),
            )
        )
        stream.finish_record()


class EofTrackingFile:
    """A read-only file wrapper that remembers whether a read came back short (end of file)."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.hit_eof = False

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if n is None or n < 0 or len(data) < n:
            self.hit_eof = True
        return data

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()


class IndexSkippingStreamReader(StreamReader):
    """mcap's ``StreamReader`` that steps over Message Index records (the reader does
    not use them: messages come from the chunks) instead of parsing them entry by entry
    (~2 us a message). A cut-off index still ends the stream as before."""

    def _read_record(self, opcode: int, length: int):  # type: ignore[override]
        if opcode == Opcode.MESSAGE_INDEX:
            return None  # the caller reads its ``length`` bytes as padding
        return super()._read_record(opcode, length)


_RECORD_HEAD = struct.Struct("<BQ")  # opcode, record length
_MESSAGE_FIELDS = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
_OP_SCHEMA, _OP_CHANNEL = 0x03, 0x04


def iter_messages(
    records: Iterable[object], topics: Iterable[str] | None = None
) -> Iterator[tuple[Schema | None, Channel, int, bytes]]:
    """(schema, channel, log time ns, data) of each message in ``records`` (an mcap
    ``StreamReader(..., emit_chunks=True).records``) of ``topics`` (None: all), in file
    order: mcap ``NonSeekingReader.iter_messages(topics, log_time_order=False)``, with
    each chunk's messages sliced from its bytes instead of read into ``Message`` objects."""
    wanted = None if topics is None else set(topics)
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    for record in records:
        if isinstance(record, Chunk):
            inner: Iterable = _chunk_records(record)
        else:
            inner = ((record, None),)
        for rec, fields in inner:
            if fields is not None:  # a message: (channel id, log time, data)
                channel_id, log_time, data = fields
            elif isinstance(rec, Message):
                channel_id, log_time, data = rec.channel_id, rec.log_time, rec.data
            else:
                _learn(rec, schemas, channels)
                continue
            channel = channels.get(channel_id)
            if channel is None:
                raise McapError(f"no channel record found with id {channel_id}")
            if wanted is not None and channel.topic not in wanted:
                continue
            schema = None if channel.schema_id == 0 else schemas[channel.schema_id]
            yield schema, channel, log_time, data


def _learn(rec: object, schemas: dict[int, Schema], channels: dict[int, Channel]) -> None:
    """Keep a schema or channel record (as mcap's reader does); ignore any other."""
    if isinstance(rec, Schema):
        schemas[rec.id] = rec
    elif isinstance(rec, Channel):
        if rec.schema_id != 0 and rec.schema_id not in schemas:
            raise McapError(f"no schema record found with id {rec.schema_id}")
        channels[rec.id] = rec


def _chunk_records(chunk: Chunk) -> Iterator[tuple[object, tuple[int, int, bytes] | None]]:
    """A chunk's records, as mcap's ``breakup_chunk`` reads them: a message as (None,
    (channel id, log time, data)); a schema or channel record as (record, None)."""
    if chunk.compression == "zstd":
        if zstandard is None:  # pragma: no cover
            raise McapError("zstandard is not installed")
        data = zstandard.decompress(chunk.data, chunk.uncompressed_size)
    elif chunk.compression == "lz4":
        if lz4 is None:  # pragma: no cover
            raise McapError("lz4 is not installed")
        data = lz4.decompress(chunk.data)
    else:
        data = chunk.data
    pos, end = 0, len(data)
    head, fields = _RECORD_HEAD.unpack_from, _MESSAGE_FIELDS.unpack_from
    while pos < end:
        opcode, length = head(data, pos)
        pos += 9
        if pos + length > end:
            raise McapError(f"chunk record of {length} bytes past the chunk's end")
        if opcode == _MESSAGE_OPCODE:
            channel_id, _, log_time, _ = fields(data, pos)
            yield None, (channel_id, log_time, data[pos + _MESSAGE_FIXED : pos + length])
        elif opcode in (_OP_SCHEMA, _OP_CHANNEL):
            stream = ReadDataStream(BytesIO(data[pos : pos + length]))
            yield (Schema.read(stream) if opcode == _OP_SCHEMA else Channel.read(stream)), None
        pos += length
