"""Each joint constraint binding on its own, on the purpose-built specs of tests/joint/.

Every spec has a pair without the binding feature (another file, another machine, or a load_spec
override). The test solves both with the CP-SAT search, checks the hand-derived numbers written in the
spec's header (II, objectives, roles), transplants the pair's optimal schedule onto the constrained loop
to show that exactly the expected rule rejects it, and confirms the numbers with the brute-force oracle
(tests/joint_oracle.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from joint_oracle import joint_oracle
from twill.model.loader import load_spec
from twill.model.loop import Loop
from twill.model.schedule import Schedule
from twill.solver.backend import Settings
from twill.solver.backends import make_backend
from twill.solver.bounds import compute_bounds
from twill.solver.search import search
from twill.solver.verify import verify

REPOSITORY = Path(__file__).resolve().parents[1]
JOINT = REPOSITORY / "tests" / "joint"
DETERMINISTIC = Settings(deterministic=True)
BACKEND = make_backend("cpsat", DETERMINISTIC)


@pytest.fixture(autouse=True)
def at_repository_root(monkeypatch):
    """The specs name their machine by a path from the repository root (as the CLI would be run)."""
    monkeypatch.chdir(REPOSITORY)


def load(name: str, **overrides) -> Loop:
    return load_spec(JOINT / name, **overrides)


def solved(loop: Loop):
    """The CP-SAT search's optimum: (II, {objective: value}, {op: role}, schedule), everything proven."""
    result = search(loop, BACKEND, 30, DETERMINISTIC)
    assert result.status == "optimal", result.proof
    assert all(o.optimal for o in result.objectives), result.objectives
    schedule = result.schedule
    assert verify(loop, schedule) == []
    # Every II below the optimum is proven infeasible, by the bounds or by the solver.
    assert result.lower_bound == schedule.ii
    assert all(step.result == "infeasible" for step in result.proof[:-1])
    values = {o.name: o.value for o in result.objectives}
    roles = {op.name: role for op, role in zip(loop.ops, schedule.roles)}
    return schedule.ii, values, roles, schedule


def objectives(length: int, handoff_bytes: int = 0, ring_slots: int = 0, roles: int = 1) -> dict[str, int]:
    return {"length": length, "handoff_bytes": handoff_bytes, "ring_slots": ring_slots, "roles": roles}


def rejected_by(loop: Loop, schedule: Schedule) -> set[str]:
    return {v.constraint for v in verify(loop, schedule)}


def oracle_agrees(loop: Loop, ii: int, values: dict[str, int]) -> None:
    best = joint_oracle(loop, ii, compute_bounds(loop).mii)
    assert best is not None and (best.ii, best.values) == (ii, tuple(values.values()))


def test_specs_explain_themselves():
    specs = sorted(JOINT.glob("*.yaml"))
    assert len(specs) >= 12
    for path in specs:
        assert path.read_text().startswith("#"), f"{path.name} has no header comment"


# (a) --------------------------------------------------------------------------------------------

def test_register_limit_forces_a_split():
    loop, pair = load("register-split.yaml"), load("register-split-pair.yaml")
    ii, values, roles, _ = solved(loop)
    assert (ii, values) == (4, objectives(6, roles=2))
    assert roles["qk"] != roles["pv"]
    pair_ii, pair_values, pair_roles, pair_schedule = solved(pair)
    assert (pair_ii, pair_values) == (4, objectives(6, roles=1))
    assert pair_roles["qk"] == pair_roles["pv"]
    # Both 128-register results on one role: 16 + 256 > 255.
    assert rejected_by(loop, pair_schedule) == {"registers"}
    oracle_agrees(loop, 4, values)
    oracle_agrees(pair, 4, pair_values)


def test_max_warps_makes_the_values_take_turns():
    # One warpgroup (4 warps) cannot hold both 128-register values at once, so they take turns on it:
    # qk's value dies (latency 4) before pv issues, which doubles II.
    loop = load("register-split.yaml", max_warps=4)
    result = search(loop, BACKEND, 30, DETERMINISTIC)
    assert result.status == "optimal" and result.schedule.ii == 8 and len(set(result.schedule.roles)) == 1
    _, _, _, split = solved(load("register-split.yaml"))
    assert rejected_by(loop, split) == {"warps"}        # two warpgroups: 8 warps > 4
    best = joint_oracle(loop, 24, 1)
    assert best.ii == 8 and best.values == tuple(o.value for o in result.objectives)


def test_max_warps_raises_ii():
    ii, values, roles, schedule = solved(load("max-warps.yaml"))
    assert (ii, values) == (4, objectives(4, roles=2))
    narrow = load("max-warps.yaml", max_warps=4)
    narrow_ii, narrow_values, narrow_roles, _ = solved(narrow)
    assert (narrow_ii, narrow_values) == (8, objectives(8, roles=1))
    assert rejected_by(narrow, schedule) == {"warps"}
    oracle_agrees(narrow, 8, narrow_values)


# (b) --------------------------------------------------------------------------------------------

