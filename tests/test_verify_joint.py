"""The verifier's joint rules (docs/joint-model.md), one by one: a valid schedule and a minimally broken
one with the expected violation; the register layout; the loader's sub-tiling; and, on thousands of
random (loop, schedule, roles) triples, agreement with a brute-force recomputation written here from
the document (it unrolls iterations on a timeline and calls neither verify_joint nor twill.model.joint).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from fractions import Fraction

import pytest

from joint_oracle import tiny_loop, tiny_optimum
from twill.model.joint import handoff_cost, layout, lifetime, depth as ring_depth
from twill.model.loader import load_spec
from twill.model.loop import Dependence, Loop, Op, Reservation, Warps
from twill.model.schedule import Schedule
from twill.solver.verify import verify

# Roomy machine: nothing binds unless a test makes it. Hand-off: mbarrier 20, named 10, and a register
# value costs ceil(60 + 16 * KiB) more (1 KiB = 8 registers of one warp: 8 * 4 bytes * 32 threads).
ROOMY = Warps(max_warps=16, warpgroup=4, register_file=65536, max_registers=255, setmaxnreg=(24, 256, 8),
              overhead=0, smem=1 << 20, tmem=512, mbarrier=20, named=10, transfer_base=60,
              transfer_per_kb=16, cross_role=True)


def op(name: str, latency: int, issue: int | None = 1, unit: str | None = None, cycles: int = 1, **fields) -> Op:
    table = (Reservation(unit, 0, cycles, 1),) if unit else ()
    return Op(name, latency, table, issue, **fields)


def joint(ops, edges=(), capacity=None, **machine) -> Loop:
    return Loop("t", capacity or {"tc": 1}, tuple(ops), tuple(edges), replace(ROOMY, **machine))


def edge(src: int, dst: int, delay: int, distance: int = 0, **fields) -> Dependence:
    return Dependence(src, dst, delay, distance, **fields)


def kinds(loop: Loop, ii: int, starts, roles) -> list[str]:
    """The distinct rules ``verify`` finds violated, sorted."""
    return sorted({v.constraint for v in verify(loop, Schedule(ii, tuple(starts), tuple(roles)))})


# --- rule 1: dependences with hand-off ---------------------------------------------------------


def test_dependence_pays_the_handoff_only_across_roles():
    loop = joint([op("A", 4), op("B", 1)], [edge(0, 1, 4)])
    assert kinds(loop, 40, (0, 4), (0, 0)) == []
    assert kinds(loop, 40, (0, 3), (0, 0)) == ["dependence"]
    assert kinds(loop, 40, (0, 24), (0, 1)) == []              # 4 + mbarrier 20
    assert kinds(loop, 40, (0, 23), (0, 1)) == ["dependence"]
    named = joint([op("A", 4), op("B", 1)], [edge(0, 1, 4, barrier="named")])
    assert kinds(named, 40, (0, 14), (0, 1)) == []             # 4 + named 10
    assert kinds(named, 40, (0, 13), (0, 1)) == ["dependence"]


def test_register_values_pay_the_transfer():
    # 8 registers x 1 warp = 1 KiB: 20 + ceil(60 + 16) = 96; a warpgroup's 4 KiB: 20 + 60 + 64 = 144.
    one = joint([op("A", 4, registers=8), op("B", 1)], [edge(0, 1, 4)])
    assert handoff_cost(one, one.edges[0]) == 96
    assert kinds(one, 200, (0, 100), (0, 1)) == []
    assert kinds(one, 200, (0, 99), (0, 1)) == ["dependence"]
    assert kinds(one, 200, (0, 4), (0, 0)) == []
    wide = joint([op("A", 4, registers=8, warps=4), op("B", 1)], [edge(0, 1, 4)])
    assert handoff_cost(wide, wide.edges[0]) == 144
    assert kinds(wide, 200, (0, 148), (0, 1)) == []
    assert kinds(wide, 200, (0, 147), (0, 1)) == ["dependence"]
    # A fractional transfer rounds up: 0.5 cycles per KiB on 1 KiB.
    half = joint([op("A", 4, registers=8), op("B", 1)], [edge(0, 1, 4)], transfer_base=1, transfer_per_kb=0.5)
    assert handoff_cost(half, half.edges[0]) == 20 + 2
    # The rate is the decimal written in the machine file: 61 + 16.1 x 10 KiB is exactly 222 (the float
    # product 16.1 * 10 is 161.00000000000003, which would round up to 223).
    decimal = joint([op("A", 4, registers=80), op("B", 1)], [edge(0, 1, 4)], transfer_base=61, transfer_per_kb=16.1)
    assert handoff_cost(decimal, decimal.edges[0]) == 20 + 222
    assert kinds(decimal, 300, (0, 246), (0, 1)) == []
    assert kinds(decimal, 300, (0, 245), (0, 1)) == ["dependence"]


def test_loop_carried_dependence_with_handoff():
    # B -> A at distance 1: t(A) + II - t(B) >= 1 (+ 20 across roles).
    loop = joint([op("A", 2), op("B", 1)], [edge(0, 1, 2), edge(1, 0, 1, 1)])
    assert kinds(loop, 3, (0, 2), (0, 0)) == []
    assert kinds(loop, 24, (0, 22), (0, 1)) == ["dependence"]  # A -> B: 22 >= 2 + 20, but B -> A: 2 < 21
    assert kinds(loop, 43, (0, 22), (0, 1)) == []              # 0 + 43 - 22 = 21 >= 1 + 20
    assert kinds(loop, 42, (0, 22), (0, 1)) == ["dependence"]


# --- rules 2 and 3: units are shared, issue is per role -----------------------------------------


def test_in_order_issue_per_role_modulo_ii():
    # A is busy issuing 2 cycles (async, latency 5), B 1 cycle; II 4.
    loop = joint([op("A", 5, issue=2), op("B", 1)])
    assert kinds(loop, 4, (0, 2), (0, 0)) == []
    assert kinds(loop, 4, (0, 1), (0, 0)) == ["issue"]
    assert kinds(loop, 4, (0, 4), (0, 0)) == ["issue"]         # slot 0 again, next iteration's A
    assert kinds(loop, 4, (0, 5), (0, 0)) == ["issue"]
    assert kinds(loop, 4, (0, 6), (0, 0)) == []
    assert kinds(loop, 4, (0, 1), (0, 1)) == []                # different roles issue at once
    assert kinds(loop, 1, (0, 0), (0, 1)) == ["issue"]         # A's 2 issue cycles exceed II 1
    # Synchronous (issue None): busy for the whole duration, here 3 cycles of latency.
    sync = joint([op("S", 3, issue=None), op("B", 1)])
    assert kinds(sync, 4, (0, 3), (0, 0)) == []
    assert kinds(sync, 4, (0, 2), (0, 0)) == ["issue"]
    assert kinds(sync, 2, (0, 0), (0, 1)) == ["issue"]         # 3 > II 2
    # Zero issue cycles hold no slot.
    free = joint([op("A", 5, issue=4), op("Z", 0, issue=0)])
    assert kinds(free, 4, (0, 2), (0, 0)) == []


def test_units_are_shared_by_all_roles():
    loop = joint([op("A", 1, unit="tc"), op("B", 1, unit="tc")])
    assert kinds(loop, 2, (0, 0), (0, 1)) == ["resource"]
    assert kinds(loop, 2, (0, 1), (0, 1)) == []


# --- rule 4: variable latency -------------------------------------------------------------------


def test_variable_latency_ops_get_a_dedicated_producer():
    loop = joint([op("L1", 4, variable_latency=True), op("L2", 4, variable_latency=True), op("C", 1)])
    assert kinds(loop, 10, (0, 1, 5), (0, 0, 1)) == []
    assert kinds(loop, 10, (0, 1, 5), (0, 1, 2)) == ["variable_latency"]
    assert kinds(loop, 10, (0, 1, 5), (0, 0, 0)) == ["variable_latency"]
    assert kinds(loop, 10, (0, 1, 5), (0, 1, 1)) == ["variable_latency"]


# --- rule 5: warps ------------------------------------------------------------------------------


def test_single_warp_roles_pack_into_warpgroups():
    ops = [op("W", 1, issue=0, warps=4)] + [op(f"S{i}", 1, issue=0) for i in range(5)]
    starts = (0,) * 6
    assert kinds(joint(ops, max_warps=8), 2, starts, (0, 1, 2, 3, 4, 0)) == []      # 4 + 4 single warps: 8
    assert kinds(joint(ops, max_warps=8), 2, starts, (0, 1, 2, 3, 4, 5)) == ["warps"]  # 4 + 5: 4 + 8 = 12
    assert kinds(joint(ops, max_warps=12), 2, starts, (0, 1, 2, 3, 4, 5)) == []
    # A warpgroup op makes its role a warpgroup: W with S0 is still 4 warps.
    assert kinds(joint(ops, max_warps=4), 2, starts, (0, 0, 0, 0, 0, 0)) == []
    assert kinds(joint(ops, max_warps=4), 2, starts, (0, 0, 0, 0, 0, 1)) == ["warps"]
    two = [op("W1", 1, warps=4), op("W2", 1, warps=4)]  # issuing 1 cycle each
    assert kinds(joint(two, max_warps=8), 2, (0, 0), (0, 1)) == []
    assert kinds(joint(two, max_warps=4), 2, (0, 0), (0, 1)) == ["warps"]
    assert kinds(joint(two, max_warps=4), 2, (0, 1), (0, 0)) == []


# --- rule 6: blocking edges ---------------------------------------------------------------------


def blocking_loop(**machine) -> Loop:
    """U (latency 2) -> V blocking; O is a long async op (latency 10) that may share V's role."""
    return joint([op("U", 2), op("O", 10), op("V", 1)], [edge(0, 2, 2, blocking=True)], **machine)


