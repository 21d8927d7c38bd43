"""The paper's cost normalization and time-indexed encoding (twill.solver.normalize, .timeindexed)
on inputs whose answers are derived by hand."""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations
from pathlib import Path

import pytest

from twill.model.generate import random_joint_loop
from twill.model.loader import load_spec
from twill.model.loop import Loop, Op, Reservation
from twill.solver.backend import Settings
from twill.solver.backends import make_backend
from twill.solver.normalize import normalize, solve_ratios
from twill.solver.search import search
from twill.solver.timeindexed import search_time_indexed, swp_and_ws
from twill.solver.verify import verify

ROOT = Path(__file__).resolve().parents[1]
MACHINE = ROOT / "tests" / "joint" / "machine.yaml"  # hand-offs: mbarrier 20, registers overhead 16
DETERMINISTIC = Settings(deterministic=True)
SECONDS = 20.0


def spec(tmp_path: Path, text: str) -> Loop:
    path = tmp_path / "loop.yaml"
    path.write_text(text.replace("MACHINE", str(MACHINE)))
    return load_spec(path)


# --- normalization --------------------------------------------------------------------------------

def test_exact_ratios_normalize_to_the_primitive_vector():
    scaled, error, optimal, _ = solve_ratios([500, 1000, 2000])
    assert (scaled, error, optimal) == ([1, 2, 4], 0, True)


def test_inexact_ratios_respect_the_bound_and_report_their_error():
    counts = [30, 92, 900, 1700]
    scaled, error, optimal, _ = solve_ratios(counts, upper=300)
    assert optimal and 1 <= sum(scaled) <= 300
    assert error == max(abs(a * scaled[j] - b * scaled[i]) for (i, a), (j, b) in combinations(enumerate(counts), 2))
    assert scaled == sorted(scaled) and scaled[-1] > 0


def test_normalize_scales_every_cost_of_a_loop():
    ops = (Op("load", 1000, (Reservation("tma", 0, 500, 1),)), Op("mma", 2000, (Reservation("tc", 500, 1000, 1),)))
    loop = Loop("scaled", {"tma": 1, "tc": 1}, ops, ())
    norm = normalize(loop)
    assert [op.latency for op in norm.loop.ops] == [2, 4]
    assert norm.loop.ops[1].reservations == (Reservation("tc", 1, 2, 1),)
    assert norm.scale == 500 and norm.to_real(3) == 1500


def test_a_cost_that_rounds_to_zero_drops_its_reservation():
    ops = (Op("big", 1700, (Reservation("alu", 0, 1700, 1),)), Op("tiny", 16, (Reservation("alu", 0, 16, 1),)),
           Op("mid", 900, ()), Op("handoff", 30, ()), Op("bar", 92, ()))
    norm = normalize(Loop("coarse", {"alu": 1}, ops, ()))
    assert norm.values[16] == 0 and norm.loop.ops[1].reservations == () and norm.loop.ops[1].duration == 0


# --- the time-indexed encoding and Alg. 1 -------------------------------------------------------------

FIG1 = """
name: fig1-joint
machine:
  units: {tc: 1, sfu: 1}
  warps: {max: 16, warpgroup: 4}
  registers: {file: 65536, per_thread: 255, setmaxnreg: [24, 256, 8], overhead: 16}
  handoff: {mbarrier: HANDOFF, named: HANDOFF, transfer_base: 0, transfer_per_kb: 0}
  memories: {smem: {capacity: 65536}}   # room for the barriers of the hand-offs (rule 9)
ops:
  - {name: S, unit: tc, latency: 1}
  - {name: P, unit: sfu, latency: 1}
  - {name: O, unit: tc, latency: 1, occupancy: 1}
  - {name: N, unit: null, latency: 0}
edges:
  - {src: S, dst: P}
  - {src: P, dst: O}
  - {src: O, dst: O, distance: 1}
"""


def test_fig1_toy_with_free_handoffs_gets_the_papers_ii(tmp_path):
    """The paper's II 2 at L = LEN(M) = 4; S and O share the tensor core, so O skips S's slot."""
    loop = spec(tmp_path, FIG1.replace("HANDOFF", "0"))
    result = search_time_indexed(loop, SECONDS, DETERMINISTIC)
    assert (result.status, result.ii, result.length, result.real_ii) == ("found", 2, 4, 2)
    assert [step.result for step in result.steps] == ["optimal", "sat"]
    assert verify(result.normalized.loop, result.schedule) == []


def test_fig1_toy_with_costly_handoffs_hits_the_papers_stage_limit(tmp_path):
    """S, P, O issue 1 cycle each, so II 2 needs two roles and a 20-cycle hand-off (S, P on one role,
    O at 23 on another: L = 24). Alg. 1 only tries L <= 4 at II 2 and answers II 3 on one role."""
    loop = spec(tmp_path, FIG1.replace("HANDOFF", "20"))
    result = search_time_indexed(loop, SECONDS, DETERMINISTIC)
    assert (result.status, result.ii, result.length) == ("found", 3, 3)
    assert len(set(result.schedule.roles[:3])) == 1
    norm = result.normalized
    assert swp_and_ws(norm, 2, 23, SECONDS, DETERMINISTIC).status == "unsat"
    answer = swp_and_ws(norm, 2, 24, SECONDS, DETERMINISTIC)
    assert answer.status == "sat" and verify(norm.loop, answer.schedule) == []


