"""Which tracks feed the sensor registration (:mod:`..registration`), and as what."""

from __future__ import annotations

import numpy as np

from ..association import Gating
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


def unambiguous(
    gating: Gating,
    gates: np.ndarray,
    confirmed: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray],
    n_det: int,
    kinds: list[Evidence],
) -> np.ndarray:
    """(K,) bool: the assigned pair ``(pairs[0][k], pairs[1][k])`` (gated track, detection
    of the frame's ``n_det``; evidence ``kinds[k]``) was the only pair of its track inside
    the chi-square gates ``gates`` (per gated track), and no other confirmed or coasting
    track (``confirmed``, per gated track) had its detection inside its gate, so the track
    cannot have taken another object's detection here. Tentative tracks sharing a
    detection are mostly new duplicates of one object; a hot spot's detection may lie in
    the gates of several tracks of one Earth-fixed source (the registration gathers them
    by site), so only the first condition applies to ``Evidence.EARTH_FIXED``.

    Only such looks are registration evidence: in a crowd (objects of one path 100-400 m
    apart in boost, inside one another's gates) a track's detections may come from
    different objects in different sensors, an offset per sensor that a window cannot
    tell from a pointing bias (on the dense two-site scene 455 of 1,313 boost windows
    mixed objects and taught biases the sensors do not have; DESIGN §6)."""
    track_idx, det_idx = pairs
    inside = gating.d2 <= gates[gating.track]
    per_track = np.bincount(gating.track[inside], minlength=gating.u.shape[0])
    held = inside & confirmed[gating.track]
    per_det = np.bincount(gating.det[held], minlength=n_det)
    fixed = np.array([k == Evidence.EARTH_FIXED for k in kinds], dtype=bool)
    return (per_track[track_idx] == 1) & ((per_det[det_idx] <= 1) | fixed)
