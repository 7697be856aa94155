"""Which tracks feed the sensor registration (:mod:`..registration`), and as what."""

from __future__ import annotations

import numpy as np

from ..domain import TrackStatus
from ..registration import Evidence, resting
from .track import Mode, Track


def evidence_of(trk: Track, x: np.ndarray) -> Evidence:
    """What a track (state ``x``) tells the registration: a hot spot (Earth-fixed, or a
    dim tentative track resting on the ground), a confirmed ballistic or boosting target,
    or nothing (drag, other tentative tracks, single-satellite)."""
    if trk.earth_fixed:
        return Evidence.EARTH_FIXED
    if trk.status == TrackStatus.CONFIRMED and not trk.uncertain:
        if trk.mode == Mode.BALLISTIC:
            return Evidence.MOVING
        if trk.mode == Mode.BOOST:
            return Evidence.THRUSTING
    if trk.status == TrackStatus.TENTATIVE and not trk.plume.bright_seen and resting(x):
        return Evidence.EARTH_FIXED
    return Evidence.NONE


def unrivalled(
    track: np.ndarray,
    det: np.ndarray,
    inside: np.ndarray,
    n_tracks: int,
    n_det: int,
    track_idx: np.ndarray,
    det_idx: np.ndarray,
) -> np.ndarray:
    """Which assigned pairs (``track_idx``, ``det_idx`` (K,)) had no rival: among the
    frame's candidate pairs (``track``, ``det``, ``inside`` its gate), the detection was in
    no other track's gate and the track gated no other detection. Only those feed the
    registration: in a dense cloud a sensor that sees a line of objects nearly end-on
    takes neighbours' detections with residuals of one sign, which it would learn as a
    confident pointing bias of its own."""
    per_track = np.bincount(track[inside], minlength=n_tracks)
    per_det = np.bincount(det[inside], minlength=n_det)
    return (per_track[track_idx] == 1) & (per_det[det_idx] == 1)