BLOCKING = """
name: blocking
machine: MACHINE
max_warps: 4
ops:
  - {name: mma, unit: tc, latency: 4, issue: 1, warps: 4}
  - {name: use, unit: alu, latency: 1, warps: 4}
  - {name: X, unit: sfu, latency: 8, issue: 1, warps: 4}
edges:
  - {src: mma, dst: use, blocking: BLOCKING}
"""


@pytest.mark.parametrize("blocking, length", [(False, 8), (True, 9)])
def test_blocking_waits_for_older_work_on_the_role(tmp_path, blocking, length):
    """One warpgroup role (4 warps), three 1-cycle issues: II 3. Blocking, use waits for the last X
    issued before mma (8 cycles): at L 8, X = 0 and no slot of mma lets use finish in time; at L 9,
    X = 1, mma = 0, use = 8."""
    loop = spec(tmp_path, BLOCKING.replace("BLOCKING", str(blocking).lower()))
    result = search_time_indexed(loop, SECONDS, DETERMINISTIC)
    assert (result.status, result.ii, result.length) == ("found", 3, length)
    assert verify(result.normalized.loop, result.schedule) == []


REGISTERS = """
name: registers
machine: MACHINE
max_warps: 4
cross_role: false
ops:
  - {name: A, unit: alu, latency: 1, warps: 4, registers: 100}
  - {name: B, unit: alu, latency: 1, warps: 4}
edges:
  - {src: A, dst: B, delay: 5}
"""


def test_live_register_copies_bound_the_ii(tmp_path):
    """A's value lives 6 cycles. At II 2 three copies are live: 16 + 300 > 255 registers; at II 3 two."""
    result = search_time_indexed(spec(tmp_path, REGISTERS), SECONDS, DETERMINISTIC)
    assert (result.status, result.ii) == ("found", 3)
    assert [(s.ii, s.length, s.result) for s in result.steps] == [
        (2, None, "optimal"), (2, 6, "unsat"), (3, None, "optimal"), (3, 6, "sat")]


def test_scratch_registers_at_the_issue_bound_the_ii(tmp_path):
    """B needs 40 scratch registers while it issues: at II 3 both copies of A (200) are live at
    every cycle, 256 > 255 with the overhead, so the encoding and CP-SAT both move to the same larger
    II, each verified."""
    loop = spec(tmp_path, REGISTERS.replace("{name: B, unit: alu, latency: 1, warps: 4}",
                                            "{name: B, unit: alu, latency: 1, warps: 4, scratch: 40}"))
    result = search_time_indexed(loop, SECONDS, DETERMINISTIC)
    ours = search(loop, make_backend("cpsat", DETERMINISTIC), SECONDS, DETERMINISTIC)
    assert result.status == "found" and ours.status == "optimal"
    assert result.ii == ours.schedule.ii > 3
    assert verify(result.normalized.loop, result.schedule) == []


PRODUCER = """
name: producer
machine: MACHINE
ops:
  - {name: load, unit: tma, latency: 2, issue: 1, variable_latency: true}
  - {name: use, unit: alu, latency: 1}
edges:
  - {src: load, dst: use, barrier: named}
"""


def test_variable_latency_producer_pays_the_handoff(tmp_path):
    """load sits alone on the producer role, so use waits 2 + 10 (named barrier): L 13. LEN(M) is 3,
    so Alg. 1 allows L <= 4 at II 2 and L <= II from II 3 on: it answers II 13 (twill's model, with
    the stage count free, has II 1)."""
    result = search_time_indexed(spec(tmp_path, PRODUCER), SECONDS, DETERMINISTIC)
    assert (result.status, result.ii, result.length) == ("found", 13, 13)
    assert result.schedule.roles == (0, 1) and result.schedule.starts == (0, 12)


def test_no_budget_is_unknown(tmp_path):
    result = search_time_indexed(spec(tmp_path, REGISTERS), 0.0, DETERMINISTIC)
    assert (result.status, result.schedule) == ("unknown", None)


@pytest.mark.parametrize("seed", [1, 3, 5])
def test_agrees_with_twills_model_where_memories_do_not_bind(seed):
    """With memories and registers ample (instantaneous liveness and ring depths then never bind),
    SWP-AND-WS is sat at twill's optimal (II, length), with a schedule twill's verifier accepts,
    and unsat at II - 1 with that length."""
    loop = random_joint_loop(7, seed, max_latency=4, max_occupancy=3)
    loop = replace(loop, warps=replace(loop.warps, smem=10**9, tmem=10**9, register_file=10**9,
                                       max_registers=10**6, setmaxnreg=(8, 10**6, 8)))
    norm = normalize(loop)
    assert all(real == scaled for real, scaled in norm.values.items())  # small costs stay as they are
    ours = search(loop, make_backend("cpsat", DETERMINISTIC), SECONDS, DETERMINISTIC)
    ii, length = ours.schedule.ii, ours.schedule.length(loop)
    answer = swp_and_ws(norm, ii, length, SECONDS, DETERMINISTIC)
    assert answer.status == "sat" and verify(loop, answer.schedule) == []
    assert swp_and_ws(norm, ii - 1, length, SECONDS, DETERMINISTIC).status == "unsat"
