"""The independent verifier: each kind of violation is caught, valid schedules pass, and on random
schedules of random loops its verdicts match a recomputation that unrolls iterations on a timeline."""

from __future__ import annotations

import random

import pytest

from oracle import oracle
from twill.model.generate import random_loop
from twill.model.loop import Dependence, Loop, Op, Reservation
from twill.model.schedule import Schedule
from twill.solver.verify import verify


def hold(name: str, unit: str, cycles: int, latency: int = 1, offset: int = 0, amount: int = 1) -> Op:
    return Op(name, latency, (Reservation(unit, offset, cycles, amount),))


def kinds(loop: Loop, ii, starts) -> list[str]:
    return [v.constraint for v in verify(loop, Schedule(ii, tuple(starts)))]


# --- each kind of violation --------------------------------------------------------------------


def test_paper_example_schedules():
    loop = Loop("fig1", {"tc": 1, "sfu": 1},
                (hold("S", "tc", 1), hold("P", "sfu", 1), hold("O", "tc", 1), Op("N", 0, ())),
                (Dependence(0, 1, 1, 0), Dependence(1, 2, 1, 0), Dependence(2, 2, 1, 1)))
    assert kinds(loop, 2, (0, 1, 3, 0)) == []            # the paper's schedule: S slot 0, O slot 1
    assert kinds(loop, 2, (0, 1, 5, 0)) == []            # O two stages later is still fine
    assert kinds(loop, 1, (0, 1, 3, 0)) == ["resource"]  # S and O share the single slot
    assert kinds(loop, 2, (0, 1, 2, 0)) == ["resource"]  # S and O both sit in slot 0
    messages = [v.message for v in verify(loop, Schedule(2, (0, 1, 2, 0)))]
    assert "tc" in messages[0] and "S" in messages[0] and "O" in messages[0]


def test_dependence_boundary_and_loop_carried_edges():
    loop = Loop("dep", {}, (Op("A", 3, ()), Op("B", 1, ())),
                (Dependence(0, 1, 3, 0), Dependence(1, 0, 5, 1)))
    # A -> B holds with exactly the delay; B -> A needs t(A) - t(B) = -3 >= 5 - II, so II >= 8.
    assert kinds(loop, 3, (0, 3)) == ["dependence"]
    assert kinds(loop, 8, (0, 3)) == []
    assert kinds(loop, 7, (0, 3)) == ["dependence"]       # -3 >= -2 fails by one
    assert kinds(loop, 8, (0, 2)) == ["dependence"]       # same-iteration edge short by one
    assert kinds(loop, 8, (1, 3)) == ["dependence"]
    assert kinds(loop, 8, (0, 10)) == ["dependence"]      # too far apart for the back edge: -10 < -3
    violations = verify(loop, Schedule(1, (0, 1)))
    assert [v.constraint for v in violations] == ["dependence", "dependence"]
    assert all("A" in v.message and "B" in v.message for v in violations)


def test_self_loop_recurrence():
    loop = Loop("acc", {}, (Op("acc", 4, ()),), (Dependence(0, 0, 4, 2),))
    assert kinds(loop, 2, (5,)) == []                     # 0 >= 4 - 2*2
    assert kinds(loop, 1, (0,)) == ["dependence"]


