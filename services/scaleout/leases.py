"""Shard leases in a JetStream key-value bucket (``tl_<ID>_leases``).

A lease is a key ``shard-<k>`` whose value names the owning worker. It is taken with
``create`` (succeeds only when the key is absent), renewed with ``update(last=rev)``
(compare-and-set on the revision the owner last wrote) and expires with the bucket's
``max_age`` (the front door's ``--lease-ttl``, default :data:`~.names.LEASE_TTL_S`) when
its owner stops renewing: a dead worker's shards are free after at most that long. A
renewal that fails means someone else holds the shard now: the owner must stop working
on it at once.
"""

from __future__ import annotations

import logging

from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.scaleout")


class Lease:
    """One worker's hold (or attempt to hold) on one shard."""

    def __init__(self, bucket, key: str, owner: str) -> None:  # noqa: ANN001 - nats KeyValue
        self._kv, self.key, self.owner = bucket, key, owner
        self.rev: int | None = None  # revision last written by this owner; None: not held

    @property
    def held(self) -> bool:
        return self.rev is not None

    async def take(self) -> bool:
        """Take the lease if nobody holds it; True when taken."""
        import nats.js.errors

        try:
            self.rev = await self._kv.create(self.key, self.owner.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True

    async def renew(self) -> bool:
        """Extend the lease; False (and not held any more) when another owner has it."""
        import nats.js.errors

        if self.rev is None:
            return False
        try:
            self.rev = await self._kv.update(self.key, self.owner.encode(), last=self.rev)
        except nats.js.errors.KeyWrongLastSequenceError:
            log.warning(kv("lease_lost", key=self.key, owner=self.owner))
            self.rev = None
            return False
        return True

    async def release(self) -> None:
        """Give the lease back (graceful stop), so another worker takes it at once."""
        if self.rev is None:
            return
        rev, self.rev = self.rev, None
        try:
            await self._kv.delete(self.key, last=rev)
        except Exception as exc:  # noqa: BLE001 - it expires anyway
            log.warning(kv("lease_release_failed", key=self.key, error=repr(exc)))
