"""The modulo-scheduling model in OR-Tools CP-SAT.

Per op: slot p in [0, II), stage k in [0, K] and start t = II*k + p (linear, II is a constant).
Edges are linear. A reservation of c cycles adds floor(c/II) full turns of constant load and an arc
of c mod II cycles; arcs are laid out on a linear timeline in copies II apart, so that a (cumulative
or no-overlap) constraint there is exactly the modulo constraint (docs/formulation.md). A joint loop
adds roles and the rules of docs/joint-model.md (joint_cpsat.py), fixes one op's slot to 0 ("Anchoring")
and gets a lower bound on II for a whole range at once from a relaxation (joint_range.py).
"""

from __future__ import annotations

import dataclasses
import time

from ortools.sat.python import cp_model

from twill.model.joint import smem_bytes, token_uses
from twill.model.loop import Loop
from twill.model.objectives import objective_value
from twill.model.schedule import Schedule
from twill.solver.backend import Outcome, Query, Settings
from twill.solver.bounds import stage_bound
from twill.solver.cpsat_params import configure
from twill.solver.joint_cpsat import add_joint
from twill.solver.joint_range import RelaxationOutcome, relaxation_bound

ANCHORABLE = frozenset({"handoff_bytes", "ring_slots", "roles"})
STATUS = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "feasible",
          cp_model.INFEASIBLE: "infeasible", cp_model.UNKNOWN: "unknown"}


