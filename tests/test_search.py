"""The II sweep: golden results, what it may claim under a time limit, and infeasible loops."""

from __future__ import annotations

from pathlib import Path

import pytest

from twill.model.loader import load_spec
from twill.model.loop import Dependence, Loop, Op, Reservation, Warps
from twill.model.objectives import objective_value
from twill.model.schedule import Schedule
from twill.solver.backend import Outcome, Query, Settings
from twill.solver.backends import make_backend
from twill.solver.bounds import every_ii_cap
from twill.solver.joint_range import RelaxationOutcome
from twill.report import headline
from twill.solver.search import InternalError, search
from twill.solver.verify import verify

SPECS = Path(__file__).resolve().parents[1] / "specs"
DETERMINISTIC = Settings(deterministic=True)


def tc(op_name: str, latency: int = 1, cycles: int = 1) -> Op:
    return Op(op_name, latency, (Reservation("tc", 0, cycles, 1),))


@pytest.mark.parametrize("backend", ["cpsat", "z3"])
def test_paper_running_example(backend):
    loop = load_spec(SPECS / "kernels" / "fig1-toy.yaml")
    result = search(loop, make_backend(backend, DETERMINISTIC), 30, DETERMINISTIC)
    assert result.status == "optimal" and result.optimal
    assert result.schedule.ii == 2
    assert [(p.ii, p.through, p.result, p.by) for p in result.proof] == [
        (1, 1, "infeasible", "res_mii"), (2, 2, "feasible", backend)]
    assert verify(loop, result.schedule) == []
    assert [(o.name, o.value, o.optimal) for o in result.objectives] == [("length", 4, True), ("stages", 2, True)]
    s = dict(zip([op.name for op in loop.ops], result.schedule.starts))
    assert (s["O"] - s["S"]) % 2 == 1  # O never shares the tensor core slot with S


class ScriptedBackend:
    """Answers each II from a script, to test what the search concludes from each kind of answer."""

    name = "scripted"

    def __init__(self, answers: dict[int, str], schedules: dict[int, Schedule]):
        self.answers, self.schedules, self.asked = answers, schedules, []

    def solve(self, loop, query: Query, seconds):
        self.asked.append((query.ii, query.objective))
        status = self.answers.get(query.ii, "infeasible")
        schedule = self.schedules.get(query.ii) if status in ("optimal", "feasible") else None
        value = None if schedule is None else objective_value(loop, schedule, query.objective)
        return Outcome(status, schedule, value, value, 0.0, 3)


def chain_loop() -> Loop:
    return Loop("chain", {"tc": 1}, (tc("A"), tc("B")), (Dependence(0, 1, 1, 0),))


def test_undecided_ii_is_never_claimed_optimal():
    loop = chain_loop()  # MII = 2
    backend = ScriptedBackend({2: "unknown", 3: "optimal"}, {3: Schedule(3, (0, 1))})
    result = search(loop, backend, None, DETERMINISTIC)
    assert result.schedule.ii == 3
    assert not result.optimal and result.status == "feasible"
    assert result.lower_bound == 2 and result.undecided == [2]


def test_proven_infeasible_iis_raise_the_lower_bound():
    loop = chain_loop()
    cap = every_ii_cap(loop)
    backend = ScriptedBackend({2: "infeasible", 3: "optimal", cap: "optimal"},
                              {3: Schedule(3, (0, 1)), cap: Schedule(cap, (0, 1))})
    result = search(loop, backend, None, DETERMINISTIC)
    assert result.optimal and result.schedule.ii == 3 and result.lower_bound == 3
    # After the first infeasible II the search checks the every-II cap once, then resumes the sweep.
    assert [ii for ii, objective in backend.asked if objective == "length"] == [2, cap, 3]


class ScriptedRelaxation(ScriptedBackend):
    """A scripted backend with a joint relaxation: proves ``bound`` and offers ``solution`` as a hint;
    every call costs one unit of deterministic work."""

    def __init__(self, answers, schedules, bound: int, solution: Schedule):
        super().__init__(answers, schedules)
        self.bound, self.solution = bound, solution

    def lower_bound(self, loop, lo, hi, seconds):
        return RelaxationOutcome("feasible", lo, hi, self.bound, 0.0, self.solution)

    def solve(self, loop, query, seconds):
        outcome = super().solve(loop, query, seconds)
        return Outcome(outcome.status, outcome.schedule, outcome.value, outcome.bound, 1.0, outcome.stage_bound)


