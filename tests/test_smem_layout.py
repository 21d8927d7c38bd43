"""Rule 9 against the emitter: the shared memory the model charges a schedule is the emitted
layout's, byte for byte, and a schedule the verifier accepts fits as emitted (docs/joint-model.md, rule 9)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from twill.emit.driver import kernel_name
from twill.emit.kernel import build_kernel, smem_capacity
from twill.emit.lower import lower
from twill.model.hand_schedule import load_hand_schedule
from twill.model.joint import SharedMemory, smem_bytes
from twill.model.loader import load_instance
from twill.model.placement import place, schedule_of, structure_arcs
from twill.review import review
from twill.solver.verify import verify

ROOT = Path(__file__).resolve().parents[1]


def shipped(spec: str, machine: str, path: str | None = None):
    instance = load_instance(ROOT / f"specs/kernels/{spec}.yaml", machine)
    hand = load_hand_schedule(str(ROOT / (path or f"kernels/{spec}-{machine}.schedule.yaml")), instance.loop)
    return instance, review(instance.loop, hand).schedule


def charged(instance, schedule) -> int:
    """The model's count of the whole kernel: the rings' rule-9 bytes, the resident tiles and what
    the loader took off the loop's share (slack and the kernel's other barriers)."""
    fixed = smem_capacity(instance) - instance.spec.resident_smem - instance.loop.warps.smem
    return smem_bytes(instance.loop, schedule).total + instance.spec.resident_smem + fixed


@pytest.mark.parametrize("spec, machine, targets", [
    ("gemm", "h100", ["host"]), ("gemm", "b200", ["host", "sm100a"]), ("fa-fwd", "h100", ["host", "sm90a"]),
    ("fa-fwd", "b200", ["host", "sm100a"]), ("fa-bwd", "h100", ["host"]), ("fa-bwd", "b200", ["host", "sm100a"])])
def test_the_emitted_layout_is_what_the_model_charges(spec, machine, targets):
    instance, schedule = shipped(spec, machine)
    assert not verify(instance.loop, schedule)
    for target in targets:
        kernel = build_kernel(instance, lower(instance.loop, schedule), target, kernel_name(instance))
        assert kernel.dynamic_smem == charged(instance, schedule) <= smem_capacity(instance), target
        assert not kernel.warnings


def test_fa3s_backward_layout_on_sm90a_is_what_the_model_charges():
    """kernels/fa-bwd-h100/ is FA3's schedule (the solved one is host-only so far)."""
    instance = load_instance(ROOT / "specs/kernels/fa-bwd.yaml", "h100")
    path = ROOT / "specs/schedules/fa3-bwd-h100.yaml"
    schedule = review(instance.loop, load_hand_schedule(str(path), instance.loop)).schedule
    for target in ("host", "sm90a"):
        kernel = build_kernel(instance, lower(instance.loop, schedule), target, kernel_name(instance))
        assert kernel.dynamic_smem == charged(instance, schedule) <= smem_capacity(instance), target


@pytest.mark.parametrize("path, params", [
    ("tests/emit/fa-fwd-b200-causal.schedule.yaml", {"causal": True}),
    ("tests/emit/fa-fwd-b200-hd64.schedule.yaml", {"head_dim": 64}),   # waits on later commits: no barrier more
    ("tests/emit/fa-fwd-b200-hd256.schedule.yaml", {"head_dim": 256, "block_m": 128, "tiles": 1})])
def test_the_b200_forward_variants_layouts_are_what_the_model_charges(path, params):
    instance = load_instance(ROOT / "specs/kernels/fa-fwd.yaml", "b200", params)
    schedule = review(instance.loop, load_hand_schedule(str(ROOT / path), instance.loop)).schedule
    assert not verify(instance.loop, schedule)
    for target in ("host", "sm100a"):
        kernel = build_kernel(instance, lower(instance.loop, schedule), target, kernel_name(instance))
        assert kernel.dynamic_smem == charged(instance, schedule) <= smem_capacity(instance), target


def test_fa4s_hand_schedule_fits_as_emitted_at_the_ii_the_verifier_accepts():
    """FA4's hand schedule at II 5200 took 232900 bytes as emitted for sm100a, over the B200's 232448
    (232916 now: a completion barrier is reserved for each of its four asynchronous MMAs, not only
    the two its roles wait for): the verifier rejects it there, and the least II it accepts (5650)
    fits, as counted."""
    instance, schedule = shipped("fa-fwd", "b200", "specs/schedules/fa4-b200.yaml")
    assert schedule.ii == 5650
    hand = load_hand_schedule(str(ROOT / "specs/schedules/fa4-b200.yaml"), instance.loop)
    placed = schedule_of(hand.structure, place(instance.loop, hand.structure, 5200,
                                               structure_arcs(instance.loop, hand.structure)))
    assert charged(instance, placed) == 232916
    assert [v.constraint for v in verify(instance.loop, placed)] == ["smem"]
    kernel = build_kernel(instance, lower(instance.loop, schedule), "sm100a", kernel_name(instance))
    assert kernel.dynamic_smem == charged(instance, schedule) <= smem_capacity(instance)


def test_a_schedule_over_capacity_is_invalid_with_the_byte_counts():
    """The H100 FA forward optimum with one byte less for its rings than rule 9 counts."""
    instance, schedule = shipped("fa-fwd", "h100")
    used = smem_bytes(instance.loop, schedule)
    assert used == SharedMemory(data=197632, channel_barriers=128, token_barriers=144)
    loop = dataclasses.replace(instance.loop, warps=dataclasses.replace(instance.loop.warps, smem=used.total - 1))
    found = [v for v in verify(loop, schedule) if v.constraint == "smem"]
    assert [v.message for v in found] == [
        f"shared memory {used.total} bytes (197632 of ring data in 1024-byte blocks, 128 of channel and 144 of "
        f"order-token mbarriers) > {used.total - 1} (the machine's, less the resident tiles, the alignment slack "
        "and the kernel's other barriers)"]
