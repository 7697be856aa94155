"""Regression guard: ``tracklayer track`` writes byte-identical ``/tracks`` to the digests
recorded before the code moved (issue 10, "what must not change").

A restructuring of the tracker, the fusion core or the services must not change one bit
of what the tracker reports. Each case tracks a recording with the CLI and hashes every
``/tracks`` message (log time, length, serialized ``TrackReport``) in file order; the
SHA-256 must equal the one recorded in :data:`DIGESTS`.

A change that is *meant* to alter the reports (a tracker improvement) re-records the
digests: ``python tests/test_track_digests.py`` prints the current ones; say in the
commit message why they changed.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from tracklayer.services.cli import main
from tracklayer.services.wire.recording import TOPIC_TRACKS, RecordingReader

REGRESSION = Path(__file__).parent / "data" / "regression"

#: case -> (scenario or recording, simulated duration in s or None for a recording)
CASES: dict[str, tuple[str, float | None]] = {
    "single-icbm-400": ("single-icbm", 400.0),  # launch, stereo, boost, burnout, midcourse
    "salvo-300": ("salvo", 300.0),  # 24 launches, staging, merges
    "clutter-150": ("clutter", 150.0),  # 10 false alarms per look, 20 hot spots
    "dropout-150": ("dropout", 150.0),  # latency, drops: frames out of order (shared fixture)
    "mrbm-midcourse": (str(REGRESSION / "mrbm-midcourse.mcap"), None),
    "mrbm-pair": (str(REGRESSION / "mrbm-pair.mcap"), None),
    "srbm-short": (str(REGRESSION / "srbm-short.mcap"), None),
}

#: case -> (number of /tracks messages, SHA-256), recorded on main before issue 10's moves.
DIGESTS: dict[str, tuple[int, str]] = {
    "clutter-150": (142, "38f1c6bb253ea4730ad48b8c227a470d01c0e120c913c6be1116f7e678e403fa"),
    "dropout-150": (109, "4b1627d4f9dde9af43a6257f43e8aa03015f65d013e64e8e904533c04198cbac"),
    "mrbm-midcourse": (163, "be270b4a20c610a7ed8c9bb6fe527be43e32782c87ca4ae1911c686a60017c45"),
    "mrbm-pair": (155, "ec436a1d746b0cf472696288b9aaca6ce8d4ac12cc7d7138896155526cfa4ce0"),
    "salvo-300": (5985, "cb78146598eab6fd5117697482d58a3372da948a452d15177e03f2263d3c7f54"),
    "single-icbm-400": (360, "9f787f05ea278400b286f4af053cd32a61d9a7f10a9520cea29424a6675244a7"),
    "srbm-short": (104, "377441a7a72d8c1b1b77045f97a3db87d5f3965c6e26031aafbc19711bb6c1b9"),
}


def tracks_digest(path: Path) -> tuple[int, str]:
    """(count, SHA-256) over the ``/tracks`` messages of a recording, in file order."""
    h = hashlib.sha256()
    n = 0
    for _, log_ns, data in RecordingReader(path).raw_messages([TOPIC_TRACKS]):
        h.update(log_ns.to_bytes(8, "little", signed=True))
        h.update(len(data).to_bytes(4, "little"))
        h.update(data)
        n += 1
    return n, h.hexdigest()


def track_case(name: str, recording: Path, out_dir: Path) -> tuple[int, str]:
    out = out_dir / f"{name}.tracks.mcap"
    assert main(["track", str(recording), "--out", str(out)]) == 0
    return tracks_digest(out)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_track_output_is_byte_identical_to_the_recorded_digest(name, simulated_mcap, tmp_path):
    source, duration = CASES[name]
    recording = Path(source) if duration is None else simulated_mcap(source, duration_s=duration)
    count, digest = track_case(name, recording, tmp_path)
    assert count > 0, f"{name}: no track reports at all"
    assert (count, digest) == DIGESTS[name], (
        f"{name}: /tracks changed ({count} reports, {digest}); if the change is meant, "
        "re-record with `python tests/test_track_digests.py` and say why in the commit"
    )


if __name__ == "__main__":  # print the current digests, to paste into DIGESTS
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, (source, duration) in sorted(CASES.items()):
            recording = Path(source)
            if duration is not None:
                recording = Path(tmp) / f"{name}.mcap"
                subprocess.run(
                    [sys.executable, "-m", "tracklayer.services.cli", "simulate", source,
                     "--duration", str(duration), "--out", str(recording)],
                    check=True, stdout=subprocess.DEVNULL,
                )  # fmt: skip
            print(f'    "{name}": {track_case(name, recording, Path(tmp))!r},', flush=True)
