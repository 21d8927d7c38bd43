"""Both solver backends against a brute-force oracle on hundreds of random small loops.

For every instance the CP-SAT and Z3 searches must prove the same optimal II, length and stage count
as ``tests/oracle.py`` (which shares no code with the solvers, the verifier or the bounds), the
oracle's own schedule must pass the independent verifier, and the II lower bounds must hold, with
RecMII equal to the largest ``ceil(delay / distance)`` over the simple cycles of the dependence graph.
"""

from __future__ import annotations

import functools
import itertools
import json
import random

import pytest
import yaml
from typer.testing import CliRunner

from oracle import least_stages, oracle
from twill.cli import app
from twill.model.generate import UNIT_POOL, loop_to_spec, random_loop
from twill.model.loader import load_spec
from twill.model.loop import Dependence, Loop, Op, Reservation
from twill.model.schedule import Schedule
from twill.solver.backend import Settings
from twill.solver.backends import make_backend
from twill.solver.bounds import compute_bounds
from twill.solver.search import search
from twill.solver.verify import verify

DETERMINISTIC = Settings(deterministic=True)
AGREEMENT_SEEDS = range(600)   # instances where all three must agree on II, length and stages
RECURRENCE_SEEDS = range(150)  # larger loops for the RecMII enumerator only
CLI_SEEDS = range(8)           # random specs written to files and solved through the command line


def small_loop(seed: int) -> Loop:
    """2-5 ops with small latencies and occupancies (so the oracle is fast), knobs varied by seed."""
    knobs = random.Random(f"crosscheck-{seed}")
    return random_loop(
        2 + seed % 4, seed,
        units=knobs.randint(1, 3),
        max_latency=3,
        max_occupancy=knobs.choice((1, 2, 3, 4)),
        max_offset=knobs.choice((0, 1, 2)),
        p_multi=0.25,
        carried=knobs.randint(1, 3),
        p_back=knobs.choice((0.5, 1.0)),
    )


@functools.lru_cache(maxsize=None)
def oracle_of(seed: int):
    return oracle(small_loop(seed))


@functools.lru_cache(maxsize=None)
def backend(name: str):
    return make_backend(name, DETERMINISTIC)


# --- the oracle itself -------------------------------------------------------------------------


def fig1_toy() -> Loop:
    """The paper's running example (specs/kernels/fig1-toy.yaml): II 2, length 4, 2 stages."""
    return Loop("fig1", {"tc": 1, "sfu": 1},
                (Op("S", 1, (Reservation("tc", 0, 1, 1),)), Op("P", 1, (Reservation("sfu", 0, 1, 1),)),
                 Op("O", 1, (Reservation("tc", 0, 1, 1),)), Op("N", 0, ())),
                (Dependence(0, 1, 1, 0), Dependence(1, 2, 1, 0), Dependence(2, 2, 1, 1)))


def test_oracle_on_hand_checked_loops():
    assert oracle(fig1_toy())[:3] == (2, 4, 2)
    # One op holding the unit 3 cycles: II 3 (at II 1 or 2 it would overlap its own next iteration).
    hold = Loop("hold", {"tc": 1}, (Op("A", 1, (Reservation("tc", 0, 3, 1),)),), ())
    assert oracle(hold) == (3, 3, 1, (0,))
    # Two instances: the 3-cycle hold wraps past II 2 (one full turn plus one cycle) and still fits.
    assert oracle(Loop("hold2", {"tc": 2}, hold.ops, ()))[:3] == (2, 3, 1)
    # A reservation at offset 1 collides with another op's cycle at slot 0 unless they are shifted.
    offset = Loop("offset", {"tc": 1},
                  (Op("A", 2, (Reservation("tc", 1, 1, 1),)), Op("B", 1, (Reservation("tc", 0, 1, 1),))),
                  (Dependence(0, 1, 0, 0),))
    assert oracle(offset) == (2, 2, 1, (0, 0))  # A's cycle lands on slot 1, B's on slot 0
    # A recurrence of delay 5 over distance 2 forces II 3; the chain needs a second stage.
    rec = Loop("rec", {}, (Op("A", 2, ()), Op("B", 3, ())),
               (Dependence(0, 1, 2, 0), Dependence(1, 0, 3, 2)))
    assert oracle(rec) == (3, 5, 1, (0, 2))


def test_least_stages_detects_positive_cycles():
    assert least_stages(2, [(0, 1, 1), (1, 0, -1)]) == [0, 1]
    assert least_stages(2, [(0, 1, 1), (1, 0, 0)]) is None
    assert least_stages(1, [(0, 0, 1)]) is None
    assert least_stages(3, [(0, 1, 2), (1, 2, 3), (0, 2, 1)]) == [0, 2, 5]


