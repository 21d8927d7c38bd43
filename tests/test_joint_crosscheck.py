"""The joint problem: CP-SAT, Z3 and the brute-force oracle (tests/joint_oracle.py) agree on tiny random
joint loops, at every II from MII up to the first feasible one and on every objective level there.

Also here: the oracle checked against itself (start enumeration, hand-derived loops, its stage bound
against twill.solver.bounds) and the random joint generator (deterministic, round trip through YAML,
knobs respected, constraints that bind).
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import replace

import pytest
import yaml

from joint_oracle import (_Instance, accumulator_loop, accumulator_optimum, canonical_roles, feasible_at, joint_oracle,
                          optimum_at, overwrite_loop, overwrite_optimum, register_loop, register_optimum,
                          scratch_loop, scratch_optimum, stage_bound as oracle_stage_bound, staging_loop, staging_optimum, tiny_loop, tiny_optimum)
from oracle import oracle as pure_oracle
from twill.model.generate import loop_to_spec, random_joint_loop, random_loop
from twill.model.joint import crossing_register_values, depth, layout, lifetime, max_roles, register_lifetime
from twill.model.loader import load_spec
from twill.model.loop import Dependence, Loop, Op, Warps
from twill.model.objectives import JOINT_LEVELS, objective_value
from twill.model.schedule import Schedule
from twill.solver.backend import Query, Settings
from twill.solver.backends import make_backend
from twill.solver.bounds import compute_bounds, stage_bound
from twill.solver.search import search
from twill.solver.verify import verify

DETERMINISTIC = Settings(deterministic=True)
AGREEMENT_SEEDS = range(50)   # tiny random joint loops: both backends against the oracle, query by query
FAMILY = range(120)           # coverage of the family
SPAN = 6                      # the oracle looks at II in [MII, MII + SPAN]
SEARCH_SEEDS = [s for s in range(20) if tiny_optimum(s, SPAN) is not None][:6]  # through twill.solver.search
REGISTER_SEEDS = range(40)    # register-heavy tiny loops (joint_oracle.register_loop)
ACCUMULATOR_SEEDS = range(30)  # tiny loops with an accumulator (joint_oracle.accumulator_loop)
OVERWRITE_SEEDS = [s for s in range(40) if any(o.overwrites is not None for o in overwrite_loop(s).ops)]
STAGING_SEEDS = range(40)      # a register value read on another role (joint_oracle.staging_loop)
SCRATCH_SEEDS = range(30)      # ops holding scratch registers while they issue (joint_oracle.scratch_loop)
MEDIUM_SEEDS = range(1, 8)    # 5-7 ops: CP-SAT against Z3 only
SECONDS = 30.0                # deterministic seconds per query: far above what these need


@functools.lru_cache(maxsize=None)
def backend(name: str):
    return make_backend(name, DETERMINISTIC)


# --- the backends against the oracle -----------------------------------------------------------


def check_outcome(loop: Loop, outcome, objective: str) -> None:
    assert outcome.schedule is not None
    assert verify(loop, outcome.schedule) == [], verify(loop, outcome.schedule)
    assert objective_value(loop, outcome.schedule, objective) == outcome.value


FAMILIES = {"tiny": (tiny_loop, tiny_optimum), "registers": (register_loop, register_optimum),
            "accumulators": (accumulator_loop, accumulator_optimum),
            "overwrites": (overwrite_loop, overwrite_optimum), "staging": (staging_loop, staging_optimum),
            "scratch": (scratch_loop, scratch_optimum)}


@pytest.mark.parametrize("family, seed", [("tiny", s) for s in AGREEMENT_SEEDS]
                         + [("registers", s) for s in REGISTER_SEEDS]
                         + [("accumulators", s) for s in ACCUMULATOR_SEEDS]
                         + [("overwrites", s) for s in OVERWRITE_SEEDS]
                         + [("staging", s) for s in STAGING_SEEDS]
                         + [("scratch", s) for s in SCRATCH_SEEDS])
@pytest.mark.parametrize("name", ["cpsat", "z3"])
def test_backend_agrees_with_oracle(name, family, seed):
    make, optimum = FAMILIES[family]
    loop, best = make(seed), optimum(seed, SPAN)
    solver = backend(name)
    mii = compute_bounds(loop).mii
    last = best.ii if best is not None else mii + SPAN
    first = JOINT_LEVELS[0]
    for ii in range(mii, last + 1):
        outcome = solver.solve(loop, Query(ii, first), SECONDS)
        if best is None or ii < best.ii:
            assert outcome.status == "infeasible", f"{name} at II {ii}: {outcome.status}, oracle: infeasible"
    if best is None:
        return
    assert outcome.status == "optimal", f"{name} at II {best.ii}: {outcome.status}"
    check_outcome(loop, outcome, first)
    got, limits, hint = [outcome.value], [(first, outcome.value)], outcome.schedule
    for level in JOINT_LEVELS[1:]:
        outcome = solver.solve(loop, Query(best.ii, level, tuple(limits), hint=hint), SECONDS)
        assert outcome.status == "optimal", f"{name} {level} at II {best.ii}: {outcome.status}"
        check_outcome(loop, outcome, level)
        for bounded, value in limits:
            assert objective_value(loop, outcome.schedule, bounded) <= value
        got.append(outcome.value)
        limits.append((level, outcome.value))
        hint = outcome.schedule
    assert tuple(got) == best.values, f"{name} {got} vs oracle {best.values} at II {best.ii}"


@pytest.mark.parametrize("seed", SEARCH_SEEDS)
@pytest.mark.parametrize("name", ["cpsat", "z3"])
def test_search_agrees_with_oracle(name, seed):
    loop, best = tiny_loop(seed), tiny_optimum(seed, SPAN)
    result = search(loop, backend(name), 60, DETERMINISTIC)
    assert result.status == "optimal", result.proof
    assert result.schedule.ii == best.ii and result.lower_bound == best.ii
    assert [(o.name, o.value, o.optimal) for o in result.objectives] == \
        [(level, value, True) for level, value in zip(JOINT_LEVELS, best.values)]
    assert verify(loop, result.schedule) == []


def medium_loop(seed: int) -> Loop:
    """5-7 ops: beyond the oracle, where the two backends check each other."""
    knobs = random.Random(f"medium-{seed}")
    return random_joint_loop(knobs.randint(5, 7), seed, max_latency=6, max_occupancy=3, max_registers=24,
                             max_handoff=3, transfer_per_kb=(0.0, 0.25, 0.5), units=knobs.randint(2, 4))


@functools.lru_cache(maxsize=None)
def medium_search(name: str, seed: int):
    return search(medium_loop(seed), backend(name), 60, DETERMINISTIC)


@pytest.mark.parametrize("seed", MEDIUM_SEEDS)
def test_backends_agree_on_medium_loops(seed):
    loop = medium_loop(seed)
    results = [medium_search(name, seed) for name in ("cpsat", "z3")]
    for result in results:
        assert result.status in ("optimal", "infeasible"), result.proof
        if result.schedule is not None:
            assert verify(loop, result.schedule) == [] and all(o.optimal for o in result.objectives)
    # An infeasible loop's lower bound is how far the proof went before the every-II argument
    # (CP-SAT's joint relaxation may cover the whole range at once), so it is compared only when feasible.
    cpsat, z3 = [(r.status, r.schedule and r.lower_bound, r.schedule and r.schedule.ii,
                  [o.value for o in r.objectives]) for r in results]
    assert cpsat == z3


def test_medium_loops_are_not_trivial():
    results = [medium_search("cpsat", s) for s in MEDIUM_SEEDS]
    feasible = [r for r in results if r.status == "optimal"]
    assert len(feasible) >= 4 and len(feasible) < len(results)
    assert sum(r.schedule.ii > r.bounds.mii for r in feasible) >= 3
    assert sum(len(set(r.schedule.roles)) >= 3 for r in feasible) >= 2
    assert sum(dict((o.name, o.value) for o in r.objectives)["handoff_bytes"] > 0 for r in feasible) >= 3


# --- the oracle itself -------------------------------------------------------------------------

MACHINE = Warps(max_warps=16, warpgroup=4, register_file=65536, max_registers=255, setmaxnreg=(24, 256, 8),
                overhead=0, smem=1 << 20, tmem=512, mbarrier=5, named=2, transfer_base=0, transfer_per_kb=1)


def test_canonical_roles_are_the_partitions():
    assert [len(list(canonical_roles(n))) for n in range(1, 7)] == [1, 2, 5, 15, 52, 203]  # Bell numbers
    assert list(canonical_roles(3)) == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (0, 1, 2)]


@pytest.mark.parametrize("seed", range(40))
def test_max_roles_covers_every_partition_rules_4_and_5_allow(seed):
    rng = random.Random(f"max-roles-{seed}")
    n = rng.randint(1, 6)
    ops = tuple(Op(f"o{i}", 1, (), warps=rng.choice((1, 4)), variable_latency=rng.random() < 0.2) for i in range(n))
    loop = Loop("roles", {}, ops, (), replace(MACHINE, max_warps=rng.choice((4, 8, 12, 16))))
    instance = _Instance(loop, 8)
    most = max((len(set(r)) for r in canonical_roles(n) if instance.roles_ok(r)), default=0)
    assert most == max_roles(loop)


def test_oracle_on_hand_derived_loops():
    # A -> B -> A (distance 1), all delays 1, no units: one role gives II 2 (the recurrence), length 2.
    # Splitting would add the 5-cycle mbarrier twice to the recurrence, so the optimum stays on one role.
    chain = Loop("chain", {}, (Op("A", 1, (), 1), Op("B", 1, (), 1)),
                 (Dependence(0, 1, 1, 0), Dependence(1, 0, 1, 1)), MACHINE)
    best = joint_oracle(chain, 10)
    assert (best.ii, best.values) == (2, (0, 2, 0, 1))
    # Two synchronous ops busy 3 cycles each: one role needs II 6, two roles II 3 (no edges, no units).
    sync = Loop("sync", {}, (Op("A", 3, ()), Op("B", 3, ())), (), MACHINE)
    best = joint_oracle(sync, 10)
    assert (best.ii, best.values) == (3, (0, 3, 0, 2))
    assert feasible_at(replace(sync, warps=replace(MACHINE, max_warps=4)), 3) is not None  # two warps pack
    one_group = replace(sync, ops=tuple(replace(o, warps=4) for o in sync.ops), warps=replace(MACHINE, max_warps=4))
    assert joint_oracle(one_group, 10).ii == 6    # two warpgroups do not fit in 4 warps
    # A variable-latency load and its consumer must be on two roles: the mbarrier (5) joins them.
    load = Loop("load", {}, (Op("L", 2, (), 1, variable_latency=True), Op("C", 1, (), 1)),
                (Dependence(0, 1, 2, 0),), MACHINE)
    best = joint_oracle(load, 10)
    assert (best.ii, best.values) == (1, (0, 8, 0, 2)) and best.schedule.starts == (0, 7)
    # A shared-memory value consumed 7 cycles later lives 8 cycles, and the consumer's release takes the
    # mbarrier (5) back to the producer: at II 1 that is 13 ring slots.
    load_smem = replace(load, ops=(replace(load.ops[0], smem=1024),) + load.ops[1:])
    assert optimum_at(load_smem, 1).value("ring_slots") == 13
    # Each slot also has its channel's full and empty mbarrier: 4 slots take 4 x (1024 + 16) bytes.
    assert optimum_at(replace(load_smem, warps=replace(MACHINE, smem=4160)), 1) is None  # 13 KiB of ring
    assert joint_oracle(replace(load_smem, warps=replace(MACHINE, smem=4160)), 10).ii == 4  # 13 cycles: 4 slots
    assert joint_oracle(replace(load_smem, warps=replace(MACHINE, smem=4159)), 10).ii == 5


def test_accumulator_family_covers_in_place_updates_and_cross_role_releases():
    """The accumulator family is not vacuous: accumulators with other consumers (which must release
    before the next update), values released across roles, and optima the in-place rule changes."""
    found, other, crossing, changed = 0, 0, 0, 0
    for seed in ACCUMULATOR_SEEDS:
        loop, best = accumulator_loop(seed), accumulator_optimum(seed, SPAN)
        if best is None:
            continue
        found += 1
        roles = best.schedule.roles
        other += any(loop.ops[e.src].accumulator and e.src != e.dst for e in loop.edges)
        crossing += any(e.src != e.dst and roles[e.src] != roles[e.dst] and loop.ops[e.src].has_value
                        for e in loop.edges)
        plain = replace(loop, ops=tuple(replace(o, accumulator=False, depth=None) if o.accumulator else o
                                        for o in loop.ops))
        mii = compute_bounds(plain).mii
        ring = joint_oracle(plain, mii + SPAN, mii)
        changed += ring is None or (ring.ii, ring.values) != (best.ii, best.values)
    assert found >= 15 and other >= 10 and crossing >= 5 and changed >= 3


def test_oracle_stage_bound_matches_the_solvers():
    for seed in FAMILY:
        loop = tiny_loop(seed)
        for ii in range(1, 9):
            assert oracle_stage_bound(loop, ii) == stage_bound(loop, ii), (seed, ii)


def enumerated_optimum(loop: Loop, ii: int, length: int):
    """The lexicographic optimum over every role partition and every start vector in [0, length]."""
    best = None
    for roles in canonical_roles(len(loop.ops)):
        for starts in itertools.product(range(length + 1), repeat=len(loop.ops)):
            schedule = Schedule(ii, starts, roles)
            key = tuple(objective_value(loop, schedule, name) for name in JOINT_LEVELS)
            if (best is None or key < best) and not verify(loop, schedule):
                best = key
    return best


def enumeration_size(seed: int) -> int:
    best = tiny_optimum(seed, SPAN)
    n = len(tiny_loop(seed).ops)
    return len(list(canonical_roles(n))) * (best.value("length") + 1) ** n if best else 0


CHEAP = [s for s in range(60) if 0 < enumeration_size(s) <= 1500][:14]


@pytest.mark.parametrize("seed", CHEAP)
def test_oracle_against_start_enumeration(seed):
    """Every schedule at least as good as the optimum has length <= L, so all its starts lie in [0, L]."""
    loop, best = tiny_loop(seed), tiny_optimum(seed, SPAN)
    assert verify(loop, best.schedule) == []
    assert enumerated_optimum(loop, best.ii, best.value("length")) == best.values


def test_register_family_has_peaks_below_the_ring_sum():
    """Some optima keep a role's registers below what charging every value its ring depth would."""
    below = 0
    for seed in REGISTER_SEEDS:
        best = register_optimum(seed, SPAN)
        if best is None:
            continue
        loop, s = register_loop(seed), best.schedule
        below += any(loop.warps.overhead + sum(loop.ops[v].registers * depth(loop, s, v) for v in role.ops)
                     > role.registers for role in layout(loop, s).roles)
    assert below >= 3, below


