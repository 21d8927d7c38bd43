"""Find the smallest II and prove it: bounds below MII (and, for joint loops, a relaxation above it),
the solver from there up, then each objective level of twill.model.objectives.levels in turn."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from twill.model.loop import Loop
from twill.model.objectives import levels, objective_value
from twill.model.placement import Structure, feasible_range, place, schedule_of, structure_arcs
from twill.model.schedule import Schedule
from twill.solver.backend import Backend, Outcome, Query, Settings
from twill.solver.bounds import Bounds, compute_bounds, every_ii_cap
from twill.solver.verify import verify

# Share of the remaining budget one II may use before the sweep moves on (the rest finds a schedule).
II_SHARE = 0.75


@dataclass(frozen=True)
class ProofStep:
    ii: int
    through: int          # the step covers every II in [ii, through]
    result: str           # "infeasible" | "feasible" | "unknown"
    by: str               # "res_mii" | "rec_mii" | a backend name
    detail: str


@dataclass(frozen=True)
class ObjectiveResult:
    name: str             # an objective of twill.model.objectives.levels
    value: int
    optimal: bool
    bound: int            # proven lower bound (== value when optimal)


@dataclass
class SearchResult:
    loop: Loop
    bounds: Bounds
    backend: str
    schedule: Schedule | None = None
    lower_bound: int = 1  # every II below this is proven infeasible
    infeasible: bool = False  # proven: no II works
    proof: list[ProofStep] = field(default_factory=list)
    objectives: list[ObjectiveResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def optimal(self) -> bool:
        return self.schedule is not None and self.schedule.ii == self.lower_bound

    @property
    def status(self) -> str:
        if self.schedule is not None:
            return "optimal" if self.optimal else "feasible"
        return "infeasible" if self.infeasible else "unknown"

    @property
    def undecided(self) -> list[int]:
        return [ii for step in self.proof if step.result == "unknown" for ii in range(step.ii, step.through + 1)]


class Budget:
    """Time left for solver calls: wall seconds, or the backends' own work units when deterministic."""

    def __init__(self, seconds: float | None, deterministic: bool):
        self.limit, self.deterministic = seconds, deterministic
        self.began, self.used = time.perf_counter(), 0.0

    def charge(self, outcome: Outcome) -> None:
        self.used += outcome.work

    def remaining(self) -> float | None:
        if self.limit is None:
            return None
        spent = self.used if self.deterministic else time.perf_counter() - self.began
        return max(self.limit - spent, 0.0)

    def share(self, fraction: float) -> float | None:
        left = self.remaining()
        return None if left is None else left * fraction

    @property
    def exhausted(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0


class InternalError(RuntimeError):
    """A backend returned a schedule the independent verifier rejects: a bug, never bad input."""


def checked(loop: Loop, backend: Backend, outcome: Outcome) -> Outcome:
    if outcome.schedule is not None:
        violations = verify(loop, outcome.schedule)
        if violations:
            raise InternalError(f"{backend.name} returned an invalid schedule: {violations[0].message}")
    return outcome


def bound_steps(bounds: Bounds) -> list[ProofStep]:
    """Every II below MII is infeasible by the larger of the two bounds."""
    if bounds.mii <= 1:
        return []
    if bounds.rec_mii >= bounds.res_mii:
        return [ProofStep(1, bounds.mii - 1, "infeasible", "rec_mii", bounds.recurrence.explain())]
    return [ProofStep(1, bounds.mii - 1, "infeasible", "res_mii", bounds.binding_unit.explain())]


def search(loop: Loop, backend: Backend, seconds: float | None = None,
           settings: Settings = Settings()) -> SearchResult:
    """Sweep II upward from MII; the first feasible II is optimal when every smaller one is proven infeasible.

    The query at each II minimizes the first objective level, so the first feasible answer also
    settles that level. A backend with ``lower_bound`` (CP-SAT) first proves a range of II
    infeasible at once for a joint loop (twill.solver.joint_range), and the sweep starts above it.
    """
    budget = Budget(seconds, settings.deterministic)
    bounds = compute_bounds(loop)
    result = SearchResult(loop, bounds, backend.name, lower_bound=bounds.mii, proof=bound_steps(bounds))
    first = levels(loop)[0]
    cap, cap_checked = every_ii_cap(loop), False
    ii, found, hint, incumbent = bounds.mii, None, None, None
    relaxed = getattr(backend, "lower_bound", None)
    if loop.joint and relaxed is not None and ii < cap:
        ii, hint = _relaxation_steps(loop, relaxed, budget, ii, cap, result)
        if result.infeasible:
            result.seconds = time.perf_counter() - budget.began
            return result
        if hint is not None and hint.ii > ii:  # feasible first: a schedule before the sweep closes the gap
            incumbent = _incumbent(loop, backend, budget, hint, first, INCUMBENT_SHARE)
        if incumbent is None and hint is not None:  # or the relaxed roles and order, one iteration at a time
            unpipelined = _unpipelined(loop, hint, ii, cap)
            if unpipelined is not None:
                incumbent = _incumbent(loop, backend, budget, unpipelined, first, CONFIRM_SHARE)
    while found is None and not budget.exhausted:
        if incumbent is not None and ii == incumbent.schedule.ii:
            result.proof.append(ProofStep(ii, ii, "feasible", backend.name, f"stage bound {incumbent.stage_bound}"))
            found = incumbent
            break
        query = Query(ii, first, hint=hint if hint is not None and hint.ii == ii else None)
        outcome = checked(loop, backend, backend.solve(loop, query, budget.share(II_SHARE)))
        budget.charge(outcome)
        detail = f"stage bound {outcome.stage_bound}"
        if outcome.status == "infeasible":
            result.proof.append(ProofStep(ii, ii, "infeasible", backend.name, detail))
            if result.lower_bound == ii:
                result.lower_bound = ii + 1
            if not cap_checked and ii < cap:
                cap_checked = True
                if _infeasible_for_every_ii(loop, backend, budget, cap, result):
                    break
            ii += 1
        elif outcome.status == "unknown":
            result.proof.append(ProofStep(ii, ii, "unknown", backend.name, detail + "; budget ran out"))
            ii += 1
        else:
            result.proof.append(ProofStep(ii, ii, "feasible", backend.name, detail))
            found = outcome
    if found is None and incumbent is not None:  # the budget ran out below the incumbent's II
        best = incumbent.schedule.ii
        if ii < best:
            result.proof.append(ProofStep(ii, best - 1, "unknown", backend.name, "not tried: budget ran out"))
        result.proof.append(ProofStep(best, best, "feasible", backend.name, f"stage bound {incumbent.stage_bound}"))
        found = incumbent
    if found is not None:
        _optimize_levels(loop, backend, budget, found, result)
    result.seconds = time.perf_counter() - budget.began
    return result


# Share of the budget the joint relaxation may use (its bound is proven even when it stops early).
RELAXATION_SHARE = 0.25


def _relaxation_steps(loop: Loop, relaxed, budget: Budget, mii: int, cap: int,
                      result: SearchResult) -> tuple[int, Schedule | None]:
    """Prove [MII, bound) infeasible with the joint relaxation; the II the sweep starts from, and the
    least relaxed solution found (a hint: not necessarily a schedule)."""
    outcome = relaxed(loop, mii, cap, budget.share(RELAXATION_SHARE))
    budget.charge(outcome)
    if outcome.status == "infeasible":
        # Every II up to cap is infeasible, cap included, and infeasible at cap is for every II.
        result.proof.append(ProofStep(mii, cap, "infeasible", "joint_relaxation",
                                      "the joint relaxation has no schedule at any II up to the point where "
                                      "iterations cannot overlap, so every II is infeasible"))
        result.lower_bound, result.infeasible = cap + 1, True
        return cap + 1, None
    if outcome.bound > mii:
        result.proof.append(ProofStep(mii, outcome.bound - 1, "infeasible", "joint_relaxation", outcome.explain()))
        result.lower_bound = outcome.bound
    return outcome.bound, outcome.solution


# Share of the remaining budget for the incumbent: one schedule before the sweep proves the IIs below it.
INCUMBENT_SHARE = 0.25
# Share for confirming a placed schedule: the hint is a whole schedule, which CP-SAT takes within a
# second on FA backward; the rest of the query would only improve its hand-off bytes at a high II.
CONFIRM_SHARE = 0.05


def _incumbent(loop: Loop, backend: Backend, budget: Budget, hint: Schedule, first: str,
               share: float) -> Outcome | None:
    """A schedule at the II of ``hint`` (a relaxed solution or a placed schedule), or None."""
    outcome = checked(loop, backend, backend.solve(loop, Query(hint.ii, first, hint=hint), budget.share(share)))
    budget.charge(outcome)
    return outcome if outcome.schedule is not None else None


# IIs probed evenly between the unpipelined structure's least II and the cap, then bisected below the first fit.
UNPIPELINED_PROBES = 64


def _unpipelined(loop: Loop, relaxed: Schedule, lo: int, cap: int) -> Schedule | None:
    """A schedule with the relaxed solution's roles, each role issuing its ops in the relaxed start
    order and every op in stage 0 (no iteration overlaps the next), placed without a solver
    (twill.model.placement) at a low II where it verifies, or None. Only a hint: no II is judged."""
    n = len(loop.ops)
    s = Structure(tuple(map(str, sorted(set(relaxed.roles)))),
                  tuple(tuple(sorted((v for v in range(n) if relaxed.roles[v] == r), key=lambda v: relaxed.starts[v]))
                        for r in sorted(set(relaxed.roles))), (0,) * n)
    arcs = structure_arcs(loop, s)
    span = feasible_range(loop, s, arcs)
    if span.empty:
        return None
    low, high = max(span.low, lo), min(cap, span.high if span.high is not None else cap)

    def fits(ii: int) -> Schedule | None:
        placement = place(loop, s, ii, arcs)
        if placement.starts is None:
            return None
        schedule = schedule_of(s, placement)
        return None if verify(loop, schedule) else schedule

    step = max(1, (high - low) // UNPIPELINED_PROBES)
    below, best = low - 1, None
    for ii in range(low, high + 1, step):
        best = fits(ii)
        if best is not None:
            break
        below = ii
    while best is not None and best.ii - below > 1:
        mid = (below + best.ii) // 2
        placed = fits(mid)
        below, best = (mid, best) if placed is None else (below, placed)
    return best


def _infeasible_for_every_ii(loop: Loop, backend: Backend, budget: Budget, cap: int,
                             result: SearchResult) -> bool:
    """At ``cap`` iterations cannot interact: infeasible there proves infeasible for every II."""
    query = Query(cap, levels(loop)[0])
    outcome = checked(loop, backend, backend.solve(loop, query, budget.share(II_SHARE)))
    budget.charge(outcome)
    if outcome.status != "infeasible":
        return False
    result.proof.append(ProofStep(cap, cap, "infeasible", backend.name,
                                  "iterations cannot overlap at this II: one iteration alone cannot be "
                                  "scheduled, so every II is infeasible"))
    result.infeasible = True
    return True


def _optimize_levels(loop: Loop, backend: Backend, budget: Budget, found: Outcome,
                     result: SearchResult) -> None:
    """The first level was minimized with the II; fix each level at its value and minimize the next."""
    first, *rest = levels(loop)
    result.objectives.append(ObjectiveResult(first, found.value, found.status == "optimal", found.bound))
    best, limits = found.schedule, [(first, found.value)]
    for name in rest:
        outcome = checked(loop, backend, backend.solve(
            loop, Query(best.ii, name, tuple(limits), hint=best), budget.remaining()))
        budget.charge(outcome)
        if outcome.schedule is None:  # budget ran out before even the hint was confirmed
            value, bound, optimal = objective_value(loop, best, name), 0, False
        else:
            best, value, bound, optimal = outcome.schedule, outcome.value, outcome.bound, outcome.status == "optimal"
        result.objectives.append(ObjectiveResult(name, value, optimal, bound))
        limits.append((name, value))
    result.schedule = best
