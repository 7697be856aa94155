"""FrameOrderer: the fixed ordering rules of DESIGN §6.

The property tests build random per-sensor delivery streams (random latency, so each
sensor's own frames arrive out of order; resends; invalid frames), interleave them in
random ways that keep each sensor's own order, and check that the outcome never
depends on the interleaving and matches an independent per-sensor model of the rules.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tracklayer.fusion.domain import NS_PER_S, FrameStatus, SensorFrame
from tracklayer.fusion.ordering import FrameOrderer

T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z
MS = 1_000_000  # ns
L_S = 6.0  # allowed lateness (s), the FusionConfig default
L_NS = int(L_S * NS_PER_S)
ACC, DUP, LATE, REJ = (
    FrameStatus.ACCEPTED,
    FrameStatus.DUPLICATE,
    FrameStatus.LATE,
    FrameStatus.REJECTED,
)


def mk(sid: str, seq: int, t_ns: int, bad: bool = False) -> SensorFrame:
    """A frame with one detection; ``bad`` gives it a sigma in microradians (REJECTED)."""
    return SensorFrame(
        sensor_id=sid,
        sequence=seq,
        time_ns=t_ns,
        position=[7.4e6, 0.0, 0.0],
        velocity=[0.0, 7.35e3, 0.0],
        los=[[0.0, 0.6, 0.8]],
        sigma=[20.0 if bad else 20e-6],
        intensity=[1.0],
    )


def at(sid: str, seq: int, t_s: float) -> SensorFrame:
    return mk(sid, seq, T0 + int(round(t_s * NS_PER_S)))


@st.composite
def sensor_streams(draw) -> dict[str, list[SensorFrame]]:
    """Per sensor: looks at a fixed rate, delivered in order of time + random latency
    (up to 12 s, beyond the 6 s lateness so some frames are LATE), with resends of
    earlier frames and a few invalid frames mixed in."""
    streams = {}
    for i in range(draw(st.integers(1, 4))):
        sid = f"sat-{i}"
        period = draw(st.sampled_from([500, 1000, 1500])) * MS
        phase = draw(st.sampled_from([0, 250, 500])) * MS  # shared phases -> time ties
        n = draw(st.integers(0, 20))
        lat = draw(st.lists(st.integers(0, 12_000), min_size=n, max_size=n))
        frames = [mk(sid, k, T0 + phase + k * period) for k in range(n)]
        order = sorted(range(n), key=lambda k: (frames[k].time_ns + lat[k] * MS, k))
        stream = [frames[k] for k in order]
        for _ in range(draw(st.integers(0, 3))):  # resends of an earlier delivery
            if stream:
                j = draw(st.integers(0, len(stream) - 1))
                p = draw(st.integers(j + 1, len(stream)))
                stream.insert(p, stream[j])
        for _ in range(draw(st.integers(0, 2))):  # invalid frames with fresh sequences
            p = draw(st.integers(0, len(stream)))
            t = T0 + draw(st.integers(0, 20_000)) * MS
            stream.insert(p, mk(sid, 10_000 + p, t, bad=True))
        streams[sid] = stream
    return streams


@st.composite
def streams_and_interleavings(draw):
    streams = draw(sensor_streams())
    labels = [sid for sid, s in streams.items() for _ in s]
    a = draw(st.permutations(labels))
    b = draw(st.permutations(labels))
    return streams, list(a), list(b)


def run(streams, labels, window=1024, check=None):
    """Feed the interleaving ``labels`` to a fresh orderer expecting every sensor.

    Returns ({(sensor, index in its stream): status}, applied order keys incl. flush)."""
    o = FrameOrderer(L_S, expected=streams, duplicate_window=window)
    pos = dict.fromkeys(streams, 0)
    statuses, applied = {}, []
    for sid in labels:
        f = streams[sid][pos[sid]]
        off = o.offer(f)
        statuses[(sid, pos[sid])] = off.status
        pos[sid] += 1
        applied += [r.order_key for r in off.released]
        if check:
            check(o)
    applied += [r.order_key for r in o.flush()]
    return statuses, applied


def model(streams):
    """Independent per-sensor model of the status rules (window never overflows)."""
    out = {}
    for sid, stream in streams.items():
        seen, latest = set(), None
        for i, f in enumerate(stream):
            if f.sigma[0] > 1e-2:
                out[(sid, i)] = REJ
            elif f.sequence in seen:
                out[(sid, i)] = DUP
            elif latest is not None and f.time_ns <= latest - L_NS:
                out[(sid, i)] = LATE
            else:
                out[(sid, i)] = ACC
                seen.add(f.sequence)
                latest = f.time_ns if latest is None else max(latest, f.time_ns)
    return out


@settings(max_examples=150, deadline=None)
@given(streams_and_interleavings())
def test_any_interleaving_gives_same_statuses_and_applied_sequence(case):
    streams, a, b = case
    assert run(streams, a) == run(streams, b)


@settings(max_examples=150, deadline=None)
@given(streams_and_interleavings())
def test_statuses_follow_the_per_sensor_rules(case):
    streams, a, _ = case
    statuses, _ = run(streams, a)
    assert statuses == model(streams)


@settings(max_examples=150, deadline=None)
@given(streams_and_interleavings())
def test_applied_sequence_is_sorted_and_holds_every_accepted_frame_once(case):
    streams, a, _ = case
    statuses, applied = run(streams, a)
    accepted = sorted(streams[sid][i].order_key for (sid, i), s in statuses.items() if s is ACC)
    assert applied == accepted  # sorted, nothing lost at flush, nothing applied twice


def run_live(streams, labels):
    """Live replay: declare every sensor, open one stream each, close each stream after
    its last frame (at its place in the interleaving); the last close is the flush."""
    o = FrameOrderer(L_S)
    o.declare(streams)
    for sid in streams:
        o.open_stream(sid)
    left = {sid: len(s) for sid, s in streams.items()}
    pos = dict.fromkeys(streams, 0)
    statuses, applied = {}, []
    for sid in [s for s in streams if not left[s]]:
        applied += [r.order_key for r in o.close_stream(sid)]
    for sid in labels:
        off = o.offer(streams[sid][pos[sid]])
        statuses[(sid, pos[sid])] = off.status
        pos[sid] += 1
        applied += [r.order_key for r in off.released]
        left[sid] -= 1
        if not left[sid]:
            applied += [r.order_key for r in o.close_stream(sid)]
    assert o.buffered == 0 and o.expected_sensors == ()  # all closed: flushed
    return statuses, applied


@settings(max_examples=150, deadline=None)
@given(streams_and_interleavings())
def test_streams_closing_one_by_one_give_the_same_result_as_end_of_file(case):
    streams, a, b = case
    assert run_live(streams, a) == run(streams, b)


@settings(max_examples=100, deadline=None)
@given(streams_and_interleavings())
def test_buffer_holds_only_frames_ahead_of_the_watermark(case):
    streams, a, _ = case

    def check(o: FrameOrderer) -> None:
        oldest = o.oldest_buffered_ns
        assert oldest is None or oldest > o.watermark_ns

    run(streams, a, check=check)


@settings(max_examples=100, deadline=None)
@given(streams_and_interleavings(), st.integers(1, 3))
def test_small_duplicate_window_stays_bounded_and_never_applies_a_frame_twice(case, window):
    streams, a, b = case
    # Bound: `window` sequences, plus those within the lateness of the sensor's latest
    # time (at most lateness / period + 1 = 6 / 0.5 + 1 = 13 looks at the fastest rate).
    bound = window + 13

    def check(o: FrameOrderer) -> None:
        for sid in streams:
            assert o.window_size(sid) <= bound

    sa, applied = run(streams, a, window=window, check=check)
    assert run(streams, b, window=window) == (sa, applied)
    ids = [(k[1], k[2]) for k in applied]
    assert len(ids) == len(set(ids))


def test_frame_at_latest_minus_lateness_is_late_and_just_after_is_accepted():
    o = FrameOrderer(L_S, expected=["a"])
    assert o.offer(at("a", 2, 20.0)).status is ACC
    late = o.offer(at("a", 1, 14.0))  # exactly 20 - 6: "at or before" -> LATE
    assert late.status is LATE and late.reason.startswith("time: 6.000 s before")
    assert o.offer(at("a", 3, 14.001)).status is ACC


def test_late_rule_ignores_other_sensors_progress():
    o = FrameOrderer(L_S, expected=["a", "b"])
    o.offer(at("b", 1, 100.0))
    assert o.offer(at("a", 1, 10.0)).status is ACC  # far behind b, but a's first frame


def test_exact_repeat_is_duplicate_and_not_applied_again():
    o = FrameOrderer(L_S, expected=["a"])
    o.offer(at("a", 1, 10.0))
    dup = o.offer(at("a", 1, 10.0))
    assert dup.status is DUP and dup.reason.startswith("sequence: 1")
    assert [f.sequence for f in o.flush()] == [1]


def test_repeat_older_than_duplicate_window_is_late():
    o = FrameOrderer(L_S, expected=["a"], duplicate_window=2)
    for k in range(10):
        o.offer(at("a", k, float(k)))
    assert o.window_size("a") <= 2 + 7  # window + looks within 6 s of the latest (1 Hz)
    # seq 0 was forgotten; even claiming a fresh time it is never applied twice.
    old = o.offer(at("a", 0, 9.5))
    assert old.status is LATE and "duplicate window" in old.reason


def test_rejected_frame_changes_nothing():
    o = FrameOrderer(L_S, expected=["a"])
    o.offer(at("a", 1, 10.0))
    bad = o.offer(mk("a", 2, T0 + 100 * NS_PER_S, bad=True))
    assert bad.status is REJ and bad.reason.startswith("detections[0].angular_sigma")
    assert o.latest_ns("a") == T0 + 10 * NS_PER_S
    assert o.offer(at("a", 2, 5.0)).status is ACC  # seq 2 not burnt, lateness unchanged


def test_time_jump_over_600_s_is_rejected_against_latest_accepted():
    o = FrameOrderer(L_S, expected=["a"])
    o.offer(at("a", 1, 10.0))
    assert o.offer(at("a", 2, 611.0)).status is REJ
    assert o.offer(at("a", 3, 610.0)).status is ACC


def test_declared_sensor_that_sent_nothing_holds_watermark():
    o = FrameOrderer(L_S, expected=["a"])
    o.declare(["b"])
    for k in range(30):
        assert o.offer(at("a", k, float(k))).released == []
    assert o.watermark_ns == -np.inf and o.buffered == 30
    released = o.offer(at("b", 0, 28.0)).released
    assert [f.sequence for f in released] == list(range(23))  # up to 28 - 6 = 22 s


def test_frames_released_in_time_sensor_sequence_order_at_ties():
    o = FrameOrderer(L_S, expected=["b", "a"])
    o.offer(at("b", 7, 1.0))
    o.offer(at("a", 9, 1.0))
    o.offer(at("a", 3, 1.0))
    o.offer(at("a", 10, 10.0))
    rel = o.offer(at("b", 8, 10.0)).released
    assert [(f.sensor_id, f.sequence) for f in rel] == [("a", 3), ("a", 9), ("b", 7)]


def test_closing_a_stream_releases_frames_it_held_back():
    o = FrameOrderer(L_S)
    o.open_stream("a")
    o.open_stream("b")
    o.offer(at("a", 1, 100.0))
    o.offer(at("b", 1, 10.0))
    # b leaves; a alone sets the watermark (100 - 6 s), which passes b's frame (10 s).
    assert o.close_stream("b") == [at("b", 1, 10.0)]
    assert o.watermark_ns == T0 + 94 * NS_PER_S
    assert o.buffered == 1  # a's frame (100 s) waits


def test_last_stream_closed_flushes_everything_in_order():
    o = FrameOrderer(L_S)
    o.open_stream("a")
    o.open_stream("b")
    o.offer(at("a", 1, 3.0))
    o.offer(at("b", 1, 2.0))
    assert o.close_stream("a") == []  # b alone: watermark 2 - 6 s, holds both
    assert o.close_stream("b") == [at("b", 1, 2.0), at("a", 1, 3.0)]
    assert o.buffered == 0


def test_replacing_stream_keeps_sensor_expected():
    o = FrameOrderer(L_S)
    o.open_stream("a")
    o.open_stream("b")
    o.open_stream("a")  # reconnect: new stream opens before the old one is closed
    o.close_stream("a")
    assert o.expected_sensors == ("a", "b")


def test_sensor_outside_expected_set_behind_watermark_is_late():
    o = FrameOrderer(L_S, expected=["a"])
    o.offer(at("a", 1, 100.0))
    o.offer(at("a", 2, 110.0))  # watermark 104 s: frame at 100 s released
    late = o.offer(at("x", 1, 103.0))
    assert late.status is LATE and "not holding" in late.reason
    assert o.offer(at("x", 2, 105.0)).status is ACC
    assert "x" in o.expected_sensors  # an accepted frame brings it into the set


def test_idle_sensor_expires_and_releases_the_watermark():
    o = FrameOrderer(L_S)
    o.open_stream("a", now=0.0)
    o.open_stream("b", now=0.0)
    o.offer(at("a", 1, 1.0), now=1.0)
    o.offer(at("a", 2, 20.0), now=20.0)  # b silent: watermark at -inf
    assert o.expire_idle(now=9.0, timeout_s=10.0) == ([], [])
    expired, released = o.expire_idle(now=20.0, timeout_s=10.0)
    assert expired == ["b"] and [f.sequence for f in released] == [1]
    assert o.offer(at("b", 1, 21.0), now=21.0).status is ACC  # b is back in the set
    assert o.expected_sensors == ("a", "b")


def test_idle_expiry_is_a_function_of_the_calls_only():
    def go():
        o = FrameOrderer(L_S)
        o.declare(["a", "b", "c"], now=0.0)
        o.offer(at("a", 1, 1.0), now=6.0)
        o.offer(at("b", 1, 2.0), now=12.0)
        return o.expire_idle(now=15.5, timeout_s=10.0)

    # c: silent 15.5 s > 10 s; a: 9.5 s; b: 3.5 s. Nothing released: a and b still
    # hold the watermark at 1 - 6 s.
    assert go() == go() == (["c"], [])


def test_sensor_joined_without_a_clock_never_idles_and_idle_check_changes_nothing():
    o = FrameOrderer(L_S, expected=["a"])
    o.open_stream("b", now=100.0)
    assert o.expire_idle(now=105.0, timeout_s=10.0) == ([], [])
    # b's clock still starts at 100 s (the check above changed nothing); a has none.
    assert o.expire_idle(now=1e9, timeout_s=10.0) == (["b"], [])
    assert o.expected_sensors == ("a",)


def test_sensor_back_from_a_long_outage_loses_exactly_one_frame():
    """DESIGN §6 long-outage rule: the jump is measured from the latest *received* time."""
    o = FrameOrderer(L_S, expected=["a"])
    assert o.offer(at("a", 1, 10.0)).status is ACC
    # 25 minutes of silence: the first frame back is a clock jump, the second is not.
    back = o.offer(at("a", 2, 1510.0))
    assert back.status is REJ and back.noted and "600 s" in back.reason
    assert o.received_ns("a") == T0 + 1510 * NS_PER_S and o.latest_ns("a") == T0 + 10 * NS_PER_S
    assert o.offer(at("a", 3, 1511.0)).status is ACC
    assert [o.offer(at("a", k, 1510.0 + k)).status for k in range(4, 9)] == [ACC] * 5


def test_a_lone_bogus_future_time_does_not_hold_back_the_frames_after_it():
    o = FrameOrderer(L_S, expected=["a"])
    o.offer(at("a", 1, 10.0))
    assert o.offer(at("a", 2, 10_000.0)).status is REJ  # one frame with a wrong clock
    assert o.offer(at("a", 3, 11.0)).status is ACC  # not LATE, not a jump
    assert o.received_ns("a") == T0 + 11 * NS_PER_S  # the bogus time is forgotten
    assert o.offer(at("a", 4, 10_001.0)).status is REJ  # a second bogus frame: REJECTED


def test_received_times_replayed_with_note_received_give_the_same_statuses():
    """What a journal keeps (accepted frames + the noted times) rebuilds the same state."""
    bad = mk("a", 2, T0 + 1200 * NS_PER_S, bad=True)  # REJECTED for its sigma, time noted
    frames = [at("a", 1, 10.0), bad, at("a", 3, 1700.0)]
    frames += [at("a", 4, 1701.0), at("a", 5, 3000.0), at("a", 6, 1702.0)]
    live = FrameOrderer(L_S, expected=["a"])
    replayed = FrameOrderer(L_S, expected=["a"])
    statuses = []
    for f in frames:
        offer = live.offer(f)
        statuses.append(offer.status)
        if offer.status is ACC:
            replayed.offer(f)
        elif offer.noted:
            assert replayed.note_received(f.sensor_id, f.time_ns)
        assert replayed.received_ns("a") == live.received_ns("a")
    assert statuses == [ACC, REJ, ACC, ACC, REJ, ACC]
    nxt = at("a", 7, 2302.0)  # 600 s after 1702 but also after the 3000 s bogus frame
    assert live.offer(nxt).status is replayed.offer(nxt).status is ACC
