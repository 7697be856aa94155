"""Every limit the services put on what crosses the wire, defined once.

Servers check requests against these and answer a clear error naming the field;
clients size their batches by them. Sizes in characters, counts or bytes as named.
"""

from __future__ import annotations

from tracklayer.fusion.domain import MAX_SENSOR_ID_CHARS

__all__ = [
    "KEEPALIVE_TIMEOUT_MS",
    "KEEPALIVE_TIME_MS",
    "MAX_DETECTIONS_PER_FRAME",
    "MAX_FRAMES_PER_REQUEST",
    "MAX_INFLIGHT_REQUESTS",
    "MAX_MESSAGE_BYTES",
    "MAX_SENSOR_ID_CHARS",
    "MAX_TRACK_ID_CHARS",
]

#: Largest frame the fusion service takes: a look with more detections than this is
#: REJECTED (clutter that dense is a broken sensor; 10,000 is ~0.4 MB on the wire).
MAX_DETECTIONS_PER_FRAME = 10_000

#: Most frames in one StreamFramesRequest; a bigger request ends the stream
#: RESOURCE_EXHAUSTED (senders batch ~100; a look's detections travel in one frame).
MAX_FRAMES_PER_REQUEST = 1_000

#: Per stream: requests read but not yet acknowledged.
MAX_INFLIGHT_REQUESTS = 64

#: Message size limit (bytes) on every server and client: a frame with 10,000
#: detections is ~0.6 MB, so 16 MB leaves room for batched requests.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

#: Longest track id (characters): "<fusion id>-<n>", fusion ids have at most 64.
MAX_TRACK_ID_CHARS = 256

#: gRPC keepalive on every server and client channel (issue 15): a ping after this
#: long without traffic (ms), and the connection is dead when its answer takes longer
#: than KEEPALIVE_TIMEOUT_MS: a silently dead peer (half-open TCP, a NAT that forgot
#: the connection, a black-holed link) is noticed within 20 s, under the 30 s asked.
KEEPALIVE_TIME_MS = 10_000
KEEPALIVE_TIMEOUT_MS = 10_000
