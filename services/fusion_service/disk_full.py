"""A full disk (issue 15 item 7): what counts as one, and the one message about it.

When the journal (or the outbox) cannot be written, the fusion engine stops
acknowledging: the frames of the failed group commit and everything queued get
``UNAVAILABLE`` with :func:`unwritable_message` (senders keep them and retry), every
open stream ends ``UNAVAILABLE``, health turns NOT_SERVING, reads (status, live
tracks, health) go on, and one ERROR line is logged. The engine probes the journal
every :data:`PROBE_PERIOD_S`; once a write succeeds it rebuilds its state from the
last checkpoint and the journal (exactly what was acknowledged), turns SERVING and
logs one INFO line. Nothing acknowledged is lost: an ack is only given after the
commit that holds its frame.
"""

from __future__ import annotations

import errno
import sqlite3

from tracklayer.services.errors import Unavailable

#: Seconds between two tries to write the journal while it is unwritable.
PROBE_PERIOD_S = 0.5

_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk (or a file-size limit) gives SQLite writes, and
    for errors that say so themselves (``journal_unwritable``: a journal on a broker
    that did not take a commit, ``scaleout.stream_journal``)."""
    if getattr(exc, "journal_unwritable", False):
        return True
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        text = str(exc).lower()
        return "full" in text or "disk i/o error" in text
    return False


def unwritable_message(what: str, path: object, exc: BaseException) -> str:
    """The reason senders get: which file, why, and what to do."""
    return (
        f"{what}: cannot write {path} ({exc}); not acknowledged, the fusion service "
        "resumes by itself when space returns: resend"
    )


class DiskFull(Unavailable):
    """The journal or outbox cannot be written; the message says which and why."""


async def ride_out(engine, batch: list, reason: str) -> None:  # noqa: ANN001 - FusionEngine
    """Run by the engine's worker when a write failed: refuse, end the streams, wait
    for a write to succeed, rebuild the state from the journal, serve again."""
    import asyncio
    import logging

    from tracklayer.services.rpc.server import kv

    log = logging.getLogger("tracklayer.services.fusion")
    engine.unwritable = reason
    engine.wake_readers()  # a ListLiveTracks waiting for the tracker answers now
    engine.journal.reset_to_committed()
    engine.fail_inputs(batch, DiskFull(reason))
    engine.fail_inputs(engine.take_queued(), DiskFull(reason))
    engine.set_serving(False)
    log.error(kv("journal_unwritable", reason=reason))
    for st in list(engine.streams()):
        if st.on_unavailable is not None:
            st.on_unavailable(DiskFull(reason))
    while True:
        await asyncio.sleep(PROBE_PERIOD_S)
        try:
            await engine.db_run(engine.journal.probe)
            await engine.outbox_run(engine.outbox.probe)
        except Exception as exc:  # noqa: BLE001 - still full, or the disk is gone
            if not is_disk_full(exc):
                raise
            continue
        break
    engine.fail_inputs(engine.take_queued(), DiskFull(reason))
    await engine.tracker_idle()  # a stretch on the old core ends first
    engine.reload_state()
    engine.unwritable = None
    engine.set_serving(True)
    log.info(
        kv("journal_writable", journal=str(engine.journal.path), events=engine.replayed_events)
    )
