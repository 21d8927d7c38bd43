"""The shipped kernel specs (specs/kernels/) against the expert anchors (docs/results.md).

Bounds are cheap and checked on every variant; the GEMM mainloop is solved outright. The
FlashAttention schedules themselves are checked through the hand schedules in specs/schedules/.
"""

from pathlib import Path

import pytest

from twill.model.joint import depth, layout
from twill.model.loader import load_spec
from twill.solver.backend import Settings
from twill.solver.backends import make_backend
from twill.solver.bounds import compute_bounds
from twill.solver.search import search

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "specs" / "kernels"
DETERMINISTIC = Settings(deterministic=True)


def bounds(kernel: str, machine: str, **params):
    b = compute_bounds(load_spec(KERNELS / f"{kernel}.yaml", machine, params))
    return b.res_mii, b.binding_unit.unit


@pytest.mark.parametrize("machine, params, mii, unit", [
    # FA3's regime: two 64-row halves of QK^T and PV, 4 x 512 cycles of tensor core per KV step,
    # against 2 x 8192 / 16 = 1024 cycles of exp2: the tensor core binds.
    ("h100", {}, 2048, "tc"),
    ("h100", {"head_dim": 256}, 4096, "tc"),
    # FP8 halves the tensor-core time, head_dim 64 halves the work: the exp2 units bind instead.
    ("h100", {"dtype": "fp8"}, 1032, "sfu"),
    ("h100", {"head_dim": 64}, 1032, "sfu"),
    # B200: twice the tensor-core rate, the same exp2 rate: exp2 (2 x 16384 / 16 plus the rescale
    # factors) overtakes the tensor core, FA4's motivation for a polynomial exp2 on the FMA pipe.
    ("b200", {}, 2064, "sfu"),
    ("b200", {"emulated": 32}, 2048, "tc"),
])
def test_flash_attention_forward_resource_bound(machine, params, mii, unit):
    assert bounds("fa-fwd", machine, **params) == (mii, unit)


def solved(machine: str):
    loop = load_spec(KERNELS / "gemm.yaml", machine)
    result = search(loop, make_backend("cpsat", DETERMINISTIC), 60, DETERMINISTIC)
    assert result.status == "optimal" and all(o.optimal for o in result.objectives), result.proof
    return loop, result.schedule


def test_gemm_hopper_is_a_producer_and_consumer_warpgroup():
    loop, schedule = solved("h100")
    names = [op.name for op in loop.ops]
    assert schedule.ii == 512  # 2 x 64x128x64 wgmma = 2 x 256 cycles: the tensor-core occupancy of a k-step
    role = dict(zip(names, schedule.roles))
    # Each 64-row accumulator is written in place (accumulator: true): one copy of 64 registers at
    # every residue, however long its MMA runs. Both fit one warpgroup (24 + 2 x 64 = 152), so the
    # fewest roles is one consumer warpgroup, not CUTLASS cooperative's two (an equally fast split
    # the register rule does not force).
    assert role["loadA"] == role["loadB"] != role["mma.0"] == role["mma.1"]
    plan = layout(loop, schedule)
    assert sorted((r.warps, r.registers, r.setmaxnreg) for r in plan.roles) == [(1, 24, 24), (4, 152, 256)]
    assert depth(loop, schedule, names.index("mma.0")) == depth(loop, schedule, names.index("mma.1")) == 1
    load = loop.ops[names.index("loadA")]
    mma = loop.ops[names.index("mma.0")]
    # The ring covers the load's latency, the hand-off, the MMA and its release back to the producer.
    assert depth(loop, schedule, names.index("loadA")) * 512 >= load.latency + 92 + mma.duration + 92


def test_gemm_blackwell_is_one_load_warp_and_one_mma_warp():
    loop, schedule = solved("b200")
    assert schedule.ii == 256  # 128x128x64 at 8192 FLOP/clk: Meta's measured B200 GEMM II
    plan = layout(loop, schedule)
    roles = sorted((r.warps, sorted(loop.ops[v].name for v in r.ops)) for r in plan.roles)
    assert roles == [(1, ["loadA", "loadB"]), (1, ["mma"])]


