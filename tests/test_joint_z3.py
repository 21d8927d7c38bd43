"""The Z3 backend on the joint problem: hand-derived answers for each rule of docs/joint-model.md,
the least-stage reading of joint models, linear formulas, and agreement with CP-SAT level by level.

The machine mirrors tests/joint/machine.yaml: warpgroups of 4, 65536 registers, setmaxnreg
[24, 256, step 8], 16 registers of overhead, 232448 bytes of shared memory, hand-offs of 20 cycles
(mbarrier) plus 60 + 16 per KiB for a register value.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import z3

from twill.model.joint import THREADS_PER_WARP
from twill.model.loop import Dependence, Loop, Op, Reservation, Warps
from twill.model.objectives import JOINT_LEVELS, objective_value
from twill.model.schedule import Schedule
from twill.solver.backend import Query, Settings
from twill.solver.cpsat import CpSatBackend
from twill.solver.joint_z3 import add_joint
from twill.solver.verify import verify
from twill.solver.z3backend import Z3Backend, add_edges

DETERMINISTIC = Settings(deterministic=True)
SECONDS = 20.0
TOY = Warps(max_warps=16, warpgroup=4, register_file=65536, max_registers=255, setmaxnreg=(24, 256, 8),
            overhead=16, smem=232448, tmem=512, mbarrier=20, named=10, transfer_base=60, transfer_per_kb=16)
UNITS = {"tc": 1, "tma": 1, "sfu": 1, "alu": 1}


def on(unit: str) -> tuple[Reservation, ...]:
    return (Reservation(unit, 0, 1, 1),)


def pair(registers: int = 0, cross_role: bool = True) -> Loop:
    """A -> B, each synchronous for 10 cycles: below II 20 one role cannot issue both."""
    ops = (Op("A", 10, on("alu"), registers=registers), Op("B", 10, on("sfu")))
    return Loop("pair", UNITS, ops, (Dependence(0, 1, 10, 0),), replace(TOY, cross_role=cross_role))


def ring() -> Loop:
    """A TMA load into a 64 KiB ring, consumed by a warpgroup MMA 70 cycles later at the earliest."""
    ops = (Op("load", 50, on("tma"), issue_cycles=1, variable_latency=True, smem=65536),
           Op("mma", 30, on("tc"), issue_cycles=1, warps=4))
    return Loop("ring", UNITS, ops, (Dependence(0, 1, 50, 0),), TOY)


def wide(registers: int, max_warps: int = 16) -> Loop:
    """Three synchronous 6-cycle warpgroup ops: at II 10 no two share a role."""
    ops = tuple(Op(f"W{i}", 6, on(unit), warps=4, registers=registers) for i, unit in enumerate(("tc", "sfu", "alu")))
    return Loop("wide", UNITS, ops, (), replace(TOY, max_warps=max_warps))


def singles(register_file: int, max_warps: int = 16) -> Loop:
    """Five synchronous 10-cycle single-warp ops holding 100 registers each."""
    ops = tuple(Op(f"S{i}", 10, (), registers=100) for i in range(5))
    return Loop("singles", {}, ops, (), replace(TOY, register_file=register_file, max_warps=max_warps))


def drain(blocking: bool = True) -> Loop:
    """X (async, 30 cycles) -> U -> V with U -> V blocking: V waits for X if it shares X's role."""
    ops = (Op("X", 30, on("tc"), issue_cycles=1), Op("U", 2, on("alu")), Op("V", 1, on("sfu")))
    edges = (Dependence(0, 1, 0, 0), Dependence(1, 2, 2, 0, blocking=blocking))
    return Loop("drain", UNITS, ops, edges, TOY)


def producer() -> Loop:
    """Two variable-latency loads feeding one consumer."""
    ops = (Op("L0", 8, on("tma"), issue_cycles=1, variable_latency=True, smem=1024),
           Op("L1", 8, on("tma"), issue_cycles=1, variable_latency=True, smem=1024),
           Op("C", 4, on("tc"), issue_cycles=1))
    return Loop("producer", UNITS, ops, (Dependence(0, 2, 8, 0), Dependence(1, 2, 8, 0)), TOY)


def solve(loop: Loop, ii: int, objective: str = "length", limits=(), hint=None, seconds=SECONDS):
    """A Z3 outcome, with every returned schedule verified and its roles numbered by first op."""
    outcome = Z3Backend(DETERMINISTIC).solve(loop, Query(ii, objective, tuple(limits), hint), seconds)
    if outcome.schedule is not None:
        assert verify(loop, outcome.schedule) == []
        assert outcome.value == objective_value(loop, outcome.schedule, objective)
        roles = outcome.schedule.roles
        assert sorted(set(roles)) == list(range(len(set(roles)))) and roles[0] == 0
        assert all(max(roles[:i], default=-1) + 1 >= r for i, r in enumerate(roles))
    return outcome


def optimum(loop: Loop, ii: int, objective: str = "length", limits=()):
    outcome = solve(loop, ii, objective, limits)
    assert outcome.status in ("optimal", "infeasible")
    return outcome.value


def test_colliding_issue_windows_split_roles_and_pay_the_handoff():
    loop = pair()
    assert {ii: optimum(loop, ii) for ii in (9, 10, 19, 20)} == {9: None, 10: 40, 19: 40, 20: 20}
    assert optimum(loop, 10, "roles", [("length", 40)]) == 2
    assert optimum(loop, 20, "roles", [("length", 20)]) == 1


def test_register_values_pay_the_transfer_unless_banned():
    loop = pair(registers=8)  # 8 x 4 x 32 = 1 KiB: 20 + 60 + 16 cycles
    assert optimum(loop, 10) == 116
    assert optimum(loop, 10, "handoff_bytes", [("length", 116)]) == 1024
    banned = pair(registers=8, cross_role=False)
    assert (optimum(banned, 10), optimum(banned, 19), optimum(banned, 20)) == (None, None, 20)