class CpSatBackend:
    name = "cpsat"

    def __init__(self, settings: Settings = Settings()):
        self.settings = settings

    def solve(self, loop: Loop, query: Query, seconds: float | None) -> Outcome:
        """The query on the exact model. A joint loop is first solved without the order tokens'
        barriers (rule 9), a relaxation: its INFEASIBLE and its bound are proofs, and a schedule it
        returns whose tokens fit is one of the exact model (optimal where it was proven optimal).
        Only when the tokens do not fit is the query solved again with them (token_terms), in the
        time left."""
        if not loop.joint or not token_uses(loop):
            return self._solve(loop, query, seconds, True)
        relaxed = self._solve(loop, query, seconds, False)
        if relaxed.schedule is None or smem_bytes(loop, relaxed.schedule).total <= loop.warps.smem:
            return relaxed
        left = None if seconds is None else max(seconds - relaxed.work, 0.0)
        exact = self._solve(loop, query, left, True)
        return dataclasses.replace(exact, work=exact.work + relaxed.work,
                                   bound=max(exact.bound, relaxed.bound) if exact.bound is not None else relaxed.bound)

    def _solve(self, loop: Loop, query: Query, seconds: float | None, tokens: bool) -> Outcome:
        ii, stages_max = query.ii, stage_bound(loop, query.ii)
        anchor = anchor_op(loop) if anchored(loop, query) else None
        model = cp_model.CpModel()
        slot = [model.new_int_var(0, ii - 1, f"p_{op.name}") for op in loop.ops]
        stage = [model.new_int_var(0, stages_max, f"k_{op.name}") for op in loop.ops]
        start = [ii * k + p for k, p in zip(stage, slot)]

        for e in loop.edges:
            model.add(start[e.dst] - start[e.src] >= e.delay - ii * e.distance)
        joint = add_joint(model, loop, ii, slot, start, stages_max, tokens) if loop.joint else None
        if not add_modulo_resources(model, loop, ii, slot) or (loop.joint and joint is None):
            return Outcome("infeasible", None, None, None, 0.0, stages_max)

        horizon = ii * (stages_max + 1) + max(op.duration for op in loop.ops)
        length = model.new_int_var(0, horizon, "length")
        for op, t in zip(loop.ops, start):
            model.add(length >= t + op.duration)
        stages = model.new_int_var(1, stages_max + 1, "stages")
        for k in stage:
            model.add(stages >= k + 1)
        if anchor is not None:
            model.add(slot[anchor] == 0)
        objectives = {"length": length, "stages": stages, **(joint.objectives if joint else {})}
        for name, value in query.limits:
            model.add(objectives[name] <= value)
        model.minimize(objectives[query.objective])
        if query.hint is not None:
            shift = (-query.hint.starts[anchor]) % ii if anchor is not None else 0  # rotate onto the anchor
            for p, k, t in zip(slot, stage, query.hint.starts):
                model.add_hint(p, (t + shift) % ii)
                model.add_hint(k, min((t + shift) // ii, stages_max))
            if joint and query.hint.roles is not None:
                joint.add_hint(model, loop, query.hint.roles)

        solver = cp_model.CpSolver()
        configure(solver.parameters, self.settings, seconds)

        began = time.perf_counter()
        status = STATUS.get(solver.solve(model), "unknown")
        work = solver.response_proto.deterministic_time if self.settings.deterministic \
            else time.perf_counter() - began
        if status in ("infeasible", "unknown"):
            return Outcome(status, None, None, None, work, stages_max)
        schedule = Schedule(ii, tuple(solver.value(t) for t in start), joint.decode(solver) if joint else None)
        return Outcome(status, schedule, objective_value(loop, schedule, query.objective),
                       int(round(solver.best_objective_bound)), work, stages_max)

    def lower_bound(self, loop: Loop, lo: int, hi: int, seconds: float | None) -> RelaxationOutcome:
        """A proven lower bound on a joint loop's II in [lo, hi] (twill.solver.joint_range)."""
        return relaxation_bound(loop, lo, hi, seconds, self.settings)


def anchored(loop: Loop, query: Query) -> bool:
    """Whether the query may fix one op's slot to 0 (docs/joint-model.md, "Anchoring"): a joint loop
    whose query reads only objectives that do not change when every start moves by one amount.

    Adding one constant to every start keeps every rule (they read differences of starts and residues
    modulo II), the roles and the ring depths; taking the least stages again keeps the slots, stays
    within the stage bound and makes no objective worse. So some optimum of hand-off bytes, ring
    slots or roles has the anchor at slot 0. Not length (it counts from cycle 0, and a length-limited
    query is also slower anchored) and not the pure problem's stages.
    """
    return loop.joint and all(name in ANCHORABLE for name in (query.objective, *(n for n, _ in query.limits)))


def anchor_op(loop: Loop) -> int:
    """The op whose slot is fixed: the longest issue window (it pins its role's timeline most),
    then the longest duration, then the first."""
    return max(range(len(loop.ops)), key=lambda v: (loop.ops[v].issue, loop.ops[v].duration, -v))


def add_modulo_resources(model: cp_model.CpModel, loop: Loop, ii: int, slot) -> bool:
    """Add one cumulative (or no-overlap) per unit; False if full turns alone overload a unit."""
    for unit, capacity in loop.capacity.items():
        intervals, demands, full_turns = [], [], 0
        for i, op in enumerate(loop.ops):
            for n, res in enumerate(op.reservations):
                if res.unit != unit:
                    continue
                turns, arc = divmod(res.cycles, ii)
                full_turns += turns * res.amount
                if arc == 0:
                    continue
                offset = res.offset % ii
                # Arc start is slot + offset in [0, 2*II); copies II apart cover the window [II, 2*II).
                for copy in ((0, 1) if offset == 0 else (-1, 0, 1)):
                    begin = slot[i] + offset + copy * ii
                    intervals.append(model.new_fixed_size_interval_var(begin, arc, f"{op.name}.{n}.{unit}@{copy}"))
                    demands.append(res.amount)
        left = capacity - full_turns
        if left < 0:
            return False
        if not intervals:
            continue
        if left == 1 and all(d == 1 for d in demands):
            model.add_no_overlap(intervals)
        else:
            model.add_cumulative(intervals, demands, left)
    return True

