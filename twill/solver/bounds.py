"""Lower bounds on II with the reason they bind, and the stage bound that makes per-II proofs complete."""

from __future__ import annotations

from dataclasses import dataclass

from twill.model.graph import longest_paths
from twill.model.joint import ceil_div, handoff_cost, has_ring, lifetime_edges, released_after_issue, token_uses
from twill.model.loop import Loop


@dataclass(frozen=True)
class UnitBound:
    unit: str
    usage: int      # unit-cycles per iteration
    capacity: int
    ii: int         # ceil(usage / capacity)

    def explain(self) -> str:
        return f"unit {self.unit}: {self.usage} cycles of work on {self.capacity} instance(s)"


@dataclass(frozen=True)
class RecurrenceBound:
    ops: tuple[str, ...]  # the cycle, in order
    delay: int
    distance: int
    ii: int               # ceil(delay / distance)

    def explain(self) -> str:
        path = " -> ".join(self.ops + self.ops[:1])
        return f"recurrence {path}: delay {self.delay} over distance {self.distance}"


@dataclass(frozen=True)
class Bounds:
    units: tuple[UnitBound, ...]
    recurrence: RecurrenceBound | None  # the binding recurrence, None if the loop has none

    @property
    def res_mii(self) -> int:
        return max((u.ii for u in self.units), default=0)

    @property
    def rec_mii(self) -> int:
        return self.recurrence.ii if self.recurrence else 0

    @property
    def mii(self) -> int:
        return max(self.res_mii, self.rec_mii, 1)

    @property
    def binding_unit(self) -> UnitBound | None:
        return max(self.units, key=lambda u: u.ii, default=None)


def resource_bounds(loop: Loop) -> tuple[UnitBound, ...]:
    return tuple(UnitBound(unit, loop.usage(unit), cap, ceil_div(loop.usage(unit), cap))
                 for unit, cap in loop.capacity.items() if cap > 0 and loop.usage(unit) > 0)


def positive_cycle(loop: Loop, ii: int) -> list[int] | None:
    """Edge indices of a cycle with ``sum(delay - ii * distance) > 0``, or None (ii respects every recurrence)."""
    arcs = [(e.src, e.dst, e.delay - ii * e.distance) for e in loop.edges]
    return longest_paths(len(loop.ops), arcs)[1]


def recurrence_bound(loop: Loop) -> RecurrenceBound | None:
    """RecMII by binary search on II with Bellman-Ford (no cycle enumeration), and its critical cycle."""
    if positive_cycle(loop, 0) is None:
        return None  # no recurrence has positive delay
    lo, hi = 0, sum(e.delay for e in loop.edges)  # a positive cycle at lo, none at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if positive_cycle(loop, mid) is None:
            hi = mid
        else:
            lo = mid
    cycle = [loop.edges[i] for i in positive_cycle(loop, lo)]
    delay, distance = sum(e.delay for e in cycle), sum(e.distance for e in cycle)
    return RecurrenceBound(tuple(loop.ops[e.src].name for e in cycle), delay, distance, hi)


def compute_bounds(loop: Loop) -> Bounds:
    return Bounds(resource_bounds(loop), recurrence_bound(loop))


def stage_bound(loop: Loop, ii: int) -> int:
    """Largest stage index an op needs in *some* schedule at ``ii`` if any schedule exists.

    Write t = ii*k + p with slot p in [0, ii). Resources depend on the slots only; given slots, the
    edges are difference constraints on the stages k with weights at most
    c(e) = ceil((delay - ii*distance + ii - 1) / ii). The least solution (k >= 0) is a longest path,
    which runs along a simple path, so k <= the sum of the largest n-1 positive c(e). The least
    solution also has the smallest starts, so it is as short as any schedule with those slots:
    bounding stages this way loses no schedule, no minimal length and no minimal stage count.
    Joint problems add hand-offs to edge delays and the blocking and lifetime arcs of
    docs/joint-model.md ("Stage bound"), with slots, roles and depths held fixed.
    """
    weights = [ceil_div(max_delay(loop, e) - ii * e.distance + ii - 1, ii) for e in loop.edges]
    if loop.joint:
        weights += joint_arc_weights(loop, ii)
    weights = sorted((max(0, w) for w in weights), reverse=True)
    return sum(weights[: max(len(loop.ops) - 1, 0)])


def max_delay(loop: Loop, edge) -> int:
    """The edge's delay, plus the hand-off it pays if its ends may be on different roles."""
    return edge.delay + (handoff_cost(loop, edge) if loop.joint else 0)


def joint_arc_weights(loop: Loop, ii: int) -> list[int]:
    """Stage weights of the joint problem's other difference constraints (docs/joint-model.md)."""
    weights = []
    for e in (e for e in loop.edges if e.blocking):
        longest = max((op.duration for o, op in enumerate(loop.ops) if o != e.dst), default=0)
        weights.append(ceil_div(longest + ii - 2, ii))
    for v, source in enumerate(loop.ops):
        for e in lifetime_edges(loop, v):
            if source.own_registers and source.depth is None:  # lifetime held, and it covers the hold (delay >= 0)
                weights.append(e.distance + 1)
            elif has_ring(loop, v):  # lifetime arc back from the consumer
                hold = released_after_issue(loop, e, e.src != e.dst and e.release != "issue")
                weights.append(e.distance + ceil_div(hold + ii - 1, ii) - 1)
    for holds, _ in token_uses(loop).values():  # an order token's distance held: a -> b, t(b) - t(a) >=
        # offset(a) - offset(b) + 1 - slots·II with slots >= 1
        weights += [ceil_div(off_a - off_b, ii) for a, off_a in holds for b, off_b in holds if a != b]
    return weights


def every_ii_cap(loop: Loop) -> int:
    """An II at which iterations cannot interact, so infeasible there means infeasible for every II.

    Any schedule of one iteration can be compacted (closing idle gaps) until each op starts within
    the sum of the ops' windows max(duration, out-going delays); beyond that plus the longest
    duration and delay, neither resources nor loop-carried edges can couple iterations.
    """
    window = [op.duration for op in loop.ops]
    for e in loop.edges:
        window[e.src] = max(window[e.src], max_delay(loop, e))
    longest_duration = max(op.duration for op in loop.ops)
    longest_delay = max((max_delay(loop, e) for e in loop.edges), default=0)
    return sum(window) + longest_duration + longest_delay + 1
