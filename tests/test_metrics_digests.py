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
from float_platform import float_platform, no_digests_message

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
#: re-recorded when provisional launch fits moved to every 4 s of samples (issue 13):
#: only ``launch_inside_3sigma_share`` changed (mrbm-midcourse 0.066 -> 0.072, mrbm-pair
#: 0.968 -> 0.948); launch error medians and every other figure are identical.
#: All four re-recorded when the glide and turn windows were added (issue 11): new keys
#: only (``glide``/``turn`` in the RMSE dicts, ``nees_glide_*``, ``nees_turn_*``,
#: ``completeness_glide``, ``track_breaks_glide``/``_turn``, and their per-object
#: figures, null or 0 without a glide); every previous value compared equal.
#: All four re-recorded for issue 12 (sensor registration on by default changes the tracks).
#: mrbm-midcourse and srbm-short re-recorded for issue 12's evidence windows (their tracks
#: changed: fusion/registration.py gathers a hot spot's looks by site and solves a window
#: whose track ended instead of dropping it, see test_track_digests.py); dropout-150 and
#: mrbm-pair unchanged.
#: All four re-recorded when rows began to be predicted only when read (issue 13): the
#: regression recordings' figures moved by rounding only (GOSPA mean <= 0.01%, its
#: median <= 0.03%, launch error median <= 0.03%; NEES and RMSE unchanged).
#: Both landed in one stop on separate branches: the digests are those of both together.
#: All four re-recorded for issue 12's bias scale (stop 12; why in test_track_digests.py):
#: the tracks of all four changed; their bounds in test_regression_recordings.py hold.
#: mrbm-pair re-recorded when the registration began to take only unambiguous looks as
#: evidence (stop 13; why in test_track_digests.py): boost RMSE 806.0 -> 805.4 m,
#: completeness and false share unchanged; the other three unchanged.
#: All four re-recorded for the CLEAR-MOT count of identity switches (issue 13, stop 16):
#: new keys only (``id_switches_clear_mot`` and its rate, 0 in all four); with them
#: removed each file hashes to its previous digest.
#: All four re-recorded for the compiled kernels (issue 13, stop 17, fusion/kernels.py:
#: predict, update, gating, the impact and launch fits in numba, summed in loop order
#: where numpy used BLAS): the tracks move by rounding only (same reports and decisions,
#: tests/test_kernel_tolerance.py, which also checks every figure of these four against
#: the numpy code's to 1e-6 relative, counts exactly).
#: mrbm-midcourse and srbm-short re-recorded for issue 12's looks per track (stop 18; why
#: in test_track_digests.py): their ballistic tracks' figures move; their bounds in
#: test_regression_recordings.py are checked there; dropout-150 and mrbm-pair unchanged.
#: All four re-recorded for issue 12's batched registration updates (stop 20; why in
#: test_track_digests.py): dropout-150, mrbm-midcourse and srbm-short move by < 1e-6
#: relative (mrbm-midcourse midcourse RMSE 16.434940 -> 16.434945 m, NEES 1.4192567 ->
#: 1.4192537); mrbm-pair's boost figures by 0.1-0.2 % (position RMSE 805.39 -> 806.33 m,
#: GOSPA mean 2221.7 -> 2226.6 m); counts and shares identical.
#: All four re-recorded for the split of the CLEAR-MOT switches (issue 13, stop 22): one
#: new key only (``id_switches_clear_mot_slides``, 0 in all four); with it removed each
#: file hashes to its previous digest.
#: Per floating-point platform (tests/float_platform.py), as in test_track_digests.py.
DIGESTS: dict[str, dict[str, str]] = {
    "x86_64-avx512": {
        "dropout-150": "e36c81290b661cf7d56e4910a18c4b2f977441b0221154dcf2965bbf74bdcd4a",
        "mrbm-midcourse": "68127c391f5c34c8e2b260d39442fb8a897e1fb75d3ca2525666f364e81c54bc",
        "mrbm-pair": "0136fb1146d43355a0ec2caafbc4423abf10fb27eba2578765bea490e0fbf263",
        "srbm-short": "0e23a367f5c19a77b2f0aa050f07f7de946e7326a4d3d5b4f5244646109599fa",
    },
    "x86_64-avx2": {
        "dropout-150": "f0f31dcf20da8a3c3535f592ad6d1fcce6dcd7138734126ae96dcfc44b64a25f",
        "mrbm-midcourse": "41c70d33617b8d7a2c55e87f818409608ab9a7f7a4b6176b054d76a9c8fc0708",
        "mrbm-pair": "3d86dc64dad79ca684967ec48edefebfdafde60484b5618e10b2fdf49ba6bc8c",
        "srbm-short": "7bbc9667f1cfebef7ab1d5aeb549164f1ec362a14bd723c67169a73a84e7ce83",
    },
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
    recorded = DIGESTS.get(float_platform())
    if recorded is None:
        pytest.skip(
            no_digests_message("metrics", "`python tests/test_metrics_digests.py` prints them")
        )
    assert digest == recorded[name], (
        f"{name}: the evaluation's figures changed ({digest}); if the change is meant, "
        "re-record with `python tests/test_metrics_digests.py` and say why in the commit"
    )


if __name__ == "__main__":  # print the current digests (simulates what it needs)
    import tempfile

    from tracklayer.services.cli import main as cli

    print(f'    "{float_platform()}": {{')
    with tempfile.TemporaryDirectory() as tmp:
        for name, (source, duration) in sorted(CASES.items()):
            rec = Path(source)
            if duration is not None:
                rec = Path(tmp) / f"{name}.sim.mcap"
                argv = ["simulate", source, "--out", str(rec), "--duration", str(duration)]
                assert cli(argv) == 0
            print(f'        "{name}": "{figures_digest(tracked_case(name, rec, Path(tmp)))}",')
    print("    },")
    sys.exit(0)