def test_fa_forward_on_h100_meets_the_tensor_core_bound_only_by_moving_a_row_sum():
    """FlashAttention forward, hd128, a 128-row tile in two 64-row halves, 12 warps (FA3's CTA): the
    tensor-core bound II 2048 is met, with a TMA producer warp and one consumer warpgroup per
    64-row half holding its S, P and O. P is written over S, so S's registers stay live until P's
    last reader (rule 8); with that counted, FA3's structure (nothing handed across warpgroups) is
    infeasible at 2048, and the optimum hands one half's P to the other warpgroup's row sum."""
    from twill.solver.backend import Query

    from twill.model.hand_schedule import load_hand_schedule
    from twill.review import review

    loop = load_spec(KERNELS / "fa-fwd.yaml", "h100")
    saved = review(loop, load_hand_schedule(str(ROOT / "kernels" / "fa-fwd-h100.schedule.yaml"), loop))
    assert saved.valid  # `twill solve specs/kernels/fa-fwd.yaml -m h100` found it (about 50 s on 2 cores)
    schedule, ii = saved.schedule, saved.schedule.ii
    assert ii == 2048 == compute_bounds(loop).res_mii  # 4 x 512 cycles of wgmma per KV step: optimal
    names = [op.name for op in loop.ops]
    plan = layout(loop, schedule)
    groups = {frozenset(names[v] for v in r.ops): r for r in plan.roles}
    producer = groups[frozenset({"loadK", "loadV"})]  # one TMA producer, alone
    assert (producer.warps, producer.setmaxnreg) == (1, 24)
    halves = [r for ops, r in groups.items() if ops != {"loadK", "loadV"}]
    assert len(halves) == 2 and all(r.warps == 4 for r in halves)  # one consumer warpgroup per half
    for half in "01":  # each half's MMAs and its S, P, O stay on one warpgroup
        assert len({schedule.roles[names.index(f"{op}.{half}")] for op in ("qk", "exp", "convert", "pv")}) == 1
    assert any(schedule.roles[e.src] != schedule.roles[e.dst] for e in loop.edges
               if loop.ops[e.src].registers)  # a register value crosses warpgroups
    banned = load_spec(KERNELS / "fa-fwd.yaml", "h100", cross_role=False)
    assert make_backend("cpsat", DETERMINISTIC).solve(banned, Query(2048, "handoff_bytes"), 120).status \
        == "infeasible"


@pytest.mark.parametrize("machine, ii", [("h100", 2048), ("b200", 3900)])
def test_fewer_warps_make_the_flash_attention_ii_infeasible(machine, ii):
    """At FA3's optimum (H100) and at a B200 II where twill's FA4-like schedule exists, 8 warps
    (one warpgroup for the producer and one for everything else) cannot hold the two halves."""
    from twill.solver.backend import Query

    backend = make_backend("cpsat", DETERMINISTIC)
    full = load_spec(KERNELS / "fa-fwd.yaml", machine)
    if machine == "h100":  # the saved optimum is the witness (solving for it takes a minute)
        from twill.model.hand_schedule import load_hand_schedule
        from twill.review import review

        saved = review(full, load_hand_schedule(str(ROOT / "kernels" / "fa-fwd-h100.schedule.yaml"), full))
        assert saved.valid and saved.schedule.ii == ii
    else:
        assert backend.solve(full, Query(ii, "handoff_bytes"), 120).status in ("optimal", "feasible")
    fewer = load_spec(KERNELS / "fa-fwd.yaml", machine, {"warps": 8})
    assert backend.solve(fewer, Query(ii, "handoff_bytes"), 120).status == "infeasible"


