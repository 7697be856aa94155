"""The kernels load in a thread while the fusion process starts serving (its first
frames' acks do not wait ~0.4 s behind them), and no checkpoint is encoded in a
forked child until that thread is done (a fork while it holds numba's compiler lock
or an import lock would leave the child waiting on it forever)."""

from __future__ import annotations

from pathlib import Path

from tracklayer.fusion import kernel_registration, kernels
from tracklayer.services import fork_policy
from tracklayer.services.fusion_service.checkpointer import Checkpointer
from tracklayer.services.fusion_service.journal import Journal
from tracklayer.services.fusion_service.outbox import Outbox
from tracklayer.services.fusion_service.settings import FusionSettings
from tracklayer.services.fusion_service.warmup import KernelWarmup


def test_no_checkpoint_is_forked_while_the_kernels_load(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRPC_ENABLE_FORK_SUPPORT", "false")
    monkeypatch.setattr(fork_policy, "_allowed", True)  # as in the command
    settings = FusionSettings(journal_path=tmp_path / "j.sqlite", outbox_path=tmp_path / "o.sqlite")
    journal, outbox = Journal(settings.journal_path), Outbox(settings.outbox_path)
    cp = Checkpointer(settings, journal, outbox, db_run=None)  # type: ignore[arg-type]
    cp.last_encode_s = 2.0  # a raid-size state: encoded in a child once that is safe
    warmup = KernelWarmup()
    cp.may_fork = warmup.done.is_set
    assert not cp._in_child_next()  # still loading: encoded on the loop
    warmup.start()
    assert warmup.done.wait(300)
    assert cp._in_child_next()
    assert all(k.compiled is not None for k in kernels._KERNELS.values()) or not kernels.enabled()
    # registration's loops too: the first biased frame does not compile them on the loop
    assert all(kernel_registration._compiled.get(name) for name in kernel_registration._LOOPS) or (
        not kernels.enabled()
    )
    journal.close()
    outbox.close()
