"""The fusion service run in the foreground (``tracklayer fusion``): start it, attach the
``--record`` session recorder, serve until SIGTERM/SIGINT or an engine failure, stop with
grace and print what was recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import TYPE_CHECKING

from tracklayer.services.errors import UserError
from tracklayer.services.fusion_service.engine import FusionEngine
from tracklayer.services.fusion_service.servicer import start_fusion_server
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.fusion_service.warmup import KernelWarmup
from tracklayer.services.gc_policy import GcFreezer
from tracklayer.services.rpc.foreground import serve_until_stopped
from tracklayer.services.rpc.tls import TlsConfig, server_credentials

if TYPE_CHECKING:  # the recorder (and MCAP) is imported only with --record
    from tracklayer.services.fusion_service.session_recorder import SessionRecorder

LABEL = "tracklayer fusion"

#: The interpreter's thread switch interval in ``tracklayer fusion`` (s; Python's
#: default is 0.005): while the tracker thread runs Python code, the event loop (acks,
#: commits, the outbox) waits at most this long for the GIL.
SWITCH_INTERVAL_S = 0.001


async def serve_fusion(
    settings: FusionSettings,
    listen: str,
    *,
    tls: TlsConfig | None = None,
    metrics_port: int | None = None,
    record: str | os.PathLike[str] | None = None,
    grace: float = 2.0,
) -> int:
    """Serve FusionService on ``listen`` until SIGTERM/SIGINT (exit status 0) or an engine
    failure (1), recording to ``record`` (an MCAP file; an existing one is kept and
    FILE.1.mcap, ... used instead) when given."""
    if record and not os.path.isdir(os.path.dirname(os.path.abspath(record))):
        raise UserError(f"--record: {record}: its directory does not exist")
    recorders: list[SessionRecorder] = []  # the --record recorder, once the engine exists
    # A file-size limit (RLIMIT_FSIZE) reached: the write fails (EFBIG) and the engine
    # waits for space like on a full disk, instead of the process being killed.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def before_serving(engine: FusionEngine) -> None:
        engine.gc_freezer = GcFreezer()  # a long-running process: see gc_policy
        sys.setswitchinterval(SWITCH_INTERVAL_S)  # the loop beside the tracker thread
        if not settings.tracking_process:  # (the tracking process warms its own)
            warmup = KernelWarmup()  # the kernels load while the first frames are acked
            engine.checkpointer.may_fork = warmup.done.is_set
            warmup.start()
        if record:
            recorders.append(start_recorder(record, engine))

    try:
        server = await start_fusion_server(
            settings,
            listen,
            metrics_port=metrics_port,
            credentials=server_credentials(tls),
            before_serving=before_serving,
        )
    except BaseException:
        for rec in recorders:
            rec.close()
        raise
    try:
        await serve_until_stopped(LABEL, server, tls, grace, failure=server.engine.wait_failed)
        return 1 if server.engine.failed is not None else 0
    finally:
        for rec in recorders:
            await asyncio.to_thread(rec.close)
            print(
                f"{LABEL}: recorded {rec.frames} frames and {rec.reports} reports "
                f"to {rec.path}" + (f" ({rec.dropped} dropped)" if rec.dropped else ""),
                flush=True,
            )


def start_recorder(record: str | os.PathLike[str], engine: FusionEngine) -> SessionRecorder:
    """A recorder on the engine's frame/report listeners (metadata DESIGN §5), writing to
    ``record`` or the first unused FILE.<n>.mcap beside it."""
    from tracklayer.services.fusion_service.session_recorder import (
        SessionRecorder,
        session_metadata,
        unused_path,
    )
    from tracklayer.services.wire.recording import RecordingError

    s = engine.settings
    expected = engine.orders.orderer.expected_sensors
    meta = session_metadata(s.fusion_id, s.config.to_mapping(), s.sensors, expected)
    try:
        rec = SessionRecorder(unused_path(record), meta)
    except RecordingError as exc:
        raise UserError(f"--record: {exc}") from None
    rec.attach(engine)
    print(f"{LABEL}: recording to {rec.path}", flush=True)
    return rec