def test_blocking_waits_for_work_issued_before_the_producer():
    loop = blocking_loop()
    assert kinds(loop, 20, (1, 0, 3), (0, 0, 0)) == ["blocking"]  # O issued at 0 < 1 still runs at 3
    assert kinds(loop, 20, (1, 0, 10), (0, 0, 0)) == []           # O done at 10
    assert kinds(loop, 20, (1, 0, 9), (0, 0, 0)) == ["blocking"]
    assert kinds(loop, 20, (1, 0, 3), (0, 0, 1)) == ["dependence"]  # V moved away: hand-off, no blocking
    assert kinds(loop, 20, (1, 0, 23), (0, 0, 1)) == []
    assert kinds(loop, 20, (1, 0, 3), (0, 1, 0)) == []            # O on another role: not drained
    # FA3: work issued after the producer (O at 2 > 1) may still be in flight.
    assert kinds(loop, 20, (1, 2, 3), (0, 0, 0)) == []


def test_blocking_modulo_case_previous_iteration_instance():
    # II 8: O at 5 is after U at 0 in this iteration, but the previous iteration's O (5 - 8 = -3) was
    # issued before U and completes at 7, after V issues at 2.
    loop = blocking_loop()
    assert kinds(loop, 8, (0, 5, 2), (0, 0, 0)) == ["blocking"]
    assert kinds(loop, 8, (0, 5, 7), (0, 0, 0)) == []
    assert kinds(loop, 8, (0, 5, 6), (0, 0, 0)) == ["blocking"]
    # "Strictly before": an O issued at the same cycle as U (on V's role, U elsewhere; free hand-off)
    # is not drained; the previous iteration's O (at -20, done at -10) is.
    free = blocking_loop(mbarrier=0)
    assert kinds(free, 20, (1, 1, 3), (1, 0, 0)) == []
    assert kinds(free, 20, (1, 0, 3), (1, 0, 0)) == ["blocking"]
    assert kinds(free, 12, (1, 1, 3), (1, 0, 0)) == []            # previous O at -11, done at -1
    assert kinds(free, 6, (1, 1, 3), (1, 0, 0)) == ["blocking"]   # previous O at -5, done at 5 > 3


