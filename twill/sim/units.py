"""The functional units as the simulator books them: intervals of use against each unit's capacity."""

from __future__ import annotations

from twill.model.loop import Op


class Units:
    def __init__(self, capacity: dict[str, int]):
        self.capacity = capacity
        self.booked: dict[str, list[tuple[int, int, int]]] = {u: [] for u in capacity}  # (start, end, amount)
        self.busy: dict[str, int] = dict.fromkeys(capacity, 0)                         # unit-cycles booked

    def _conflict(self, unit: str, start: int, end: int, amount: int) -> int | None:
        """A cycle in [start, end) where ``amount`` more would exceed the capacity: the earliest end
        of the intervals in use there (nothing fits over that cycle before it); None if it fits."""
        spans = [(s, e, a) for s, e, a in self.booked[unit] if s < end and e > start]
        for x in sorted({start} | {s for s, _, _ in spans if s > start}):
            here = [(e, a) for s, e, a in spans if s <= x < e]
            if sum(a for _, a in here) + amount > self.capacity[unit]:
                return min(e for e, _ in here)
        return None

    def earliest(self, op: Op, start: int) -> int:
        """The first issue cycle >= ``start`` at which every reservation of ``op`` fits."""
        t = start
        while True:
            for r in op.reservations:
                if not r.cycles:
                    continue
                if r.amount > self.capacity[r.unit]:
                    raise ValueError(f"{op.name} needs {r.amount} of unit {r.unit}, which has {self.capacity[r.unit]}")
                free = self._conflict(r.unit, t + r.offset, t + r.offset + r.cycles, r.amount)
                if free is not None:
                    t = free - r.offset
                    break
            else:
                return t

    def book(self, op: Op, issue: int) -> None:
        for r in op.reservations:
            self.booked[r.unit].append((issue + r.offset, issue + r.offset + r.cycles, r.amount))
            self.busy[r.unit] += r.cycles * r.amount

    def forget_before(self, cycle: int) -> None:
        """Drop intervals that end by ``cycle``: nothing issues before it any more."""
        for unit, spans in self.booked.items():
            self.booked[unit] = [s for s in spans if s[1] > cycle]
