"""A shard's checkpoints in a JetStream object store (``tl_<ID>_ckpt``, object ``shard-<k>``).

The object is a small header (magic, the journal seq the state covers, the software
version) followed by the fusion service's own checkpoint bytes
(``fusion_service.checkpoint``: versioned, checksummed data, no pickle; loading names
classes only from ``tracklayer.fusion`` and the configured tracker). A checkpoint of
another version, or one that fails its checks, is refused with one WARNING line and the
shard replays the journal from the start (the stream is never trimmed in this version).
"""

from __future__ import annotations

import logging
import struct
from collections import Counter

from tracklayer import __version__
from tracklayer.fusion.core import FusionCore
from tracklayer.services.fusion_service.checkpoint import (
    CheckpointError,
    allowed_modules,
    decode_checkpoint,
    encode_checkpoint,
)
from tracklayer.services.rpc.server import kv
from tracklayer.services.scaleout.names import Names, shard_key

log = logging.getLogger("tracklayer.services.scaleout")

MAGIC = b"tracklayer-shard\x00"
_HEAD = struct.Struct(">QH")


class ShardCheckpoints:
    """Save and load shard checkpoints of one deployment."""

    def __init__(self, js, names: Names) -> None:  # noqa: ANN001 - JetStreamContext
        self._js, self.names = js, names

    async def save(self, shard: int, seq: int, core: FusionCore, opens: Counter) -> int:
        """Keep the state after journal event ``seq``; returns its size in bytes."""
        version = __version__.encode()
        blob = MAGIC + _HEAD.pack(seq, len(version)) + version + encode_checkpoint(core, opens)
        store = await self._js.object_store(self.names.checkpoint_bucket)
        await store.put(shard_key(shard), blob)
        return len(blob)

    async def load(self, shard: int, fresh: FusionCore) -> tuple[int, FusionCore, Counter] | None:
        """(seq, core, open-stream counts) of the shard's checkpoint, or None (replay from
        the start). ``fresh``: a new core of the shard's settings (names its tracker)."""
        import nats.js.errors

        store = await self._js.object_store(self.names.checkpoint_bucket)
        try:
            blob = (await store.get(shard_key(shard))).data
        except nats.js.errors.NotFoundError:
            return None
        try:
            seq, core, opens = _decode(blob, allowed_modules(fresh))
        except CheckpointError as exc:
            log.warning(kv("checkpoint_refused", shard=shard, reason=str(exc)))
            return None
        return seq, core, opens


def _decode(blob: bytes, allowed: tuple[str, ...]) -> tuple[int, FusionCore, Counter]:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _HEAD.size:
        raise CheckpointError("not a tracklayer shard checkpoint")
    seq, n = _HEAD.unpack_from(blob, len(MAGIC))
    start = len(MAGIC) + _HEAD.size
    version = blob[start : start + n].decode("utf-8", "replace")
    if version != __version__:
        raise CheckpointError(f"written by tracklayer {version}, this is {__version__}")
    core, opens = decode_checkpoint(blob[start + n :], allowed)
    return int(seq), core, opens