def test_blocking_includes_the_producer_previous_instance():
    # U itself on V's role: the latest U strictly before t(U) is the previous iteration's (d = II).
    loop = joint([op("U", 6, issue=1), op("V", 1)], [edge(0, 1, 1, blocking=True)])
    assert kinds(loop, 4, (0, 1), (0, 0)) == ["blocking"]         # U at -4 done at 2 > 1
    assert kinds(loop, 4, (0, 2), (0, 0)) == []
    assert kinds(loop, 7, (0, 1), (0, 0)) == []                   # U at -7 done at -1
    assert kinds(replace(loop, edges=(edge(0, 1, 1),)), 4, (0, 1), (0, 0)) == []  # not blocking


# --- rule 7: lifetimes, ring depths, fixed depth ------------------------------------------------


def test_accumulator_updated_in_place_needs_one_slot():
    # O += P V: O reads its own previous value, so O's value lives until the next O issues (II
    # cycles), not until it completes: one slot at any II >= its duration of 5.
    acc = joint([op("O", 5, registers=64, depth=1)], [edge(0, 0, 5, 1)])
    assert kinds(acc, 5, (0,), (0,)) == []
    assert ring_depth(acc, Schedule(8, (0,), (0,)), 0) == 1
    # Another consumer one iteration later keeps it until that consumer completes: two slots.
    read = joint([op("O", 5, registers=64, depth=1), op("R", 3)], [edge(0, 0, 5, 1), edge(0, 1, 5, 1)])
    assert kinds(read, 8, (0, 1), (0, 0)) == ["depth"]
    free = replace(read, ops=(op("O", 5, registers=64), read.ops[1]))
    assert ring_depth(free, Schedule(8, (0, 1), (0, 0)), 0) == 2


def test_lifetime_includes_async_consumers_completion():
    # P (latency 2) feeds C (latency 3): P's value lives from t(P) until C completes.
    loop = joint([op("P", 2, smem=1024), op("C", 3)], [edge(0, 1, 2)])
    assert lifetime(loop, Schedule(4, (0, 2), (0, 0)), 0) == 5
    assert ring_depth(loop, Schedule(4, (0, 2), (0, 0)), 0) == 2
    assert ring_depth(loop, Schedule(5, (0, 2), (0, 0)), 0) == 1
    assert ring_depth(loop, Schedule(5, (0, 6), (0, 0)), 0) == 2   # a later consumer holds it longer
    carried = joint([op("P", 2, smem=1024), op("C", 3)], [edge(0, 1, 2, 1)])
    assert lifetime(carried, Schedule(4, (0, 0), (0, 0)), 0) == 7                    # next iteration's C: 0 + 4 + 3
    assert ring_depth(carried, Schedule(4, (0, 0), (0, 0)), 0) == 2