def test_without_subtiling_flash_attention_needs_more():
    from twill.errors import SpecError
    from twill.solver.backend import Query

    # H100: one warpgroup must carry both halves' S, P and O: infeasible at the tensor-core bound.
    whole = load_spec(KERNELS / "fa-fwd.yaml", "h100", {"tiles": 1})
    assert make_backend("cpsat", DETERMINISTIC).solve(whole, Query(2048, "handoff_bytes"), 60).status == "infeasible"
    # B200: a 256-row S in one warpgroup's registers is 256 per thread: no role can hold it at all.
    with pytest.raises(SpecError, match="256 registers"):
        load_spec(KERNELS / "fa-fwd.yaml", "b200", {"tiles": 1})


def test_p_is_written_over_s_and_pays_to_leave_its_role():
    """exp writes P over S (``overwrites``): it allocates no registers, must stay on S's role, and a
    reader on another role pays for P's 64 KiB like any register value (the saved B200 optimum at
    II 3650 once moved P to another warpgroup for free)."""
    from dataclasses import replace

    from twill.model.hand_schedule import load_hand_schedule
    from twill.model.joint import crossing_register_values
    from twill.model.objectives import objective_value
    from twill.solver.verify import verify

    loop = load_spec(KERNELS / "fa-fwd.yaml", "b200")
    index = {op.name: i for i, op in enumerate(loop.ops)}
    exp, lds, rowsum = (index[name] for name in ("exp.0", "ldS.0", "rowsum.0"))
    assert loop.ops[exp].overwrites == lds and loop.ops[exp].own_registers == 0
    assert loop.ops[exp].registers == loop.ops[lds].registers == 128
    hopper = load_spec(KERNELS / "fa-fwd.yaml", "h100")
    assert {(op.name, hopper.ops[op.overwrites].name) for op in hopper.ops if op.overwrites is not None} == \
        {("exp.0", "qk.0"), ("exp.1", "qk.1")}

    saved = load_hand_schedule(KERNELS.parents[1] / "kernels" / "fa-fwd-b200.schedule.yaml", loop).schedule
    assert verify(loop, saved) == []
    assert [loop.ops[v].name for v in crossing_register_values(loop, saved.roles)] == ["alpha.0", "alpha.1"]
    assert objective_value(loop, saved, "handoff_bytes") == 1024
    elsewhere = next(r for r in set(saved.roles) if r not in (saved.roles[exp], saved.roles[index["loadK"]]))
    moved = replace(saved, roles=tuple(elsewhere if v == rowsum else r for v, r in enumerate(saved.roles)))
    assert objective_value(loop, moved, "handoff_bytes") == 1024 + 128 * 4 * 32 * 4
    assert "dependence" in {v.constraint for v in verify(loop, moved)}  # the 64 KiB trip takes time
    apart = replace(saved, roles=tuple(elsewhere if v == exp else r for v, r in enumerate(saved.roles)))
    assert "overwrites" in {v.constraint for v in verify(loop, apart)}


def test_banning_cross_role_registers_makes_the_b200_optimum_infeasible():
    """The paper's third ablation on B200: at the optimum II 3650 the softmax warpgroups hand the
    rescale factors (alpha) to the correction warpgroup; with register values banned from crossing
    roles, 3650 is infeasible (the per-II model and the relaxation both prove it)."""
    from twill.solver.backend import Query
    from twill.solver.joint_range import relaxation_bound

    banned = load_spec(KERNELS / "fa-fwd.yaml", "b200", cross_role=False)
    assert make_backend("cpsat", DETERMINISTIC).solve(banned, Query(3650, "handoff_bytes"), 60).status == "infeasible"
    assert relaxation_bound(banned, 3650, 3650, 60, DETERMINISTIC).status == "infeasible"
    allowed = load_spec(KERNELS / "fa-fwd.yaml", "b200")
    assert make_backend("cpsat", DETERMINISTIC).solve(allowed, Query(3650, "handoff_bytes"), 60).status in (
        "optimal", "feasible")
