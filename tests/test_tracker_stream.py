"""Stream consensus (fusion/tracker/stream.py): a boost track whose velocity disagrees
with its pad stream's is pulled to the stream's velocity at its place; tracks that agree,
and tracks with too few stream neighbours, are left as they are.

The tracker-level effect (the sliding tracks of a pad stream hold their objects: far
fewer identity switches) is asserted against truth on the dense two-site scene
(tests/test_dense_scene.py).
"""

import numpy as np

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import NS_PER_S, TrackStatus
from tracklayer.fusion.dynamics import ACC, N_STATE, POS, VEL
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.stream import _grouped_median, pull_to_streams
from tracklayer.fusion.tracker.track import Mode, Track

T0 = 1_000 * NS_PER_S
R_EQ = 6_378_137.0  # m, equatorial radius
SPEED = 2_000.0  # m/s, along +z
ACCEL = 30.0  # m/s^2, along +z
SPACING_S = 0.5  # s of flight between two objects of the stream


def _stream(n, speeds, status=TrackStatus.CONFIRMED, mode=Mode.BOOST):
    """n tracks along one straight path (+z), SPACING_S of flight apart: the stream's
    field is v(s) = sqrt(SPEED^2 + 2 ACCEL s); track k flies at ``speeds[k]``."""
    rows, tracks = StateRows(), []
    for k in range(n):
        trk = Track(key=k, created_ns=T0, last_update_ns=T0)
        trk.mode, trk.status = mode, status
        tau = k * SPACING_S  # ahead of track 0 by this much flight time
        x = np.zeros(N_STATE)
        x[POS] = [R_EQ, 0.0, SPEED * tau + 0.5 * ACCEL * tau**2]
        x[VEL] = [0.0, 0.0, speeds[k]]
        x[ACC] = [0.0, 0.0, ACCEL]
        P = np.diag([100.0**2] * 3 + [100.0**2] * 3 + [10.0**2] * 3)
        rows.append(x, P, trk, False, T0)
        tracks.append(trk)
    return rows, tracks


def _true_speed(k):
    return SPEED + ACCEL * k * SPACING_S


def test_a_sliding_track_is_pulled_to_its_streams_velocity():
    speeds = [_true_speed(k) for k in range(5)]
    speeds[2] = 0.5 * speeds[2]  # a track sliding back along the stream: half the speed
    rows, tracks = _stream(5, speeds)
    before = rows.x[:5].copy()
    assert pull_to_streams(rows, tracks, np.arange(5), FusionConfig()) == 1
    # the others agree with their stream: untouched, to the bit
    for k in (0, 1, 3, 4):
        assert np.array_equal(rows.x[k], before[k])
    # the slider now flies near the stream's speed at its place (neighbours' velocities
    # taken back along the path), not the half it had
    assert abs(rows.x[2, 5] - _true_speed(2)) < 0.1 * _true_speed(2)
    assert np.all(np.linalg.eigvalsh(rows.P[2]) > 0)  # still a covariance


def test_tracks_that_agree_with_their_stream_are_untouched():
    rows, tracks = _stream(5, [_true_speed(k) for k in range(5)])
    before = (rows.x[:5].copy(), rows.P[:5].copy())
    assert pull_to_streams(rows, tracks, np.arange(5), FusionConfig()) == 0
    assert np.array_equal(rows.x[:5], before[0]) and np.array_equal(rows.P[:5], before[1])


def test_no_stream_without_enough_confirmed_boost_neighbours():
    speeds = [_true_speed(0), 0.5 * _true_speed(1)]
    rows, tracks = _stream(2, speeds)  # two tracks: no group of three
    assert pull_to_streams(rows, tracks, np.arange(2), FusionConfig()) == 0
    for status, mode in (
        (TrackStatus.TENTATIVE, Mode.BOOST),
        (TrackStatus.CONFIRMED, Mode.BALLISTIC),
    ):
        speeds = [_true_speed(k) for k in range(5)]
        speeds[2] *= 0.5
        rows, tracks = _stream(5, speeds, status, mode)
        assert pull_to_streams(rows, tracks, np.arange(5), FusionConfig()) == 0
    # off
    rows, tracks = _stream(5, speeds)
    assert pull_to_streams(rows, tracks, np.arange(5), FusionConfig(stream_min_group=0)) == 0


def test_only_tracks_slower_than_their_stream_are_pulled():
    """A wrong majority in a stream is a slow alias (the track born at rest, a spacing
    further back each second): pulling faster tracks down to a group's median spread it.
    A track faster than its stream is left as it is."""
    speeds = [_true_speed(k) for k in range(5)]
    speeds[2] = 1.5 * speeds[2]
    rows, tracks = _stream(5, speeds)
    before = rows.x[:5].copy()
    assert pull_to_streams(rows, tracks, np.arange(5), FusionConfig()) == 0
    assert np.array_equal(rows.x[:5], before)


def test_grouped_medians_equal_numpys_per_group():
    """The padded sort gives each group's median and median absolute deviation
    exactly as numpy does group by group, for groups of 1 to 300 rows (a pad stream's
    range) in any order."""
    rng = np.random.default_rng(7)
    sizes = np.concatenate([[1, 2, 3, 4, 5, 8, 9, 16, 17, 300], rng.integers(1, 120, 40)])
    group = np.repeat(np.arange(sizes.size), sizes)
    rng.shuffle(group)
    vals = rng.normal(0.0, 500.0, (group.size, 6))
    med, mad = _grouped_median(group, vals, sizes.size)
    for k in range(sizes.size):
        v = vals[group == k]
        m = np.median(v, axis=0)
        np.testing.assert_array_equal(med[k], m)
        np.testing.assert_array_equal(mad[k], np.median(np.abs(v - m), axis=0))
