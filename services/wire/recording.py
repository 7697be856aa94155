"""The one MCAP module: recordings of frames, truth and track reports (DESIGN §5).

A recording is an MCAP file with protobuf schemas embedded (``mcap`` +
``mcap-protobuf-support`` conventions: schema encoding ``protobuf``, a
``FileDescriptorSet`` per schema), so any MCAP tool can open it. Topics are
fixed (``/sensor_frames``, ``/truth``, ``/detection_truth``, ``/tracks``) and
one metadata record named ``tracklayer`` describes the run.

Both directions stream. The writer holds at most one chunk in memory (chunked,
zstd). The reader walks the file record by record (what ``NonSeekingReader`` with
``log_time_order=False`` does: :mod:`.mcap_fast`), so messages come back in file
order and a file cut short by a killed writer is read up to its last complete chunk,
after which ``RecordingReader.truncated`` is True.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from google.protobuf.message import DecodeError
from mcap.exceptions import McapError
from mcap.reader import FOOTER_SIZE, SeekingReader
from mcap.records import Channel, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from mcap_protobuf.schema import build_file_descriptor_set

from tracklayer import __version__
from tracklayer.fusion.domain import DetectionTruth, SensorFrame, TrackReport, TruthFrame
from tracklayer.services.wire import convert
from tracklayer.services.wire.mcap_fast import (
    EofTrackingFile,
    IndexSkippingStreamReader,
    MessageAppender,
    iter_messages,
)
from tracklayer.services.wire.report_bytes import report_bytes
from tracklayer.v1 import registration_pb2, sensor_pb2, track_pb2, truth_pb2

__all__ = [
    "METADATA_NAME",
    "TOPICS",
    "TOPIC_DETECTION_TRUTH",
    "TOPIC_FRAMES",
    "TOPIC_SENSOR_BIAS",
    "TOPIC_TRACKS",
    "TOPIC_TRUTH",
    "RecordingError",
    "RecordingReader",
    "RecordingWriter",
    "format_sensor_ids",
    "require_topic",
]

TOPIC_FRAMES = "/sensor_frames"
TOPIC_TRUTH = "/truth"
TOPIC_DETECTION_TRUTH = "/detection_truth"
TOPIC_TRACKS = "/tracks"
TOPIC_SENSOR_BIAS = "/sensor_bias"  # registration estimates (tracklayer track), DESIGN §5
METADATA_NAME = "tracklayer"

# Topic -> (wire message class, wire -> domain converter). Fixed by DESIGN §5.
_TOPIC_TYPES: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    TOPIC_FRAMES: (sensor_pb2.SensorFrame, convert.frame_from_proto),
    TOPIC_TRUTH: (truth_pb2.TruthFrame, convert.truth_from_proto),
    TOPIC_DETECTION_TRUTH: (truth_pb2.DetectionTruth, convert.detection_truth_from_proto),
    TOPIC_TRACKS: (track_pb2.TrackReport, convert.report_from_proto),
    TOPIC_SENSOR_BIAS: (registration_pb2.SensorBias, convert.bias_from_proto),
}
TOPICS: tuple[str, ...] = tuple(_TOPIC_TYPES)

_MAGIC = b"\x89MCAP0\r\n"
DEFAULT_CHUNK_SIZE = 1 << 20  # bytes of uncompressed messages per chunk (lost on a kill)
# Largest record the reader will load: a corrupt length field must not allocate gigabytes.
_RECORD_SIZE_LIMIT = 256 << 20
_COMPRESSION = {
    "zstd": CompressionType.ZSTD,
    "lz4": CompressionType.LZ4,
    "none": CompressionType.NONE,
}


class RecordingError(Exception):
    """A recording cannot be written or read; the message names the file and the problem."""


def format_sensor_ids(sensor_ids: Iterable[str]) -> str:
    """The ``sensor_ids`` metadata value: unique ids, sorted, comma-separated."""
    ids = sorted(set(sensor_ids))
    for s in ids:
        if not s or "," in s:
            raise ValueError(f"sensor_ids: {s!r} cannot be stored (empty or contains a comma)")
    return ",".join(ids)


def _parse_sensor_ids(text: str) -> list[str]:
    return sorted({s for s in text.split(",") if s})


# --- writing ----------------------------------------------------------------------------


class RecordingWriter:
    """Streams a recording to ``path`` (created or overwritten); a context manager.

    ``metadata`` (string keys and values: ``scenario``, ``scenario_file``, ``seed``,
    ``sensor_ids`` — see :func:`format_sensor_ids` —, ``fusion_config`` as JSON, ...)
    is written first, as the ``tracklayer`` metadata record, together with
    ``software_version``; a file cut short later still carries it. Messages are
    buffered into chunks of ``chunk_size`` bytes, compressed and written as each
    chunk fills, so memory stays bounded whatever the length of the recording.
    Log times are integer ns since the Unix epoch; the publish time recorded is the
    log time, so the same inputs give a byte-identical file. Not thread-safe.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: Mapping[str, str] | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compression: str = "zstd",
    ) -> None:
        self.path = Path(path)
        meta = dict(metadata or {})
        for key, value in meta.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"{self.path}: metadata {key!r}: keys and values must be strings, "
                    f"got {type(value).__name__}"
                )
        meta["software_version"] = __version__
        if compression not in _COMPRESSION:
            raise ValueError(f"compression: {compression!r} is not one of {sorted(_COMPRESSION)}")
        try:
            self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot create recording: {exc.strerror}") from exc
        self._writer = McapWriter(
            self._file, chunk_size=chunk_size, compression=_COMPRESSION[compression]
        )
        self._writer.start(profile="", library=f"tracklayer/{__version__}")
        self._writer.add_metadata(METADATA_NAME, {k: meta[k] for k in sorted(meta)})
        self._channels: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._append = MessageAppender.of(self._writer)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()  # also on error: what was written stays a complete, readable file

    @property
    def closed(self) -> bool:
        return self._file is None

    def _channel(self, topic: str) -> int:
        channel_id = self._channels.get(topic)
        if channel_id is None:
            if topic not in _TOPIC_TYPES:
                raise ValueError(f"topic: {topic!r} is not one of {list(TOPICS)}")
            cls = _TOPIC_TYPES[topic][0]
            schema_id = self._writer.register_schema(
                name=cls.DESCRIPTOR.full_name,
                encoding=SchemaEncoding.Protobuf,
                data=build_file_descriptor_set(cls).SerializeToString(),
            )
            channel_id = self._writer.register_channel(
                topic=topic, message_encoding=MessageEncoding.Protobuf, schema_id=schema_id
            )
            self._channels[topic] = channel_id
            self._counts[topic] = 0
        return channel_id

    def write_raw(self, topic: str, data: bytes, log_time_ns: int) -> None:
        """Append an already-serialised ``tracklayer.v1`` message of ``topic``'s type."""
        if self._file is None:
            raise RecordingError(f"{self.path}: recording is closed")
        log_time = log_time_ns  # (a copy's common case: an int, checked at once)
        if type(log_time) is not int or not 0 <= log_time < 2**64:
            if isinstance(log_time_ns, bool) or not 0 <= int(log_time_ns) < 2**64:
                raise ValueError(f"log_time_ns: {log_time_ns!r} is not a uint64 nanosecond time")
            log_time = int(log_time_ns)
        channel_id = self._channels.get(topic)
        if channel_id is None:
            channel_id = self._channel(topic)
        n = self._counts[topic]
        self._counts[topic] = n + 1
        data = data if type(data) is bytes else bytes(data)
        try:
            if self._append is not None:  # the same bytes, without mcap's per-message objects
                self._append.add(channel_id, log_time, data, n % 2**32)
            else:
                self._writer.add_message(channel_id, log_time, data, log_time, n % 2**32)
        except OSError as exc:
            raise RecordingError(f"{self.path}: write failed: {exc.strerror}") from exc

    def write_frame(self, frame: SensorFrame, log_time_ns: int) -> None:
        """``/sensor_frames``: log time = arrival (live) or simulated delivery time."""
        self.write_raw(TOPIC_FRAMES, convert.frame_to_proto(frame).SerializeToString(), log_time_ns)

    def write_truth(self, truth: TruthFrame, log_time_ns: int) -> None:
        """``/truth``: every object in flight at one instant (simulation only)."""
        self.write_raw(TOPIC_TRUTH, convert.truth_to_proto(truth).SerializeToString(), log_time_ns)

    def write_detection_truth(self, dt: DetectionTruth, log_time_ns: int) -> None:
        """``/detection_truth``: which object caused each detection of a frame."""
        self.write_raw(
            TOPIC_DETECTION_TRUTH,
            convert.detection_truth_to_proto(dt).SerializeToString(),
            log_time_ns,
        )

    def write_track(self, report: TrackReport, log_time_ns: int) -> None:
        """``/tracks``: one track report, as emitted (its bytes encoded directly:
        :func:`report_bytes`, the message's bytes)."""
        self.write_raw(TOPIC_TRACKS, report_bytes(report), log_time_ns)

    def message_count(self, topic: str) -> int:
        """Messages written so far on ``topic``."""
        return self._counts.get(topic, 0)

    def flush(self) -> None:
        """Hand the chunks written so far to the OS (the chunk being filled stays in
        memory): a process killed later leaves them readable."""
        if self._file is None:
            return
        try:
            self._file.flush()
        except OSError as exc:
            raise RecordingError(f"{self.path}: write failed: {exc.strerror}") from exc

    def close(self) -> None:
        """Write the last chunk, the indexes and the footer; idempotent."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            self._writer.finish()
        except OSError as exc:
            raise RecordingError(f"{self.path}: write failed: {exc.strerror}") from exc
        finally:
            file.close()


# --- reading ----------------------------------------------------------------------------


class RecordingReader:
    """Reads a recording written by :class:`RecordingWriter` (or any protobuf MCAP).

    Opening checks the file (missing, empty, not MCAP -> :class:`RecordingError`)
    and reads the summary if the file is complete. Every iteration opens its own
    handle and streams: memory does not grow with the file. ``truncated`` is True
    when the file lacks its footer (a killed writer) or an iteration hit a cut-off
    tail; the complete chunks before the cut are still yielded.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise RecordingError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise RecordingError(f"{self.path}: is a directory, not an MCAP recording")
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                head = f.read(len(_MAGIC))
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot read: {exc.strerror}") from exc
        if size == 0:
            raise RecordingError(f"{self.path}: empty file, not an MCAP recording")
        if head != _MAGIC:
            raise RecordingError(f"{self.path}: not an MCAP file (no MCAP magic at the start)")
        self._size = size
        complete, self._summary = self._read_summary()
        self.truncated: bool = not complete
        self._metadata: dict[str, str] | None = None
        self._has_topic: dict[str, bool] = {}
        self._checked_channels: set[int] = set()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass  # no handle is held between iterations

    def __repr__(self) -> str:
        return f"RecordingReader({str(self.path)!r})"

    def _read_summary(self):
        """(complete, summary or None): complete = footer and trailing magic intact."""
        if self._size < 2 * len(_MAGIC) + FOOTER_SIZE:
            return False, None
        with open(self.path, "rb") as f:
            f.seek(-len(_MAGIC), os.SEEK_END)
            if f.read(len(_MAGIC)) != _MAGIC:
                return False, None
            f.seek(0)
            try:
                return True, SeekingReader(f, record_size_limit=_RECORD_SIZE_LIMIT).get_summary()
            except (McapError, struct.error, ValueError):  # a cut that ends in magic bytes
                return False, None

    # --- record streams ---

    def _records(self, stream: EofTrackingFile, it: Iterator[Any]) -> Iterator[Any]:
        """Items of ``it`` (reading ``stream``) until the end or a truncated tail."""
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as exc:
                self._cut_or_corrupt(stream, exc)
                return
            yield item

    def _cut_or_corrupt(self, stream: EofTrackingFile, exc: Exception) -> None:
        """After ``exc`` reading ``stream``: a file that ends inside a record (a killed
        writer) is truncated; anything else raises :class:`RecordingError`."""
        if not stream.hit_eof:
            raise RecordingError(
                f"{self.path}: corrupt MCAP data near byte {stream.tell()}: {exc}"
            ) from exc
        self.truncated = True

    def _check_channel(self, schema: Schema | None, channel: Channel) -> None:
        if channel.id in self._checked_channels or channel.topic not in _TOPIC_TYPES:
            return
        expected = _TOPIC_TYPES[channel.topic][0].DESCRIPTOR.full_name
        found = schema.name if schema is not None else "no schema"
        encoding = schema.encoding if schema is not None else ""
        if (
            channel.message_encoding != MessageEncoding.Protobuf
            or encoding != SchemaEncoding.Protobuf
            or found != expected
        ):
            raise RecordingError(
                f"{self.path}: topic {channel.topic} carries {found!r} "
                f"({channel.message_encoding or 'no'} encoding), expected protobuf {expected}"
            )
        self._checked_channels.add(channel.id)

    def raw_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, bytes]]:
        """(topic, log_time_ns, serialised message) in file order; ``None`` = every topic."""
        wanted = None if topics is None else list(dict.fromkeys(topics))
        stream = EofTrackingFile(self.path)
        try:
            reader = IndexSkippingStreamReader(
                stream, record_size_limit=_RECORD_SIZE_LIMIT, emit_chunks=True
            )
            it = iter_messages(reader.records, wanted)  # (mcap's, without Message objects)
            checked = self._checked_channels
            try:  # (what _records does, without a generator and a call per message)
                for schema, channel, log_time, data in it:
                    if channel.id not in checked:
                        self._check_channel(schema, channel)
                    yield channel.topic, log_time, data
            except RecordingError:
                raise
            except Exception as exc:
                self._cut_or_corrupt(stream, exc)
        finally:
            stream.close()

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, Any]]:
        """(topic, log_time_ns, domain object) in file order; ``None`` = the four fixed topics."""
        wanted = list(TOPICS) if topics is None else list(dict.fromkeys(topics))
        for t in wanted:
            if t not in _TOPIC_TYPES:
                raise ValueError(f"topics: {t!r} is not one of {list(TOPICS)}")
        for topic, log_time, data in self.raw_messages(wanted):
            cls, from_proto = _TOPIC_TYPES[topic]
            try:
                obj = from_proto(cls.FromString(data))
            except (DecodeError, ValueError) as exc:
                raise RecordingError(
                    f"{self.path}: {topic} message at log time {log_time} ns: {exc}"
                ) from exc
            yield topic, log_time, obj

    def _typed(self, topic: str) -> Iterator[tuple[int, Any]]:
        for _, log_time, obj in self.messages([topic]):
            yield log_time, obj

    def frames(self) -> Iterator[tuple[int, SensorFrame]]:
        """(log_time_ns, frame) from ``/sensor_frames``, in file (= delivery) order."""
        return self._typed(TOPIC_FRAMES)

    def truth(self) -> Iterator[tuple[int, TruthFrame]]:
        """(log_time_ns, truth frame) from ``/truth``."""
        return self._typed(TOPIC_TRUTH)

    def detection_truth(self) -> Iterator[tuple[int, DetectionTruth]]:
        """(log_time_ns, detection truth) from ``/detection_truth``."""
        return self._typed(TOPIC_DETECTION_TRUTH)

    def tracks(self) -> Iterator[tuple[int, TrackReport]]:
        """(log_time_ns, track report) from ``/tracks``, as emitted."""
        return self._typed(TOPIC_TRACKS)

    # --- metadata and topics ---

    @property
    def metadata(self) -> dict[str, str]:
        """The ``tracklayer`` metadata record (a copy); empty if the file has none."""
        if self._metadata is None:
            self._metadata = self._find_metadata()
        return dict(self._metadata)

    def _find_metadata(self) -> dict[str, str]:
        if self._summary is not None:
            with open(self.path, "rb") as f:
                reader = SeekingReader(f, record_size_limit=_RECORD_SIZE_LIMIT)
                for record in reader.iter_metadata():
                    if record.name == METADATA_NAME:
                        return dict(record.metadata)
            return {}
        # No summary (cut short): scan records from the start; our writer puts the
        # record right after the header, so this stops at once. Chunks are skipped
        # without decompressing them.
        stream = EofTrackingFile(self.path)
        try:
            it = StreamReader(
                stream, emit_chunks=True, record_size_limit=_RECORD_SIZE_LIMIT
            ).records
            for record in self._records(stream, it):
                if isinstance(record, Metadata) and record.name == METADATA_NAME:
                    return dict(record.metadata)
        finally:
            stream.close()
        return {}

    def has_topic(self, topic: str) -> bool:
        """True when at least one message was recorded on ``topic``."""
        if topic not in self._has_topic:
            self._has_topic[topic] = self._count_from_summary(topic) or self._scan_for(topic)
        return self._has_topic[topic]

    def message_count(self, topic: str) -> int | None:
        """Messages on ``topic`` per the file's statistics; None without them (a cut file)."""
        s = self._summary
        if s is None or s.statistics is None:
            return None
        counts = s.statistics.channel_message_counts
        return sum(counts.get(cid, 0) for cid, ch in s.channels.items() if ch.topic == topic)

    def _count_from_summary(self, topic: str) -> bool:
        s = self._summary
        if s is None or s.statistics is None:
            return False
        counts = s.statistics.channel_message_counts
        return any(counts.get(cid, 0) > 0 for cid, ch in s.channels.items() if ch.topic == topic)

    def _scan_for(self, topic: str) -> bool:
        if self._summary is not None and self._summary.statistics is not None:
            return False  # the statistics are authoritative for a complete file
        for _ in self.raw_messages([topic]):
            return True
        return False

    def sensor_ids(self) -> list[str]:
        """Sensor ids, sorted: from the metadata, else by one streaming scan of the frames."""
        meta = self.metadata
        if "sensor_ids" in meta:
            return _parse_sensor_ids(meta["sensor_ids"])
        ids: set[str] = set()
        for _, _, data in self.raw_messages([TOPIC_FRAMES]):
            try:
                ids.add(sensor_pb2.SensorFrame.FromString(data).sensor_id)
            except DecodeError as exc:
                raise RecordingError(f"{self.path}: {TOPIC_FRAMES} message: {exc}") from exc
        return sorted(ids)


def require_topic(reader: RecordingReader, topic: str) -> None:
    """Raise :class:`RecordingError` naming the file and ``topic`` if it has no messages."""
    if not reader.has_topic(topic):
        have = [t for t in TOPICS if reader.has_topic(t)]
        if reader.truncated:  # say why, rather than suggest the topic was never recorded
            raise RecordingError(
                f"{reader.path}: truncated recording (no MCAP footer) whose complete chunks "
                f"hold no messages on topic {topic} (readable topics: {', '.join(have) or 'none'})"
            )
        raise RecordingError(
            f"{reader.path}: no messages on topic {topic} "
            f"(recorded topics: {', '.join(have) or 'none'})"
        )
