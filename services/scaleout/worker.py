"""A worker process (``tracklayer worker``): hosts shards under leases.

Every :data:`RENEW_S` the worker renews the leases it holds (a failed renewal stops
that shard at once: someone else owns it), and tries to take free shards up to
``max_shards``, starting a :class:`~.shard.ShardRunner` for each. A runner that fails
gives its lease back, so that the shard restarts (here or elsewhere) from its last
checkpoint. On SIGTERM the runners stop and the leases are released (another
worker takes over at once instead of after the lease expires).
"""

from __future__ import annotations

import asyncio
import json
import logging

from tracklayer.services.errors import UserError
from tracklayer.services.rpc.server import kv
from tracklayer.services.rpc.tls import TlsConfig
from tracklayer.services.scaleout.leases import Lease
from tracklayer.services.scaleout.names import Names, connect, ensure_layout, shard_key
from tracklayer.services.scaleout.shard import ShardRunner, ShardSpec
from tracklayer.services.scaleout.shard_status import status_document, status_key

log = logging.getLogger("tracklayer.services.scaleout")

#: Seconds between lease renewals (a third of the lease's life, or less).
RENEW_S = 1.0
#: Seconds a stop waits for the broker (releasing leases, closing the connection).
STOP_TIMEOUT_S = 2.0


class Worker:
    """Shards of fusion identity ``fusion_id`` hosted by worker ``worker_id``."""

    def __init__(
        self,
        url: str,
        worker_id: str,
        fusion_id: str = "fusion",
        *,
        max_shards: int = 0,
        checkpoint_every: int = 3000,
        checkpoint_interval_s: float = 10.0,
        tls: TlsConfig | None = None,
    ) -> None:
        self.url, self.worker_id, self.names = url, worker_id, Names(fusion_id)
        self.tls = tls  # mutual TLS to the broker (tls:// URL)
        self.max_shards = max_shards  # 0: as many as are free
        self._ckpt = (checkpoint_every, checkpoint_interval_s)
        self.leases: dict[int, Lease] = {}
        self.runners: dict[int, tuple[ShardRunner, asyncio.Task[None]]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        nc = await connect(self.url, f"tracklayer-worker-{self.worker_id}", tls=self.tls)
        try:
            js = nc.jetstream(timeout=10.0)
            await ensure_layout(js, self.names)
            spec = await self._wait_for_settings(js, stop)
            if spec is None:
                return
            self._status_bucket = await js.key_value(self.names.settings_bucket)
            bucket = await js.key_value(self.names.lease_bucket)
            for shard in range(spec.shards):
                self.leases[shard] = Lease(bucket, shard_key(shard), self.worker_id)
            while not stop.is_set():
                try:
                    await self._tend(js, spec)
                except Exception as exc:  # noqa: BLE001 - broker away: the leases tell later
                    log.warning(kv("lease_tending_failed", worker=self.worker_id, error=repr(exc)))
                try:
                    await asyncio.wait_for(stop.wait(), RENEW_S)
                except TimeoutError:
                    pass
        finally:
            await self._stop_all()
            # Not wait_for: a close stuck on a restarting broker may not even end when
            # cancelled; the process exits anyway (the leases are released or expire).
            await asyncio.wait({asyncio.ensure_future(nc.close())}, timeout=STOP_TIMEOUT_S)

    async def _wait_for_settings(self, js, stop: asyncio.Event) -> ShardSpec | None:  # noqa: ANN001
        """The deployment's settings, once its front door pinned them."""
        import nats.js.errors

        bucket = await js.key_value(self.names.settings_bucket)
        waiting = False
        while not stop.is_set():
            try:
                entry = await bucket.get("settings")
            except nats.js.errors.NotFoundError:
                if not waiting:
                    waiting = True
                    log.info(kv("waiting_for_front_door", fusion_id=self.names.fusion_id))
                await asyncio.sleep(0.5)
                continue
            try:
                return ShardSpec.from_pinned(json.loads(entry.value))
            except ValueError as exc:  # another version's settings, or a damaged entry
                raise UserError(
                    f"--fusion: the settings {self.names.fusion_id} pinned on the broker "
                    f"cannot be used by this worker: {exc}"
                ) from None
        return None

    async def _tend(self, js, spec: ShardSpec) -> None:  # noqa: ANN001
        """Renew held leases, stop lost or failed shards, take free ones."""
        for shard, lease in self.leases.items():
            running = self.runners.get(shard)
            if running is not None and running[1].done():
                await self._stop_shard(shard, failed=True)
                continue
            if lease.held:
                if not await lease.renew():
                    await self._stop_shard(shard)
            elif self.max_shards == 0 or len(self.runners) < self.max_shards:
                if await lease.take():
                    self._start_shard(js, spec, shard)
        for shard, (runner, _) in self.runners.items():  # GetStatus of the front door
            doc = status_document(self.worker_id, runner.status)
            await self._status_bucket.put(status_key(shard), doc)

    def _start_shard(self, js, spec: ShardSpec, shard: int) -> None:  # noqa: ANN001
        lease = self.leases[shard]
        every, interval = self._ckpt
        runner = ShardRunner(
            js, self.names, spec, shard, lambda: lease.held,
            checkpoint_every=every, checkpoint_interval_s=interval,
        )  # fmt: skip
        task = asyncio.create_task(runner.run(), name=f"shard-{shard}")
        self.runners[shard] = (runner, task)
        log.info(kv("shard_taken", shard=shard, worker=self.worker_id))

    async def _stop_shard(self, shard: int, *, failed: bool = False) -> None:
        runner, task = self.runners.pop(shard, (None, None))
        if task is not None:
            if failed and not task.cancelled() and task.exception() is not None:
                log.error(kv("shard_failed", shard=shard, error=repr(task.exception())))
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        try:  # with the broker gone the lease simply expires
            await asyncio.wait_for(self.leases[shard].release(), STOP_TIMEOUT_S)
        except TimeoutError:
            pass
        log.info(kv("shard_released", shard=shard, worker=self.worker_id))

    async def _stop_all(self) -> None:
        for shard in list(self.runners):
            await self._stop_shard(shard)
