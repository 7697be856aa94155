"""The velocity prior of a track found again inside a threat cloud (fusion/tracker/cloud.py)."""

import numpy as np
from ballistic_synthetic import midcourse_object

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import NS_PER_S, TrackStatus
from tracklayer.fusion.dynamics import N_STATE
from tracklayer.fusion.tracker.cloud import CLOUD_SIGMA_MPS, cloud_velocity
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import Mode, Track

T_NS = 1_000 * NS_PER_S
R = FusionConfig().init_cloud_radius_m  # m


def _rows(states, mode=Mode.BALLISTIC, status=TrackStatus.CONFIRMED, t_ns=T_NS):
    rows, tracks = StateRows(), []
    for k, (r, v) in enumerate(states):
        trk = Track(key=k + 1, created_ns=0, last_update_ns=t_ns)
        trk.mode, trk.status = mode, status
        x = np.zeros(N_STATE)
        x[:3], x[3:6] = r, v
        rows.append(x, np.eye(N_STATE), trk, False, t_ns)
        tracks.append(trk)
    return tracks, rows


def _cloud(n=3, spacing_m=1_000.0, dv=(0.0, 0.0, 0.0)):
    r0, v0 = midcourse_object()
    u = v0 / np.linalg.norm(v0)
    return [(r0 - k * spacing_m * u, v0 + np.asarray(dv) * k) for k in range(1, n + 1)], r0, v0


def test_a_track_born_in_a_cloud_starts_with_its_neighbours_velocity():
    states, r0, v0 = _cloud()
    tracks, rows = _rows(states)
    v, sigma = cloud_velocity(tracks, rows, r0, T_NS, R)
    assert np.allclose(v, v0)
    assert sigma == CLOUD_SIGMA_MPS


def test_neighbours_are_carried_to_the_new_tracks_time():
    # states 10 s old: 66 km behind where they are now, still found within 30 km
    states, r0, v0 = _cloud()
    old = [(r - 10.0 * v, v) for r, v in states]
    tracks, rows = _rows(old, t_ns=T_NS - 10 * NS_PER_S)
    assert cloud_velocity(tracks, rows, r0, T_NS, R) is not None


def test_no_prior_alone_far_below_the_air_or_when_neighbours_disagree():
    states, r0, v0 = _cloud()
    tracks, rows = _rows(states[:1])
    assert cloud_velocity(tracks, rows, r0, T_NS, R) is None  # one neighbour is not a cloud
    tracks, rows = _rows(states)
    assert cloud_velocity(tracks, rows, r0 + 100e3 * v0 / np.linalg.norm(v0), T_NS, R) is None
    low = r0 / np.linalg.norm(r0) * 6_400e3  # 22 km up: in the air
    assert cloud_velocity(tracks, rows, low, T_NS, R) is None
    tracks, rows = _rows(_cloud(dv=(0.0, 0.0, 600.0))[0])
    assert cloud_velocity(tracks, rows, r0, T_NS, R) is None  # 600 m/s from their median


def test_only_held_ballistic_tracks_count():
    states, r0, _ = _cloud()
    for mode, status in [
        (Mode.BOOST, TrackStatus.CONFIRMED),
        (Mode.BALLISTIC, TrackStatus.TENTATIVE),
    ]:
        tracks, rows = _rows(states, mode=mode, status=status)
        assert cloud_velocity(tracks, rows, r0, T_NS, R) is None


def test_a_radius_of_zero_turns_the_prior_off():
    states, r0, _ = _cloud()
    tracks, rows = _rows(states)
    assert cloud_velocity(tracks, rows, r0, T_NS, 0.0) is None