def test_shared_memory_ring_depth_bounds_the_ii():
    # The load lives 50 + 20 + 30 cycles, plus 20 for the mma's release to reach the producer: 120
    # cycles. 3 slots of 64 KiB fit, 4 do not.
    loop = ring()
    assert optimum(loop, 39) is None
    assert optimum(loop, 40) == 100
    assert optimum(loop, 40, "ring_slots", [("length", 100)]) == 3


def test_register_file_and_warps_limit_warpgroup_roles():
    # One role each: need 16 + 150 = 166 -> setmaxnreg 168, and 3 x 168 x 128 <= 65536; 176 x 3 x 128 is not.
    assert optimum(wide(150), 10, "roles") == 3
    assert optimum(wide(160), 10) is None
    assert optimum(wide(150, max_warps=8), 10) is None


def test_single_warp_roles_share_warpgroups_and_one_setmaxnreg():
    per_group = 4 * THREADS_PER_WARP
    # II 10: five roles in two packed warpgroups, each need 116 -> 120 registers per thread.
    assert optimum(singles(2 * 120 * per_group), 10, "roles") == 5
    assert optimum(singles(2 * 120 * per_group - 1), 10) is None
    assert optimum(singles(2 * 120 * per_group, max_warps=4), 10) is None
    # II 20: two ops per role (need 216), three roles in one warpgroup.
    assert optimum(singles(2 * 120 * per_group - 1), 20, "roles") == 3


def test_blocking_edge_drains_older_work_of_the_waiting_role():
    loop = drain()
    assert optimum(loop, 40) == 30
    assert optimum(loop, 40, "roles", [("length", 30)]) == 2
    assert optimum(loop, 40, "length", [("roles", 1)]) == 31  # V waits for X, issued before U
    assert optimum(drain(blocking=False), 40, "roles", [("length", 30)]) == 1


def test_variable_latency_ops_share_a_dedicated_producer():
    loop = producer()  # loads at 0 and 1, the consumer 8 + 20 cycles after the second
    outcome = solve(loop, 4, "roles", [("length", 33)])
    assert (outcome.status, outcome.value) == ("optimal", 2)
    assert outcome.schedule.roles == (0, 0, 1)
    assert optimum(loop, 4) == 33


def test_least_stages_keep_the_ring_depth_of_the_model():
    # L's single fixed slot must hold its value until C completes: L cannot move before stage 1.
    ops = (Op("Y", 1, on("alu"), issue_cycles=1), Op("L", 1, on("tma"), issue_cycles=1, smem=512, depth=1),
           Op("C", 20, on("tc"), issue_cycles=1))
    loop = Loop("fixed-depth", UNITS, ops, (Dependence(0, 2, 50, 0), Dependence(1, 2, 1, 0)), TOY)
    late = Schedule(60, (60, 125, 130), (3, 3, 3))
    assert verify(loop, late) == []
    outcome = solve(loop, 60, hint=late, seconds=0.0)
    assert outcome.schedule == Schedule(60, (0, 65, 70), (0, 0, 0))
    assert optimum(loop, 60) == 70


def test_joint_objectives_need_a_joint_loop():
    loop = Loop("pure", UNITS, (Op("A", 1, on("alu")),), ())
    with pytest.raises(ValueError, match="joint"):
        Z3Backend(DETERMINISTIC).solve(loop, Query(1, "length", (("roles", 1),)), SECONDS)


def test_joint_formulas_are_linear():
    loop = replace(drain(), ops=drain().ops + producer().ops[:1], warps=replace(TOY, cross_role=False))
    ii, solver = 40, z3.Solver()
    slot = [z3.Int(f"p{i}") for i in range(len(loop.ops))]
    start = [ii * z3.Int(f"k{i}") + p for i, p in enumerate(slot)]
    add_edges(solver, loop, ii, start, add_joint(solver, loop, ii, slot, start))
    nonlinear = {z3.Z3_OP_MOD, z3.Z3_OP_DIV, z3.Z3_OP_IDIV, z3.Z3_OP_REM}
    todo = list(solver.assertions())
    while todo:
        term = todo.pop()
        kind = term.decl().kind() if z3.is_app(term) else None
        assert kind not in nonlinear
        assert kind != z3.Z3_OP_MUL or sum(not z3.is_int_value(a) for a in term.children()) <= 1, term
        todo.extend(term.children())


AGREEMENT = {  # loop, IIs
    "pair": (lambda: pair(registers=8), (9, 10, 20)),
    "ring": (ring, (33, 34, 40)),
    "wide": (lambda: wide(150), (6, 10, 12)),
    "singles": (lambda: singles(2 * 120 * 4 * THREADS_PER_WARP - 1), (10, 20)),
    "drain": (drain, (20, 40)),
    "producer": (producer, (1, 2, 4)),
}


@pytest.mark.parametrize("name", sorted(AGREEMENT))
def test_agrees_with_cpsat_level_by_level(name):
    make, iis = AGREEMENT[name]
    loop = make()
    for ii in iis:
        limits, hint = [], None
        for level in JOINT_LEVELS:
            query = Query(ii, level, tuple(limits), hint)
            expected = CpSatBackend(DETERMINISTIC).solve(loop, query, SECONDS)
            got = solve(loop, ii, level, limits, hint)
            assert expected.status in ("optimal", "infeasible")
            assert expected.schedule is None or verify(loop, expected.schedule) == [], (name, ii, level)
            assert (got.status, got.value) == (expected.status, expected.value), (name, ii, level)
            if got.schedule is None:
                break
            limits.append((level, got.value))
            hint = got.schedule