def test_a_timeout_below_the_incumbent_still_reports_the_schedule():
    """Feasible first: the query at the relaxation's solution (II 6) runs before the sweep from the
    proven bound (3); when the budget ends at II 4, the schedule at 6 is reported, not optimal, with
    3..5 undecided."""
    machine = Warps(max_warps=4, warpgroup=4, register_file=65536, max_registers=255, setmaxnreg=(24, 256, 8),
                    overhead=0, smem=1 << 20, tmem=512, mbarrier=5, named=2, transfer_base=0, transfer_per_kb=1)
    loop = Loop("sync", {}, (Op("A", 3, (), warps=4), Op("B", 3, (), warps=4)), (), machine)
    incumbent = Schedule(6, (0, 3), (0, 0))
    backend = ScriptedRelaxation({6: "optimal", 3: "unknown", 4: "unknown"}, {6: incumbent}, 3, incumbent)
    result = search(loop, backend, 3.0, DETERMINISTIC)
    assert [ii for ii, _ in backend.asked][:3] == [6, 3, 4]
    assert result.schedule == incumbent and result.status == "feasible" and not result.optimal
    assert result.lower_bound == 3 and result.undecided == [3, 4, 5]
    assert [(p.ii, p.through, p.result) for p in result.proof if p.by == "scripted"] == [
        (3, 3, "unknown"), (4, 4, "unknown"), (5, 5, "unknown"), (6, 6, "feasible")]
    assert "II 3..5 undecided" in headline(result, False)


def test_exhausted_budget_reports_unknown_with_the_bound():
    result = search(chain_loop(), make_backend("cpsat", DETERMINISTIC), 0.0, DETERMINISTIC)
    assert result.status == "unknown" and result.schedule is None and result.lower_bound == 2


def test_a_backend_returning_an_invalid_schedule_is_caught():
    bad = ScriptedBackend({2: "optimal"}, {2: Schedule(2, (0, 0))})  # A and B collide on tc, B too early
    with pytest.raises(InternalError, match="invalid schedule"):
        search(chain_loop(), bad, None, DETERMINISTIC)


@pytest.mark.parametrize("backend", ["cpsat", "z3"])
def test_infeasible_for_every_ii(backend):
    # A and B must start together (zero-delay cycle) yet share a unit with one instance.
    loop = Loop("locked", {"tc": 1}, (tc("A", 0), tc("B", 0)),
                (Dependence(0, 1, 0, 0), Dependence(1, 0, 0, 0)))
    result = search(loop, make_backend(backend, DETERMINISTIC), 30, DETERMINISTIC)
    assert result.status == "infeasible" and result.schedule is None
    assert result.proof[-1].result == "infeasible" and "every II" in result.proof[-1].detail


@pytest.mark.parametrize("backend", ["cpsat", "z3"])
def test_mii_infeasible_needs_the_solver(backend):
    """MII = 4 by resources, yet no II-4 packing exists: X holds tc at +0 and +2, leaving two slots
    two apart, while Y needs two adjacent slots (+0, +1). The solver must prove II 4 infeasible."""
    x = Op("X", 1, (Reservation("tc", 0, 1, 1), Reservation("tc", 2, 1, 1)))
    y = Op("Y", 1, (Reservation("tc", 0, 2, 1),))
    loop = Loop("packing", {"tc": 1}, (x, y), ())
    result = search(loop, make_backend(backend, DETERMINISTIC), 30, DETERMINISTIC)
    assert result.bounds.mii == 4
    assert [(p.ii, p.result) for p in result.proof][1:] == [(4, "infeasible"), (5, "feasible")]
    assert result.schedule.ii == 5 and result.optimal
    assert verify(loop, result.schedule) == []


def test_shipped_machines_cite_a_source_for_every_unit():
    from twill.model.loader import load_machine
    for name in ("h100", "b200"):
        machine = load_machine(name)
        for unit, spec in machine.units.items():
            assert not isinstance(spec, int) and spec.source and len(spec.source) > 40, (name, unit)


def test_unpipelined_incumbent_places_relaxed_roles_one_iteration_at_a_time():
    """FA backward on H100: a relaxed solution with FA3's roles and issue order (specs/schedules/
    fa3-bwd-h100.yaml), placed with every op in stage 0, gives a valid schedule without a solver."""
    from twill.model.hand_schedule import load_hand_schedule
    from twill.solver.search import _unpipelined

    root = Path(__file__).resolve().parents[1]
    loop = load_spec(root / "specs" / "kernels" / "fa-bwd.yaml")
    fa3 = load_hand_schedule(root / "specs" / "schedules" / "fa3-bwd-h100.yaml", loop).structure
    starts = [0] * len(loop.ops)
    for ops in fa3.role_ops:
        for position, v in enumerate(ops):
            starts[v] = position
    relaxed = Schedule(2560, tuple(starts), fa3.role_of)
    placed = _unpipelined(loop, relaxed, 2560, every_ii_cap(loop))
    assert placed is not None and not verify(loop, placed) and placed.roles == fa3.role_of
    assert 2560 < placed.ii <= 5000 and max(placed.starts) < placed.ii  # one stage: no overlap
