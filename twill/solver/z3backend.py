"""The modulo-scheduling model in Z3, linear only (QF_LIA: no mod or div in any formula).

Per op: slot p in [0, II), stage k in [0, K] and start t = II*k + p (linear, II is a constant).
Edges are linear. A reservation of c cycles adds floor(c/II) full turns of constant load to every
slot (taken off the capacity) and an arc of c mod II cycles starting at slot s, where s = p + o or
s = p + o - II with o = offset mod II (a disjunction, s in [0, II)). The load on the circle of slots
is largest at some arc start, so per unit it suffices that at the start of every arc, that arc plus
the other arcs covering the start fit in the capacity left. The objective is minimized by binary
search between a proven lower bound and the best schedule found, one bound at a time under push/pop;
each model is read with the least stages its slots allow (a longest path, no solver). A joint loop
(docs/joint-model.md) adds roles and their rules, also linear (joint_z3.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import z3

from twill.model.graph import longest_paths
from twill.model.loop import Loop
from twill.model.objectives import objective_value
from twill.model.schedule import Schedule
from twill.solver.backend import Outcome, Query, Settings
from twill.solver.bounds import ceil_div, resource_bounds, stage_bound
from twill.solver.joint_z3 import (JOINT_OBJECTIVES, JointVars, add_joint, dense, difference_constraints,
                                   handoff, joint_lower_bound)

# Z3 resource units ("rlimit count") per deterministic second, so that one is about one wall second.
# Measured with the TUNING below on a 2-core x86 machine (z3 5.4.1, one other busy process): random
# loops of 10-40 ops on 3 units solved by the deterministic Z3Backend; per solve, the units it
# reported divided by its wall time. 160 solves (40 loops, II = MII and MII+2, both objectives, 5 s
# each): 6.08e9 units in 310 s; 8 hard 30- and 40-op loops at MII, 30 s each: 4.60e9 units in 155 s.
# Pooled: 10.7e9 units / 465 s = 23e6. The rate grows with the length of a check and varies by loop:
# per solve, 10% to 90% of the ratios lie in 7e6 to 30e6.
RLIMIT_PER_SECOND = 23_000_000

# Z3's "rlimit" and "timeout" are 32-bit counts from the start of each check; larger values wrap.
LIMIT_MAX = 2**32 - 1

# The older arithmetic solver and no relevancy filtering, measured on random 20- to 40-op loops:
# six at MII+1 with 30 s each took 29 s in all instead of 106 s (all six optimal instead of five);
# seven at MII+2 with 20 s each found a schedule for all seven instead of five, shorter ones too.
TUNING = {"smt.arith.solver": 2, "smt.relevancy": 0}


@dataclass(frozen=True)
class Arc:
    """The part of a reservation that does not fill whole turns: ``cycles`` slots from ``start``."""

    start: z3.ArithRef
    cycles: int   # in [1, II)
    amount: int


class Z3Backend:
    name = "z3"

    def __init__(self, settings: Settings = Settings()):
        self.settings = settings

    def solve(self, loop: Loop, query: Query, seconds: float | None) -> Outcome:
        ii, stages_max = query.ii, stage_bound(loop, query.ii)
        ctx = z3.Context()
        solver = z3.Solver(ctx=ctx)
        solver.set("random_seed", self.settings.seed)
        for key, setting in TUNING.items():
            solver.set(key, setting)
        meter = Meter(solver, seconds, self.settings.deterministic)
        slot = [z3.Int(f"p_{op.name}", ctx) for op in loop.ops]
        stage = [z3.Int(f"k_{op.name}", ctx) for op in loop.ops]
        start = [ii * k + p for k, p in zip(stage, slot)]
        for p, k in zip(slot, stage):
            solver.add(0 <= p, p < ii, 0 <= k, k <= stages_max)

        joint = add_joint(solver, loop, ii, slot, start) if loop.joint else None
        add_edges(solver, loop, ii, start, joint)
        if not add_modulo_resources(solver, loop, ii, slot):
            return Outcome("infeasible", None, None, None, meter.used(), stages_max)

        def at_most(name: str, bound: int) -> list[z3.BoolRef]:
            if name == "length":
                return length_at_most(loop, start, bound)
            if name == "stages":
                return [k + 1 <= bound for k in stage]
            if joint is None:
                raise ValueError(f"{name!r} is an objective of joint problems only")
            return [joint.objectives[name] <= bound]

        for name, value in query.limits:
            solver.add(at_most(name, value))

        def least(schedule: Schedule) -> Schedule:
            """Least stages, roles numbered by first op."""
            return earliest(loop, replace(schedule, roles=dense(schedule.roles)) if joint else schedule)

        def read(model: z3.ModelRef) -> Schedule:
            def values(terms: list[z3.ArithRef]) -> tuple[int, ...]:
                return tuple(model.eval(term, model_completion=True).as_long() for term in terms)
            return least(Schedule(ii, values(start), values(joint.role) if joint else None))

        def value(schedule: Schedule) -> int:
            return objective_value(loop, schedule, query.objective)

        if query.hint is not None:
            best = least(query.hint)
        else:
            result = meter.check()
            if result != z3.sat:
                status = "infeasible" if result == z3.unsat else "unknown"
                return Outcome(status, None, None, None, meter.used(), stages_max)
            best = read(solver.model())
        lower = lower_bound(loop, ii, query.objective)
        while lower < value(best):
            middle = (lower + value(best)) // 2
            solver.push()
            solver.add(at_most(query.objective, middle))
            result = meter.check()
            if result == z3.sat:
                best = read(solver.model())
            elif result == z3.unsat:
                lower = middle + 1
            solver.pop()
            if result == z3.unknown:
                break
        status = "optimal" if lower == value(best) else "feasible"
        return Outcome(status, best, value(best), lower, meter.used(), stages_max)


class Meter:
    """This call's budget: wall seconds, or Z3 resource units (rlimit) in deterministic mode."""

    def __init__(self, solver: z3.Solver, seconds: float | None, deterministic: bool):
        self.solver, self.seconds, self.deterministic = solver, seconds, deterministic
        self.began, self.first = time.perf_counter(), rlimit_count(solver)

    def used(self) -> float:
        if self.deterministic:
            return (rlimit_count(self.solver) - self.first) / RLIMIT_PER_SECOND
        return time.perf_counter() - self.began

    def check(self) -> z3.CheckSatResult:
        """A check limited to what is left, run as several if that exceeds what one Z3 limit holds;
        unknown without a check if nothing is left."""
        if self.seconds is None:
            return self.solver.check()
        while True:
            left = self.seconds - self.used()
            limit = int(left * (RLIMIT_PER_SECOND if self.deterministic else 1000))
            if limit < 1:  # 0 would mean no limit to Z3
                return z3.unknown
            self.solver.set("rlimit" if self.deterministic else "timeout", min(limit, LIMIT_MAX))
            result = self.solver.check()
            if result != z3.unknown or limit <= LIMIT_MAX:
                return result


