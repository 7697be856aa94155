"""A checkpoint's state layout is numbered, and a restore refuses another layout
instead of restoring objects that lack what the code reads.

Checkpoints store objects as their attributes (services/fusion_service/state_codec.py).
A new version that adds an attribute to a tracker class and restores an older
checkpoint would get objects without it and fail at the first frame that reads it.
So ``fusion.core.STATE_LAYOUT`` is written into every checkpoint and compared at
restore; this test keeps that number honest: the classes and attribute names a real
tracker stores (single-icbm 400 s, three quarters tracked: boost, midcourse,
registration) are recorded in tests/data/state_layout.json with the layout number.
When they change, bump ``STATE_LAYOUT`` and re-record with
``python tests/test_checkpoint_layout.py`` (from the repository root)."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from pathlib import Path

import pytest

from tracklayer.fusion.core import STATE_LAYOUT, FusionCore
from tracklayer.services.fusion_service.checkpoint import (
    CheckpointError,
    allowed_modules,
    decode_checkpoint,
    encode_checkpoint,
)
from tracklayer.services.fusion_service.recovery import load_checkpoint
from tracklayer.services.fusion_service.state_codec import encode_state

RECORD = Path(__file__).parent / "data" / "state_layout.json"


def _tracked_core(frames) -> FusionCore:
    core = FusionCore("fu", expected_sensors=sorted({f.sensor_id for f in frames}))
    for f in frames[: len(frames) * 3 // 4]:
        core.submit(f)
    return core


def stored_layout(core: FusionCore) -> dict[str, list[str]]:
    """{class name: sorted attribute names} of every object node a checkpoint of
    ``core`` holds (read from the codec's document, not from the classes)."""
    doc, _ = encode_state({"core": core}, allowed_modules(core))
    out: dict[str, set[str]] = {}
    for node in json.loads(doc)["nodes"]:
        if node.get("k") == "obj":
            out.setdefault(node["c"], set()).update(node["d"])
    return {c: sorted(a) for c, a in sorted(out.items())}


@pytest.fixture(scope="module")
def core(sim_result) -> FusionCore:
    return _tracked_core(sim_result("single-icbm", duration_s=400.0).frames)


def test_the_stored_layout_is_the_recorded_one_for_this_layout_number(core):
    recorded = json.loads(RECORD.read_text())
    now = stored_layout(core)
    changed = sorted(
        f"{c}: +{sorted(set(now.get(c, [])) - set(recorded['classes'].get(c, [])))} "
        f"-{sorted(set(recorded['classes'].get(c, [])) - set(now.get(c, [])))}"
        for c in set(now) | set(recorded["classes"])
        if now.get(c) != recorded["classes"].get(c)
    )
    assert recorded["layout"] == STATE_LAYOUT and not changed, (
        f"the checkpointed state changed ({'; '.join(changed) or 'layout number only'}): "
        "bump fusion.core.STATE_LAYOUT if you have not, then re-record with "
        "`python tests/test_checkpoint_layout.py`"
    )


def test_a_checkpoint_of_another_layout_is_refused_and_the_one_before_is_used(
    core, monkeypatch, caplog
):
    good = encode_checkpoint(core, Counter({"sat-1-1": 1}))
    from tracklayer.services.fusion_service import checkpoint

    monkeypatch.setattr(checkpoint, "STATE_LAYOUT", STATE_LAYOUT + 1)  # a newer writer
    newer = encode_checkpoint(core, Counter())
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match=rf"state layout {STATE_LAYOUT + 1}.*reads layout"):
        decode_checkpoint(newer, allowed_modules(core))

    class Store:
        path = Path("journal.db")

        def checkpoints(self):
            return [(20, *_version_and(newer)), (10, *_version_and(good))]

    with caplog.at_level(logging.WARNING):
        seq, restored, opens = load_checkpoint(Store(), allowed_modules(core))
    assert seq == 10 and opens == {"sat-1-1": 1}
    assert "checkpoint_refused" in caplog.text and "state layout" in caplog.text
    assert len(restored.live_reports()) == len(core.live_reports()) > 0


def _version_and(blob: bytes) -> tuple[str, bytes]:
    from tracklayer import __version__

    return __version__, blob


if __name__ == "__main__":  # re-record: python tests/test_checkpoint_layout.py
    sys.path.insert(0, str(Path(__file__).parent))
    from tracklayer.sensors.scenario import load_scenario
    from tracklayer.sensors.simulation import simulate_to_lists

    frames = simulate_to_lists(load_scenario("single-icbm"), None, 400.0).frames
    layout = {"layout": STATE_LAYOUT, "classes": stored_layout(_tracked_core(frames))}
    RECORD.write_text(json.dumps(layout, indent=1) + "\n")
    print(f"recorded layout {STATE_LAYOUT}: {len(layout['classes'])} classes -> {RECORD}")
