"""The checkpoint format: versioned, checksummed data that cannot run code when loaded.

A checkpoint is the fusion engine's state after one journal event (the core and the
open-stream counts), kept in the journal's ``checkpoints`` table. Its bytes are

=======  =================================================================
22 B     magic ``b"tracklayer-checkpoint\\x00"``
4 B      format version, unsigned big-endian (:data:`FORMAT_VERSION`)
32 B     SHA-256 of everything after it
8 B      length of the JSON document, unsigned big-endian
...      the JSON document, then the array buffer (``state_codec``)
=======  =================================================================

The document's root is ``{"core", "open_streams", "layout"}``: ``layout`` is the
tracking state's layout version (:data:`~tracklayer.fusion.core.STATE_LAYOUT`). A
checkpoint of another layout (or none: written before layouts were numbered) is
refused, so a restart after an upgrade replays the journal instead of restoring
objects that lack attributes the new code reads.

Loading checks the magic, the version and the checksum before it parses anything,
then rebuilds the graph with :func:`~.state_codec.decode_state` (classes of
``tracklayer.fusion`` and the configured tracker's module only; no constructor or
other function named by the file runs). Any failure is a :class:`CheckpointError`
whose message says why in one line.
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from typing import Any

from tracklayer.fusion.core import STATE_LAYOUT, FusionCore
from tracklayer.services.fusion_service.state_codec import (
    StateFormatError,
    decode_state,
    encode_state,
)

MAGIC = b"tracklayer-checkpoint\x00"
FORMAT_VERSION = 1
_HEAD = struct.Struct(">I32sQ")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why (one line)."""


def allowed_modules(core: FusionCore) -> tuple[str, ...]:
    """Modules whose classes a checkpoint of ``core`` may name: the tracking core's and
    the configured tracker's (chosen by the operator's settings, never by the file)."""
    return tuple(sorted({"tracklayer.fusion", type(core.tracker).__module__}))


def encode_checkpoint(core: FusionCore, open_streams: Counter) -> bytes:
    """The checkpoint bytes of ``core`` and the open-stream counts (see module docstring)."""
    root = {"core": core, "open_streams": dict(open_streams), "layout": STATE_LAYOUT}
    doc, arrays = encode_state(root, allowed_modules(core))
    body = struct.pack(">Q", len(doc)) + doc + arrays
    digest = hashlib.sha256(body).digest()
    return MAGIC + struct.pack(">I32s", FORMAT_VERSION, digest) + body


def decode_checkpoint(blob: bytes, allowed: tuple[str, ...]) -> tuple[FusionCore, Counter]:
    """(core, open-stream counts) from checkpoint bytes; raises :class:`CheckpointError`."""
    if not blob.startswith(MAGIC):
        hint = " (a pickle from before issue 15?)" if blob[:1] == b"\x80" else ""
        raise CheckpointError(f"not a tracklayer checkpoint{hint}")
    if len(blob) < len(MAGIC) + _HEAD.size:
        raise CheckpointError("truncated header")
    version, digest, doc_len = _HEAD.unpack_from(blob, len(MAGIC))
    if version != FORMAT_VERSION:
        raise CheckpointError(f"format version {version}, this tracklayer reads {FORMAT_VERSION}")
    body = blob[len(MAGIC) + 36 :]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError("checksum mismatch (corrupt)")
    doc = body[8 : 8 + doc_len]
    arrays = body[8 + doc_len :]
    try:
        root: Any = decode_state(doc, arrays, allowed)
        core, opens, layout = root["core"], root["open_streams"], root.get("layout")
    except (StateFormatError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"bad content: {str(exc)[:200]}") from None
    if layout != STATE_LAYOUT:
        written = "unnumbered (older)" if layout is None else repr(layout)
        raise CheckpointError(
            f"state layout {written}, this tracklayer reads layout {STATE_LAYOUT}: "
            "written by another tracklayer version"
        )
    if not isinstance(core, FusionCore) or not isinstance(opens, dict):
        raise CheckpointError("bad content: not a fusion engine state")
    return core, Counter({str(k): int(v) for k, v in opens.items()})
