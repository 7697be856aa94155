"""The shard leases' TTL (``tracklayer fusion --nats --lease-ttl``) on a real broker.

The TTL is the lease bucket's ``max_age``: the front door sets it, a worker (which may
start first and create the bucket) never changes it, and a change reaches leases that
are already held, so a worker stalled longer than the old TTL but shorter than the new
one keeps its shards.
"""

from __future__ import annotations

import asyncio

import pytest

from tracklayer.services.scaleout.leases import Lease
from tracklayer.services.scaleout.names import (
    LEASE_TTL_RANGE_S,
    LEASE_TTL_S,
    Names,
    ensure_layout,
)

pytest.importorskip("nats")


def test_the_front_doors_lease_ttl_rules_and_reaches_held_leases(nats_broker):
    import nats

    names = Names("fusion")

    async def main() -> tuple[list[float], bool, bool]:
        nc = await nats.connect(nats_broker.url)
        js = nc.jetstream()
        try:
            ttl = []
            await ensure_layout(js, names)  # a worker first: the default
            bucket = await js.key_value(names.lease_bucket)
            ttl.append((await bucket.status()).ttl)
            stalled = Lease(bucket, "shard-0", "worker-a")
            assert await stalled.take()
            await ensure_layout(js, names, 8.0)  # the front door with --lease-ttl 8
            ttl.append((await bucket.status()).ttl)
            await ensure_layout(js, names)  # another worker: keeps the front door's
            ttl.append((await bucket.status()).ttl)
            await asyncio.sleep(LEASE_TTL_S + 1.5)  # worker-a silent past the old TTL
            kept = not await Lease(bucket, "shard-0", "worker-b").take()
            renewed = await stalled.renew()  # still its own after the stall
            await ensure_layout(js, names, LEASE_TTL_S)  # restarted without the flag
            ttl.append((await bucket.status()).ttl)
            return ttl, kept, renewed
        finally:
            await nc.close()

    ttl, kept, renewed = asyncio.run(main())
    assert ttl == [LEASE_TTL_S, 8.0, 8.0, LEASE_TTL_S]
    assert kept, "another worker took a lease that the 8 s TTL still held"
    assert renewed


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lease-ttl", "10"], "--lease-ttl: only with --nats"),
        (["--nats", "nats://127.0.0.1:1", "--lease-ttl", "2"], "--lease-ttl: must be 4..600"),
        (["--nats", "nats://127.0.0.1:1", "--lease-ttl", "nan"], "--lease-ttl: must be 4..600"),
    ],
)
def test_a_bad_lease_ttl_is_refused_naming_the_flag(tmp_path, monkeypatch, capsys, flags, message):
    from tracklayer.services.cli import main

    monkeypatch.chdir(tmp_path)  # no journal may be left anywhere else
    assert main(["fusion", "--listen", "127.0.0.1:0", "--store", "127.0.0.1:1", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "refused before anything was created"


def test_the_help_states_the_lease_ttl_the_code_uses(capsys):
    """The flag's help names the default and range without importing scale-out code
    before serving (test_fast_start): it must say what names.py holds."""
    from tracklayer.services.cli import main

    with pytest.raises(SystemExit):
        main(["fusion", "--help"])
    low, high = LEASE_TTL_RANGE_S
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {LEASE_TTL_S:g}; {low:g}..{high:g})" in text
