"""Where a deployment lives on the broker: stream, subject and bucket names, the
connection, and creating what is missing.

Everything of fusion identity ``ID`` is named after it (``.`` becomes ``_``, which NATS
stream and bucket names do not allow), so several deployments share one broker:

==========================  ================================================
``TL_<ID>_JOURNAL``         the journal: every state-changing input of the
                            front door, one subject ``tracklayer.<ID>.journal``
``TL_<ID>_REPORTS``         the shards' reports, ``tracklayer.<ID>.reports``,
                            Msg-Id ``<track_id>:<revision>``
``TL_<ID>_HANDOVER``        S > 1: each shard's hand-overs and progress records,
                            ``tracklayer.<ID>.handover.<shard>``
KV ``tl_<ID>``              ``settings`` (pinned by the front door)
KV ``tl_<ID>_leases``       ``shard-<k>`` = owning worker, expires after the
                            bucket's TTL (the front door's ``--lease-ttl``,
                            :data:`LEASE_TTL_S` by default) unless renewed
objects ``tl_<ID>_ckpt``    ``shard-<k>``: the shard's last checkpoint
==========================  ================================================
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from tracklayer.services.errors import UserError
from tracklayer.services.rpc.server import kv
from tracklayer.services.rpc.tls import TlsConfig

log = logging.getLogger("tracklayer.services.scaleout")

#: Seconds a shard lease lives without renewal (a dead worker's shards move after it):
#: the default of the front door's ``--lease-ttl``.
LEASE_TTL_S = 4.0
#: Range of ``--lease-ttl`` (s): at least four of the workers' 1 s renewal periods, so one
#: late renewal never loses a lease; at most 10 minutes.
LEASE_TTL_RANGE_S = (4.0, 600.0)
#: Duplicate window of the report stream: a report republished within it is dropped by
#: the broker (later ones by the store, which keeps each (track_id, revision) once).
REPORT_DUPLICATE_WINDOW_S = 600.0
#: Seconds the first connection to the broker may take before the command gives up.
FIRST_CONNECT_TIMEOUT_S = 10.0
#: Largest message the streams take (the broker's own limit is set by scaleout.broker).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Names:
    """The broker names of one fusion identity (see the module docstring)."""

    fusion_id: str

    @property
    def token(self) -> str:
        return self.fusion_id.replace(".", "_")

    @property
    def journal_stream(self) -> str:
        return f"TL_{self.token}_JOURNAL"

    @property
    def journal_subject(self) -> str:
        return f"tracklayer.{self.token}.journal"

    @property
    def reports_stream(self) -> str:
        return f"TL_{self.token}_REPORTS"

    @property
    def reports_subject(self) -> str:
        return f"tracklayer.{self.token}.reports"

    @property
    def handover_stream(self) -> str:
        return f"TL_{self.token}_HANDOVER"

    def handover_subject(self, shard: int | str) -> str:
        """Subject of shard ``shard``'s messages (``">"``: every shard's)."""
        return f"tracklayer.{self.token}.handover.{shard}"

    @property
    def settings_bucket(self) -> str:
        return f"tl_{self.token}"

    @property
    def lease_bucket(self) -> str:
        return f"tl_{self.token}_leases"

    @property
    def checkpoint_bucket(self) -> str:
        return f"tl_{self.token}_ckpt"


def shard_key(shard: int) -> str:
    """The lease key and checkpoint object name of shard ``shard``."""
    return f"shard-{shard}"


async def connect(
    url: str, name: str, flag: str = "--nats", tls: TlsConfig | None = None
):  # -> nats.aio.client.Client
    """Connect to the broker at ``url`` (reconnecting for ever once connected), with
    mutual TLS when ``tls`` is given (then ``url`` must be ``tls://``); UserError naming
    ``flag`` when the scale extra is missing or the first connection fails."""
    try:
        import nats
    except ImportError:
        raise UserError(
            f"{flag}: nats-py is not installed: pip install 'tracklayer[scale]'"
        ) from None
    if not url.startswith(("nats://", "tls://")):
        raise UserError(f"{flag}: expected nats://HOST:PORT, got {url!r}")
    if (tls is None) != url.startswith("nats://"):
        raise UserError(
            f"{flag}: tls://HOST:PORT goes with --tls-cert/--tls-key/--tls-ca, "
            f"nats://HOST:PORT without them; got {url!r}"
            + (" with" if tls is not None else " without")
        )
    context = None
    if tls is not None:
        import ssl

        context = ssl.create_default_context(cafile=str(tls.ca))
        context.load_cert_chain(str(tls.cert), str(tls.key))
    state = {"down": False}

    async def on_error(exc: Exception) -> None:  # one line per outage, not a traceback per try
        if not state["down"]:
            state["down"] = True
            log.warning(kv("broker_unreachable", url=url, client=name, error=repr(exc)))

    async def on_reconnected() -> None:
        state["down"] = False
        log.info(kv("broker_reconnected", url=url, client=name))

    try:  # nats-py retries a first connection for ever when reconnecting is unbounded
        return await asyncio.wait_for(
            _connect(nats, url, name, on_error, on_reconnected, context),
            FIRST_CONNECT_TIMEOUT_S,
        )
    except TimeoutError:
        raise UserError(
            f"{flag}: cannot connect to {url} within {FIRST_CONNECT_TIMEOUT_S:g} s"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure of the first connection
        raise UserError(f"{flag}: cannot connect to {url}: {exc or type(exc).__name__}") from None


async def _connect(nats, url: str, name: str, on_error, on_reconnected, tls):  # noqa: ANN001, ANN202
    return await nats.connect(
        url,
        tls=tls,
        name=name,
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        allow_reconnect=True,
        error_cb=on_error,
        reconnected_cb=on_reconnected,
    )


async def ensure_layout(js, names: Names, lease_ttl_s: float | None = None) -> None:  # noqa: ANN001
    """Create the streams and buckets of ``names`` where missing (idempotent). With
    ``lease_ttl_s`` (the front door) the lease bucket's TTL is set to it; without (a
    worker) an existing bucket keeps its TTL and a missing one gets :data:`LEASE_TTL_S`."""
    from nats.js import api

    for stream, subject, window in (
        (names.journal_stream, names.journal_subject, 120.0),
        (names.reports_stream, names.reports_subject, REPORT_DUPLICATE_WINDOW_S),
        (names.handover_stream, names.handover_subject(">"), REPORT_DUPLICATE_WINDOW_S),
    ):
        await js.add_stream(
            api.StreamConfig(
                name=stream,
                subjects=[subject],
                storage=api.StorageType.FILE,
                max_msg_size=MAX_MESSAGE_BYTES,
                duplicate_window=window,
            )
        )
    await js.create_key_value(bucket=names.settings_bucket, history=1)
    await _ensure_lease_bucket(js, names.lease_bucket, lease_ttl_s)
    await js.create_object_store(bucket=names.checkpoint_bucket)


async def _ensure_lease_bucket(js, bucket: str, ttl_s: float | None) -> None:  # noqa: ANN001
    """The lease bucket, its TTL (s) set to ``ttl_s`` where given (a KV bucket is a
    stream whose ``max_age`` is the TTL; the broker refuses to create it again with
    another, so an existing bucket is updated instead)."""
    import nats.js.errors

    stream = f"KV_{bucket}"
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        try:
            await js.create_key_value(bucket=bucket, history=1, ttl=ttl_s or LEASE_TTL_S)
            return
        except nats.js.errors.BadRequestError:  # created meanwhile by another process
            info = await js.stream_info(stream)
    if ttl_s is None or info.config.max_age == ttl_s:
        return
    # The KV's duplicate window may not exceed its TTL (nats-py sets min(TTL, 120 s)).
    await js.update_stream(info.config.evolve(max_age=ttl_s, duplicate_window=min(ttl_s, 120.0)))
    log.info(kv("lease_ttl_set", bucket=bucket, was_s=info.config.max_age, ttl_s=ttl_s))
