"""The joint relaxation (twill.solver.joint_range): its lower bound on II against the brute-force
oracle (tests/joint_oracle.py), and how the search uses it.

The relaxation proves a whole range of II infeasible in one query, so every claim it makes is checked
here against the oracle at every II it covers: no feasible II below its bound, and none at all up to
the every-II cap when it says infeasible.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import pytest

from joint_oracle import feasible_at, minimal_ii, overwrite_loop, overwrite_optimum, tiny_loop
from twill.model.loop import Dependence, Loop, Op, Reservation, Warps
from twill.solver.backend import Settings
from twill.solver.backends import make_backend
from twill.solver.bounds import compute_bounds, every_ii_cap
from twill.solver.joint_range import legal_setmaxnreg, relaxation_bound, solve_range
from twill.solver.search import search
from twill.solver.verify import verify

DETERMINISTIC = Settings(deterministic=True)
FAMILY = range(120)
SECONDS = 30.0


@functools.lru_cache(maxsize=None)
def case(seed: int, make=tiny_loop):
    """(MII, cap, the oracle's least feasible II in [MII, cap] or None, the relaxation's outcome)."""
    loop = make(seed)
    mii, cap = compute_bounds(loop).mii, every_ii_cap(loop)
    return mii, cap, minimal_ii(loop, cap, mii), relaxation_bound(loop, mii, cap, SECONDS, DETERMINISTIC)


# Loops with ops that overwrite an input's registers, where the oracle's sweep ends early (a feasible II).
OVERWRITE_SEEDS = [s for s in range(40) if overwrite_optimum(s) is not None]


@pytest.mark.parametrize("seed, make", [(s, tiny_loop) for s in FAMILY]
                         + [(s, overwrite_loop) for s in OVERWRITE_SEEDS])
def test_relaxation_bound_is_a_proof(seed, make):
    mii, cap, least, outcome = case(seed, make)
    assert outcome.status in ("optimal", "infeasible")  # tiny loops: decided well within the budget
    if outcome.status == "infeasible":
        assert least is None, f"the relaxation says no II up to {cap}, the oracle finds {least}"
    else:
        assert mii <= outcome.bound
        assert least is None or outcome.bound <= least, f"relaxation bound {outcome.bound} > oracle II {least}"


def test_relaxation_binds_on_the_family():
    """The checks above are not vacuous: the relaxation proves II above MII, often the optimum itself,
    and proves loops infeasible for every II."""
    cases = [case(seed, tiny_loop) for seed in FAMILY]   # the proof tests above cached these
    feasible = [(mii, least, o) for mii, _, least, o in cases if least is not None]
    assert sum(o.bound > mii for mii, _, o in feasible) >= 40
    assert sum(o.bound == least > mii for mii, least, o in feasible) >= 40
    assert sum(o.status == "infeasible" for *_, o in cases) >= 15


def coarse_bound(loop: Loop, lo: int, hi: int):
    """The first pass alone: the relaxation without residue windows, minimizing II."""
    return solve_range(loop, lo, hi, legal_setmaxnreg(loop), SECONDS, DETERMINISTIC, windows=False)[:2]


def test_residue_windows_raise_the_bound_to_the_oracle():
    """The windows (add_apart) lift the bound above the coarse pass on part of the family, and the
    checks above hold it at or below the oracle's optimum there."""
    lifted = []
    for seed in FAMILY:
        mii, cap, least, outcome = case(seed, tiny_loop)
        loop = tiny_loop(seed)
        status, coarse = coarse_bound(loop, max(mii, max(op.issue for op in loop.ops)), cap)
        if outcome.status != "infeasible" and status != "infeasible" and outcome.bound > coarse:
            lifted.append((coarse, outcome.bound, least))
    assert len(lifted) >= 8
    assert all(coarse < bound and (least is None or bound <= least) for coarse, bound, least in lifted)


def test_a_value_held_for_one_ii_keeps_its_reader_off_the_next_writer():
    """FA4's S in miniature: W writes a tensor-memory value that fills the memory (ring depth 1), R
    reads it and releases it at issue, both hold the one tensor core for 3 cycles. t(R) - t(W) is in
    [5, II], and R's reservation must end before the next W's begins, so II >= 5 + 3 = 8. The unit
    load (6) and the coarse pass do not see it; the residue window at q = 1 does."""
    machine = replace(sync_pair(4).warps, tmem=4)
    tc = (Reservation("tc", 0, 3, 1),)
    ops = (Op("W", 5, tc, 1, tmem=4), Op("R", 3, tc, 1))
    loop = Loop("release", {"tc": 1}, ops, (Dependence(0, 1, 5, 0, release="issue"),), machine)
    mii, cap = compute_bounds(loop).mii, every_ii_cap(loop)
    assert mii == 6 and coarse_bound(loop, mii, cap) == ("optimal", 6)
    assert minimal_ii(loop, cap) == 8
    outcome = relaxation_bound(loop, mii, cap, SECONDS, DETERMINISTIC)
    assert (outcome.status, outcome.bound, outcome.solution.ii) == ("optimal", 8, 8)


def sync_pair(max_warps: int) -> Loop:
    """Two synchronous warpgroup ops busy 3 cycles each, no edges, no units (as in the oracle's tests)."""
    machine = Warps(max_warps=max_warps, warpgroup=4, register_file=65536, max_registers=255,
                    setmaxnreg=(24, 256, 8), overhead=0, smem=1 << 20, tmem=512, mbarrier=5, named=2,
                    transfer_base=0, transfer_per_kb=1)
    return Loop("sync", {}, (Op("A", 3, (), warps=4), Op("B", 3, (), warps=4)), (), machine)


