"""The chaos proxy's cuts for the soak (issue 15, proofs: "the fault mix of today plus
the proxy's cuts").

Two :class:`ChaosProxy` instances (``tests/chaos_proxy.py``, the one
``test_cut_connections`` uses) run on an event loop of their own, in a thread, for the
whole soak: one between the sensors (the soak's streamer) and the fusion service, one
between the fusion service and the store. Both forward to fixed ports, so a killed and
restarted service is behind its proxy again at once. At random moments (exponential
gaps, mean ``mean_s`` seconds) one link, chosen at random, gets one cut: ``drop`` (FIN
both ways), ``reset`` (RST), ``half_close`` (the client reads EOF), ``stall`` (bytes
held 1-5 s, then forwarded) or ``black_hole`` (the connections go silent for good;
keepalives notice within 30 s). Every cut hits every connection open on that link
at that moment, with both processes alive.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
from collections import Counter

from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from chaos_proxy import ChaosProxy  # noqa: E402 - the test suite's proxy

KINDS = ("drop", "reset", "half_close", "stall", "black_hole")
LINKS = ("sensors", "store")


class Cuts:
    """Proxies on both links and the cut schedule; ``start()``, then ``sensor_address``
    (for the streamer) and ``store_address`` (for ``fusion --store``); ``stop_cutting()``
    at the end of the soak (the proxies still forward, so the outbox can drain), then
    ``close()``."""

    def __init__(self, fusion_port: int, store_port: int, mean_s: float, seed: int) -> None:
        self.targets = {"sensors": fusion_port, "store": store_port}
        self.mean_s = mean_s
        self.rng = random.Random(seed)
        self.counts: dict[str, Counter] = {link: Counter() for link in LINKS}
        self.proxies: dict[str, ChaosProxy] = {}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None  # no more cuts
        self._closed: asyncio.Event | None = None  # proxies closed
        self._thread = threading.Thread(target=self._main, name="soak-cuts", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the chaos proxies did not start within 30 s")

    @property
    def sensor_address(self) -> str:
        return self.proxies["sensors"].address

    @property
    def store_address(self) -> str:
        return self.proxies["store"].address

    def stop_cutting(self) -> None:
        """No more cuts; the proxies go on forwarding."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def close(self) -> None:
        """No more cuts, and the proxies stop (their connections dropped)."""
        self.stop_cutting()
        if self._loop is not None and self._closed is not None:
            self._loop.call_soon_threadsafe(self._closed.set)
        self._thread.join(60)

    def summary(self) -> str:
        """One line: how many cuts of each kind each link got."""
        return "; ".join(
            f"{link} {sum(c.values())} (" + ", ".join(f"{k} {c[k]}" for k in KINDS if c[k]) + ")"
            for link, c in self.counts.items()
        )

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop, self._closed = asyncio.Event(), asyncio.Event()
        for link, port in self.targets.items():
            self.proxies[link] = ChaosProxy(port)
            await self.proxies[link].start()
        self._ready.set()
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), self.rng.expovariate(1.0 / self.mean_s))
                break
            except TimeoutError:
                self._cut()
        await self._closed.wait()
        for proxy in self.proxies.values():
            await proxy.close()

    def _cut(self) -> None:
        link, kind = self.rng.choice(LINKS), self.rng.choice(KINDS)
        proxy = self.proxies[link]
        if kind == "stall":
            proxy.stall(self.rng.uniform(1.0, 5.0))
        else:
            getattr(proxy, kind)()
        self.counts[link][kind] += 1
        print(f"  cut {link}: {kind}", flush=True)
