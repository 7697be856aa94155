"""Which looks feed the sensor registration (fusion/tracker/evidence.unrivalled): only a
pair whose detection no other track gated and whose track gated no other detection."""

import numpy as np

from tracklayer.fusion.tracker.evidence import unrivalled


def test_only_pairs_without_a_rival_in_either_gate_are_evidence():
    # candidate pairs (track, detection), inside the gate or not:
    # track 0 gates detection 0 only                       -> alone
    # tracks 1 and 2 both gate detection 1                 -> rivals for the detection
    # track 3 gates detections 2 and 3                     -> a rival detection
    # track 4 gates detection 4; detection 4 is also near track 0 but outside its gate
    track = np.array([0, 1, 2, 3, 3, 4, 0])
    det = np.array([0, 1, 1, 2, 3, 4, 4])
    inside = np.array([True, True, True, True, True, True, False])
    assigned_tracks = np.array([0, 1, 3, 4])
    assigned_dets = np.array([0, 1, 2, 4])
    alone = unrivalled(track, det, inside, 5, 5, assigned_tracks, assigned_dets)
    assert alone.tolist() == [True, False, False, True]


def test_no_pairs_no_evidence():
    empty = np.zeros(0, int)
    assert unrivalled(empty, empty, np.zeros(0, bool), 3, 2, empty, empty).size == 0