def test_occupancy_wrapping_past_ii():
    one, two = {"tc": 1}, {"tc": 2}
    solo = (hold("A", "tc", 3),)
    assert kinds(Loop("w", one, solo, ()), 3, (0,)) == []
    assert kinds(Loop("w", one, solo, ()), 2, (0,)) == ["resource"]   # overlaps its own next iteration
    assert kinds(Loop("w", one, solo, ()), 2, (7,)) == ["resource"]
    assert kinds(Loop("w", two, solo, ()), 2, (0,)) == []             # 2 on slot 0, 1 on slot 1
    assert kinds(Loop("w", two, solo, ()), 1, (0,)) == ["resource"]   # 3 on the single slot
    assert kinds(Loop("w", {"tc": 3}, solo, ()), 1, (0,)) == []
    pair = (hold("A", "tc", 3), hold("B", "tc", 1))
    assert kinds(Loop("w", two, pair, ()), 2, (0, 1)) == []           # B joins the slot A holds once
    assert kinds(Loop("w", two, pair, ()), 2, (0, 2)) == ["resource"] # B joins the slot A holds twice
    assert kinds(Loop("w", two, pair, ()), 2, (1, 0)) == []
    # Exactly II cycles: a full turn, one instance on every slot.
    full = (hold("A", "tc", 4), hold("B", "tc", 1))
    assert kinds(Loop("w", two, full, ()), 4, (0, 3)) == []
    assert kinds(Loop("w", one, full, ()), 4, (0, 3)) == ["resource"]
    # Wide reservations count their amount on every cycle.
    wide = (hold("A", "tc", 3, amount=2), hold("B", "tc", 1))
    assert kinds(Loop("w", two, wide, ()), 3, (0, 0)) == ["resource"]
    assert kinds(Loop("w", {"tc": 3}, wide, ()), 3, (0, 0)) == []
    assert kinds(Loop("w", {"tc": 3}, wide, ()), 2, (0, 1)) == ["resource"]  # A alone puts 4 on slot 0 of II 2


def test_reservation_offsets():
    loop = Loop("off", {"tc": 1, "tma": 1},
                (Op("F", 4, (Reservation("tma", 0, 1, 1), Reservation("tc", 2, 1, 1))), hold("M", "tc", 1)),
                ())
    assert kinds(loop, 3, (0, 0)) == []     # F holds tc on slot 2, M on slot 0
    assert kinds(loop, 3, (0, 2)) == ["resource"]
    assert kinds(loop, 3, (1, 0)) == ["resource"]  # F's tc cycle wraps to slot 0
    assert kinds(loop, 2, (0, 1)) == []
    assert kinds(loop, 2, (0, 0)) == ["resource"]  # offset 2 lands on slot 0 at II 2
    messages = [v.message for v in verify(loop, Schedule(2, (0, 0)))]
    assert len(messages) == 1 and "tc" in messages[0] and "slot 0" in messages[0]
    # An offset larger than II, on the same unit twice.
    twice = Loop("twice", {"tc": 1}, (Op("T", 6, (Reservation("tc", 0, 1, 1), Reservation("tc", 5, 1, 1))),), ())
    assert kinds(twice, 5, (0,)) == ["resource"]   # 0 and 5 are both slot 0
    assert kinds(twice, 2, (0,)) == []             # slots 0 and 1
    assert kinds(twice, 3, (1,)) == []
    assert kinds(twice, 1, (0,)) == ["resource"]


def test_bad_ii():
    loop = Loop("one", {"tc": 1}, (hold("A", "tc", 1),), ())
    for ii in (0, -1, -5, 1.5, "2", None):
        assert kinds(loop, ii, (0,)) == ["ii"], ii
    assert kinds(loop, 1, (0,)) == []


def test_bad_starts():
    loop = Loop("two", {"tc": 1}, (hold("A", "tc", 1), Op("B", 1, ())), (Dependence(0, 1, 1, 0),))
    assert kinds(loop, 1, (-1, 1)) == ["start"]
    assert kinds(loop, 1, (0, -3)) == ["start"]
    assert kinds(loop, 1, (-2, -1)) == ["start", "start"]
    assert kinds(loop, 1, (0, 1.0)) == ["start"]
    assert kinds(loop, 1, (0,)) == ["start"]          # one start for two ops
    assert kinds(loop, 1, (0, 1, 2)) == ["start"]
    assert kinds(loop, 1, (0, 1)) == []
    assert "B" in verify(loop, Schedule(1, (0, -3)))[0].message


