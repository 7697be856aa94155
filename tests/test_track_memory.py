"""A track's memory does not grow with time while the picture stays the same (issue 13:
RSS flat over 10 minutes of a raid under a proliferated layer).

In a proliferated layer satellites come and go: one object is looked at by one satellite
after another, so a record per satellite that ever updated a track grows for as long as
the track lives. Here one midcourse object is seen by four satellites whose ids change
every ``RELAY_S`` (a relay of satellites, as the layer turns): the picture is fixed,
time and the satellites pass. Each track keeps only the satellites of the last
``SEEN_KEPT_NS`` (what the merge and confirmation tests read) and a count plus a bit set
for its ballistic looks per sensor (the registration's consider term), so its records
stay the same size; the looks-per-sensor figure is the one a per-sensor count gives.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from ballistic_synthetic import ballistic_truth, frames, midcourse_object

from tracklayer.fusion.config import FusionConfig
from tracklayer.fusion.domain import NS_PER_S, SensorFrame, TrackStatus
from tracklayer.fusion.tracker import Tracker
from tracklayer.fusion.tracker.bookkeeping import ballistic_looks, renumbered
from tracklayer.fusion.tracker.lifecycle import Lifecycle
from tracklayer.fusion.tracker.rows import StateRows
from tracklayer.fusion.tracker.track import SEEN_KEPT_NS, Mode, Track

DURATION_S = 300.0
RELAY_S = 20  # each satellite's id changes this often
N_SATS = 4


def _relayed(f: SensorFrame, t0_ns: int) -> SensorFrame:
    """``f`` from the satellite that holds its slot of the relay at its time."""
    relay = (f.time_ns - t0_ns) // (RELAY_S * NS_PER_S)
    return SensorFrame(
        f"{f.sensor_id}-{relay}", f.sequence, f.time_ns, f.position, f.velocity, f.los,
        f.sigma, f.intensity,
    )  # fmt: skip


@pytest.fixture(scope="module")
def relay_run():
    r0, v0 = midcourse_object()
    fr = frames([ballistic_truth(r0, v0, DURATION_S)], DURATION_S, n_sats=N_SATS, seed=7)
    t0 = fr[0].time_ns
    tr = Tracker("mem")
    sensors = set()
    for f in fr:
        f = _relayed(f, t0)
        sensors.add(f.sensor_id)
        tr.process(f)
    return tr, sensors, fr[-1].time_ns


def _the_track(tr: Tracker) -> Track:
    live = [t for t in tr.tracks if t.status == TrackStatus.CONFIRMED and not t.deleted]
    assert len(live) == 1, [(t.key, t.status) for t in tr.tracks]
    return live[0]


def test_a_track_keeps_only_the_satellites_of_the_last_minute(relay_run):
    tr, sensors, t_end = relay_run
    trk = _the_track(tr)
    assert len(sensors) == N_SATS * int(DURATION_S / RELAY_S)  # 60 satellites passed
    # it was updated by (nearly) all of them, but holds those of the last SEEN_KEPT_NS:
    # 4 slots x (60 s / 20 s + the one in progress)
    assert len(trk.sensors_seen) <= N_SATS * (SEEN_KEPT_NS // (RELAY_S * NS_PER_S) + 1)
    assert min(trk.sensors_seen.values()) > t_end - SEEN_KEPT_NS - NS_PER_S
    assert len(trk.sensors_seen) >= N_SATS  # the current ones


def test_a_tracks_ballistic_looks_are_two_integers_whatever_the_satellites(relay_run):
    tr, _, _ = relay_run
    trk = _the_track(tr)
    assert trk.mode == Mode.BALLISTIC
    n_sensors = trk.ballistic_sensors.bit_count()
    assert n_sensors >= 40  # the relay's satellites since burnout
    held = sys.getsizeof(trk.ballistic_looks) + sys.getsizeof(trk.ballistic_sensors)
    assert held < 100  # bytes (a dict of 40 sensors: > 1,000)
    # about one look per second per slot since burnout, over the satellites that made them
    assert 0 < trk.ballistic_looks // n_sensors <= RELAY_S


def _frame(sensor: str) -> SensorFrame:
    return SensorFrame(sensor, 0, 0, np.ones(3), np.zeros(3))


def test_ballistic_looks_per_sensor_equal_a_count_per_sensor():
    rng = np.random.default_rng(3)
    tracks = [Track(key=k, created_ns=0, last_update_ns=0) for k in range(3)]
    counts: list[dict[str, int]] = [{} for _ in tracks]  # the per-sensor model
    bits: dict[str, int] = {}
    for _ in range(2000):
        sensor = f"sat-{int(rng.integers(200))}"
        for t in tracks:
            t.mode = Mode.BALLISTIC if rng.random() < 0.7 else Mode.BOOST
        got = ballistic_looks(tracks, _frame(sensor), bits)
        want = []
        for t, c in zip(tracks, counts, strict=True):
            if t.mode != Mode.BALLISTIC:
                want.append(0)
                continue
            c[sensor] = c.get(sensor, 0) + 1
            want.append(sum(c.values()) // len(c))
        assert got == want
    assert len(bits) == len(set().union(*counts))


def test_a_handed_over_track_counts_its_sensors_in_the_receivers_numbering():
    sender, receiver = ("a", "b", "c", "d"), {"d": 1, "x": 2}
    mask = 0b1101  # a, c, d
    got = renumbered(mask, sender, receiver)
    assert got.bit_count() == 3
    assert {n for n, b in receiver.items() if got & b} == {"a", "c", "d"}
    tr = Tracker("rx")
    trk = Track(key=9, created_ns=0, last_update_ns=0, ballistic_looks=30, ballistic_sensors=mask)
    x, P = np.zeros(9), np.eye(9)
    trk = tr.adopt_track(trk, x, P, 0, 0.0, None, sender)
    assert tr.sensor_names == ("a", "c", "d")
    assert trk.ballistic_sensors == 0b111


def _twins(seen_ns: int) -> tuple[Lifecycle, list[Track]]:
    """Two tracks in the same state, both updated by one look of ``s1`` at ``seen_ns``."""
    rows = StateRows()
    x = np.concatenate([[6.9e6, 0.0, 0.0], [0.0, 7.0e3, 0.0], np.zeros(3)])
    tracks = []
    for k in range(2):
        trk = Track(key=k, created_ns=0, last_update_ns=seen_ns, update_count=5 + k)
        trk.sensors_seen = {"s1": seen_ns}
        rows.append(x.copy(), np.eye(9) * 100.0, trk, False, seen_ns)
        tracks.append(trk)
    return Lifecycle(FusionConfig(), rows), tracks


def test_one_look_resolves_two_tracks_for_a_minute_then_they_merge():
    seen = 1_000 * NS_PER_S
    lc, tracks = _twins(seen)
    lc.merge(tracks, seen + SEEN_KEPT_NS - NS_PER_S)
    assert not any(t.deleted for t in tracks)  # that look told them apart
    lc, tracks = _twins(seen)
    lc.merge(tracks, seen + SEEN_KEPT_NS)
    assert [t.key for t in tracks if t.deleted] == [0]  # the weaker goes