def test_fixed_depth_bounds_the_lifetime():
    loop = joint([op("P", 2, smem=1024, depth=1), op("C", 3)], [edge(0, 1, 2)])
    assert kinds(loop, 5, (0, 2), (0, 0)) == []                    # lives 5 <= 1 x 5
    assert kinds(loop, 4, (0, 2), (0, 0)) == ["depth"]             # 5 > 1 x 4
    assert kinds(loop, 5, (0, 3), (0, 0)) == ["depth"]
    deeper = joint([op("P", 2, smem=1024, depth=2), op("C", 3)], [edge(0, 1, 2)])
    assert kinds(deeper, 4, (0, 2), (0, 0)) == []
    assert kinds(deeper, 4, (0, 6), (0, 0)) == ["depth"]           # 9 > 8
    # The fixed depth is what the memories are charged: 2 x 1024 > 1500 even though 1 slot would do.
    assert kinds(replace(deeper, warps=replace(deeper.warps, smem=1500)), 8, (0, 2), (0, 0)) == ["smem"]


# --- rule 8: registers --------------------------------------------------------------------------


def test_register_need_per_role():
    loop = joint([op("A", 2, registers=128), op("B", 2, registers=128)])
    assert kinds(loop, 4, (0, 1), (0, 1)) == []
    assert "registers" in kinds(loop, 4, (0, 1), (0, 0))           # live together at 1: 256 > 255 per thread
    assert kinds(loop, 4, (0, 2), (0, 0)) == []                    # one after the other: the peak is 128
    # Copies live at once add up: A's value lives 2 x II (B completes at 3 + 1 with II 2).
    chained = joint([op("A", 1, registers=100), op("B", 1)], [edge(0, 1, 1)])
    assert kinds(chained, 2, (0, 1), (0, 0)) == []                 # lives 2: 1 copy
    assert kinds(chained, 2, (0, 3), (0, 0)) == []                 # lives 4: 2 copies, 200 registers
    assert "registers" in kinds(chained, 2, (0, 5), (0, 0))        # lives 6: 3 copies everywhere, 300
    over = joint([op("A", 1, registers=100), op("B", 1)], [edge(0, 1, 1)], overhead=60)
    assert "registers" in kinds(over, 2, (0, 3), (0, 0))           # 60 + 200 > 255
    assert kinds(over, 2, (0, 1), (0, 0)) == []


def test_register_file_and_setmaxnreg_range():
    wgs = [op(f"W{i}", 1, warps=4, registers=200) for i in range(3)]
    assert kinds(joint(wgs[:2]), 2, (0, 1), (0, 1)) == []          # 128 x (200 + 200) = 51200
    assert kinds(joint(wgs), 3, (0, 1, 2), (0, 1, 2)) == ["registers"]  # 128 x 600 = 76800 > 65536
    # Need 245 <= 255 per thread, but the setmaxnreg value 248 is above the range's max 240.
    big = [op("W", 1, warps=4, registers=245)]
    assert kinds(joint(big), 1, (0,), (0,)) == []
    assert kinds(joint(big, setmaxnreg=(24, 240, 8)), 1, (0,), (0,)) == ["registers"]


def test_single_warp_roles_share_the_largest_need():
    # A warpgroup role needing 200 and five single-warp roles (two packed warpgroups), one needing 160:
    # 128 x (200 + 2 x 160) = 66560 > 65536 although the other four need only 24.
    ops = [op("W", 1, warps=4, registers=200), op("S0", 1, registers=160)] + [op(f"S{i}", 1) for i in range(1, 5)]
    roles = (0, 1, 2, 3, 4, 5)
    assert kinds(joint(ops), 6, (0, 1, 2, 3, 4, 5), roles) == ["registers"]
    # With four single-warp roles (one packed warpgroup): 128 x (200 + 160) = 46080.
    assert kinds(joint(ops), 6, (0, 1, 2, 3, 4, 5), (0, 1, 2, 3, 4, 4)) == []
    # With the largest single-warp need at 24 (S0 at 16 registers): 128 x (200 + 2 x 24) = 31744.
    light = [ops[0], op("S0", 1, registers=16)] + ops[2:]
    assert kinds(joint(light), 6, (0, 1, 2, 3, 4, 5), roles) == []


# --- rules 9 and 10: shared and tensor memory ---------------------------------------------------


