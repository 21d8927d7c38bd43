"""The CP-SAT joint model (docs/joint-model.md): each rule binding on a hand-made loop, random loops
verified, and feasibility at a fixed II against an exhaustive enumeration checked by the verifier."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from twill.model.generate import random_loop
from twill.model.joint import handoff_cost
from twill.model.loader import load_spec
from twill.model.loop import Dependence, Loop, Op, Warps
from twill.model.objectives import JOINT_LEVELS, objective_value
from twill.model.schedule import Schedule
from twill.solver.backend import Query, Settings
from twill.solver.bounds import compute_bounds, stage_bound
from twill.solver.cpsat import CpSatBackend
from twill.solver.verify import verify

MACHINE = Path(__file__).resolve().parent / "joint" / "machine.yaml"
BACKEND = CpSatBackend(Settings(deterministic=True))
# tests/joint/machine.yaml: 16 warps in warpgroups of 4, 255 registers per thread, setmaxnreg 24..256
# step 8, overhead 16; hand-offs 20 (mbarrier) or 10 (named) cycles plus 60 + 16 per KiB of registers.
TOY = Warps(max_warps=16, warpgroup=4, register_file=65536, max_registers=255, setmaxnreg=(24, 256, 8),
            overhead=16, smem=232448, tmem=512, mbarrier=20, named=10, transfer_base=60, transfer_per_kb=16)
FREE = replace(TOY, mbarrier=0, named=0, transfer_base=0, transfer_per_kb=0)  # hand-offs cost nothing


def op(name: str, latency: int = 4, **fields) -> Op:
    """An op on no unit; synchronous (issue = latency) unless ``issue_cycles`` says otherwise."""
    return Op(name, latency, (), **fields)


def joint(ops, edges=(), warps: Warps = TOY, **changes) -> Loop:
    return Loop("joint", {}, tuple(ops), tuple(Dependence(*e) if isinstance(e, tuple) else e for e in edges),
                replace(warps, **changes))


def solve(loop: Loop, ii: int, objective: str = "length", limits=(), hint: Schedule | None = None):
    """The optimum of ``objective`` at ``ii`` (or "infeasible"), checking the schedule and its value."""
    outcome = BACKEND.solve(loop, Query(ii, objective, tuple(limits), hint), None)
    assert outcome.status in ("optimal", "infeasible")
    if outcome.status == "infeasible":
        return "infeasible"
    assert verify(loop, outcome.schedule) == []
    assert outcome.value == outcome.bound == objective_value(loop, outcome.schedule, objective)
    return outcome.value


def roles_of(loop: Loop, ii: int, objective: str = "length") -> tuple[int, ...]:
    return BACKEND.solve(loop, Query(ii, objective), None).schedule.roles


# --- each rule binding ------------------------------------------------------------------------------

@pytest.mark.parametrize("barrier, registers, length", [
    ("mbarrier", 0, 4 + 20 + 4),
    ("named", 0, 4 + 10 + 4),
    ("mbarrier", 4, 4 + 20 + 68 + 4),  # 4 registers x 4 bytes x 32 threads = 512 bytes: 60 + 8 cycles
])
def test_a_crossing_edge_pays_the_hand_off(barrier, registers, length):
    # Two synchronous ops of 4 cycles: one role at II 8, two roles (a hand-off) at II 4.
    loop = joint([op("a", registers=registers), op("b")], [Dependence(0, 1, 4, 0, barrier=barrier)])
    assert solve(loop, 8) == 8 and solve(loop, 8, "roles") == 1
    assert solve(loop, 4) == length
    assert solve(loop, 4, "handoff_bytes") == registers * 128


def test_cross_role_false_bans_register_values_across_roles():
    edges = [(0, 1, 4, 0)]
    assert solve(joint([op("a", registers=8), op("b")], edges, cross_role=False), 7) == "infeasible"
    assert solve(joint([op("a", registers=8), op("b")], edges, cross_role=False), 8) == 8
    assert solve(joint([op("a", smem=64), op("b")], edges, cross_role=False), 4) == 28  # memory still crosses


def test_issue_longer_than_ii_is_infeasible():
    loop = joint([op("a", 1, issue_cycles=5)])
    assert solve(loop, 4) == "infeasible" and solve(loop, 5) == 1


def test_a_role_issues_one_op_at_a_time_modulo_ii():
    ops = [op("a", 3, warps=4), op("b", 3, warps=4)]  # 4 warps hold one warpgroup role, 8 hold two
    assert solve(joint(ops, max_warps=4), 5) == "infeasible"
    assert solve(joint(ops, max_warps=4), 6) == 6
    assert solve(joint(ops, max_warps=8), 3) == 3 and solve(joint(ops, max_warps=8), 3, "roles") == 2
    # Zero issue cycles take no slot: both fit on one role at II 1.
    zero = [replace(o, issue_cycles=0) for o in ops]
    assert solve(joint(zero, max_warps=4), 1) == 3


def test_variable_latency_ops_have_a_role_of_their_own():
    ops = [op("a", 3, variable_latency=True), op("b", 3, variable_latency=True), op("c", 1)]
    loop = joint(ops, [(0, 2, 3, 0), (1, 2, 3, 0)])
    assert solve(loop, 5) == "infeasible"  # a and b share the producer role: 6 issue cycles
    assert solve(loop, 6, "roles") == 2
    roles = roles_of(loop, 6, "roles")
    assert roles[0] == roles[1] != roles[2]


@pytest.mark.parametrize("count, warps, max_warps, feasible", [
    (5, 1, 5, False),   # five single-warp roles fill two warpgroups: 8 warps
    (5, 1, 8, True),
    (3, 4, 8, False),   # three warpgroup roles
    (3, 4, 12, True),
])
def test_roles_are_packed_into_warpgroups(count, warps, max_warps, feasible):
    # Each op keeps a role busy for the whole II, so every op needs a role of its own.
    loop = joint([op(f"o{i}", warps=warps) for i in range(count)], max_warps=max_warps)
    assert solve(loop, 4, "roles") == (count if feasible else "infeasible")


def test_blocking_edge_drains_older_work_of_its_role():
    # u -> v blocks: o's latest instance issued before u must be done when v issues. On one role at
    # II 4, o's slot differs from u's, so that instance issued at most 3 cycles before u: v waits
    # until 10 - 3 = 7 cycles after u, and the iteration ends at 11 instead of 10.
    ops = [op("u", 1, warps=4), op("v", 1, warps=4), op("o", 10, issue_cycles=1, warps=4)]
    blocking = [Dependence(0, 1, 1, 0, blocking=True)]
    assert solve(joint(ops, [(0, 1, 1, 0)], max_warps=4), 4) == 10
    assert solve(joint(ops, blocking, max_warps=4), 4) == 11
    assert solve(joint(ops, blocking, max_warps=8), 4) == 10  # o on another role


def test_blocking_edge_waits_for_the_previous_instance_of_its_source():
    # u's previous instance (II earlier) must be done: v >= u - 4 + 10.
    ops = [op("u", 10, issue_cycles=1, warps=4), op("v", 6, issue_cycles=1, warps=4)]
    assert solve(joint(ops, [(0, 1, 1, 0)], max_warps=4), 4) == 10
    assert solve(joint(ops, [Dependence(0, 1, 1, 0, blocking=True)], max_warps=4), 4) == 12


def test_ring_depth_covers_the_lifetime_up_to_the_consumers_completion():
    # a's result lives from a's issue until b (issued >= 2 later, 6 cycles long) is done: 8 cycles.
    def loop(**a_fields):
        return joint([op("a", 2, issue_cycles=1, **a_fields), op("b", 6, issue_cycles=1)], [(0, 1, 2, 0)])
    assert solve(loop(smem=1000), 4, "ring_slots") == 2
    assert solve(loop(smem=1000), 8, "ring_slots") == 1
    assert solve(loop(smem=1000, depth=1), 4) == "infeasible"
    assert solve(loop(smem=1000, depth=1), 8) == 8
    assert solve(loop(depth=1), 7) == "infeasible"  # a fixed depth binds even without a result
    assert solve(replace(loop(smem=1000), warps=replace(TOY, smem=1999)), 4) == "infeasible"
    assert solve(replace(loop(smem=1000), warps=replace(TOY, smem=1999)), 8) == 8
    assert solve(loop(tmem=300), 4) == "infeasible"  # 2 x 300 columns > 512
    assert solve(loop(tmem=300), 8) == 8


def test_registers_per_thread_are_the_peak_of_the_live_copies():
    # 16 + 100 x ceil(8 / II) registers: 316 at II 3, 216 at II 4.
    loop = joint([op("a", 8, issue_cycles=1, registers=100)])
    assert solve(loop, 3) == "infeasible" and solve(loop, 4) == 8
    # One role issues a then b (4 cycles each): their values take turns, 16 + 100 at any time...
    two = joint([op("a", warps=4, registers=100), op("b", warps=4, registers=100)], max_warps=4)
    tight = replace(two.warps, max_registers=116)
    assert solve(replace(two, warps=tight), 8) == 8
    # ... unless b reads a, which keeps a live until b completes: 16 + 200 while b runs.
    chained = replace(two, edges=(Dependence(0, 1, 4, 0),))
    assert solve(chained, 8) == 8
    assert solve(replace(chained, warps=replace(chained.warps, max_registers=215)), 8) == "infeasible"


@pytest.mark.parametrize("warps, registers, file, feasible", [
    (1, 100, 128 * 120, True),       # two single-warp roles share one warpgroup at setmaxnreg 120
    (1, 100, 128 * 120 - 1, False),
    (4, 100, 128 * 240, True),       # two warpgroup roles, 120 each
    (4, 100, 128 * 240 - 1, False),
    (1, 0, 128 * 24, True),          # the overhead 16 rounds up to the minimum 24
    (1, 0, 128 * 24 - 1, False),
])
def test_register_file_holds_the_setmaxnreg_allocation(warps, registers, file, feasible):
    loop = joint([op("a", warps=warps, registers=registers), op("b", warps=warps, registers=registers)],
                 register_file=file)
    assert solve(loop, 4, "roles") == (2 if feasible else "infeasible")


def test_setmaxnreg_maximum_binds_after_rounding():
    def loop(high):
        return joint([op("a", registers=100)], setmaxnreg=(24, high, 8))
    assert solve(loop(112), 4) == "infeasible"  # need 116 rounds to 120
    assert solve(loop(120), 4) == 4


def test_a_crossing_register_value_is_staged_once_in_shared_memory():
    # Three synchronous ops at II 4 need three roles; a's 1 KiB of registers crosses to b and c and
    # lives 8 cycles (ring depth 2): 2 KiB of staging, counted once, and a full and an empty mbarrier
    # (8 bytes each) per slot of its one channel: 2080 bytes (rule 9).
    ops = [op("a", registers=8), op("b"), op("c")]
    loop = joint(ops, [(0, 1, 4, 0), (0, 2, 4, 0)], FREE, smem=2080)
    assert solve(loop, 4, "handoff_bytes") == 1024
    assert solve(replace(loop, warps=replace(loop.warps, smem=2079)), 4) == "infeasible"


def test_objectives_under_limits():
    ops = [op("a", registers=8, smem=100), op("b"), op("c")]
    loop = joint(ops, [(0, 1, 4, 0), (1, 2, 4, 0)], FREE)
    assert solve(loop, 4, "roles") == 3
    assert solve(loop, 8, "roles") == 2
    assert solve(loop, 12, "roles") == 1 and solve(loop, 12, "handoff_bytes") == 0
    assert solve(loop, 4, "ring_slots") == 2  # a lives until b is done, 8 cycles
    # Two independent ops at II 8: one role issues them 4 cycles apart, two roles at once.
    pair = joint([op("a"), op("b")])
    assert solve(pair, 8, "roles") == 1
    assert solve(pair, 8, "roles", [("length", 4)]) == 2
    assert solve(pair, 8, "length", [("roles", 1)]) == 8


def test_hint_roles_in_any_numbering_and_dense_decoding():
    ops = [op("p", 3, variable_latency=True), op("a", 3), op("b", 3), op("c", 1)]
    loop = joint(ops, [(0, 1, 3, 0), (1, 3, 3, 0), (2, 3, 3, 0)])
    found = BACKEND.solve(loop, Query(3, "length"), None).schedule
    assert found.roles[0] == 0 and sorted(set(found.roles)) == list(range(len(set(found.roles))))
    renamed = replace(found, roles=tuple(7 - r for r in found.roles))
    assert solve(loop, 3, "roles", [("length", found.length(loop))], hint=renamed) == 4


def test_spec_file_with_the_toy_machine(tmp_path):
    spec = tmp_path / "pair.yaml"
    spec.write_text(f"""
