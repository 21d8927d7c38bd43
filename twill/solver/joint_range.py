"""Lower bounds on the joint II from CP-SAT queries with II as a variable (docs/joint-model.md,
"Joint relaxation").

The per-II model (cpsat.py + joint_cpsat.py) treats II as a constant. Here II is a variable in a
range, over a relaxation of the joint problem: starts are plain integers (no slots); rule 2 keeps
only "each unit's load is at most capacity x II" (ResMII), rule 3 only "each role's issue windows
sum to at most II", and rule 6 only what ``d <= II`` implies (``t(u) - II + dur(o) <= t(v) +
II·distance``); the fine pass adds both rules' residue windows near the diagonal (add_apart); rule
8's peak of live registers keeps only the bounds of ``relaxed_register_needs``. Every other rule is
kept exactly: dependences with hand-offs, lifetimes and ring depths (``D(v)·II >= L(v)``, a
product), setmaxnreg, warps, shared and tensor memory, the producer role, the ban and one role for
the ends of ``release: issue`` edges and for an op and the input it overwrites.

Every schedule of the joint problem at an II in [lo, hi] satisfies the relaxation (with the same
starts, roles and depths), so a range of II without a relaxed solution has no schedule, and if
[lo, hi] has none, no II in it has one. Starts are capped at ``hi·(K+1) - 1`` with K =
stage_bound(lo) >= K(II) (twill.solver.bounds), which loses no least-stage schedule.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ortools.sat.python import cp_model

from twill.model.joint import (carries_registers, handoff_cost, held_after_issue, lifetime_terms,
                               register_bytes, register_lifetime_terms, same_role_pairs)
from twill.model.loop import Loop
from twill.solver.backend import Settings
from twill.solver.bounds import stage_bound
from twill.solver.cpsat_params import configure
from twill.model.schedule import Schedule
from twill.solver.joint_cpsat import (RoleDiffer, add_at_least, add_registers, add_roles, dense, flag, gated,
                                      legal_setmaxnreg, lifetime_reach)

STATUS = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "feasible",
          cp_model.INFEASIBLE: "infeasible", cp_model.UNKNOWN: "unknown"}


@dataclass(frozen=True)
class RelaxationOutcome:
    status: str     # "optimal" | "feasible" | "unknown": bound proven; "infeasible": no II in [lo, hi]
    lo: int
    hi: int
    bound: int      # proven: no II in [lo, bound) is feasible (lo when nothing was proven)
    work: float     # seconds (deterministic seconds in deterministic mode)
    # The least relaxed solution found (II, starts, roles): a hint, not necessarily a schedule.
    solution: Schedule | None = None

    def explain(self) -> str:
        proven = "its minimum" if self.status == "optimal" else "its proven bound"
        return (f"joint relaxation with II a variable (per-role issue load, residue windows, hand-offs, "
                f"lifetimes and ring depths, registers, warps, memories): {proven} is {self.bound}")


def relaxation_bound(loop: Loop, lo: int, hi: int, seconds: float | None,
                     settings: Settings = Settings()) -> RelaxationOutcome:
    """A proven lower bound on the least feasible II in [lo, hi] of the joint problem.

    Two passes. The coarse relaxation (no residue windows) minimizes II in one query: fast, and it
    settles loops that registers or warps make infeasible at every II. The fine one (with windows)
    then answers feasibility queries on ranges of II from that bound: CP-SAT's presolve refutes a
    range at once where a minimization crawls (fa-fwd on B200: 3650 in 3-4 s against 3-20 s).
    Ranges of doubling width from that bound (the first is the bound alone, often the optimum)
    until one has a solution, then bisection between the proven bound and the least solution's II. Every INFEASIBLE is a proof, so the bound
    holds whenever the budget ends.
    """
    assert loop.joint and 1 <= lo <= hi
    legal = legal_setmaxnreg(loop)
    longest_issue = max(op.issue for op in loop.ops)
    if not legal or longest_issue > hi:
        return RelaxationOutcome("infeasible", lo, hi, hi + 1, 0.0)
    low = max(lo, longest_issue)  # rule 3: issue(v) <= II
    status, proven, _, work = solve_range(loop, low, hi, legal, seconds, settings, windows=False)
    if status == "infeasible":
        return RelaxationOutcome("infeasible", lo, hi, hi + 1, work)
    best, width = None, 1  # no relaxed solution with II in [low, proven)
    while status != "unknown" and (best is None or proven < best.ii):
        top = min(hi, proven + width - 1) if best is None else (proven + best.ii - 1) // 2
        left = None if seconds is None else seconds - work
        if left is not None and left <= 0:
            break
        status, _, solution, spent = solve_range(loop, proven, top, legal, left, settings, windows=True)
        work += spent
        if status == "infeasible":
            proven, width = top + 1, 2 * width
            if proven > hi:
                return RelaxationOutcome("infeasible", lo, hi, hi + 1, work)
        elif solution is not None:
            best = solution
    status = "optimal" if best is not None and proven == best.ii else "feasible" if best else "unknown"
    return RelaxationOutcome(status, lo, hi, proven, work, best)


def solve_range(loop: Loop, lo: int, hi: int, legal: list[int], seconds: float | None, settings: Settings,
                windows: bool) -> tuple[str, int, Schedule | None, float]:
    """The relaxation with II in [lo, hi], minimizing II without ``windows``: its status, a proven
    bound (lo unless minimized), the solution found (II, starts, roles; not necessarily a schedule)
    and the work spent."""
    model, ii, start, x = build_relaxation(loop, lo, hi, legal, windows)
    if not windows:
        model.minimize(ii)
    solver = cp_model.CpSolver()
    configure(solver.parameters, settings, seconds)
    began = time.perf_counter()
    status = STATUS.get(solver.solve(model), "unknown")
    work = solver.response_proto.deterministic_time if settings.deterministic else time.perf_counter() - began
    if status not in ("optimal", "feasible"):
        return status, lo, None, work
    # The objective bound is proven also when the search stopped early; II is an integer.
    bound = max(lo, math.ceil(solver.best_objective_bound - 1e-6)) if not windows else lo
    roles = dense([next(r for r, b in enumerate(row) if solver.boolean_value(b)) for row in x])
    return status, bound, Schedule(solver.value(ii), tuple(solver.value(t) for t in start), roles), work


def build_relaxation(loop: Loop, lo: int, hi: int, legal: list[int], windows: bool):
    """The relaxation with II in [lo, hi], with the residue windows or not: the model, II, the starts
    and the role booleans."""
    w, ops = loop.warps, loop.ops
    model = cp_model.CpModel()
    K = stage_bound(loop, lo)
    ii = model.new_int_var(lo, hi, "ii")
    start = [model.new_int_var(0, hi * (K + 1) - 1, f"t_{op.name}") for op in ops]
    for t in start:  # least stages: t = II·k + p with k <= K and p < II
        model.add(t <= (K + 1) * ii - 1)

    x, count = add_roles(model, loop)
    differ = RoleDiffer(model, x)
    for r in range(count):  # rule 3, relaxed
        model.add(sum(op.issue * x[v][r] for v, op in enumerate(ops) if op.issue) <= ii)
    for a, b, _ in same_role_pairs(loop):  # rules 7 and 8: one issuer, or the role holding the registers
        model.add(differ(a, b) == 0)
    for unit, capacity in loop.capacity.items():  # rule 2, relaxed
        model.add(loop.usage(unit) <= capacity * ii)
    if windows:
        add_windows(model, loop, ii, start, differ)

    readers: dict[int, list] = {}  # rules 1 and 11
    for e in loop.edges:
        if e.src == e.dst:
            model.add(e.distance * ii >= e.delay)
            continue
        cross = differ(e.src, e.dst)
        model.add(start[e.dst] - start[e.src] >= e.delay + handoff_cost(loop, e) * cross - e.distance * ii)
        if carries_registers(loop, e):
            readers.setdefault(e.src, []).append(cross)
            if not w.cross_role:
                model.add(cross == 0)
    crossing = {v: flag(model, c, f"crossing_{ops[v].name}") for v, c in readers.items()}

    for e in (e for e in loop.edges if e.blocking):  # rule 6, relaxed: d <= II
        for o, op in enumerate(ops):
            if o != e.dst:
                model.add(start[e.src] - ii + op.duration <= start[e.dst] + ii * e.distance).only_enforce_if(
                    ~differ(o, e.dst))

    reach = lifetime_reach(loop, lo, K)  # rule 7 (the depth range of joint_cpsat.add_depths at lo)
    depth = {}
    for v, op in enumerate(ops):
        if not op.has_value and op.depth is None:
            continue
        low, high = (op.depth, op.depth) if op.depth is not None else (1, reach)
        d = depth[v] = model.new_int_var(low, high, f"depth_{op.name}")
        span = model.new_int_var(lo * low, hi * high, f"span_{op.name}")
        model.add_multiplication_equality(span, [ii, d])
        for term in lifetime_terms(loop, ii, start, v, differ):
            model.add(span >= term)

    used = [flag(model, [x[v][r] for v in range(len(ops))], f"used_{r}") for r in range(count)]
    wide = [flag(model, [x[v][r] for v, op in enumerate(ops) if op.warps > 1], f"wide_{r}") for r in range(count)]
    add_registers(model, loop, relaxed_register_needs(model, loop, ii, hi, start, x, reach, differ), used, wide,
                  legal)  # rules 5 and 8
    # rules 9 and 10, relaxed: the rings' bytes without their rounding to blocks and without barriers
    staged = {v: gated(model, depth[v], crossing[v], f"staged_{ops[v].name}") for v in crossing}
    model.add(sum(op.smem * depth[v] for v, op in enumerate(ops) if op.smem)
              + sum(register_bytes(ops[v]) * staged[v] for v in staged) <= w.smem)
    model.add(sum(op.tmem * depth[v] for v, op in enumerate(ops) if op.tmem) <= w.tmem)
    return model, ii, start, x


# The multiples q of II at which add_apart keeps two reservations (or issue windows) apart.
WINDOWS = (-1, 0, 1)


def add_windows(model: cp_model.CpModel, loop: Loop, ii, start, differ: RoleDiffer) -> None:
    """Rules 2 and 3 near the diagonal: two reservations whose amounts exceed their unit's capacity,
    and the issue windows of two ops on one role, share no residue modulo II (add_apart)."""
    ops = loop.ops
    arcs = [(v, r) for v, op in enumerate(ops) for r in op.reservations if r.cycles]
    for i, (u, ru) in enumerate(arcs):
        for v, rv in arcs[i + 1:]:
            if u != v and ru.unit == rv.unit and ru.amount + rv.amount > loop.capacity[ru.unit]:
                add_apart(model, ii, start[u] + ru.offset, ru.cycles, start[v] + rv.offset, rv.cycles, [])
    issuing = [v for v, op in enumerate(ops) if op.issue]
    for i, u in enumerate(issuing):
        for v in issuing[i + 1:]:
            if ops[u].variable_latency == ops[v].variable_latency:  # else never on one role (rule 4)
                add_apart(model, ii, start[u], ops[u].issue, start[v], ops[v].issue, [~differ(u, v)])


def add_apart(model: cp_model.CpModel, ii, a, len_a: int, b, len_b: int, enforce: list) -> None:
    """[a, a + len_a) and [b, b + len_b) share no residue modulo II (when ``enforce`` holds).

    Sharing none means that for every integer q, [b, b + len_b) is disjoint from the copy
    [a + q·II, a + q·II + len_a): b + len_b <= a + q·II or b >= a + q·II + len_a. One boolean per q
    in WINDOWS picks the side; other q are left out, which only weakens the relaxation.
    """
    for q in WINDOWS:
        before = model.new_bool_var(f"before_{q}")
        model.add(b + len_b <= a + q * ii).only_enforce_if([*enforce, before])
        model.add(b >= a + q * ii + len_a).only_enforce_if([*enforce, ~before])


def relaxed_register_needs(model: cp_model.CpModel, loop: Loop, ii, hi: int, start, x, reach: int,
                           differ: RoleDiffer) -> list:
    """Rule 8, relaxed: a role's peak of live register values is at least

    - their average over the modulo timeline (registers x register lifetime summed, over II);
    - each value's own copies at its issue (ceil(L_reg/II)), if it lives at all;
    - what is live at the issue of any op on the role: the op's own value, each value it reads
      (released only after it issues) and the turns a self edge of distance d keeps of a value
      everywhere (L_reg >= d·II).

    Fixed rings count their depth."""
    ops = loop.ops
    free = [v for v, op in enumerate(ops) if op.own_registers and op.depth is None]
    life, copies = {}, {}
    for v in free:
        life[v] = model.new_int_var(0, reach * hi, f"life_{ops[v].name}")
        add_at_least(model, life[v], register_lifetime_terms(loop, ii, start, v, differ))
        copies[v] = model.new_int_var(1, reach, f"copies_{ops[v].name}")
        span = model.new_int_var(0, hi * reach, f"register_span_{ops[v].name}")
        model.add_multiplication_equality(span, [ii, copies[v]])
        model.add(span >= life[v])
    turns = {v: max([0] + [e.distance for e in loop.edges if e.src == e.dst == v]) for v in free}
    points = []  # per op: copies of each free value surely live at its issue when on its role
    for c, op in enumerate(ops):
        live = dict(turns)
        if c in live and op.duration:
            live[c] = max(1, live[c])
        for e in (e for e in loop.edges if e.dst == c != e.src and e.src in live and held_after_issue(loop, e)):
            live[e.src] = max(1, live[e.src])
        points.append((c, live))
    needs = []
    for r in range(len(x[0])):
        fixed = sum(op.own_registers * op.depth * x[v][r] for v, op in enumerate(ops)
                    if op.own_registers and op.depth is not None)
        peak = model.new_int_var(0, sum(ops[v].own_registers * reach for v in free), f"peak_{r}")
        for v in (v for v in free if ops[v].duration):
            model.add(peak >= ops[v].own_registers * copies[v]).only_enforce_if(x[v][r])
        model.add(peak >= sum(ops[v].own_registers * n * x[v][r] for v, n in turns.items()))
        for c, live in points:
            model.add(peak >= sum(ops[v].own_registers * n * x[v][r] for v, n in live.items())).only_enforce_if(x[c][r])
        average = model.new_int_var(0, max(peak.proto.domain) * hi, f"average_{r}")
        model.add_multiplication_equality(average, [ii, peak])
        model.add(average >= sum(ops[v].own_registers * gated(model, life[v], x[v][r], f"held_{ops[v].name}_{r}")
                                 for v in free))
        needs.append(loop.warps.overhead + fixed + peak)
    return needs
