"""Restart of the fusion engine: checkpoints and the journal replay.

A restart loads the newest usable checkpoint written by this software version (if
any; a corrupt or foreign one is refused naming the file and the one before is used),
then replays every later journal event through the core with
:func:`~tracklayer.services.fusion_service.inputs.apply_event` (``apply_input`` of
the event), exactly as it was applied live. Reports of events after the outbox's
journal mark never reached the outbox before the process ended: the replay adds them
again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from tracklayer import __version__
from tracklayer.fusion.core import FusionCore
from tracklayer.fusion.domain import FrameStatus
from tracklayer.services.fusion_service.checkpoint import (
    CheckpointError,
    allowed_modules,
    decode_checkpoint,
    encode_checkpoint,
)
from tracklayer.services.fusion_service.inputs import apply_event
from tracklayer.services.fusion_service.journal import Event, EventKind, Journal, JournalError
from tracklayer.services.fusion_service.live_picture import LivePicture, report_message
from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.fusion")


class CheckpointStore(Protocol):
    """Where the checkpoints are kept: their own SQLite file
    (:class:`~.checkpoint_file.CheckpointFile`) or the scale-out stream journal."""

    path: object

    def checkpoints(self) -> list[tuple[int, str, bytes]]: ...
    def write_checkpoint(self, seq: int, version: str, state: bytes) -> int: ...


def checkpoint_state(core: FusionCore, open_streams: Counter) -> bytes:
    """The engine state a checkpoint keeps (the core and the open-stream counts), as
    checkpoint data (``checkpoint``: no pickle)."""
    return encode_checkpoint(core, open_streams)


def load_checkpoint(
    store: CheckpointStore,
    allowed: tuple[str, ...],
    kept: list[tuple[int, str, bytes]] | None = None,
    last_seq: int | None = None,
) -> tuple[int, FusionCore, Counter] | None:
    """(seq, core, open-stream counts) of the newest usable checkpoint, or None (no
    usable one: replay from the start). A checkpoint of another version is skipped; a
    corrupt or foreign one, or one past the journal's ``last_seq`` (it belongs to
    another journal), is refused with one WARNING line naming the file, and the one
    before it is tried. ``allowed``: modules its classes may come from; ``kept``:
    ``store.checkpoints()`` when the caller has read them already."""
    for seq, version, blob in store.checkpoints() if kept is None else kept:
        if version != __version__:
            log.warning(kv("checkpoint_skipped", seq=seq, written_by=version, running=__version__))
            continue
        try:
            if last_seq is not None and seq > last_seq:
                raise CheckpointError(f"past the journal's last event {last_seq}")
            core, opens = decode_checkpoint(blob, allowed)
        except CheckpointError as exc:
            log.warning(kv("checkpoint_refused", file=str(store.path), seq=seq, reason=str(exc)))
            continue
        log.info(kv("checkpoint_loaded", file=str(store.path), seq=seq))
        return seq, core, opens
    return None


def restore_checkpoint(
    journal: Journal, core: FusionCore, store: CheckpointStore | None = None
) -> tuple[tuple[int, FusionCore, Counter] | None, int]:
    """(the newest usable checkpoint of ``store`` (default: the journal itself) as
    :func:`load_checkpoint` gives it, the oldest kept checkpoint's seq or 0). ``core``
    is the fresh core (its tracker's module may be named). Raises JournalError when
    none is usable but covered events were trimmed."""
    store = journal if store is None else store  # type: ignore[assignment]
    checkpoints = store.checkpoints()  # read once: each is a few MB
    restored = load_checkpoint(store, allowed_modules(core), checkpoints, journal.last_seq)
    kept = [cp[0] for cp in checkpoints]
    if restored is None and journal.trimmed_through:
        raise JournalError(
            f"{journal.path}: no usable checkpoint, and the events up to seq "
            f"{journal.trimmed_through} they covered were trimmed: the state cannot be "
            "rebuilt; restore the file from a backup or start a fresh journal"
        )
    return restored, (min(kept) if kept else 0)


def replay_journal(
    journal: Journal,
    outbox: Outbox,
    core: FusionCore,
    open_streams: Counter,
    picture: LivePicture,
    after_seq: int,
) -> int:
    """Apply every event after ``after_seq`` to ``core`` and track what each released;
    re-outbox the reports past the outbox's marks (:func:`replay_events`); returns the
    number of events replayed."""
    mark, items_mark = outbox.journal_mark, outbox.items_mark
    replayed, last, redo = replay_events(
        journal.events(after_seq=after_seq), core, open_streams, picture, mark, items_mark
    )
    last = after_seq if last is None else last
    if redo_due(core, last, mark, items_mark):
        outbox.add(redo, last, core.items_tracked)
    return replayed


def redo_due(core: FusionCore, last: int, mark: int, items_mark: int | None) -> bool:
    """A replay that ended at event ``last`` moves the outbox's marks (and adds the
    reports it re-emitted)."""
    return last > mark or (items_mark is not None and core.items_tracked > items_mark)


def replay_events(
    events: Iterable[Event],
    core: FusionCore,
    open_streams: Counter,
    picture: LivePicture | None,
    mark: int,
    items_mark: int | None,
) -> tuple[int, int | None, list[bytes]]:
    """Apply ``events`` to ``core`` and track what each released; (events replayed,
    the last one's seq (None: none), the reports to outbox again: those past the
    outbox's marks). A work item's reports are re-outboxed when its number is past
    ``items_mark`` (an outbox of an older version has none: its event's seq past the
    journal ``mark`` decides). ``picture`` (if any) keeps the latest reports."""
    redo: list[bytes] = []
    last = None
    replayed = 0
    for ev in events:
        status, reason, reports, *_ = apply_event(core, open_streams, ev)
        if ev.kind == EventKind.FRAME and status is not FrameStatus.ACCEPTED:
            log.error(kv("replay_mismatch", seq=ev.seq, status=status.name, reason=reason))
        lost = ev.seq > mark
        while core.untracked:  # a deferring core: its items' reports, one item at a time
            n, emitted = core.track_next()
            mine = [e.report for e in emitted]
            reports.extend(mine)
            if mine and (n > items_mark if items_mark is not None else lost):
                now_ns = time.time_ns()  # emitted (again) now: never reached the outbox
                redo.extend(report_message(r, now_ns).SerializeToString() for r in mine)
        if reports and lost and not core.defer_tracking:
            now_ns = time.time_ns()
            redo.extend(report_message(r, now_ns).SerializeToString() for r in reports)
        if picture is not None:
            picture.remember(reports, prune=False)
        last = ev.seq
        replayed += 1
    if picture is not None:
        picture.prune()
    return replayed, last, redo
