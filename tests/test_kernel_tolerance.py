"""Only rounding moved: ``tracklayer track`` with the compiled kernels against the numpy
code (``TRACKLAYER_JIT=0``, the floats before the kernels), on every digest case (the
built-in scenarios and the regression recordings of tests/test_track_digests.py).

The kernels (fusion/kernels.py) sum in their own order, so ``/tracks`` is no longer
byte-identical to the numpy run; it must make the same decisions: the same reports
(track id, revision), the same confirmed tracks, statuses, phases, report times,
sensors and update counts, and states that differ by rounding carried through the
filter (positions within a few millimetres and 1e-9 relative, velocities within
mm/s, covariances within 1e-5 of their largest element (2.4e-7 measured, mrbm-pair),
impact and launch ellipses within a metre); and where the evaluation's figures have
digests (tests/test_metrics_digests.py), every figure the same to 1e-6 relative
(counts exactly). The digests were re-recorded with the kernels on (DESIGN §9).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_metrics_digests import CASES as FIGURE_CASES  # the four with figure digests
from test_track_digests import CASES  # the same seven cases

from tracklayer.fusion import kernels
from tracklayer.services.cli import main
from tracklayer.services.evaluation import read_recording
from tracklayer.services.evaluation.compare_tracks import compare_reports
from tracklayer.services.wire.recording import RecordingReader


def _reports(path: Path):
    with RecordingReader(path) as reader:
        return [r for _, r in reader.tracks()]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_kernels_move_only_rounding(name, tracked_mcap, simulated_mcap, tmp_path):
    kernels.set_enabled(True)
    if not kernels.enabled():
        pytest.skip("numba is not installed: nothing to compare")
    source, duration = CASES[name]
    with_kernels = tracked_mcap(source, duration_s=duration)
    recording = Path(source) if duration is None else simulated_mcap(source, duration_s=duration)
    out = tmp_path / f"{name}.numpy.tracks.mcap"
    kernels.set_enabled(False)
    try:
        assert main(["track", str(recording), "--out", str(out)]) == 0
    finally:
        kernels.set_enabled(True)
    diff = compare_reports(_reports(out), _reports(with_kernels))
    assert diff.reports_a > 0
    assert diff.same_decisions, f"{name}: {diff.summary()}; {diff.examples}"
    assert diff.position_m < 5e-3 and diff.position_rel < 1e-9, diff.summary()
    assert diff.velocity_mps < 5e-3, diff.summary()
    assert diff.covariance_rel < 1e-5, diff.summary()
    assert diff.altitude_m < 5e-3 and diff.ground_m < 5e-3, diff.summary()
    assert diff.ellipse_centre_m < 1.0 and diff.ellipse_axis_m < 1.0, diff.summary()
    assert diff.ellipse_time_s < 0.01, diff.summary()
    if name in FIGURE_CASES:
        before = read_recording(out)[0].to_dict()
        after = read_recording(with_kernels)[0].to_dict()
        moved = _figures_moved(before, after)
        assert not moved, f"{name}: figures moved beyond rounding: {moved[:10]}"


def _figures_moved(a, b, path: str = "") -> list[str]:
    """Where two metrics.json trees differ by more than 1e-6 relative (1e-9 absolute
    near zero); integers, strings, booleans and None must be equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [m for k in a for m in _figures_moved(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        pairs = enumerate(zip(a, b, strict=True))
        return [m for i, (x, y) in pairs for m in _figures_moved(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        ok = abs(a - b) <= max(1e-6 * max(abs(a), abs(b)), 1e-9) or a == b
        return [] if ok else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} vs {b!r}"]
