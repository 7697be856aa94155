"""Which tracks feed the sensor registration (:mod:`..registration`), and as what."""

from __future__ import annotations

import numpy as np

from ..association import Gating
from ..domain import TrackStatus
from ..registration import Evidence, resting
from .track import Mode, RowOwner, Track


def evidence_kinds(trks: list[Track], x: np.ndarray) -> tuple[list[Evidence], list[int]]:
    """What each track ``trks[k]`` (state ``x[k]``, (K, 9) ECI) tells the registration: a
    hot spot (Earth-fixed, or a dim tentative track resting on the ground), a confirmed
    ballistic or boosting target, or nothing (drag, other tentative tracks,
    single-satellite). A state row is read only for the dim tentative tracks whose rest
    it decides (a raid frame updates hundreds of tracks, nearly all confirmed). Returns
    the evidence and the tracks' keys (one pass over the tracks)."""
    fixed, none = Evidence.EARTH_FIXED, Evidence.NONE
    by_mode = {Mode.BALLISTIC: Evidence.MOVING, Mode.BOOST: Evidence.THRUSTING}
    confirmed, tentative = TrackStatus.CONFIRMED, TrackStatus.TENTATIVE
    out: list[Evidence] = []
    keys: list[int] = []
    for k, trk in enumerate(trks):
        keys.append(trk.key)
        if trk.earth_fixed:
            out.append(fixed)
            continue
        status = trk.status
        if status == confirmed and not trk.uncertain:
            kind = by_mode.get(trk.mode)
            if kind is not None:
                out.append(kind)
                continue
        if status == tentative and not trk.plume.bright_seen and resting(x[k]):
            out.append(fixed)
        else:
            out.append(none)
    return out, keys


def registration_looks(
    owners: list[RowOwner],
    gating: Gating,
    track_idx: np.ndarray,
    det_idx: np.ndarray,
    gates: np.ndarray,
    main_rows: np.ndarray,
    n_det: int,
    trks: list[Track],
    x: np.ndarray,
) -> tuple[list[Evidence], list[int], np.ndarray]:
    """What the registration is handed of one frame's K updates: the evidence of each
    updated track ``trks[k]`` (state ``x[k]``, (K, 9) ECI), its key, and whether its look
    was unambiguous (:func:`unambiguous`; ``track_idx``, ``det_idx``: the assigned pairs
    among ``gating``'s gated tracks (rows ``main_rows``, gates ``gates``) and the frame's
    ``n_det`` detections; ``owners``: the rows' owners)."""
    kinds, keys = evidence_kinds(trks, x)
    held = (TrackStatus.CONFIRMED, TrackStatus.COASTING)
    # read only where unambiguous reads it: the tracks with a candidate pair
    gated = np.flatnonzero(np.bincount(gating.track, minlength=main_rows.size))  # unique
    confirmed = np.zeros(main_rows.size, bool)
    confirmed[gated] = [owners[r].track.status in held for r in main_rows[gated].tolist()]
    clear = unambiguous(gating, gates, confirmed, (track_idx, det_idx), n_det, kinds)
    return kinds, keys, clear


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
