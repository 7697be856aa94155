"""The fusion process keeps its long-lived state out of the cyclic collector's scans
(issue 13 item 6: full collections of a raid-size heap held the event loop, and so
every ack, for up to 0.66 s) while young garbage is still collected. Run in a child
interpreter: freezing would change this test process's collector."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import gc, weakref
from tracklayer.services.gc_policy import GcFreezer

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    return a

now = [0.0]
freezer = GcFreezer(every_s=1.0, clock=lambda: now[0])
gc.collect()
state = [cycle() for _ in range(50_000)]  # the long-lived state (100,000 objects)
freezer.tick()
frozen = gc.get_freeze_count()
scanned = sum(len(gc.get_objects(generation=g)) for g in range(3))

young = cycle()
young_ref = weakref.ref(young)
del young
now[0] = 0.5
freezer.tick()  # within the second: nothing frozen
gc.collect()
young_freed = young_ref() is None and gc.get_freeze_count() == frozen

old_ref = weakref.ref(state[0])
del state  # the state dropped (as after a rebuild): its cycles were frozen
gc.collect()
kept_while_frozen = old_ref() is not None
freezer.thaw()
print(frozen, scanned, young_freed, kept_while_frozen, old_ref() is None, freezer.freezes)
"""


def test_the_long_lived_state_is_frozen_and_young_cycles_still_collected():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    frozen, scanned, young_freed, kept, freed_on_thaw, freezes = out.stdout.split()
    assert int(frozen) >= 100_000  # the state left the collector's generations
    assert int(scanned) < 100_000  # a full collection no longer walks it
    assert young_freed == "True"  # a cycle that dies young is collected as before
    assert kept == "True" and freed_on_thaw == "True"  # frozen cycles: freed at thaw()
    assert freezes == "1"  # at most one freeze per second


def test_track_with_frozen_state_writes_the_same_tracks_and_gives_the_collector_back(tmp_path):
    """``tracklayer track`` freezes its state out of the collector while it runs; the
    reports are those of a run that does not, and nothing stays frozen afterwards (the
    CLI's ``main`` may be called in a process that goes on, as the tests do)."""
    import gc
    from pathlib import Path

    from tracklayer.services.offline import track_recording
    from tracklayer.services.wire.recording import TOPIC_TRACKS, RecordingReader

    rec = Path(__file__).parent / "data" / "regression" / "srbm-short.mcap"
    before = gc.get_freeze_count()
    outs = {}
    for freeze in (False, True):
        outs[freeze] = tmp_path / f"freeze-{freeze}.mcap"
        run = track_recording(rec, outs[freeze], gc_freeze=freeze)
        assert run.frames > 0 and run.confirmed
        assert gc.get_freeze_count() == before

    def tracks(path):
        return [(t, data) for _, t, data in RecordingReader(path).raw_messages([TOPIC_TRACKS])]

    plain = tracks(outs[False])
    assert len(plain) > 100
    assert tracks(outs[True]) == plain  # byte for byte


TRIM_SCRIPT = r"""
import threading
from tracklayer.services.gc_policy import _malloc_trim, trim_heap

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6

if _malloc_trim() is None:
    print("none")
    raise SystemExit
big, pins = [], []
def churn():  # a checkpoint read in 64 KB pieces on a thread, with a few survivors
    for _ in range(600):
        big.append(bytearray(100_000))
        pins.append(bytearray(1_000))
t = threading.Thread(target=churn)
t.start(); t.join()
full = rss_mb()
big.clear()
freed = rss_mb()
trim_heap()
print(full, freed, rss_mb())
"""


def test_trim_heap_gives_back_the_pages_a_thread_freed_between_survivors():
    """glibc keeps the free pages between a thread's surviving allocations (the
    tracking process after a forked checkpoint's bytes passed through: 10-30 MB);
    ``trim_heap`` gives them back. Run in a child interpreter (its own heap)."""
    out = subprocess.run(
        [sys.executable, "-c", TRIM_SCRIPT], capture_output=True, text=True, check=True
    ).stdout.split()
    if out == ["none"]:
        return  # not glibc: nothing to trim with
    full, freed, trimmed = map(float, out)
    assert full - freed < 10  # freed but kept by the allocator (60 MB were allocated)
    assert freed - trimmed > 40  # given back