def test_smem_rings_and_register_staging():
    two = joint([op("A", 1, smem=1024), op("B", 1, smem=1024)], smem=1536)
    assert kinds(two, 2, (0, 1), (0, 0)) == ["smem"]
    # Every ring takes whole 1024-byte blocks (the emitter aligns swizzled slots): 512 bytes take 1024.
    half = replace(two, ops=two.ops[:1] + (op("B", 1, smem=512),))
    assert kinds(half, 2, (0, 1), (0, 0)) == ["smem"]
    assert kinds(replace(half, warps=replace(half.warps, smem=2048)), 2, (0, 1), (0, 0)) == []
    # A register value read on another role is staged in shared memory: 8 registers x 1 warp = 1 KiB,
    # plus a full and an empty mbarrier (8 bytes each) per slot of its channel.
    staged = joint([op("R", 1, registers=8), op("C", 1)], [edge(0, 1, 1)], smem=1039, mbarrier=0,
                   transfer_base=0, transfer_per_kb=0)
    assert kinds(staged, 4, (0, 1), (0, 0)) == []
    assert kinds(staged, 4, (0, 1), (0, 1)) == ["smem"]
    assert kinds(replace(staged, warps=replace(staged.warps, smem=1040)), 4, (0, 1), (0, 1)) == []
    # ... once per ring slot: at 2000 bytes, one slot fits, two do not (C completes at 5 + 1 > 4).
    roomier = replace(staged, warps=replace(staged.warps, smem=2000))
    assert kinds(roomier, 4, (0, 1), (0, 1)) == []
    assert kinds(roomier, 4, (0, 5), (0, 1)) == ["smem"]
    # Lifetime doubles a plain ring too: 2 x 1000 bytes take two blocks.
    ring = joint([op("A", 1, smem=1000), op("B", 1)], [edge(0, 1, 1)], smem=1500)
    assert kinds(ring, 2, (0, 1), (0, 0)) == []
    assert kinds(ring, 2, (0, 3), (0, 0)) == ["smem"]
    # A channel without a value still has its barriers: an edge that crosses roles, 16 bytes a slot.
    sync = joint([op("A", 1), op("B", 1)], [edge(0, 1, 1)], smem=15, mbarrier=0)
    assert kinds(sync, 4, (0, 1), (0, 0)) == []
    assert kinds(sync, 4, (0, 1), (0, 1)) == ["smem"]
    assert kinds(replace(sync, warps=replace(sync.warps, smem=16)), 4, (0, 1), (0, 1)) == []


def test_order_tokens_take_barriers():
    """Two roles sharing the one tensor core (one cycle each) pass a token each way between uses at
    least the named barrier (10) apart: 2 x 16 bytes; a token spanning d iterations has d slots."""
    loop = joint([op("A", 1, unit="tc"), op("B", 1, unit="tc")], smem=31)
    assert kinds(loop, 40, (0, 20), (0, 0)) == []             # one role: no token
    assert kinds(loop, 40, (0, 20), (0, 1)) == ["smem"]
    roomy = replace(loop, warps=replace(loop.warps, smem=32))
    assert kinds(roomy, 40, (0, 20), (0, 1)) == []
    assert kinds(loop, 40, (0, 5), (0, 1)) == []              # A -> B 5 cycles apart: only B -> A has a token
    # B of iteration i + 2 follows A of iteration i: that token has 2 slots (48 bytes in all).
    assert kinds(roomy, 40, (80, 20), (0, 1)) == ["smem"]
    assert kinds(replace(loop, warps=replace(loop.warps, smem=48)), 40, (80, 20), (0, 1)) == []


def test_tmem_columns():
    loop = joint([op("A", 1, tmem=256), op("B", 1, tmem=256), op("C", 1)], [edge(0, 2, 1)])
    assert kinds(loop, 4, (0, 1, 2), (0, 0, 0)) == []              # 512 columns
    assert kinds(loop, 4, (0, 1, 6), (0, 0, 0)) == ["tmem"]        # A lives 7 cycles: 2 slots, 768
    assert kinds(replace(loop, warps=replace(loop.warps, tmem=768)), 4, (0, 1, 6), (0, 0, 0)) == []


# --- rule 11: the ban on register values crossing roles ----------------------------------------


def test_cross_role_ban():
    ops = [op("R", 1, registers=8), op("M", 1, smem=1024), op("C", 1)]
    edges = [edge(0, 2, 1), edge(1, 2, 1)]
    banned = joint(ops, edges, cross_role=False, mbarrier=0, transfer_base=0, transfer_per_kb=0)
    assert kinds(banned, 4, (0, 1, 2), (0, 1, 0)) == []            # only the smem value crosses
    assert kinds(banned, 4, (0, 1, 2), (0, 0, 1)) == ["cross_role"]
    assert kinds(replace(banned, warps=replace(banned.warps, cross_role=True)), 4, (0, 1, 2), (0, 0, 1)) == []


def test_role_vector_is_checked():
    loop = joint([op("A", 1), op("B", 1)])
    assert kinds(loop, 2, (0, 1), (0,)) == ["role"]
    assert kinds(loop, 2, (0, 1), (0, -1)) == ["role"]
    assert [v.constraint for v in verify(loop, Schedule(2, (0, 1)))] == ["role"]


# --- layout: setmaxnreg ------------------------------------------------------------------------


def fa3_like(high: int) -> tuple[Loop, Schedule]:
    """A single-warp TMA producer and two consumer warpgroups (FA3's split), needs below 240."""
    loop = joint([op("load", 4, variable_latency=True, smem=16384),
                  op("mma0", 4, warps=4, registers=150), op("mma1", 4, warps=4, registers=150)],
                 [edge(0, 1, 4), edge(0, 2, 4)], overhead=24, setmaxnreg=(24, high, 8))
    return loop, Schedule(100, (0, 30, 31), (0, 1, 2))