def test_blocking_edge_moves_an_op_to_another_role():
    loop, pair = load("blocking-moves.yaml"), load("blocking-moves-pair.yaml")
    ii, values, roles, schedule = solved(loop)
    assert (ii, values) == (8, objectives(40, roles=2))
    assert len(set(roles.values())) == 2
    pair_ii, pair_values, pair_roles, pair_schedule = solved(pair)
    assert (pair_ii, pair_values) == (8, objectives(40, roles=1))
    # On one role, produce issued after mma leaves mma in flight when wait issues.
    assert rejected_by(loop, pair_schedule) == {"blocking"}
    assert rejected_by(loop, Schedule(8, (0, 2, 41), (0, 0, 0))) == set()  # one role: length 43
    oracle_agrees(loop, 8, values)
    oracle_agrees(pair, 8, pair_values)


# (c) --------------------------------------------------------------------------------------------

def test_handoff_cost_keeps_a_chain_on_one_role():
    loop = load("handoff-chain.yaml")
    free = load("handoff-chain.yaml", machine=str(JOINT / "machine-free-handoff.yaml"))
    ii, values, roles, _ = solved(loop)
    assert (ii, values) == (8, objectives(8, roles=1))
    assert roles["rowmax"] == roles["rescale"]
    assert compute_bounds(loop).mii == 4
    free_ii, free_values, free_roles, free_schedule = solved(free)
    assert (free_ii, free_values) == (4, objectives(8, roles=2))
    assert free_roles["rowmax"] != free_roles["rescale"]
    # The free machine's schedule pays no hand-off: with 20-cycle mbarriers the recurrence breaks.
    assert rejected_by(loop, free_schedule) == {"dependence"}
    oracle_agrees(loop, 8, values)
    oracle_agrees(free, 4, free_values)


# (d) --------------------------------------------------------------------------------------------

def test_cross_role_ban_raises_ii():
    banned, allowed = load("cross-role-ban.yaml"), load("cross-role-ban.yaml", cross_role=True)
    assert not banned.warps.cross_role and allowed.warps.cross_role
    ii, values, roles, _ = solved(banned)
    assert (ii, values) == (8, objectives(8, roles=1))
    allowed_ii, allowed_values, allowed_roles, allowed_schedule = solved(allowed)
    # 8 registers x 1 warp = 1 KiB crosses: t(exp) >= 4 + 20 + ceil(60 + 16) = 100. scale's registers
    # are free once copied to the staging buffer (4 + 76 = 80 cycles): at II 4 that is 20 copies,
    # 16 + 160 <= 255 registers (its staging ring lives until exp's release is back: 124 cycles, 31 KiB).
    assert (allowed_ii, allowed_values) == (4, objectives(104, handoff_bytes=1024, roles=2))
    assert allowed_roles["scale"] != allowed_roles["exp"]
    assert rejected_by(banned, allowed_schedule) == {"cross_role"}
    oracle_agrees(banned, 8, values)
    oracle_agrees(allowed, 4, allowed_values)


# (e) --------------------------------------------------------------------------------------------

def test_smem_limit_caps_the_ring_and_raises_ii():
    loop, pair = load("smem-ring.yaml"), load("smem-ring-pair.yaml")
    ii, values, roles, schedule = solved(loop)
    # The tile lives 58 cycles, plus 20 for the mma's release to reach the load's role: 78.
    assert (ii, values) == (26, objectives(58, ring_slots=3, roles=2))
    assert schedule.starts == (0, 50)
    pair_ii, pair_values, _, pair_schedule = solved(pair)
    assert (pair_ii, pair_values) == (8, objectives(58, ring_slots=10, roles=2))
    # The 16 KiB tile's schedule with 64 KiB tiles: 10 slots = 640 KiB > 227 KiB.
    assert rejected_by(loop, pair_schedule) == {"smem"}
    # At II 25 the same lifetime (78) needs 4 slots, 256 KiB.
    assert rejected_by(loop, Schedule(25, (0, 50), schedule.roles)) == {"smem"}
    oracle_agrees(loop, 26, values)
    oracle_agrees(pair, 8, pair_values)


# (f) --------------------------------------------------------------------------------------------

def test_subtiling_lowers_ii():
    split, whole = load("subtile.yaml"), load("subtile.yaml", subtile=1)
    assert [op.name for op in split.ops] == ["qk.0", "qk.1", "softmax.0", "softmax.1"]
    ii, values, roles, _ = solved(split)
    assert (ii, values) == (8, objectives(10, roles=1))
    whole_ii, whole_values, _, _ = solved(whole)
    assert (whole_ii, whole_values) == (16, objectives(16, roles=1))
    assert compute_bounds(whole).rec_mii == 16 and compute_bounds(split).rec_mii == 8
    oracle_agrees(split, 8, values)
    oracle_agrees(whole, 16, whole_values)


def test_release_at_issue_frees_tensor_memory_earlier():
    loop, pair = load("tmem-release.yaml"), load("tmem-release-pair.yaml")
    ii, values, roles, schedule = solved(loop)
    assert ii == 7 and schedule.starts == (0, 4, 6) and len(set(roles.values())) == 1
    pair_ii, pair_values, _, _ = solved(pair)
    assert pair_ii == 10
    # The release schedule on the pair: S would still be held by PV, 10 cycles > one slot x II 7.
    assert rejected_by(pair, schedule) == {"tmem"}
    oracle_agrees(loop, 7, values)
    oracle_agrees(pair, 10, pair_values)
