"""The compiled kernels loaded in a thread while the fusion process starts serving.

A fresh ``tracklayer fusion`` process imports numba and loads the tracker's kernels
from numba's cache at their first call (~0.4 s; a checkout whose cache is missing
compiles them, ~10 s CPU): done by the first tracker stretch, that held the event
loop, and with it every ack of the first frames, for as long. :class:`KernelWarmup`
does it in a daemon thread started before the port opens, so the sensors' first
frames are journaled and acknowledged meanwhile (a tracker call that needs a kernel
still being loaded waits for numba's compiler lock, as it would have anyway).

Forking while that thread runs is not safe: the child of a fork keeps the locks the
thread held (numba's compiler lock, an import lock) with no thread to release them.
So the engine encodes no checkpoint in a forked child until :attr:`KernelWarmup.done`
(``Checkpointer.may_fork``); the states of the first seconds are small and encoded on
the loop anyway.
"""

from __future__ import annotations

import logging
import threading
import time

from tracklayer.fusion import kernel_registration, kernels
from tracklayer.services.rpc.server import kv

log = logging.getLogger("tracklayer.services.fusion")


class KernelWarmup:
    """Load (or compile) the kernels in a daemon thread; :attr:`done` when finished."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.seconds = 0.0

    def start(self) -> None:
        threading.Thread(target=self._run, name="fusion-kernel-warmup", daemon=True).start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            used = kernels.warm() and kernel_registration.warm()
        except Exception as exc:  # noqa: BLE001 - the tracker falls back by itself
            log.warning(kv("kernel_warmup_failed", error=repr(exc)))
            used = False
        finally:
            self.seconds = time.perf_counter() - t0
            self.done.set()
        log.info(kv("kernels_warm", compiled=used, seconds=round(self.seconds, 3)))