def test_layout_fa3_split():
    loop, schedule = fa3_like(240)
    assert verify(loop, schedule) == []
    plan = layout(loop, schedule)
    assert [(r.warps, r.registers, r.setmaxnreg) for r in plan.roles] == [(1, 24, 24), (4, 174, 240), (4, 174, 240)]
    assert plan.warps == 12 and plan.fits and plan.registers == 128 * (24 + 240 + 240)
    # With the hardware's max 256 the leftover goes a step at a time to both warpgroups at once:
    # 24 + 2 x 240 = 504 of 512 per warpgroup thread; one more step each would need 520.
    plan = layout(*fa3_like(256))
    assert [r.setmaxnreg for r in plan.roles] == [24, 240, 240] and plan.registers == 128 * 504


def test_layout_needs_round_up_and_share():
    loop = joint([op("A", 1, registers=30), op("B", 1, registers=3), op("W", 1, warps=4, registers=1)],
                 overhead=0)
    plan = layout(loop, Schedule(4, (0, 1, 2), (0, 1, 2)))
    assert [(r.warps, r.registers) for r in plan.roles] == [(1, 30), (1, 3), (4, 1)]
    assert [r.setmaxnreg for r in plan.roles][:2] == [32, 32]      # shared: the largest need, rounded up
    assert plan.warps == 8


# --- sub-tiling in the loader ------------------------------------------------------------------

SUBTILE_SPEC = """
name: subtile-check
machine: {machine}
subtile: 2
ops:
  - {{name: load, latency: 5, unit: tma, occupancy: 3, issue: 1, smem: 1000, variable_latency: true}}
  - {{name: mma, latency: 7, unit: tc, occupancy: 5, issue: 3, warps: 4, registers: 33, tmem: 65, subtile: true, depth: 2}}
  - {{name: exp, latency: 3, unit: sfu, occupancy: 3, registers: 9, subtile: true}}
  - {{name: store, latency: 2, unit: tma}}
edges:
  - {{src: load, dst: mma}}
  - {{src: mma, dst: exp, delay: 5, blocking: true, barrier: named}}
  - {{src: exp, dst: store}}
  - {{src: mma, dst: mma, distance: 1}}
"""


def test_subtile_expansion(tmp_path):
    path = tmp_path / "s.yaml"
    machine = str((__import__("pathlib").Path(__file__).parent / "joint" / "machine.yaml").resolve())
    path.write_text(SUBTILE_SPEC.format(machine=machine))
    loop = load_spec(path)
    names = [o.name for o in loop.ops]
    assert names == ["load", "mma.0", "mma.1", "exp.0", "exp.1", "store"]
    by = dict(zip(names, loop.ops))
    m = by["mma.0"]
    assert (m.latency, m.reservations[0].cycles, m.issue_cycles, m.registers, m.tmem) == (4, 3, 2, 17, 33)
    assert (m.warps, m.depth, m.reservations[0].amount) == (4, 2, 1)         # kept
    assert by["mma.1"] == replace(m, name="mma.1")
    e = by["exp.1"]
    assert (e.latency, e.reservations[0].cycles, e.issue_cycles, e.registers) == (2, 2, None, 5)
    assert by["load"] == load_spec(path, subtile=1).ops[0]                     # unsplit ops untouched
    idx = {n: i for i, n in enumerate(names)}
    wiring = sorted((names[x.src], names[x.dst], x.delay, x.distance, x.blocking, x.barrier) for x in loop.edges)
    assert wiring == sorted([
        ("load", "mma.0", 5, 0, False, "mbarrier"), ("load", "mma.1", 5, 0, False, "mbarrier"),   # all-to-all
        ("mma.0", "exp.0", 3, 0, True, "named"), ("mma.1", "exp.1", 3, 0, True, "named"),        # j -> j, 5/2 up
        ("exp.0", "store", 2, 0, False, "mbarrier"), ("exp.1", "store", 2, 0, False, "mbarrier"),  # latency 3/2 up
        ("mma.0", "mma.0", 4, 1, False, "mbarrier"), ("mma.1", "mma.1", 4, 1, False, "mbarrier"),  # recurrence j -> j
    ])
    assert idx["mma.0"] < idx["mma.1"] < idx["exp.0"]
    unsplit = load_spec(path, subtile=1)
    assert [o.name for o in unsplit.ops] == ["load", "mma", "exp", "store"] and len(unsplit.edges) == 4


# --- verdicts against a brute-force recomputation on random triples ---------------------------


def _ceil(x: Fraction | int) -> int:
    return math.ceil(Fraction(x))


