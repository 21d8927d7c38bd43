"""Timed mbarriers for the simulator: the hardware phase/parity protocol, with arrival times.

A barrier expects ``count`` arrivals per phase; its phase number advances when the ``count``-th
pending arrival lands. Arrivals are recorded with the cycle they land at (the simulator learns of
them out of time order), so the phase at cycle T is ``(arrivals landed by T) // count``.
``try_wait.parity(P)`` at T succeeds iff the current phase's parity differs from P: the phase with
parity P has completed (a fresh barrier, phase 0, satisfies parity 1). Nothing here knows about
items or slots, so an arrival for the wrong item, or two phases completed before a waiter looks,
shows up as on the hardware: a wait that passes early or never.
"""

from __future__ import annotations

from bisect import bisect_right, insort


class Barrier:
    def __init__(self, count: int):
        self.count = count
        self.arrivals: list[int] = []   # landing cycles, sorted

    def arrive(self, cycle: int) -> None:
        insort(self.arrivals, cycle)

    def phase(self, cycle: int) -> int:
        """Completed phases at ``cycle`` (arrivals landing at ``cycle`` count)."""
        return bisect_right(self.arrivals, cycle) // self.count

    def passes(self, parity: int, start: int) -> int | None:
        """The first cycle >= ``start`` at which ``try_wait.parity(parity)`` succeeds, from the
        arrivals known so far; None if they never make it succeed."""
        done = self.phase(start)
        if done & 1 != parity:
            return start
        needed = (done + 1) * self.count   # arrivals that complete the next phase
        return self.arrivals[needed - 1] if len(self.arrivals) >= needed else None
