"""Compare the ``/tracks`` of two recordings: did only rounding move?

    python benchmarks/compare_tracks.py A.track.mcap B.track.mcap

Prints :func:`tracklayer.services.evaluation.compare_tracks.compare_reports`'s summary
(reports in one run only, confirmed track ids, decisions, largest differences of
positions, velocities, covariances and ellipses). Exit status 0 if the decisions are
the same, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from tracklayer.services.evaluation.compare_tracks import compare_reports
from tracklayer.services.wire.recording import RecordingReader


def _reports(path: str):
    with RecordingReader(path) as reader:
        return [r for _, r in reader.tracks()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="recording with /tracks (the reference)")
    ap.add_argument("b", help="recording with /tracks (the candidate)")
    args = ap.parse_args()
    diff = compare_reports(_reports(args.a), _reports(args.b))
    print(diff.summary())
    for line in diff.examples:
        print("  e.g.", line)
    return 0 if diff.same_decisions else 1


if __name__ == "__main__":
    sys.exit(main())