def test_every_violation_is_reported():
    loop = Loop("many", {"tc": 1, "sfu": 1},
                (hold("A", "tc", 1), hold("B", "tc", 1), hold("C", "sfu", 2), hold("D", "sfu", 1)),
                (Dependence(0, 1, 2, 0), Dependence(2, 3, 2, 0)))
    assert sorted(kinds(loop, 2, (0, 0, 0, 0))) == ["dependence", "dependence", "resource", "resource"]


# --- verdicts against a recomputation on random schedules --------------------------------------


def unrolled_verdict(loop: Loop, ii: int, starts: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    """(violated edges, overloaded residues per unit), from iterations laid out on a linear timeline.

    Iteration i issues op v at cycle i*II + t(v). From cycle W = max(t + offset + cycles) on, every
    iteration holding a unit at a cycle c started at i >= 0, so the loads at cycles W..W+II-1 are the
    steady state: one cycle per residue modulo II.
    """
    violated = sum(1 for e in loop.edges
                   if (e.distance * ii + starts[e.dst]) - starts[e.src] < e.delay)  # iteration i+d vs i
    ends = [t + r.offset + r.cycles for t, op in zip(starts, loop.ops) for r in op.reservations]
    window = range(max(ends, default=0), max(ends, default=0) + ii)
    overloaded: dict[str, int] = {}
    for unit, capacity in loop.capacity.items():
        timeline: dict[int, int] = {}
        for i in range(window.stop // ii + 2):
            for t, op in zip(starts, loop.ops):
                for r in op.reservations:
                    if r.unit == unit:
                        begin = i * ii + t + r.offset
                        for c in range(begin, begin + r.cycles):
                            timeline[c] = timeline.get(c, 0) + r.amount
        count = sum(1 for c in window if timeline.get(c, 0) > capacity)
        if count:
            overloaded[unit] = count
    return violated, overloaded


def verifier_verdict(loop: Loop, ii: int, starts: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    violations = verify(loop, Schedule(ii, starts))
    assert {v.constraint for v in violations} <= {"dependence", "resource"}
    overloaded: dict[str, int] = {}
    for v in violations:
        if v.constraint == "resource":
            unit = next(u for u in loop.capacity if v.message.startswith(f"unit {u} "))
            overloaded[unit] = overloaded.get(unit, 0) + 1
    return sum(v.constraint == "dependence" for v in violations), overloaded


def random_cases(seed: int):
    """A random small loop and schedules around its optimum: the optimum, other IIs, perturbed starts."""
    rng = random.Random(f"verify-{seed}")
    loop = random_loop(rng.randint(1, 5), seed, units=rng.randint(1, 3), max_latency=3,
                       max_occupancy=rng.choice((2, 3)), max_offset=rng.choice((1, 3)), carried=rng.randint(1, 3))
    ii, _, _, best = oracle(loop)
    yield loop, ii, best
    for _ in range(12):
        other = max(1, ii + rng.randint(-2, 3))
        starts = list(best)
        for _ in range(rng.randint(0, 2)):
            v = rng.randrange(len(starts))
            starts[v] = max(0, starts[v] + rng.choice((-2, -1, 1, 2, other, -other)))
        yield loop, other, tuple(starts)
    for _ in range(4):
        other = rng.randint(1, 8)
        yield loop, other, tuple(rng.randint(0, 3 * other + 4) for _ in loop.ops)


@pytest.mark.parametrize("chunk", range(10))
def test_verdicts_match_unrolled_recomputation(chunk):
    valid = invalid_dep = invalid_res = 0
    for seed in range(chunk * 30, chunk * 30 + 30):
        for loop, ii, starts in random_cases(seed):
            expected = unrolled_verdict(loop, ii, starts)
            assert verifier_verdict(loop, ii, starts) == expected, (loop, ii, starts)
            assert (verify(loop, Schedule(ii, starts)) == []) == (expected == (0, {}))
            valid += expected == (0, {})
            invalid_dep += expected[0] > 0
            invalid_res += bool(expected[1])
    assert valid >= 30 and invalid_dep >= 30 and invalid_res >= 30, (valid, invalid_dep, invalid_res)
