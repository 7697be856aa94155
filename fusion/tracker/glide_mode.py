"""GLIDE: the motion mode of a track flying on aerodynamic lift inside the atmosphere.

A boost-glide vehicle leaves its booster at 50-60 km and flies for many minutes at
30-70 km on lift (6-8 m/s^2 up in the steady glide, up to 20 m/s^2 in the pull-up,
up to 13 m/s^2 sideways in a banked turn, switched on and off at once). Such a track
is in DRAG after burnout (below 100 km, descending, deceleration estimated). The DRAG
filter's acceleration state already follows lift and drag; what tells a glider from a
re-entry vehicle is *where* that acceleration points: a ballistic body's aerodynamic
force is drag, along the air-relative velocity w = v - omega x r, while a glider's has
a large component normal to w (lift). So, checked every life-cycle tick on DRAG tracks
that burned out (:func:`glide_transitions`):

- DRAG -> GLIDE when the upward part of the estimated acceleration normal to w,
  averaged over the ticks (fading memory ``glide_lift_memory`` per tick: the single
  estimates scatter by ~10 m/s^2), exceeds ``glide_min_lift_mps2`` after at least
  ``glide_entry_ticks`` ticks with the flight path within ``glide_max_descent_deg`` of
  level (a re-entry vehicle descends at 20-45 deg and has no lift: its aerodynamic
  force is along w);
- GLIDE -> DRAG (the terminal dive, reported REENTRY with an impact prediction again)
  when the flight path is steeper than ``glide_dive_deg`` below level. A dived track
  never glides again.

In GLIDE the acceleration is a Singer process (time constant ``accel_time_constant_s``)
with jerk PSD ``glide_jerk_psd`` (:meth:`.modes.MotionModes.noise`), and a jump in the
innovations (a turn starting or ending) widens it as a thrust change does in boost
(:meth:`.modes.MotionModes.observe_updates`). Reports say FLIGHT_PHASE_GLIDE and carry
no impact ellipse (:mod:`.reports`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..config import FusionConfig
from ..constants import ATMOSPHERE_TOP_M
from ..dynamics import ACC, POS, VEL, cross_omega
from .track import Mode, Track


def lift_and_path_angle(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of rows of states ``x`` (K, 9) (ECI m, m/s, m/s^2): the upward component (m/s^2)
    of the estimated acceleration normal to the air-relative velocity ("lift up") and
    the flight-path angle of the air-relative velocity (rad, > 0 climbing)."""
    r, v, a = x[:, POS], x[:, VEL], x[:, ACC]
    w = v - cross_omega(r)
    w_hat = w / np.maximum(np.linalg.norm(w, axis=1), 1e-9)[:, None]
    r_hat = r / np.linalg.norm(r, axis=1)[:, None]
    sin_gamma = np.einsum("ki,ki->k", w_hat, r_hat)
    lift = a - np.einsum("ki,ki->k", a, w_hat)[:, None] * w_hat
    lift_up = np.einsum("ki,ki->k", lift, r_hat)
    return lift_up, np.arcsin(np.clip(sin_gamma, -1.0, 1.0))


def glide_transitions(
    set_mode: Callable[[Track, Mode], None],
    config: FusionConfig,
    tracks: list[Track],
    x: np.ndarray,
    rows: np.ndarray,
    height: np.ndarray,
) -> None:
    """DRAG -> GLIDE and GLIDE -> DRAG (the dive) of ``tracks`` (one life-cycle tick;
    ``x`` (N, 9) all state rows, ``rows`` (K,) the tracks' rows and ``height`` (K,) m
    their heights, in track order). ``set_mode(trk,
    mode)`` changes a mode (the acceleration state carries over: lift and drag are the
    same state in both modes)."""
    cand = [
        k
        for k, t in enumerate(tracks)
        if not t.deleted
        and (t.mode == Mode.GLIDE or (t.mode == Mode.DRAG and not t.dived))
        and t.burnout_ns is not None
    ]
    if not cand:
        return
    idx = np.array(cand)
    lift_up, gamma = lift_and_path_angle(x[rows[idx]])
    max_descent = -math.radians(config.glide_max_descent_deg)
    dive = -math.radians(config.glide_dive_deg)
    memory = config.glide_lift_memory
    for j, k in enumerate(cand):
        trk = tracks[k]
        if trk.mode == Mode.GLIDE:
            if gamma[j] < dive:
                trk.dived = True
                set_mode(trk, Mode.DRAG)
            continue
        if gamma[j] < max_descent or height[k] >= ATMOSPHERE_TOP_M:
            trk.lift_mean, trk.lift_ticks = 0.0, 0
            continue
        trk.lift_mean = memory * trk.lift_mean + (1.0 - memory) * float(lift_up[j])
        trk.lift_ticks += 1
        if (
            trk.lift_ticks >= config.glide_entry_ticks
            and trk.lift_mean > config.glide_min_lift_mps2
        ):
            set_mode(trk, Mode.GLIDE)