name: pair
machine: {MACHINE}
ops:
  - {{name: load, latency: 4, unit: tma, issue: 1, variable_latency: true, smem: 16384}}
  - {{name: mma, latency: 8, unit: tc, occupancy: 4, issue: 1, warps: 4, registers: 64}}
edges:
  - {{src: load, dst: mma}}
  - {{src: mma, dst: mma, distance: 1, delay: 4}}
""")
    loop = load_spec(spec)
    # The load is on the producer role, the mma waits 4 + 20 cycles for it; the tensor core sets II 4.
    assert solve(loop, 4) == 4 + 20 + 8
    assert solve(loop, 4, "roles") == 2
    # The K tile lives until the mma is done and its release has crossed back to the producer:
    # 4 + 20 + 8 + 20 = 52 cycles, 13 ring slots at II 4.
    assert solve(loop, 4, "ring_slots") == 13


# --- random loops -----------------------------------------------------------------------------------

def random_joint(n_ops: int, seed: int, *, max_latency: int = 3) -> Loop:
    """A random small loop with joint fields drawn so that every rule can bind."""
    rng = random.Random(f"joint-{seed}")
    core = random_loop(n_ops, seed, units=rng.randint(1, 2), max_latency=max_latency, max_occupancy=2,
                       max_offset=1, max_distance=1, carried=rng.randint(0, 2))
    ops = tuple(replace(o,
                        issue_cycles=rng.choice((None, 0, 1, 1, 2)),
                        warps=rng.choice((1, 1, 1, 4)),
                        variable_latency=rng.random() < 0.15,
                        registers=rng.choice((0, 0, 8, 40)),
                        smem=rng.choice((0, 0, 400)),
                        tmem=rng.choice((0, 0, 100)),
                        depth=rng.choice((None,) * 6 + (1, 2)))
                for o in core.ops)
    edges = tuple(replace(e, blocking=rng.random() < 0.25, barrier=rng.choice(("mbarrier", "named")))
                  for e in core.edges)
    warps = Warps(max_warps=rng.choice((4, 8, 12, 16)), warpgroup=4,
                  register_file=128 * rng.choice((64, 128, 512)), max_registers=rng.choice((128, 255)),
                  setmaxnreg=(24, rng.choice((96, 256)), 8), overhead=16, smem=rng.choice((1500, 4000)),
                  tmem=rng.choice((250, 512)), mbarrier=1, named=rng.randint(0, 1),
                  transfer_base=rng.randint(0, 1), transfer_per_kb=rng.choice((0, 0.5)),
                  cross_role=rng.random() < 0.7)
    return Loop(core.name, core.capacity, ops, edges, warps)


@pytest.mark.parametrize("seed", range(40))
def test_random_joint_schedules_are_valid(seed):
    """From MII, the first II with a schedule (if any soon), then each joint level minimized in turn."""
    loop = random_joint(3 + seed % 6, seed, max_latency=6)
    roomy = replace(loop.warps, max_warps=16, register_file=65536, max_registers=255, setmaxnreg=(24, 256, 8),
                    smem=232448, tmem=512)
    loop = replace(loop, warps=roomy)
    mii = compute_bounds(loop).mii
    feasible = (ii for ii in range(mii, mii + 12) if BACKEND.solve(loop, Query(ii, "length"), None).schedule)
    ii, limits = next(feasible, None), []
    for objective in JOINT_LEVELS if ii else ():
        outcome = BACKEND.solve(loop, Query(ii, objective, tuple(limits)), None)
        assert outcome.status == "optimal" and verify(loop, outcome.schedule) == []
        limits.append((objective, outcome.value))


ROLES_ONLY = {"variable_latency", "warps", "cross_role"}  # rules that read the roles, not the starts


def some_valid_schedule(loop: Loop, ii: int) -> Schedule | None:
    """Exhaustive search: start vectors up to the stage bound (least stage 0: shifting by II keeps
    validity) valid for the plain loop, then every role partition, each checked by ``verify``. A
    violation of a rule that reads only the roles (or, for in-order issue, the roles and slots) skips
    the other start vectors it condemns."""
    n, last = len(loop.ops), ii * (stage_bound(loop, ii) + 1)
    pure = replace(loop, warps=None)

    def extend(starts: list[int]):
        v = len(starts)
        if v == n:
            yield tuple(starts)
            return
        for t in range(last):
            s = starts + [t]
            if all(s[e.dst] - s[e.src] >= e.delay - ii * e.distance for e in loop.edges if max(e.src, e.dst) == v):
                yield from extend(s)

    candidates = [t for t in extend([]) if min(t) < ii and not verify(pure, Schedule(ii, t))]
    for roles in restricted_growth(n):
        need = [(e, e.delay + handoff_cost(loop, e) - ii * e.distance) for e in loop.edges
                if roles[e.src] != roles[e.dst]]
        condemned = set()  # slot vectors that break in-order issue on these roles
        for starts in candidates:
            slots = tuple(t % ii for t in starts)
            if slots in condemned or any(starts[e.dst] - starts[e.src] < d for e, d in need):
                continue
            broken = {v.constraint for v in verify(loop, Schedule(ii, starts, roles))}
            if not broken:
                return Schedule(ii, starts, roles)
            if broken & ROLES_ONLY:
                break
            if "issue" in broken:
                condemned.add(slots)
    return None


def restricted_growth(n: int):
    """Every partition of n ops into roles, once: role ids in order of first use."""
    def grow(prefix):
        if len(prefix) == n:
            yield tuple(prefix)
            return
        for r in range(max(prefix, default=-1) + 2):
            yield from grow(prefix + [r])
    yield from grow([])


def brute_force_cases(n_ops: int, count: int, budget: int):
    """(seed, II) of tiny loops, II at or just above the loop's MII, whose start space stays within
    ``budget`` vectors."""
    cases, seed = [], 0
    while len(cases) < count:
        loop = random_joint(n_ops, seed, max_latency=2)
        ii = compute_bounds(loop).mii + seed % 3
        if (ii * (stage_bound(loop, ii) + 1)) ** n_ops <= budget:
            cases.append((n_ops, seed, ii))
        seed += 1
    return cases


@pytest.mark.parametrize("n_ops, seed, ii", brute_force_cases(3, 40, 20000) + brute_force_cases(4, 20, 40000))
def test_feasibility_matches_exhaustive_enumeration(n_ops, seed, ii):
    loop = random_joint(n_ops, seed, max_latency=2)
    length, witness = solve(loop, ii), some_valid_schedule(loop, ii)
    assert (length == "infeasible") == (witness is None)
    if witness is not None:
        assert length <= witness.length(loop)
