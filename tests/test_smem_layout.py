"""Rule 9 against the emitter: the shared memory the model charges a schedule is the emitted
layout's, byte for byte, and the shipped optimal schedules fit (docs/joint-model.md, rule 9)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from twill.emit.driver import kernel_name
from twill.emit.kernel import build_kernel, smem_capacity
from twill.emit.lower import lower
from twill.model.hand_schedule import load_hand_schedule
from twill.model.joint import smem_bytes
from twill.model.loader import load_instance
from twill.review import review
from twill.solver.verify import verify

ROOT = Path(__file__).resolve().parents[1]


def shipped(spec: str, machine: str):
    instance = load_instance(ROOT / f"specs/kernels/{spec}.yaml", machine)
    path = ROOT / f"kernels/{spec}-{machine}.schedule.yaml"
    return instance, review(instance.loop, load_hand_schedule(str(path), instance.loop)).schedule


# FA forward and backward on b200 have no op bodies for any target yet (tcgen05.ld): the verifier's
# count is checked for them below, the emitted layout here for every schedule the emitter builds.
@pytest.mark.parametrize("spec, machine", [("gemm", "h100"), ("gemm", "b200"), ("fa-fwd", "h100"),
                                           ("fa-bwd", "h100")])
def test_the_emitted_layout_is_what_the_model_charges_and_fits(spec, machine):
    instance, schedule = shipped(spec, machine)
    kernel = build_kernel(instance, lower(instance.loop, schedule), "host", kernel_name(instance))
    w = instance.loop.warps
    # the loop's share is the machine's less the resident tiles and the fixed part (slack, barriers)
    fixed = smem_capacity(instance) - instance.spec.resident_smem - w.smem
    assert kernel.dynamic_smem == smem_bytes(instance.loop, schedule)["total"] + instance.spec.resident_smem + fixed
    assert kernel.dynamic_smem <= smem_capacity(instance)
    assert not kernel.warnings


@pytest.mark.parametrize("spec, machine", [("gemm", "h100"), ("gemm", "b200"), ("fa-fwd", "h100"),
                                           ("fa-fwd", "b200"), ("fa-bwd", "h100"), ("fa-bwd", "b200")])
def test_the_shipped_schedules_verify_with_barriers_and_slack(spec, machine):
    instance, schedule = shipped(spec, machine)
    assert not verify(instance.loop, schedule)


def test_a_schedule_over_capacity_is_invalid_with_the_byte_counts():
    """The H100 FA forward optimum with 744 bytes less shared memory: the rings and barriers fit only
    the machine's 232448 bytes."""
    instance, schedule = shipped("fa-fwd", "h100")
    used = smem_bytes(instance.loop, schedule)
    assert used == {"data": 197632, "barriers": 272, "total": 197904}
    assert instance.loop.warps.smem - used["total"] == 744
    loop = dataclasses.replace(instance.loop, warps=dataclasses.replace(instance.loop.warps, smem=used["total"] - 1))
    found = [v for v in verify(loop, schedule) if v.constraint == "smem"]
    assert [v.message for v in found] == [
        f"shared memory 197904 bytes (197632 of ring data in 1024-byte blocks, 272 of mbarriers) > {used['total'] - 1} "
        "(the machine's, less resident tiles, their barriers and the alignment slack)"]
