"""The duplicate window's compact columns (fusion/sequence_window.py).

Checked against an independent model (the dict + heap the window replaced): the same
membership, size and forgotten floor after every step of random streams (in order, out
of order, repeated times, huge sequences), and its memory: a long in-order run at the
default window holds at most twice the entries it keeps, 16 bytes each, whatever the
run's length (the old window grew ~170 bytes an entry for 17 minutes at 1 Hz).
"""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from tracklayer.fusion.ordering import DEFAULT_DUPLICATE_WINDOW, FrameOrderer
from tracklayer.fusion.sequence_window import SequenceWindow

NS = 1_000_000_000


class Model:
    """The former window: sequence -> time, heap of (time, sequence)."""

    def __init__(self) -> None:
        self.times: dict[int, int] = {}
        self.heap: list[tuple[int, int]] = []
        self.floor = -1

    def add(self, seq: int, t: int) -> None:
        self.times[seq] = t
        heapq.heappush(self.heap, (t, seq))

    def trim(self, cutoff: int, keep: int) -> None:
        while len(self.times) > keep and self.heap[0][0] <= cutoff:
            _, seq = heapq.heappop(self.heap)
            del self.times[seq]
            self.floor = max(self.floor, seq)


steps = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 60), st.integers(2**64 - 40, 2**64 - 1)),  # sequence
        st.integers(-20, 40),  # time, s (repeats and going back)
        st.integers(0, 12),  # keep
        st.integers(0, 8),  # lateness, s
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_same_answers_as_the_dict_and_heap(script):
    w, m = SequenceWindow(), Model()
    latest = None
    for seq, t_s, keep, late_s in script:
        assert (seq in w) == (seq in m.times)
        assert w.is_new(seq) == (seq not in m.times and seq > m.floor)
        if seq in m.times or seq <= m.floor:
            continue  # the orderer answers DUPLICATE / LATE: nothing is added
        t = t_s * NS
        latest = t if latest is None else max(latest, t)
        w.add(seq, t)
        m.add(seq, t)
        w.trim(latest - late_s * NS, keep)
        m.trim(latest - late_s * NS, keep)
        assert len(w) == len(m.times) and w.floor == m.floor
        assert all(s in w for s in m.times)


def test_a_long_run_is_bounded_by_the_entries_kept_not_by_its_length():
    """Two hours of one sensor at 1 Hz: the columns never exceed twice the entries
    the window keeps (1,024 + those within the lateness), and nothing spills into the
    per-entry dict; the orderer's count is the window's bound at every step."""
    o = FrameOrderer(6.0, expected=["a"])
    from tracklayer.fusion.domain import SensorFrame

    t0 = 1_767_225_600 * NS
    for k in range(7200):
        f = SensorFrame(
            sensor_id="a", sequence=k, time_ns=t0 + k * NS, position=[7.4e6, 0.0, 0.0],
            velocity=[0.0, 7.35e3, 0.0], los=[[0.0, 0.6, 0.8]], sigma=[20e-6], intensity=[1.0],
        )  # fmt: skip
        o.offer(f)
        assert o.window_size("a") <= DEFAULT_DUPLICATE_WINDOW + 7
    w = o._windows["a"]
    assert not w.extra and not w.heap
    assert w.seqs.nbytes + w.times.nbytes <= 2 * 16 * (DEFAULT_DUPLICATE_WINDOW + 7)
