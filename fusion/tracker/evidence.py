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