def test_scratch_family_binds():
    """Scratch registers change the answer: some loops lose every II in the span, one a smaller II,
    and an optimum's roles need more than their live values alone (the scratch is counted)."""
    lost, slower, counted = 0, 0, 0
    for seed in SCRATCH_SEEDS:
        best, plain = scratch_optimum(seed, SPAN), register_optimum(seed, SPAN)
        lost += best is None and plain is not None
        slower += best is not None and plain is not None and best.ii > plain.ii
        if best is not None:
            loop = scratch_loop(seed)
            without = replace(loop, ops=tuple(replace(op, scratch=0) for op in loop.ops))
            counted += any(a.registers > b.registers for a, b in zip(layout(loop, best.schedule).roles,
                                                                    layout(without, best.schedule).roles))
    assert lost >= 3 and slower >= 1 and counted >= 3, (lost, slower, counted)


def test_staging_family_frees_registers_at_the_staging_copy():
    """The staging family is not vacuous: optima whose crossing value frees its registers before its
    last consumer's release, and whose roles would not fit if it held them until then (rule 7's L)."""
    found, shorter, held_too_long = 0, 0, 0
    for seed in STAGING_SEEDS:
        loop, best = staging_loop(seed), staging_optimum(seed, SPAN)
        if best is None:
            continue
        s, ii = best.schedule, best.schedule.ii
        found += 1
        shorter += any(register_lifetime(loop, s, v) < lifetime(loop, s, v)
                       for v in crossing_register_values(loop, s.roles))
        for role in layout(loop, s).roles:
            holders = [v for v in role.ops if loop.ops[v].registers]
            peak = max((sum(loop.ops[v].registers * (lifetime(loop, s, v) // ii + (
                (s.starts[u] - s.starts[v]) % ii < lifetime(loop, s, v) % ii)) for v in holders) for u in holders),
                       default=0)
            if loop.warps.overhead + peak > loop.warps.max_registers:
                held_too_long += 1
                break
    assert found >= 8 and shorter >= 8 and held_too_long >= 5, (found, shorter, held_too_long)


