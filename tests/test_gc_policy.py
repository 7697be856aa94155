"""The fusion process keeps its long-lived state out of the cyclic collector's scans
(issue 13 item 6: full collections of a raid-size heap held the event loop, and so
every ack, for up to 0.66 s) while young garbage is still collected. Run in a child
interpreter: freezing would change this test process's collector."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import gc, weakref
from tracklayer.services.fusion_service.gc_policy import GcFreezer

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