def direct_feasible(loop: Loop, ii: int, starts: tuple[int, ...]) -> bool:
    """A schedule check written a third way: count every reservation cycle of every op on its residue."""
    for e in loop.edges:
        if starts[e.dst] - starts[e.src] < e.delay - ii * e.distance:
            return False
    used: dict[tuple[str, int], int] = {}
    for t, op in zip(starts, loop.ops):
        for res in op.reservations:
            for c in range(res.cycles):
                key = (res.unit, (t + res.offset + c) % ii)
                used[key] = used.get(key, 0) + res.amount
    return all(amount <= loop.capacity[unit] for (unit, _), amount in used.items())


@pytest.mark.parametrize("seed", [s for s in range(120) if len(small_loop(s).ops) <= 3][:30])
def test_oracle_against_start_enumeration(seed):
    """On the tiniest loops, enumerate start vectors directly: the oracle's level is the best there."""
    loop = small_loop(seed)
    ii, length, stages, _ = oracle_of(seed)
    durations = [max([op.latency] + [r.offset + r.cycles for r in op.reservations]) for op in loop.ops]
    # Every schedule of length <= L has all starts in [0, L]; none better than the oracle's exists.
    best = min(((max(t + d for t, d in zip(starts, durations)), max(starts) // ii + 1)
                for starts in itertools.product(range(length + 1), repeat=len(loop.ops))
                if direct_feasible(loop, ii, starts)), default=None)
    assert best == (length, stages)
    # And below the oracle's II no schedule exists with starts in a generous window.
    for smaller in range(1, ii):
        window = range(2 * length + 2)
        assert not any(direct_feasible(loop, smaller, starts)
                       for starts in itertools.product(window, repeat=len(loop.ops)))


# --- agreement ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", AGREEMENT_SEEDS)
def test_oracle_schedule_is_valid(seed):
    loop = small_loop(seed)
    ii, length, stages, starts = oracle_of(seed)
    schedule = Schedule(ii, starts)
    assert verify(loop, schedule) == []
    assert direct_feasible(loop, ii, starts)
    assert (schedule.length(loop), schedule.stages) == (length, stages)


@pytest.mark.parametrize("seed", AGREEMENT_SEEDS)
@pytest.mark.parametrize("name", ["cpsat", "z3"])
def test_backend_agrees_with_oracle(name, seed):
    loop = small_loop(seed)
    ii, length, stages, _ = oracle_of(seed)
    result = search(loop, backend(name), 60, DETERMINISTIC)
    assert result.status == "optimal", result.proof
    assert verify(loop, result.schedule) == []
    got = (result.schedule.ii, result.schedule.length(loop), result.schedule.stages)
    assert got == (ii, length, stages), f"{name} {got} vs oracle {(ii, length, stages)} on {loop}"
    assert result.lower_bound == ii
    assert [(o.name, o.value, o.optimal, o.bound) for o in result.objectives] == [
        ("length", length, True, length), ("stages", stages, True, stages)]


def test_instances_cover_the_interesting_cases():
    """The random family exercises what the solvers find hard, not only II = MII on idle units."""
    loops = [small_loop(s) for s in AGREEMENT_SEEDS]
    results = [oracle_of(s) for s in AGREEMENT_SEEDS]
    bounds = [compute_bounds(loop) for loop in loops]
    assert sum(r[0] > b.mii for r, b in zip(results, bounds)) >= 30   # II above MII: infeasibility proofs
    assert sum(b.rec_mii > b.res_mii for b in bounds) >= 60           # recurrence-bound loops
    assert sum(b.res_mii > b.rec_mii for b in bounds) >= 60           # resource-bound loops
    assert sum(r[2] >= 2 for r in results) >= 150                     # several stages
    wraps = sum(any(res.cycles > r[0] for op in loop.ops for res in op.reservations)
                for loop, r in zip(loops, results))
    assert wraps >= 20                                                # occupancy longer than II
    assert sum(any(res.offset > 0 for op in loop.ops for res in op.reservations) for loop in loops) >= 60
    assert sum(any(res.amount > 1 for op in loop.ops for res in op.reservations) for loop in loops) >= 40
    assert sum(any(not op.reservations for op in loop.ops) for loop in loops) >= 60


# --- bounds ------------------------------------------------------------------------------------


def simple_cycles(loop: Loop):
    """(delay, distance) of every simple cycle, each edge choice counted (parallel edges differ)."""
    out = {v: [e for e in loop.edges if e.src == v] for v in range(len(loop.ops))}

    def walk(start, node, on_path, delay, distance):
        for e in out[node]:
            if e.dst == start:
                yield delay + e.delay, distance + e.distance
            elif e.dst > start and e.dst not in on_path:
                yield from walk(start, e.dst, on_path | {e.dst}, delay + e.delay, distance + e.distance)

    for start in range(len(loop.ops)):
        yield from walk(start, start, {start}, 0, 0)


def expected_rec_mii(loop: Loop) -> int:
    best = 0
    for delay, distance in simple_cycles(loop):
        assert distance > 0  # the generator never closes a zero-distance cycle
        best = max(best, -(-delay // distance))
    return best


def expected_res_mii(loop: Loop) -> int:
    best = 0
    for unit, capacity in loop.capacity.items():
        work = sum(r.cycles * r.amount for op in loop.ops for r in op.reservations if r.unit == unit)
        best = max(best, -(-work // capacity))
    return best


def check_bounds(loop: Loop) -> None:
    bounds = compute_bounds(loop)
    assert bounds.rec_mii == expected_rec_mii(loop)
    assert bounds.res_mii == expected_res_mii(loop)
    assert bounds.mii == max(bounds.rec_mii, bounds.res_mii, 1)
    if bounds.recurrence is not None:  # the reported critical cycle is a real cycle that binds
        rec = bounds.recurrence
        assert -(-rec.delay // rec.distance) == rec.ii == bounds.rec_mii
        names = [op.name for op in loop.ops]
        hops = list(zip(rec.ops, rec.ops[1:] + rec.ops[:1]))
        assert all(any(names[e.src] == a and names[e.dst] == b for e in loop.edges) for a, b in hops)


@pytest.mark.parametrize("seed", AGREEMENT_SEEDS)
def test_bounds_on_small_loops(seed):
    loop = small_loop(seed)
    check_bounds(loop)
    assert compute_bounds(loop).mii <= oracle_of(seed)[0]


@pytest.mark.parametrize("seed", RECURRENCE_SEEDS)
def test_rec_mii_matches_cycle_enumeration(seed):
    """Larger loops with many overlapping recurrences (Bellman-Ford bisection vs. enumeration)."""
    rng = random.Random(f"recurrence-{seed}")
    n = rng.randint(4, 12)
    check_bounds(random_loop(n, seed, max_latency=rng.choice((3, 8, 20)), max_distance=rng.randint(1, 4),
                             carried=rng.randint(1, n), recurrence_span=rng.randint(1, 6)))


# --- the generator and the spec format ---------------------------------------------------------


def test_random_loop_is_deterministic_and_well_formed():
    for n in (1, 2, 5, 10, 20, 40, 80):
        for seed in range(5):
            loop = random_loop(n, seed)
            assert loop == random_loop(n, seed)
            assert len(loop.ops) == n and len({op.name for op in loop.ops}) == n
            assert set(loop.capacity) <= set(UNIT_POOL) and all(1 <= c <= 2 for c in loop.capacity.values())
            for op in loop.ops:
                assert all(r.unit in loop.capacity and 1 <= r.amount <= loop.capacity[r.unit]
                           for r in op.reservations)
            for e in loop.edges:
                assert e.distance > 0 or e.src < e.dst
                assert 0 <= e.delay <= loop.ops[e.src].latency
    assert random_loop(10, 1) != random_loop(10, 2)
    big = [random_loop(80, seed) for seed in range(5)]
    assert all(compute_bounds(loop).rec_mii > 0 for loop in big)  # recurrences, not only resources
    assert all(any(len(op.reservations) > 1 and any(r.offset for r in op.reservations) for op in loop.ops)
               for loop in big)
    assert all(any(not op.reservations for op in loop.ops) for loop in big)
    assert all(any(r.cycles > 1 for op in loop.ops for r in op.reservations) for loop in big)


@pytest.mark.parametrize("seed", range(40))
def test_loop_to_spec_round_trips_through_a_file(seed, tmp_path):
    loop = random_loop(2 + seed % 12, seed)
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(loop_to_spec(loop), sort_keys=False))
    assert load_spec(path) == loop


@pytest.mark.parametrize("seed", CLI_SEEDS)
def test_cli_solves_random_specs_like_the_oracle(seed, tmp_path):
    loop = small_loop(seed)
    path = tmp_path / f"random-{seed}.yaml"
    path.write_text(yaml.safe_dump(loop_to_spec(loop), sort_keys=False))
    ii, length, stages, _ = oracle_of(seed)
    for name in ("cpsat", "z3"):
        run = CliRunner().invoke(app, ["solve", str(path), "--backend", name, "--deterministic", "--json", "-"])
        assert run.exit_code == 0, run.output
        data = json.loads(run.stdout)
        assert (data["status"], data["ii"], data["length"], data["stages"]) == ("optimal", ii, length, stages)
        starts = tuple(data["ops"][op.name]["start"] for op in loop.ops)
        assert verify(loop, Schedule(ii, starts)) == []
