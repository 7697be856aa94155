"""One sensor's duplicate window (:mod:`.ordering`): the accepted sequences it remembers.

The window answers "was this sequence accepted before?" and forgets its oldest entries
in (time_ns, sequence) order (:meth:`SequenceWindow.trim`). It used to be a dict
(sequence -> time) plus a heap of (time, sequence) tuples: ~170 bytes of Python objects
per entry, so at the default 1,024 entries per sensor a 120-sensor raid at 1 Hz grew
by ~1.2 MB a minute for 17 minutes in every process holding an orderer (the engine's
ordering core and the tracking core), and every checkpoint with it.

Here the entries of a well-behaved stream (sequence strictly increasing, time not
decreasing: already in (time, sequence) order) sit in two numpy columns used as a
queue (16 bytes an entry); only an entry that breaks that order goes to the old dict +
heap (``extra``). The oldest entry is the smaller of the queue's head and the heap's
top, so the forgetting order, and with it every status, is exactly the dict + heap's.
"""

from __future__ import annotations

import heapq

import numpy as np

_FIRST_CAPACITY = 16  # entries; doubled as needed, so memory <= 2x the entries held
_INT64 = (-(2**63), 2**63)  # times outside this range go to the extras


class SequenceWindow:
    """Sequences of one sensor's accepted frames (see the module docstring). ``floor``:
    the highest sequence forgotten so far (-1: none)."""

    __slots__ = ("seqs", "times", "lo", "hi", "extra", "heap", "floor")

    def __init__(self) -> None:
        self.seqs = np.zeros(_FIRST_CAPACITY, np.uint64)  # queue [lo, hi): increasing
        self.times = np.zeros(_FIRST_CAPACITY, np.int64)  # its times (ns), not decreasing
        self.lo = self.hi = 0
        self.extra: dict[int, int] = {}  # out-of-order entries: sequence -> time_ns
        self.heap: list[tuple[int, int]] = []  # their (time_ns, sequence), oldest first
        self.floor = -1

    def __len__(self) -> int:
        return self.hi - self.lo + len(self.extra)

    def __contains__(self, sequence: int) -> bool:
        if sequence in self.extra:
            return True
        lo, hi = self.lo, self.hi
        if lo == hi or sequence > int(self.seqs[hi - 1]) or sequence < int(self.seqs[lo]):
            return False
        i = lo + int(np.searchsorted(self.seqs[lo:hi], sequence))
        return int(self.seqs[i]) == sequence

    def is_new(self, sequence: int) -> bool:
        """True when ``sequence`` is neither held nor at or below :attr:`floor` (what an
        orderer asks of every frame, in one call: ``sequence not in self and sequence >
        self.floor``)."""
        if sequence <= self.floor or sequence in self.extra:
            return False
        lo, hi = self.lo, self.hi
        if lo == hi:
            return True
        seqs = self.seqs
        if sequence > int(seqs[hi - 1]) or sequence < int(seqs[lo]):  # a new look: above
            return True
        i = lo + int(np.searchsorted(seqs[lo:hi], sequence))
        return int(seqs[i]) != sequence

    def add(self, sequence: int, time_ns: int) -> None:
        """Remember ``sequence`` (not held yet) accepted with ``time_ns``."""
        lo, hi = self.lo, self.hi
        in_order = lo == hi or (
            sequence > int(self.seqs[hi - 1]) and time_ns >= int(self.times[hi - 1])
        )
        if not in_order or not _INT64[0] <= time_ns < _INT64[1]:
            self.extra[sequence] = time_ns
            heapq.heappush(self.heap, (time_ns, sequence))
            return
        if hi == self.seqs.size:
            self._make_room()
            hi = self.hi
        self.seqs[hi] = sequence
        self.times[hi] = time_ns
        self.hi = hi + 1

    def _make_room(self) -> None:
        """Move the queue to the front, doubling the columns if it fills half of them."""
        n = self.hi - self.lo
        size = self.seqs.size * 2 if 2 * n > self.seqs.size else self.seqs.size
        seqs, times = np.zeros(size, np.uint64), np.zeros(size, np.int64)
        seqs[:n], times[:n] = self.seqs[self.lo : self.hi], self.times[self.lo : self.hi]
        self.seqs, self.times, self.lo, self.hi = seqs, times, 0, n

    def trim(self, cutoff_ns: int, keep: int) -> None:
        """Forget the oldest entries beyond ``keep``, but only those at or before cutoff."""
        if self.hi - self.lo + len(self.extra) <= keep:  # (most calls: nothing to forget)
            return
        while len(self) > keep:
            heap = self.heap
            if self.lo < self.hi:
                head = (int(self.times[self.lo]), int(self.seqs[self.lo]))
                from_queue = not heap or head < heap[0]
            else:
                from_queue = False
            oldest = head if from_queue else heap[0]
            if oldest[0] > cutoff_ns:
                return
            if from_queue:
                self.lo += 1
            else:
                heapq.heappop(heap)
                del self.extra[oldest[1]]
            if oldest[1] > self.floor:
                self.floor = oldest[1]