def test_oracle_family_covers_the_interesting_cases():
    results = [tiny_optimum(s, SPAN) for s in FAMILY]
    loops = [tiny_loop(s) for s in FAMILY]
    found = [(loop, r) for loop, r in zip(loops, results) if r is not None]
    assert len(found) >= 80 and len(found) <= len(FAMILY) - 8                         # some infeasible
    assert sum(r.ii > compute_bounds(loop).mii for loop, r in found) >= 30            # infeasibility proofs
    assert sum(r.ii > pure_oracle(replace(loop, warps=None))[0] for loop, r in found) >= 30  # joint rules bind
    assert sum(r.value("roles") >= 2 for _, r in found) >= 30
    assert sum(r.value("roles") >= 3 for _, r in found) >= 4  # releases across roles cost their barrier
    assert sum(r.value("handoff_bytes") > 0 for _, r in found) >= 10
    assert sum(r.value("ring_slots") >= 2 for _, r in found) >= 30
    assert sum(any(e.blocking for e in loop.edges) for loop, _ in found) >= 15
    assert sum(any(op.variable_latency for op in loop.ops) for loop, _ in found) >= 15
    assert sum(not loop.warps.cross_role for loop, _ in found) >= 10
    assert sum(any(op.depth is not None for op in loop.ops) for loop, _ in found) >= 10
    assert sum(any(e.release == "issue" for e in loop.edges) for loop, _ in found) >= 10


