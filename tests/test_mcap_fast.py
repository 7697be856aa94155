"""A recording written with the fast message append (services/wire/mcap_fast.py) is the
file mcap's own ``Writer.add_message`` writes, byte for byte: chunk boundaries, message
indexes, statistics and all."""

from __future__ import annotations

import numpy as np

from tracklayer.services.wire import recording
from tracklayer.services.wire.mcap_fast import MessageAppender
from tracklayer.services.wire.recording import (
    TOPIC_DETECTION_TRUTH,
    TOPIC_FRAMES,
    TOPIC_TRACKS,
    TOPIC_TRUTH,
    RecordingReader,
    RecordingWriter,
)

TOPICS = (TOPIC_FRAMES, TOPIC_DETECTION_TRUTH, TOPIC_TRUTH, TOPIC_TRACKS)


def _messages(seed: int, n: int) -> list[tuple[str, bytes, int]]:
    """``n`` messages on the four topics: random sizes (empty too), log times mostly
    rising with some going back (as reports written at their frame's data time do)."""
    rng = np.random.default_rng(seed)
    t = 1_767_225_600 * 10**9
    out = []
    for _ in range(n):
        t += int(rng.integers(-2_000_000, 50_000_000))
        size = int(rng.integers(0, 400))
        topic = TOPICS[int(rng.integers(0, len(TOPICS)))]
        out.append((topic, rng.bytes(size), max(t, 0)))
    return out


def _write(path, messages, fast: bool, monkeypatch, chunk_size: int) -> bytes:
    if not fast:
        monkeypatch.setattr(recording.MessageAppender, "of", classmethod(lambda cls, w: None))
    with RecordingWriter(path, {"scenario": "x"}, chunk_size=chunk_size) as writer:
        assert (writer._append is not None) == fast
        for topic, data, t in messages:
            writer.write_raw(topic, data, t)
    monkeypatch.undo()
    return path.read_bytes()


def test_fast_append_writes_mcaps_own_bytes(tmp_path, monkeypatch):
    for seed, n, chunk_size in ((1, 3_000, 4_096), (2, 500, 1 << 20), (3, 40, 64)):
        messages = _messages(seed, n)
        fast = _write(tmp_path / "fast.mcap", messages, True, monkeypatch, chunk_size)
        plain = _write(tmp_path / "plain.mcap", messages, False, monkeypatch, chunk_size)
        assert fast == plain
        got = list(RecordingReader(tmp_path / "fast.mcap").raw_messages())
        assert [(t, d, lt) for t, lt, d in got] == messages


def test_an_unknown_writer_layout_falls_back_to_add_message():
    class Other:  # an mcap version laid out otherwise
        pass

    assert MessageAppender.of(Other()) is None  # type: ignore[arg-type]


def test_reading_gives_mcaps_own_messages(tmp_path):
    """The chunk reader gives what mcap's ``NonSeekingReader`` does, in file order, for
    every topic and for a selection (a file of many chunks and one message per chunk)."""
    from mcap.reader import NonSeekingReader

    for chunk_size, n in ((4_096, 3_000), (64, 50)):
        path = tmp_path / f"r{chunk_size}.mcap"
        with RecordingWriter(path, {"scenario": "x"}, chunk_size=chunk_size) as writer:
            for topic, data, t in _messages(7, n):
                writer.write_raw(topic, data, t)
        for topics in (None, [TOPIC_FRAMES, TOPIC_TRACKS], [TOPIC_TRUTH]):
            with open(path, "rb") as f:
                ref = [
                    (c.topic, m.log_time, m.data)
                    for _, c, m in NonSeekingReader(f).iter_messages(topics, log_time_order=False)
                ]
            got = list(RecordingReader(path).raw_messages(topics))
            assert got == ref and len(ref) > 0
