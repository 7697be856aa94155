"""The demo's recording: the simulated frames and truth plus the stored reports as
``/tracks``, the input of the evaluation at the demo's end."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path

from tracklayer.fusion.domain import TrackReport


def write_demo_recording(
    truth_path: Path, reports: list[TrackReport], out_path: Path, fusion_id: str
) -> None:
    """``out_path``: ``truth_path``'s messages plus ``reports`` as ``/tracks``, by log time.

    A report's log time is its state time (data time), as in ``tracklayer track``.
    """
    from tracklayer.services.wire.recording import TOPIC_TRACKS, RecordingReader, RecordingWriter

    reader = RecordingReader(truth_path)
    metadata = dict(reader.metadata)
    metadata["fusion_id"] = fusion_id
    metadata["source"] = "tracklayer demo: live store, fusion and sensor processes"
    tracks = sorted(reports, key=lambda r: (r.time_ns, r.track_id, r.revision))

    def track_items() -> Iterator[tuple[int, int, int, TrackReport]]:
        for i, r in enumerate(tracks):
            yield r.time_ns, 1, i, r

    def sim_items() -> Iterator[tuple[int, int, int, tuple[str, bytes]]]:
        for i, (topic, log_ns, data) in enumerate(reader.raw_messages()):
            if topic != TOPIC_TRACKS:
                yield log_ns, 0, i, (topic, data)

    tmp = out_path.with_name(f".{out_path.name}.partial")
    with RecordingWriter(tmp, metadata) as writer:
        for log_ns, kind, _, payload in heapq.merge(sim_items(), track_items()):
            if kind == 1:
                writer.write_track(payload, log_ns)
            else:
                writer.write_raw(payload[0], payload[1], log_ns)
    tmp.replace(out_path)