# --- the generator -----------------------------------------------------------------------------


def test_random_joint_loop_is_deterministic_and_well_formed():
    for n in (1, 3, 6, 12):
        for seed in range(6):
            loop = random_joint_loop(n, seed)
            assert loop == random_joint_loop(n, seed) and loop.joint
            base = random_loop(n, seed)                    # the pure skeleton is random_loop's
            assert [(o.name, o.latency, o.reservations) for o in loop.ops] == \
                [(o.name, o.latency, o.reservations) for o in base.ops]
            assert [(e.src, e.dst, e.delay, e.distance) for e in loop.edges] == \
                [(e.src, e.dst, e.delay, e.distance) for e in base.edges]
            w = loop.warps
            for op in loop.ops:
                assert op.warps in (1, w.warpgroup)
                assert op.issue_cycles is None or 0 <= op.issue_cycles <= max(op.duration, 1)
                assert w.overhead + op.registers <= w.max_registers
                assert op.smem <= w.smem and op.tmem <= w.tmem
                assert not (op.variable_latency and op.warps > 1)
            assert w.setmaxnreg[1] <= 256 and w.register_file % (32 * w.warpgroup) == 0
    assert random_joint_loop(6, 1) != random_joint_loop(6, 2)


def test_random_joint_loop_knobs():
    loops = [random_joint_loop(8, seed) for seed in range(40)]
    assert sum(any(e.blocking for e in l.edges) for l in loops) >= 10
    assert sum(any(e.barrier == "named" for e in l.edges) for l in loops) >= 20
    assert sum(any(o.variable_latency for o in l.ops) for l in loops) >= 20
    assert sum(any(o.warps == 4 for o in l.ops) for l in loops) >= 20
    assert sum(any(o.issue_cycles is None for o in l.ops) for l in loops) >= 20
    assert sum(any(o.issue_cycles is not None for o in l.ops) for l in loops) >= 20
    assert sum(any(o.tmem for o in l.ops) for l in loops) >= 15
    assert sum(any(o.depth is not None for o in l.ops) for l in loops) >= 5
    assert sum(not l.warps.cross_role for l in loops) >= 3
    assert {l.warps.max_warps for l in loops} == {4, 8, 12, 16}
    quiet = random_joint_loop(8, 3, p_blocking=0, p_variable=0, p_warpgroup=0, p_registers=0, p_smem=0, p_tmem=0,
                              cross_role=False, max_warps=4)
    assert not any(e.blocking for e in quiet.edges)
    assert all(o.warps == 1 and not o.variable_latency and not o.has_value for o in quiet.ops)
    assert (quiet.warps.cross_role, quiet.warps.max_warps) == (False, 4)
    assert random_joint_loop(8, 3, cross_role=True).warps.cross_role
    fixed = replace(MACHINE, cross_role=False)
    assert random_joint_loop(5, 1, warps=fixed, cross_role=True).warps == replace(MACHINE, cross_role=True)
    assert all(o.issue_cycles is None for o in random_joint_loop(8, 3, p_async=0, p_variable=0).ops)
    # Tighter machines: never more room than the default draw.
    for seed in range(10):
        tight, roomy = random_joint_loop(6, seed, tightness=0.5).warps, random_joint_loop(6, seed).warps
        assert tight.smem <= roomy.smem and tight.tmem <= roomy.tmem and tight.register_file <= roomy.register_file


@pytest.mark.parametrize("seed", range(30))
def test_joint_loop_round_trips_through_a_file(seed, tmp_path):
    loop = random_joint_loop(3 + seed % 10, seed)
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(loop_to_spec(loop), sort_keys=False))
    assert load_spec(path) == loop


def test_pure_loop_to_spec_is_unchanged():
    """A pure loop's spec has none of the joint fields (what tests/test_crosscheck.py relies on)."""
    spec = loop_to_spec(random_loop(6, 4))
    assert set(spec) == {"name", "machine", "ops", "edges"} and set(spec["machine"]) == {"units"}
    assert all(set(e) == {"src", "dst", "delay", "distance"} for e in spec["edges"])
    assert all(set(o) <= {"name", "latency", "unit", "occupancy", "reservations"} for o in spec["ops"])

