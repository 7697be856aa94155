"""Regression guard: the evaluation's figures are byte-identical to digests recorded
before ``fusion/metrics.py`` became ``fusion/evaluation/`` (issue 10).

Each case tracks a recording with ``tracklayer track`` (deterministic, guarded by
test_track_digests.py), evaluates it with :func:`read_recording` and hashes the
metrics.json text without its ``recording`` part (file name, software version and
scenario path, which say nothing about the figures). A change that is *meant* to alter
a figure re-records the digests: ``python tests/test_metrics_digests.py`` prints them;
say in the commit message why they changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from tracklayer.services.cli import main
from tracklayer.services.evaluation import read_recording

REGRESSION = Path(__file__).parent / "data" / "regression"

#: case -> (scenario or recording, simulated duration in s or None for a recording)
CASES: dict[str, tuple[str, float | None]] = {
    "dropout-150": ("dropout", 150.0),  # out-of-order frames, drops, an outage (shared fixture)
    "mrbm-midcourse": (str(REGRESSION / "mrbm-midcourse.mcap"), None),  # midcourse NEES
    "mrbm-pair": (str(REGRESSION / "mrbm-pair.mcap"), None),  # two objects
    "srbm-short": (str(REGRESSION / "srbm-short.mcap"), None),  # whole flight: reentry, impact
}

#: case -> SHA-256 of the figures, recorded with fusion/metrics.py before issue 10's moves;
#: re-recorded for issue 12 (sensor registration on by default changes the tracks).
DIGESTS: dict[str, str] = {
    "dropout-150": "6528c8dd1bc534695d396145ad7dba7363bcbd2f417762d4c12c8ab8d550c1dd",
    "mrbm-midcourse": "d47cc20cefd235a381557f5d1356e5ac4be0a86578811d09d023e80442636cbc",
    "mrbm-pair": "5e4d6c096dc1913d37df1058e1f1da4e5e8594593cb5c8fa13a146707e0eb5ee",
    "srbm-short": "58b6a64d96ab2f00ed86199a9ae8e9b37d7bf06397b1ed13f5661a197fb9314d",
}


def figures_digest(tracked: Path) -> str:
    """SHA-256 of metrics.json as ``tracklayer evaluate`` writes it, minus ``recording``."""
    result, _ = read_recording(tracked)
    text = json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()


def tracked_case(name: str, recording: Path, out_dir: Path) -> Path:
    out = out_dir / f"{name}.tracks.mcap"
    assert main(["track", str(recording), "--out", str(out)]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_figures_are_byte_identical_to_the_recorded_digest(name, tracked_mcap):
    source, duration = CASES[name]
    digest = figures_digest(tracked_mcap(source, duration_s=duration))  # shared with track digests
    assert digest == DIGESTS[name], (
        f"{name}: the evaluation's figures changed ({digest}); if the change is meant, "
        "re-record with `python tests/test_metrics_digests.py` and say why in the commit"
    )


if __name__ == "__main__":  # print the current digests (simulates what it needs)
    import tempfile

    from tracklayer.services.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        for name, (source, duration) in sorted(CASES.items()):
            rec = Path(source)
            if duration is not None:
                rec = Path(tmp) / f"{name}.sim.mcap"
                argv = ["simulate", source, "--out", str(rec), "--duration", str(duration)]
                assert cli(argv) == 0
            print(f'    "{name}": "{figures_digest(tracked_case(name, rec, Path(tmp)))}",')
    sys.exit(0)