def test_one_warpgroup_role_is_proven_by_the_relaxation():
    # Four warps hold one warpgroup role: both ops issue on it, 6 cycles of issue per iteration.
    loop = sync_pair(4)
    assert compute_bounds(loop).mii == 1 and minimal_ii(loop, 10) == 6
    outcome = relaxation_bound(loop, 1, every_ii_cap(loop), SECONDS, DETERMINISTIC)
    assert (outcome.status, outcome.bound) == ("optimal", 6)
    result = search(loop, make_backend("cpsat", DETERMINISTIC), 30, DETERMINISTIC)
    assert result.status == "optimal" and result.schedule.ii == 6 and result.lower_bound == 6
    assert [(p.ii, p.through, p.result, p.by) for p in result.proof] == [
        (1, 5, "infeasible", "joint_relaxation"), (6, 6, "feasible", "cpsat")]
    assert "joint relaxation" in result.proof[0].detail
    # Eight warps hold two roles: the relaxation proves nothing above the issue window (3).
    wide = sync_pair(8)
    assert relaxation_bound(wide, 1, every_ii_cap(wide), SECONDS, DETERMINISTIC).bound == 3
    assert feasible_at(wide, 3) is not None


def test_search_proves_every_ii_infeasible_with_the_relaxation():
    seeds = [s for s in FAMILY if case(s, tiny_loop)[3].status == "infeasible"][:3]
    assert seeds
    for seed in seeds:
        loop = tiny_loop(seed)
        mii, cap, least, _ = case(seed, tiny_loop)
        assert least is None
        result = search(loop, make_backend("cpsat", DETERMINISTIC), 30, DETERMINISTIC)
        assert result.status == "infeasible" and result.schedule is None
        assert [(p.ii, p.through, p.result, p.by) for p in result.proof if p.by != "res_mii" and p.by != "rec_mii"] \
            == [(mii, cap, "infeasible", "joint_relaxation")]


def test_relaxation_keeps_the_register_rule():
    # One warpgroup role (4 warps): B reads A, so A is live while B's value is: 200 + 100 registers
    # per thread at once, more than 255, and no II works. With 8 warps the two values go to two roles,
    # and A holds 200 registers per copy until it is copied to the staging buffer: its 103 cycles (3 +
    # the 100-cycle transfer of 100 KiB) fit in one copy from II 103 on.
    loop = replace(sync_pair(4), ops=(Op("A", 3, (), warps=4, registers=200), Op("B", 3, (), warps=4, registers=100)),
                   edges=(Dependence(0, 1, 3, 0),))
    assert relaxation_bound(loop, 1, every_ii_cap(loop), SECONDS, DETERMINISTIC).status == "infeasible"
    assert minimal_ii(loop, every_ii_cap(loop)) is None
    roomy = replace(loop, warps=replace(loop.warps, max_warps=8))
    assert relaxation_bound(roomy, 1, every_ii_cap(roomy), SECONDS, DETERMINISTIC).bound == 103
    assert feasible_at(roomy, 102) is None
    schedule = feasible_at(roomy, 103)
    assert schedule is not None and verify(roomy, schedule) == []


def test_relaxation_lets_values_take_turns_in_the_registers():
    # Without the edge the two values are never live at once: one role holds both (peak 200) at II 6.
    loop = replace(sync_pair(4), ops=(Op("A", 3, (), warps=4, registers=200), Op("B", 3, (), warps=4, registers=100)))
    assert relaxation_bound(loop, 1, every_ii_cap(loop), SECONDS, DETERMINISTIC).bound <= 6
    assert minimal_ii(loop, every_ii_cap(loop)) == 6


def blocking_load_loop() -> Loop:
    """One warpgroup role (4 warps) holds R (issue 3, latency 5), P (issue 1, latency 5) and W
    (synchronous, 6): R -> P, and P -> R of the next iteration is blocking. Issue load and the
    recurrence give II 10; the role's order and the blocking wait of the next R need II 12 (the
    oracle), which the relaxation (a lower bound only) does not see."""
    machine = sync_pair(4).warps
    ops = (Op("R", 5, (), 3, warps=4), Op("P", 5, (), 1, warps=4), Op("W", 6, (), warps=4))
    return Loop("blocking-load", {}, ops, (Dependence(0, 1, 5, 0), Dependence(1, 0, 5, 1, blocking=True)), machine)


def test_relaxation_stays_below_the_optimum_on_a_blocking_recurrence():
    loop = blocking_load_loop()
    assert compute_bounds(loop).mii == 10
    assert sum(op.issue for op in loop.ops) == 10  # the relaxation's issue load alone allows 10
    assert minimal_ii(loop, every_ii_cap(loop)) == 12
    assert feasible_at(loop, 10) is None and feasible_at(loop, 11) is None
    outcome = relaxation_bound(loop, 10, every_ii_cap(loop), SECONDS, DETERMINISTIC)
    assert outcome.status == "optimal" and outcome.bound == 10
    result = search(loop, make_backend("cpsat", DETERMINISTIC), 30, DETERMINISTIC)
    assert [(p.ii, p.through, p.result, p.by) for p in result.proof] == [
        (1, 9, "infeasible", "rec_mii"), (10, 10, "infeasible", "cpsat"), (11, 11, "infeasible", "cpsat"),
        (12, 12, "feasible", "cpsat")]
    assert verify(loop, result.schedule) == []
    # Z3 proves 10 and 11 one at a time too and agrees.
    z3 = search(loop, make_backend("z3", DETERMINISTIC), 30, DETERMINISTIC)
    assert z3.schedule.ii == 12 and [(o.name, o.value) for o in z3.objectives] == \
        [(o.name, o.value) for o in result.objectives]
