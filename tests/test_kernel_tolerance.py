"""Only rounding moved: ``tracklayer track`` with the compiled kernels against the numpy
code (``TRACKLAYER_JIT=0``, the floats before the kernels), on every digest case (the
built-in scenarios and the regression recordings of tests/test_track_digests.py).

The kernels (fusion/kernels.py) sum in their own order, so ``/tracks`` is no longer
byte-identical to the numpy run; it must make the same decisions: the same reports
(track id, revision), the same confirmed tracks, statuses, phases, report times,
sensors and update counts, and states that differ by rounding carried through the
filter (positions within a few millimetres and 1e-9 relative, velocities within
mm/s, covariances within 1e-6 of their largest element, impact and launch ellipses
within a metre). The digests were re-recorded with the kernels on (DESIGN §9).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tracklayer.fusion import kernels
from tracklayer.services.cli import main
from tracklayer.services.evaluation.compare_tracks import compare_reports
from tracklayer.services.wire.recording import RecordingReader

from test_track_digests import CASES  # the same seven cases


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
    assert diff.covariance_rel < 1e-6, diff.summary()
    assert diff.altitude_m < 5e-3 and diff.ground_m < 5e-3, diff.summary()
    assert diff.ellipse_centre_m < 1.0 and diff.ellipse_axis_m < 1.0, diff.summary()
    assert diff.ellipse_time_s < 0.01, diff.summary()
