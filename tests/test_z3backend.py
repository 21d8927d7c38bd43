"""The Z3 backend answers every query as CP-SAT does, on small loops that exercise each part of the encoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import z3

from twill.model.loader import load_spec
from twill.model.loop import Dependence, Loop, Op, Reservation
from twill.model.objectives import objective_value
from twill.model.schedule import Schedule
from twill.solver import z3backend
from twill.solver.backend import Query, Settings
from twill.solver.cpsat import CpSatBackend
from twill.solver.z3backend import Z3Backend, add_modulo_resources
from twill.solver.verify import verify

SPECS = Path(__file__).resolve().parents[1] / "specs"
DETERMINISTIC = Settings(deterministic=True)
SECONDS = 10.0


def capacity_two() -> Loop:
    """Four 2-cycle loads and a 1-cycle double-width load on a unit with two instances: ResMII 5."""
    ops = tuple(Op(f"L{i}", 3, (Reservation("ld", 0, 2, 1),)) for i in range(4)) + (
        Op("W", 1, (Reservation("ld", 0, 1, 2),)),)
    edges = (Dependence(0, 1, 1, 0), Dependence(1, 2, 1, 0), Dependence(2, 3, 0, 0),
             Dependence(3, 4, 2, 0), Dependence(4, 0, 1, 1))
    return Loop("capacity-two", {"ld": 2}, ops, edges)


def long_reservations() -> Loop:
    """Offsets beyond II and cycles beyond II: full turns of constant load plus wrapping arcs."""
    ops = (Op("X", 2, (Reservation("u", 5, 7, 1),)),
           Op("Y", 1, (Reservation("u", 4, 3, 1),)),
           Op("Z", 3, (Reservation("u", 0, 1, 2),)))
    edges = (Dependence(0, 1, 1, 0), Dependence(1, 2, 2, 0), Dependence(2, 0, 1, 2))
    return Loop("long-reservations", {"u": 3}, ops, edges)


def multi_unit() -> Loop:
    """Reservation tables spanning several units, each with its own capacity."""
    ops = (Op("Ld", 3, (Reservation("mem", 0, 2, 1),)),
           Op("Mma", 4, (Reservation("tc", 0, 2, 1), Reservation("sfu", 2, 1, 1))),
           Op("Exp", 2, (Reservation("sfu", 0, 1, 1), Reservation("mem", 1, 1, 2))),
           Op("St", 1, (Reservation("mem", 0, 1, 1),)))
    edges = (Dependence(0, 1, 3, 0), Dependence(1, 2, 4, 0), Dependence(2, 3, 2, 0),
             Dependence(1, 1, 2, 1), Dependence(2, 0, 3, 2))
    return Loop("multi-unit", {"tc": 1, "sfu": 1, "mem": 2}, ops, edges)


def wrapping_arc() -> Loop:
    """W holds u at +3 and +4. At II 4 with W first (t = 0) that arc wraps onto slot 0, so V, which
    may start with W, must skip slot 0 (and 3): optimal length 11, where a missed wrap would give 10."""
    ops = (Op("W", 1, (Reservation("u", 3, 2, 1),)), Op("V", 10, (Reservation("u", 0, 1, 1),)))
    return Loop("wrapping-arc", {"u": 1}, ops, (Dependence(0, 1, 0, 0),))


def fig1_toy() -> Loop:
    return load_spec(SPECS / "kernels" / "fig1-toy.yaml")


LOOPS = {  # loop, IIs to compare
    "fig1-toy": (fig1_toy, range(1, 5)),
    "capacity-two": (capacity_two, range(4, 8)),
    "long-reservations": (long_reservations, range(1, 8)),
    "multi-unit": (multi_unit, range(1, 8)),
    "wrapping-arc": (wrapping_arc, range(2, 6)),
}


def solve_both(loop: Loop, query: Query):
    expected = CpSatBackend(DETERMINISTIC).solve(loop, query, SECONDS)
    got = Z3Backend(DETERMINISTIC).solve(loop, query, SECONDS)
    assert expected.status in ("optimal", "infeasible"), "CP-SAT must settle these small queries"
    assert (got.status, got.value) == (expected.status, expected.value), (loop.name, query)
    assert got.stage_bound == expected.stage_bound
    if got.schedule is not None:
        assert verify(loop, got.schedule) == []
        assert got.bound == got.value
        assert got.value == objective_value(loop, got.schedule, query.objective)
    else:
        assert got.bound is None and got.value is None
    return expected, got


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_agrees_with_cpsat(name):
    make, iis = LOOPS[name]
    loop, statuses = make(), set()
    for ii in iis:
        length = solve_both(loop, Query(ii, "length"))[1]
        stages = solve_both(loop, Query(ii, "stages"))[1]
        statuses |= {length.status, stages.status}
        if length.status == "optimal":
            # The search's second level: fix the optimal length and minimize stages from a hint.
            _, fixed = solve_both(loop, Query(ii, "stages", (("length", length.value),), hint=length.schedule))
            assert fixed.schedule.length(loop) <= length.value
    assert statuses == {"optimal", "infeasible"}, "each loop should cover both answers"


def test_paper_running_example():
    loop = fig1_toy()
    assert Z3Backend(DETERMINISTIC).solve(loop, Query(1, "length"), SECONDS).status == "infeasible"
    outcome = Z3Backend(DETERMINISTIC).solve(loop, Query(2, "length"), SECONDS)
    assert (outcome.status, outcome.value) == ("optimal", 4)


def test_wrapping_arc_lengths():
    loop = wrapping_arc()
    lengths = {ii: Z3Backend(DETERMINISTIC).solve(loop, Query(ii, "length"), SECONDS).value for ii in range(2, 6)}
    assert lengths == {2: None, 3: 12, 4: 11, 5: 10}


def test_deterministic_runs_repeat_exactly():
    loop, query = multi_unit(), Query(4, "length")
    first, second = (Z3Backend(Settings(deterministic=True, seed=3)).solve(loop, query, SECONDS) for _ in range(2))
    assert first == second and first.work > 0


def test_no_budget_is_unknown_never_infeasible():
    loop = capacity_two()
    outcome = Z3Backend(DETERMINISTIC).solve(loop, Query(6, "length"), 0.0)
    assert (outcome.status, outcome.schedule, outcome.value, outcome.bound) == ("unknown", None, None, None)


def test_no_budget_returns_the_hint_with_the_cheap_bound():
    loop, hint = fig1_toy(), Schedule(2, (0, 1, 3, 0))  # optimal length 4; ASAP only proves 3
    outcome = Z3Backend(DETERMINISTIC).solve(loop, Query(2, "length", hint=hint), 0.0)
    assert (outcome.status, outcome.schedule, outcome.value, outcome.bound) == ("feasible", hint, 4, 3)


def test_schedules_are_read_with_the_least_stages_for_their_slots():
    loop = fig1_toy()
    late = Schedule(2, (4, 5, 7, 10))  # the hint's slots, a few stages later
    outcome = Z3Backend(DETERMINISTIC).solve(loop, Query(2, "stages", hint=late), 0.0)
    assert outcome.schedule == Schedule(2, (0, 1, 3, 0)) and outcome.status == "optimal"


def test_a_budget_beyond_one_z3_limit_runs_as_several_checks(monkeypatch):
    loop, query = long_reservations(), Query(4, "length")  # its one check needs about 5000 units
    monkeypatch.setattr(z3backend, "LIMIT_MAX", 1000)
    outcome = Z3Backend(DETERMINISTIC).solve(loop, query, 0.001)
    assert outcome.status == "unknown" and outcome.work >= 0.001  # spent it all, not one limit's worth
    monkeypatch.setattr(z3backend, "LIMIT_MAX", 20000)
    outcome = Z3Backend(DETERMINISTIC).solve(loop, query, SECONDS)
    assert (outcome.status, outcome.value) == ("optimal", 12)


def test_resource_formulas_are_linear():
    loop, ii = long_reservations(), 3
    solver = z3.Solver()
    slot = [z3.Int(f"p{i}") for i in range(len(loop.ops))]
    assert add_modulo_resources(solver, loop, ii, slot)
    nonlinear = {z3.Z3_OP_MOD, z3.Z3_OP_DIV, z3.Z3_OP_IDIV, z3.Z3_OP_REM, z3.Z3_OP_MUL}
    todo = list(solver.assertions())
    while todo:
        term = todo.pop()
        kind = term.decl().kind() if z3.is_app(term) else None
        assert kind not in nonlinear or (kind == z3.Z3_OP_MUL and any(z3.is_int_value(a) for a in term.children()))
        todo.extend(term.children())