def brute_force(loop: Loop, ii: int, t: tuple[int, ...], roles: tuple[int, ...]) -> set[str]:
    """The violated rules of docs/joint-model.md, recomputed by unrolling iterations on a timeline."""
    w, ops, n = loop.warps, loop.ops, len(loop.ops)
    dur = [max([o.latency] + [r.offset + r.cycles for r in o.reservations]) for o in ops]
    issue = [dur[v] if o.issue_cycles is None else o.issue_cycles for v, o in enumerate(ops)]
    nbytes = [o.registers * 4 * 32 * o.warps for o in ops]
    found = set()
    horizon = max(t) + max(dur) + 2 * ii + max((e.distance for e in loop.edges), default=0) * ii + 8
    iterations = range(-(horizon // ii) - 2, horizon // ii + 3)

    # 1: dependences, iteration i+distance against iteration i
    for e in loop.edges:
        cost = e.delay
        if roles[e.src] != roles[e.dst]:
            cost += w.mbarrier if e.barrier == "mbarrier" else w.named
            if nbytes[e.src]:
                cost += _ceil(Fraction(w.transfer_base) + Fraction(str(w.transfer_per_kb)) * nbytes[e.src] / 1024)
        if (e.distance * ii + t[e.dst]) - t[e.src] < cost:
            found.add("dependence")
    # 2: units and 3: issue, on an unrolled timeline (a steady-state window of II cycles)
    window = range(horizon, horizon + ii)
    for unit, capacity in loop.capacity.items():
        use = {c: 0 for c in window}
        for v, o in enumerate(ops):
            for r in o.reservations:
                if r.unit == unit:
                    for i in iterations:
                        for c in range(i * ii + t[v] + r.offset, i * ii + t[v] + r.offset + r.cycles):
                            if c in use:
                                use[c] += r.amount
        if any(x > capacity for x in use.values()):
            found.add("resource")
    if any(issue[v] > ii for v in range(n)):
        found.add("issue")
    for role in set(roles):
        busy = {c: 0 for c in window}
        for v in range(n):
            if roles[v] == role:
                for i in iterations:
                    for c in range(i * ii + t[v], i * ii + t[v] + issue[v]):
                        if c in busy:
                            busy[c] += 1
        if any(x > 1 for x in busy.values()):
            found.add("issue")
    # 4: variable latency
    producers = [v for v in range(n) if ops[v].variable_latency]
    if len({roles[v] for v in producers}) > 1 or any(
            roles[v] == roles[p] for p in producers for v in range(n) if not ops[v].variable_latency):
        found.add("variable_latency")
    # 5: warps
    members = {r: [v for v in range(n) if roles[v] == r] for r in set(roles)}
    wide = {r for r, vs in members.items() if any(ops[v].warps == w.warpgroup for v in vs)}
    singles = len(members) - len(wide)
    groups = -(-singles // w.warpgroup)
    if w.warpgroup * (len(wide) + groups) > w.max_warps:
        found.add("warps")
    # 6: blocking: scan the instances of o for the latest strictly before t(u)
    for e in loop.edges:
        if not e.blocking:
            continue
        for o in range(n):
            if o != e.dst and roles[o] == roles[e.dst]:
                before = max(i * ii + t[o] for i in iterations if i * ii + t[o] < t[e.src])
                if before + dur[o] > t[e.dst] + e.distance * ii:
                    found.add("blocking")
    # 7: lifetimes (until each consumer's release reaches v's role; an accumulator's storage is
    # rewritten in place by its next instance); the depth is the most copies live at once.
    # 8's registers follow only v's own duration, the copy into the staging buffer (when read on another
    # role) and the consumers on v's role.
    depth, copies = [], []  # copies: per cycle of the window, the instances of v in registers there
    for v in range(n):
        acc = ops[v].accumulator
        release = lambda e: (w.mbarrier if e.barrier == "mbarrier" else w.named) if roles[e.src] != roles[e.dst] else 0  # noqa: E731
        reads = [(e, t[e.dst] + e.distance * ii + (0 if e.dst == v or e.release == "issue" else dur[e.dst]) - t[v])
                 for e in loop.edges if e.src == v and not (acc and e.dst == v)]
        life = max([ii if acc else dur[v]] + [held + release(e) for e, held in reads])
        staged = _ceil(Fraction(w.transfer_base) + Fraction(str(w.transfer_per_kb)) * nbytes[v] / 1024) \
            if nbytes[v] and any(roles[e.dst] != roles[v] for e, _ in reads) else 0
        in_registers = ii if acc else max([dur[v] + staged] + [held for e, held in reads if roles[e.dst] == roles[v]])
        ring = [sum(1 for i in iterations if i * ii + t[v] <= c < i * ii + t[v] + life) for c in window]
        copies.append([sum(1 for i in iterations if i * ii + t[v] <= c < i * ii + t[v] + in_registers) for c in window])
        if ops[v].depth is not None:
            if life > ops[v].depth * ii:
                found.add("depth")
            depth.append(ops[v].depth)
            copies[v] = [ops[v].depth] * ii  # a fixed ring holds all its slots
        else:
            depth.append(max(1, max(ring)))
    # 8: registers: the most a role's values hold at once, cycle by cycle
    low, high, step = w.setmaxnreg
    legal = lambda need: next(x for x in [low] + list(range(step, 10**4, step)) if x >= need and x >= low)  # noqa: E731
    need = {r: w.overhead + max(sum(ops[v].registers * copies[v][c] for v in vs) for c in range(ii))
            for r, vs in members.items()}
    values = [legal(need[r]) for r in wide]
    shared = legal(max([need[r] for r in members if r not in wide], default=0))
    total = 32 * w.warpgroup * (sum(values) + groups * shared)
    if any(x > w.max_registers for x in need.values()) or total > w.register_file \
            or any(x > high for x in values + ([shared] if singles else [])):
        found.add("registers")
    # 9, 10: memories; 11: the ban
    crossing = {e.src for e in loop.edges if ops[e.src].registers and roles[e.src] != roles[e.dst]}
    # 9: each ring on whole 1024-byte blocks; a channel (an op with an out-edge to another role) has
    # max(depth, those edges' distances) slots, each with a full and an empty 8-byte mbarrier; an order
    # token passes between consecutive uses of a one-instance unit on different roles (the next use
    # on the timeline, at least the named barrier's cycles later), with a slot per iteration apart.
    whole = lambda nbytes: -(-nbytes // 1024) * 1024  # noqa: E731
    smem = 0
    for v in range(n):
        apart = [e.distance for e in loop.edges if e.src == v and roles[e.dst] != roles[v]]
        slots = max([depth[v]] + apart)
        smem += whole(ops[v].smem * slots) + (whole(nbytes[v] * slots) + 16 * slots if apart else 0)
    for unit, capacity in loop.capacity.items():
        held = [(v, r.offset) for v in range(n) for r in ops[v].reservations if r.unit == unit]
        once = [(v, offset) for v, offset in held if [u for u, _ in held].count(v) == 1]
        if capacity != 1:
            continue
        for a, off_a in once:
            # the next use after a's: the instance of another op holding the unit that comes first
            later = [(t[b] + off_b + j * ii, j, b) for b, off_b in once if b != a
                     for j in range(-4 * n - 4, 4 * n + 4) if t[b] + off_b + j * ii > t[a] + off_a]
            if not later:
                continue
            _, j, b = min(later)
            if roles[a] != roles[b] and t[b] + j * ii - t[a] >= w.named:
                smem += 16 * max(1, j)
    if smem > w.smem:
        found.add("smem")
    if sum(ops[v].tmem * depth[v] for v in range(n)) > w.tmem:
        found.add("tmem")
    if not w.cross_role and crossing:
        found.add("cross_role")
    if any(e.release == "issue" and roles[e.src] != roles[e.dst] for e in loop.edges):
        found.add("release")
    return found


def random_triples(seed: int):
    """A tiny random joint loop with its optimum (when any) and perturbations of it, plus random ones."""
    rng = random.Random(f"verify-joint-{seed}")
    loop = tiny_loop(seed)
    n = len(loop.ops)
    best = tiny_optimum(seed)
    if best is None:
        base = Schedule(rng.randint(2, 8), tuple(rng.randint(0, 12) for _ in range(n)),
                        tuple(rng.randint(0, 2) for _ in range(n)))
    else:
        base = best.schedule
        yield loop, base
    for _ in range(16):
        ii = max(1, base.ii + rng.choice((0, 0, 0, -1, 1, 2)))
        starts, roles = list(base.starts), list(base.roles)
        for _ in range(rng.randint(1, 2)):
            v = rng.randrange(n)
            if rng.random() < 0.5:
                starts[v] = max(0, starts[v] + rng.choice((-2, -1, 1, 2, ii, -ii)))
            else:
                roles[v] = rng.randint(0, n)
        yield loop, Schedule(ii, tuple(starts), tuple(roles))
    for _ in range(3):
        ii = rng.randint(1, 8)
        yield loop, Schedule(ii, tuple(rng.randint(0, 3 * ii + 4) for _ in range(n)),
                             tuple(rng.randint(0, 3) for _ in range(n)))


@pytest.mark.parametrize("chunk", range(6))
def test_verdicts_match_brute_force(chunk):
    seen: dict[str, int] = {}
    valid = 0
    for seed in range(chunk * 25, chunk * 25 + 25):
        for loop, schedule in random_triples(seed):
            got = {v.constraint for v in verify(loop, schedule)}
            assert got == brute_force(loop, schedule.ii, schedule.starts, schedule.roles), (loop, schedule)
            valid += not got
            for kind in got:
                seen[kind] = seen.get(kind, 0) + 1
    assert valid >= 15, valid
    assert all(seen.get(kind, 0) >= 3 for kind in ("dependence", "resource", "issue", "registers", "smem")), seen


def test_brute_force_sees_every_rule():
    """Across the random triples, every joint rule is violated somewhere (so the agreement means something)."""
    seen: set[str] = set()
    for seed in range(150):
        for loop, schedule in random_triples(seed):
            seen |= brute_force(loop, schedule.ii, schedule.starts, schedule.roles)
    assert seen >= {"dependence", "resource", "issue", "variable_latency", "warps", "blocking", "depth",
                    "registers", "smem", "tmem", "cross_role"}, seen