def rlimit_count(solver: z3.Solver) -> int:
    statistics = solver.statistics()
    return statistics.get_key_value("rlimit count") if "rlimit count" in statistics.keys() else 0


def earliest(loop: Loop, schedule: Schedule) -> Schedule:
    """The schedule with the slots (and roles) of ``schedule`` and the least stages, by a longest path
    on the stage differences of its difference constraints (for a joint loop with the ring depths
    of ``schedule`` held, so none grows); no start is later than in ``schedule``, so neither is the
    length nor the stage count (bounds.stage_bound argues the same)."""
    ii, slots = schedule.ii, [schedule.slot(i) for i in range(len(loop.ops))]
    if loop.joint:
        constraints = difference_constraints(loop, schedule)
    else:
        constraints = [(e.src, e.dst, e.delay - ii * e.distance) for e in loop.edges]
    arcs = [(u, v, ceil_div(c - slots[v] + slots[u], ii)) for u, v, c in constraints]
    stages = longest_paths(len(loop.ops), arcs)[0]
    return Schedule(ii, tuple(ii * k + p for k, p in zip(stages, slots)), schedule.roles)


def lower_bound(loop: Loop, ii: int, objective: str) -> int:
    """Cheap proven bounds, valid once some schedule exists (so no edge cycle is positive at ``ii``).

    Every start is at least its longest path from 0 over the edges (ASAP). One iteration alone holds
    at any cycle no more of a unit than the slot it maps to, so it respects each capacity on the plain
    timeline, and all its reservations lie in [0, length): length >= ceil(usage / capacity).
    """
    if objective in JOINT_OBJECTIVES:
        return joint_lower_bound(loop, ii, objective)
    asap = longest_paths(len(loop.ops), [(e.src, e.dst, e.delay - ii * e.distance) for e in loop.edges])[0]
    if objective == "stages":
        return max(asap) // ii + 1
    return max([t + op.duration for t, op in zip(asap, loop.ops)] + [unit.ii for unit in resource_bounds(loop)])


def length_at_most(loop: Loop, start: list[z3.ArithRef], bound: int) -> list[z3.BoolRef]:
    return [t + op.duration <= bound for op, t in zip(loop.ops, start)]


def add_edges(solver: z3.Solver, loop: Loop, ii: int, start: list[z3.ArithRef], joint: JointVars | None) -> None:
    """Rule 1: dependences, with the hand-off of a joint loop's edges that cross roles."""
    for e in loop.edges:
        crossing = handoff(loop, e, joint.role) if joint else 0
        solver.add(start[e.dst] - start[e.src] >= e.delay + crossing - ii * e.distance)


def add_modulo_resources(solver: z3.Solver, loop: Loop, ii: int, slot: list[z3.ArithRef]) -> bool:
    """Per unit, bound the load at every arc start; False if full turns alone overload a unit."""
    for unit, capacity in loop.capacity.items():
        arcs, full_turns = [], 0
        for i, op in enumerate(loop.ops):
            for n, res in enumerate(op.reservations):
                if res.unit != unit:
                    continue
                turns, cycles = divmod(res.cycles, ii)
                full_turns += turns * res.amount
                if cycles:
                    begin = arc_start(solver, slot[i], res.offset % ii, ii, f"s_{op.name}.{n}.{unit}")
                    arcs.append(Arc(begin, cycles, res.amount))
        left = capacity - full_turns
        if left < 0:
            return False
        for arc in arcs:
            ctx = arc.start.ctx
            load = [z3.IntVal(arc.amount, ctx)] + [z3.If(covers(other, arc.start, ii), other.amount, 0)
                                                  for other in arcs if other is not arc]
            solver.add(z3.Sum(load) <= left)
    return True


def arc_start(solver: z3.Solver, slot: z3.ArithRef, offset: int, ii: int, name: str) -> z3.ArithRef:
    """The slot p + offset brought into [0, II); both are below II, so it wraps at most once."""
    if offset == 0:
        return slot
    begin = z3.Int(name, slot.ctx)
    solver.add(0 <= begin, begin < ii, z3.Or(begin == slot + offset, begin == slot + offset - ii))
    return begin


def covers(arc: Arc, x: z3.ArithRef, ii: int) -> z3.BoolRef:
    """Slot ``x`` lies on ``arc``, going round the end of the II if the arc does."""
    d = x - arc.start
    return z3.Or(z3.And(0 <= d, d < arc.cycles), z3.And(d < 0, d + ii < arc.cycles))
