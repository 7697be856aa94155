"""Checkpoints in a JetStream object store (``tl_<ID>_ckpt``): one object per shard
(``shard-<k>``) and one for the front door's ordering state (``front-door``).

An object is a small header (magic, the journal seq the state covers, the software
version) followed by the fusion service's own checkpoint bytes
(``fusion_service.checkpoint``: versioned, checksummed data, no pickle; loading names
classes only from ``tracklayer.fusion`` and the configured tracker). A shard checkpoint
of another version, or one that fails its checks, is refused with one WARNING line and
the shard replays the journal from the start, if the stream still holds it (the shard
refuses to run otherwise, ``shard.ShardError``); the front door's goes through the
journal's usual checks (``recovery``).

The object's description (its info, written after its chunks: the put's commit point)
holds the same seq as JSON, with a shard's hand-over position (S > 1: the HANDOVER stream
sequence it read up to, and the other shards' progress it saw), so the trimmer reads
every shard's seq with :meth:`CheckpointObjects.head` without fetching 10-20 MB states.
"""

from __future__ import annotations

import asyncio
import json
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
_HEAD = struct.Struct(">QQH")  # seq, frames journaled up to seq, version length
#: Object name of the front door's checkpoint.
FRONT_DOOR = "front-door"


class CheckpointObjects:
    """Checkpoint objects of one deployment: (seq, version, state bytes) by name."""

    def __init__(self, js, names: Names) -> None:  # noqa: ANN001 - JetStreamContext
        self._js, self.names = js, names

    async def put(
        self,
        name: str,
        seq: int,
        state: bytes,
        version: str = __version__,
        frames: int = 0,
        extra: dict | None = None,
    ) -> int:
        """Keep ``state`` as the state after journal event ``seq`` (``frames``: FRAME
        events up to it, for the front door's ``journal_frames``; ``extra``: JSON-able
        values kept in the description beside ``seq``); returns the bytes."""
        from nats.js.api import ObjectMeta

        v = version.encode()
        blob = MAGIC + _HEAD.pack(seq, frames, len(v)) + v + state
        head = json.dumps({"seq": int(seq), **(extra or {})}, sort_keys=True)
        store = await self._js.object_store(self.names.checkpoint_bucket)
        await store.put(name, blob, meta=ObjectMeta(name=name, description=head))
        return len(blob)

    async def head(self, name: str) -> dict | None:
        """The description of object ``name`` (``seq`` and the ``extra`` of :meth:`put`)
        without its data, or None if there is none; an object written without one (an
        older version) is read whole for its seq."""
        import nats.js.errors

        store = await self._js.object_store(self.names.checkpoint_bucket)
        try:
            info = await store.get_info(name)
        except nats.js.errors.NotFoundError:
            return None
        try:
            head = json.loads(info.description or "")
            if isinstance(head, dict) and isinstance(head.get("seq"), int):
                return head
        except ValueError:
            pass
        found = await self.get(name)
        return None if found is None else {"seq": found[0]}

    async def get(self, name: str) -> tuple[int, str, bytes, int] | None:
        """(seq, version, state, frames) of object ``name``, or None if there is none;
        raises CheckpointError when its header is not ours."""
        import nats.js.errors

        store = await self._js.object_store(self.names.checkpoint_bucket)
        try:
            blob = (await store.get(name)).data
        except nats.js.errors.NotFoundError:
            return None
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _HEAD.size:
            raise CheckpointError(f"{name}: not a tracklayer checkpoint object")
        seq, frames, n = _HEAD.unpack_from(blob, len(MAGIC))
        start = len(MAGIC) + _HEAD.size
        version = blob[start : start + n].decode("utf-8", "replace")
        return int(seq), version, blob[start + n :], int(frames)


class ShardCheckpoints(CheckpointObjects):
    """Save and load the checkpoint of a shard."""

    async def save(
        self, shard: int, seq: int, core: FusionCore, opens: Counter, handover: dict | None = None
    ) -> int:
        """Keep the shard's state after journal event ``seq`` (``handover``: its position
        on the HANDOVER stream at that state, S > 1); returns its size in bytes.
        The encoding runs in a thread: a big state (a raid's, 10-20 MB) takes seconds,
        and the event loop must renew the leases meanwhile (the core is not applied to
        until this returns)."""
        state = await asyncio.to_thread(encode_checkpoint, core, opens)
        extra = {"handover": handover} if handover is not None else None
        return await self.put(shard_key(shard), seq, state, extra=extra)

    async def load(
        self, shard: int, fresh: FusionCore
    ) -> tuple[int, FusionCore, Counter, dict | None] | None:
        """(seq, core, open-stream counts, hand-over position or None) of the shard's
        checkpoint, or None (replay from the start). ``fresh``: a new core of the shard's
        settings (names its tracker)."""
        try:
            found = await self.get(shard_key(shard))
            if found is None:
                return None
            seq, version, state, _ = found
            if version != __version__:
                raise CheckpointError(f"written by tracklayer {version}, this is {__version__}")
            head = await self.head(shard_key(shard))
            core, opens = await asyncio.to_thread(decode_checkpoint, state, allowed_modules(fresh))
        except CheckpointError as exc:
            log.warning(kv("checkpoint_refused", shard=shard, reason=str(exc)))
            return None
        handover = (head or {}).get("handover") if (head or {}).get("seq") == seq else None
        return seq, core, opens, handover
