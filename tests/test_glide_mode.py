"""The GLIDE mode's entry and exit tests (fusion/tracker/glide_mode.py) on hand-made
states: lift normal to the air velocity, drag along it, level and steep flight."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.dynamics import ACC, N_STATE, POS, VEL, cross_omega, ellipsoid_height
from tracklayer.fusion.tracker.glide_mode import glide_transitions, lift_and_path_angle
from tracklayer.fusion.tracker.track import Mode, Track

R = np.array([6_378_137.0 + 40_000.0, 0.0, 0.0])  # m, ECI, 40 km above the equator


def state(gamma_deg: float, lift_up: float, drag: float) -> np.ndarray:
    """A (9,) state at R flying north-east at 3 km/s air speed, ``gamma_deg`` above level,
    with ``lift_up`` m/s^2 normal to the air velocity (in the vertical plane, upward)
    and ``drag`` m/s^2 against it."""
    g = math.radians(gamma_deg)
    up = np.array([1.0, 0.0, 0.0])
    horiz = np.array([0.0, 1.0, 1.0]) / math.sqrt(2.0)
    w_hat = math.cos(g) * horiz + math.sin(g) * up
    n_hat = -math.sin(g) * horiz + math.cos(g) * up  # normal to w, upward
    x = np.zeros(N_STATE)
    x[POS] = R
    x[VEL] = 3000.0 * w_hat + cross_omega(R)
    x[ACC] = lift_up * n_hat - drag * w_hat
    return x


def test_lift_is_the_upward_acceleration_normal_to_the_air_velocity():
    x = np.stack([state(0.0, 7.0, 2.5), state(-30.0, 0.0, 80.0), state(5.0, -3.0, 1.0)])
    lift_up, gamma = lift_and_path_angle(x)
    np.testing.assert_allclose(lift_up, [7.0, 0.0, -3.0 * math.cos(math.radians(5.0))], atol=1e-9)
    np.testing.assert_allclose(np.degrees(gamma), [0.0, -30.0, 5.0], atol=1e-9)


def _run(track: Track, x: np.ndarray, ticks: int, cfg: FusionConfig) -> list[Mode]:
    """``ticks`` life-cycle ticks of one track at state ``x``; the modes it went through."""
    seen: list[Mode] = []

    def set_mode(trk: Track, mode: Mode) -> None:
        trk.mode = mode
        seen.append(mode)

    h = ellipsoid_height(x[None, POS])
    for _ in range(ticks):
        glide_transitions(set_mode, cfg, [track], x[None], np.array([0]), h)
    return seen


def _drag_track() -> Track:
    trk = Track(key=0, created_ns=0, last_update_ns=0, mode=Mode.DRAG)
    trk.burnout_ns = 0
    return trk


def test_a_level_lifting_drag_track_glides_after_the_entry_ticks():
    cfg = FusionConfig()
    trk = _drag_track()
    assert _run(trk, state(0.0, 7.0, 2.5), cfg.glide_entry_ticks - 1, cfg) == []
    assert _run(trk, state(0.0, 7.0, 2.5), 1, cfg) == [Mode.GLIDE]


@pytest.mark.parametrize(
    ("gamma", "lift", "burned_out"),
    [(-30.0, 0.0, True), (-30.0, 7.0, True), (0.0, 1.0, True), (0.0, 7.0, False)],
    ids=["reentry-vehicle", "steep-with-lift", "too-little-lift", "still-boosting"],
)
def test_no_glide_without_level_lifting_flight_after_burnout(gamma, lift, burned_out):
    cfg = FusionConfig()
    trk = _drag_track()
    trk.burnout_ns = 0 if burned_out else None
    assert _run(trk, state(gamma, lift, 40.0), 10 * cfg.glide_entry_ticks, cfg) == []


def test_a_gliding_track_dives_once_and_never_glides_again():
    cfg = FusionConfig()
    trk = _drag_track()
    trk.mode = Mode.GLIDE
    assert _run(trk, state(-10.0, 7.0, 3.0), 5, cfg) == []  # steep-ish, not a dive
    assert _run(trk, state(-20.0, 7.0, 3.0), 1, cfg) == [Mode.DRAG]
    assert trk.dived
    assert _run(trk, state(0.0, 7.0, 2.5), 10 * cfg.glide_entry_ticks, cfg) == []


def test_glide_lift_memory_must_be_a_fading_factor():
    with pytest.raises(ValueError, match="^glide_lift_memory: must be in"):
        FusionConfig.from_mapping({"glide_lift_memory": 1.0})
