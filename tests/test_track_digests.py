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
from float_platform import float_platform, no_digests_message

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

#: case -> (number of /tracks messages, SHA-256), recorded on main before issue 10's moves;
#: re-recorded once when impact prediction moved to filterpy's Julier sigma points and
#: unscented transform (impact points differ by <= 3.2e-9 m, ellipse axes by <= 2.1e-9 m,
#: impact times by <= 256 ns: floating-point order only; every other field identical);
#: salvo-300 re-recorded when association began to weigh detection threads (issue 13,
#: fusion/threads.py, thread_bonus 16) and the merge test began to spare two tracks that
#: one sensor resolved in one look: 5,965 reports instead of 5,985, 24 confirmed tracks
#: for the 24 missiles instead of 26, ID switches 5 -> 1, false-track share 1.6% -> 0,
#: completeness 0.991 -> 1.0 over the 300 s; the other six cases are unchanged. All seven
#: re-recorded when the provisional launch fits of a boosting track moved from every
#: report to every 4 s of samples (issue 13: the refit cost scaled with the report
#: rate): the launch estimates of the reports in between are the previous fit's, the
#: final estimate is unchanged; every other field is identical.
#: All re-recorded for issue 12: sensor registration (on by default) estimates each sensor's
#: pointing bias from common targets and hot spots and widens the detections' sigma by
#: its uncertainty, so reports change wherever a sensor has evidence (figures within the
#: regression tolerances).
#: Five re-recorded for issue 12's hot-spot sites (fusion/registration.py): the looks of
#: one hot spot now fill one 60 s window across its successive tentative tracks, and a
#: window is solved when its track goes quiet instead of being dropped, so the estimates
#: (and the sigmas they widen) change wherever hot spots are seen; dropout-150 and
#: mrbm-pair are unchanged. Figures within the regression tolerances.
#: All re-recorded when rows began to be predicted only when read (issue 13: a frame
#: predicts and gates only the tracks whose line of sight may fall near one of its
#: detections, association.may_gate; every row is brought up at the life-cycle ticks):
#: a track not seen in a frame is predicted later in one longer step instead of several
#: short ones, which changes rounding only. Same report counts; the regression
#: recordings' figures agree to <= 0.1% (GOSPA, launch error) or exactly (NEES, RMSE).
#: The two changes above landed in one stop on separate branches; the digests are those of
#: both together (dropout-150 and mrbm-pair: lazy prediction's, which registration's
#: hot-spot sites do not change).
#: All seven re-recorded for issue 12's bias scale (stop 12): the consider widening now
#: uses each sensor's bias covariance under the prior rescaled to the biases' estimated
#: size (fusion/registration.py, DESIGN §6), so sensors found unbiased are barely widened
#: and unbiased tracks are weighted closer to registration off (single-icbm 900 s
#: midcourse RMSE 7.30 -> 6.78 m, NEES 1.71 -> 2.82; off 6.40 m / 3.67). Report counts:
#: clutter-150 138 -> 141, mrbm-pair 147 -> 149, salvo-300 5883 -> 5910, others equal.
#: clutter-150, mrbm-pair and salvo-300 re-recorded when the registration began to take
#: only unambiguous looks as evidence (issue 12, stop 13: fusion/tracker/evidence.py
#: unambiguous; a look whose track had another detection in its gate, or whose detection
#: was in another confirmed track's gate, contests its window): their estimates, and the
#: sigmas they widen, change where tracks crowd or false alarms fall in a gate. Report
#: counts: salvo-300 5910 -> 5907, others equal; mrbm-pair boost RMSE 806.0 -> 805.4 m;
#: the other four cases are unchanged.
#: All seven re-recorded for the compiled kernels (issue 13, stop 17, fusion/kernels.py):
#: the short-step predict, the Joseph update, the gating and the may_gate screen, the
#: impact propagation and the launch fit run as numba loops that sum in their own order
#: (numpy's stacked 9x9 products go to BLAS), so floats move by rounding; the numpy code
#: stays as the fallback and still gives the previous digests bit for bit
#: (TRACKLAYER_JIT=0). Same report counts; tests/test_kernel_tolerance.py compares the two
#: on all seven cases: the same reports, confirmed tracks, statuses, phases, times,
#: sensors and update counts, positions within ~1e-8 m here (2.2e-6 m over
#: raid-proliferated 120 s), impact and launch centres within millimetres, and every
#: figure of tests/test_metrics_digests.py's cases within 1e-6 relative.
#: mrbm-midcourse, salvo-300, single-icbm-400 and srbm-short re-recorded again, on top
#: of the kernels, for issue 12's impact prior (stop 17): the 1-sigma of ln(beta) in the
#: impact prediction went 0.7 -> 1.0 (fusion/config.py
#: impact_ballistic_coefficient_log_sigma; the simulator's vehicles span 5,000-50,000
#: kg/m^2 about the assumed 30,000, an MRBM sat 1.6 sigma out): only the
#: impact ellipses (and the points, the sigma points' mean) change; same report counts,
#: every other field identical; clutter-150, dropout-150 and mrbm-pair predict no impact.
#: mrbm-midcourse, salvo-300, single-icbm-400 and srbm-short re-recorded for issue 12's
#: looks per track (stop 18, registration_consider_looks_max 25 -> 100, DESIGN §6 *Looks
#: per track*): a ballistic track's update counts the bias variance left by its looks per
#: sensor (up to 100, the cap shrunk by the bias scale), so ballistic tracks' sigmas, and
#: with them states and covariances, move wherever a sensor has registration evidence;
#: same report counts; clutter-150, dropout-150 and mrbm-pair are unchanged.
#: All seven re-recorded for issue 12's registration cost (stop 20, fusion/registration.py
#: BATCH_S): the bias windows accepted over 5 s of data time are applied as one Kalman
#: update in information form instead of one update per window (mathematically the same
#: update: every window of a batch is solved about the same estimate; floats move by
#: rounding, each window's outlier test sees the covariance before its batch, the drift is
#: added once per batch and the estimate lags by up to 5 s), which cut the update's cost
#: ~5x on salvo. Report counts: salvo-300 5907 -> 5906, the others equal; the figures of
#: tests/test_metrics_digests.py's cases and of biased (seeds 7, 11, 3) in the report of
#: that stop (/work/notes/stop20/registration10.md) and DESIGN §6 *Cost, stop 20*.
#: Digests per floating-point platform (tests/float_platform.py): the history above was
#: recorded on the AVX-512 hosts of stops 10-24; the AVX2 set was recorded at stop 25 from
#: the same code (da2d689): the same report counts, every case differing in its floats.
DIGESTS: dict[str, dict[str, tuple[int, str]]] = {
    "x86_64-avx512": {
        "clutter-150": (141, "e68e5a0c73d1f877d9af7d757260e6b56f1163d6a392961ab98b0fb6390b377f"),
        "dropout-150": (109, "e6b27bd0d26e265943e7dc6588dba316d3e8f3f1a082fc422441af99ae6bd3b0"),
        "mrbm-midcourse": (163, "113a943654979f11eac239e428be65c1ba7f386a043146037ea322de4eef0af8"),
        "mrbm-pair": (149, "8d2600937b99254fdea8e17dcb17f983b76291c2c585c8fb5f1a369ad3a3bcb8"),
        "salvo-300": (5906, "fb7b71db0714e5a82f5fa85b771cc41697c84e988be780aed29fcf7b7c973241"),
        "single-icbm-400": (
            360,
            "eee50eb58b5e841f8084d16aaaf56c361aa492942a2816f9d7ddcce211a23d30",
        ),
        "srbm-short": (104, "fec46f393d2e27888cbc111d6121cd831c2e52b3a34372dffb79ce3278cd6a45"),
    },
    "x86_64-avx2": {
        "clutter-150": (141, "6c670e97f638f75d1939f407a241c1d00d0752e0366f75912e37e76cf6d2d0e6"),
        "dropout-150": (109, "7d9e8732e8ccdfabf6a4e11125661a17b169312516ac1fc87817895cbbff1d64"),
        "mrbm-midcourse": (163, "d90605b33bb4c4eac03e5db17dc9899412a739060a161f364862f5f95d10060b"),
        "mrbm-pair": (149, "750fbaa49a41dcf862a7a74dfbce8bdc189643fca494dc8d053cd4e73f9787b4"),
        "salvo-300": (5906, "f4d87326b1085c611c4fe96550ee5b68d43c51edc8fe4d6b705f1efe3911059c"),
        "single-icbm-400": (
            360,
            "c6e33055f6c1779f1dc1df3e48646b2a6c95fdc112c32fdacd0306f90ccd90f8",
        ),
        "srbm-short": (104, "861f7095bb393f796fc31bd4054ec280cb4ce1033c482938261f49fea3717f64"),
    },
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
def test_track_output_is_byte_identical_to_the_recorded_digest(name, tracked_mcap):
    source, duration = CASES[name]
    count, digest = tracks_digest(tracked_mcap(source, duration_s=duration))
    assert count > 0, f"{name}: no track reports at all"
    recorded = DIGESTS.get(float_platform())
    if recorded is None:
        pytest.skip(
            no_digests_message("/tracks", "`python tests/test_track_digests.py` prints them")
        )
    assert (count, digest) == recorded[name], (
        f"{name}: /tracks changed ({count} reports, {digest}); if the change is meant, "
        "re-record with `python tests/test_track_digests.py` and say why in the commit"
    )


if __name__ == "__main__":  # print this platform's digests, to paste into DIGESTS
    import subprocess
    import tempfile

    print(f'    "{float_platform()}": {{')

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
            print(f'        "{name}": {track_case(name, recording, Path(tmp))!r},', flush=True)
    print("    },")
