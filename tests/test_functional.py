"""Functional mode (twill/sim/functional.py): every shipped schedule's program, replayed through its
ring slots in the order of the schedule's own timing, computes what plain NumPy computes, for trip
counts 0, 1, 2, around the stage count, 5 and 64; and programs with a ring too small or a trace that
reads too early or releases too late are caught, symbolically and in the numbers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from test_lower import CASES, ROOT, program_of
from twill.emit.lower import lower
from twill.model.loader import load_spec
from twill.model.schedule import Schedule
from twill.sim.engine import simulate
from twill.sim.functional import FunctionalError, check_functional, check_trips, execute, symbolic
from twill.sim.semantics import semantics_for
from twill.sim.trace import Trace, timetable

HERE = Path(__file__).resolve().parent
FA_FWD = ROOT / "specs" / "kernels" / "fa-fwd.yaml"
# Variants with the mask (and exp_poly) ops: twill solve ... --set causal=true --set head_dim=64
VARIANTS = [(HERE / "functional" / "fa-fwd-causal-h100.schedule.yaml", FA_FWD)]


@pytest.fixture(scope="module", params=CASES + VARIANTS, ids=lambda c: c[0].name)
def program(request):
    return program_of(*request.param)


@pytest.fixture(scope="module")
def fa3():
    return program_of(ROOT / "kernels" / "fa-fwd-h100.schedule.yaml", FA_FWD)


def op_index(program, name: str) -> int:
    return [o.name for o in program.loop.ops].index(name)


def shifted(trace: Trace, op: int, cycles: int, iterations=range(10**6), stretch: bool = False) -> Trace:
    """``trace`` with op's instances of ``iterations`` moved by ``cycles`` (``stretch``: only their
    completion)."""
    events = tuple(dataclasses.replace(e, issue=e.issue + (0 if stretch else cycles), complete=e.complete + cycles)
                   if e.op == op and e.iteration in iterations else e for e in trace.events)
    return Trace(trace.program, trace.trips, tuple(sorted(events, key=lambda e: (e.issue, e.role))))


def test_every_schedule_computes_its_kernel_for_every_trip_count(program):
    trips = check_trips(program)
    assert {0, 1, 2, program.schedule.stages - 1, program.schedule.stages, 5, 64} <= set(trips)
    report = check_functional([timetable(program, n) for n in trips])
    assert report.numeric and report.passed, report.text()
    assert all(r.errors for r in report.results)
    assert report.max_error < 1e-3
    assert "matches the NumPy reference" in report.text()


def test_simulated_runs_compute_the_kernel_under_latency_jitter(program):
    runs = [simulate(program, n, latency_jitter=0.3, seed=n).trace for n in check_trips(program)]
    report = check_functional(runs)
    assert report.passed, report.text()


def test_a_simulated_run_without_a_full_wait_reads_an_empty_slot(fa3):
    """The simulator issues as soon as the program's waits allow; drop qk.1's wait for K."""
    role = fa3.role(fa3.schedule.roles[op_index(fa3, "qk.1")])
    steps = tuple(dataclasses.replace(st, waits=tuple(w for w in st.waits if fa3.channels[w.channel].name != "loadK"))
                  if st.name == "qk.1" else st for st in role.steps)
    broken = dataclasses.replace(fa3, roles=tuple(dataclasses.replace(r, steps=steps) if r is role else r
                                                  for r in fa3.roles))
    mismatch = symbolic(simulate(broken, 3).trace)
    assert (mismatch.op, mismatch.iteration, mismatch.source, mismatch.ring, mismatch.got) == (
        "qk.1", 0, "loadK", "channel loadK", None)
    assert "found an empty slot" in mismatch.text()


def test_causal_with_emulated_exp2_computes_the_masked_softmax():
    program = program_of(HERE / "functional" / "fa-fwd-causal-poly-h100.schedule.yaml", FA_FWD)
    assert {"mask.0", "exp_poly.0"} <= {o.name for o in program.loop.ops}
    report = check_functional([timetable(program, n) for n in (1, 2)])
    assert report.passed, report.text()


def test_fa_forward_error_is_fp32_rounding_and_the_empty_run_is_zero(fa3):
    report = check_functional([timetable(fa3, n) for n in check_trips(fa3)])
    assert all(r.errors["O"] < 1e-4 for r in report.results)
    semantics = semantics_for(fa3.loop)
    empty = execute(timetable(fa3, 0), semantics, semantics.inputs(0, np.random.default_rng(1)))
    assert not empty["O"].any()


def test_spec_sized_tiles_give_the_same_answer(fa3):
    semantics = semantics_for(fa3.loop, head_dim=128, block_m=128, block_n=128)
    inputs = semantics.inputs(3, np.random.default_rng(2))
    got = execute(timetable(fa3, 3), semantics, inputs)["O"]
    assert got.shape == (128, 128)
    assert np.abs(got - semantics.reference(inputs, 3)["O"]).max() < 1e-4


def test_a_channel_one_slot_short_is_caught(program):
    for index, channel in enumerate(program.channels):
        if channel.token or channel.depth < 2:
            continue
        channels = list(program.channels)
        channels[index] = dataclasses.replace(channel, depth=channel.depth - 1)
        broken = dataclasses.replace(program, channels=tuple(channels))
        mismatch = symbolic(timetable(broken, 2 * channel.depth + 2))
        assert mismatch is not None, channel.name
        assert mismatch.ring == f"channel {channel.name}"
        assert mismatch.source == program.loop.ops[channel.producer].name


def test_a_register_ring_one_slot_short_reads_the_next_iteration(fa3):
    qk = op_index(fa3, "qk.0")
    assert fa3.values[qk].depth == 2
    values = list(fa3.values)
    values[qk] = dataclasses.replace(values[qk], depth=1)
    broken = dataclasses.replace(fa3, values=tuple(values))
    mismatch = symbolic(timetable(broken, 5))
    assert (mismatch.op, mismatch.iteration, mismatch.source, mismatch.item) == ("convert.0", 0, "qk.0", 0)
    assert (mismatch.ring, mismatch.slot, mismatch.got, mismatch.in_flight) == ("value qk.0", 0, ("qk.0", 1), True)
    assert "convert.0(0) at its issue needs qk.0(0)" in mismatch.text()
    report = check_functional(timetable(broken, 5))
    assert not report.passed and report.text().startswith("functional fa-fwd: FAILED at 5 trips: convert.0(0)")


def test_a_read_before_the_result_lands_is_caught_and_reads_stale_data(fa3):
    qk, exp = op_index(fa3, "qk.0"), op_index(fa3, "exp.0")
    s = fa3.schedule
    slack = s.starts[exp] - s.starts[qk] - fa3.loop.ops[qk].duration
    early = shifted(timetable(fa3, 4), exp, -slack - 1, range(2, 4))  # slot 0 still holds qk.0(0)
    mismatch = symbolic(early)
    assert (mismatch.op, mismatch.iteration, mismatch.at, mismatch.source, mismatch.got, mismatch.in_flight) == (
        "exp.0", 2, "issue", "qk.0", ("qk.0", 2), True)
    semantics = semantics_for(fa3.loop)
    inputs = semantics.inputs(4, np.random.default_rng(0))
    assert np.abs(execute(early, semantics, inputs)["O"] - semantics.reference(inputs, 4)["O"]).max() > 1e-2
    with pytest.raises(FunctionalError, match=r"exp.0\(0\) at its issue needs qk.0\(0\)"):
        execute(shifted(timetable(fa3, 4), exp, -slack - 1), semantics, inputs)


def test_a_consumer_still_reading_when_the_producer_reclaims_the_slot_is_caught():
    program = program_of(ROOT / "kernels" / "gemm-h100.schedule.yaml", ROOT / "specs" / "kernels" / "gemm.yaml")
    late = shifted(timetable(program, 9), op_index(program, "mma.1"), 2 * program.ii, stretch=True)
    mismatch = symbolic(late)
    assert (mismatch.op, mismatch.at, mismatch.ring) == ("mma.1", "release", "channel loadA")
    ring = next(ch.depth for ch in program.channels if ch.name == "loadA")
    assert mismatch.got == ("loadA", mismatch.item + ring)  # the item one ring later took the slot


def test_an_accumulator_updated_in_place_is_ordered_by_the_unit_queue():
    """MMA i + 1 issues before MMA i completes; it takes the accumulator when it runs."""
    program = program_of(ROOT / "kernels" / "gemm-b200.schedule.yaml", ROOT / "specs" / "kernels" / "gemm.yaml")
    mma = op_index(program, "mma")
    assert program.loop.ops[mma].duration > program.ii
    assert check_functional(timetable(program, 9)).passed
    reordered = shifted(timetable(program, 9), mma, 10 * program.ii, [4], stretch=True)
    mismatch = symbolic(reordered)
    assert (mismatch.op, mismatch.at, mismatch.source) == ("mma", "completion", "mma")


def test_a_spec_without_semantics_gets_the_symbolic_check():
    joint = ROOT / "tests" / "joint"
    loop = load_spec(joint / "handoff-chain.yaml", joint / "machine-free-handoff.yaml")
    program = lower(loop, Schedule(4, (0, 4), (0, 1)))  # rowmax and rescale on two roles, II 4
    assert semantics_for(loop) is None
    report = check_functional([timetable(program, n) for n in check_trips(program)])
    assert report.passed and not report.numeric
    assert "no NumPy semantics" in report.text()
    rescale = next(c for c in program.channels if c.name == "rescale")
    assert rescale.depth == 2  # read two iterations later
    broken = dataclasses.replace(program, channels=tuple(
        dataclasses.replace(c, depth=1) if c is rescale else c for c in program.channels))
    mismatch = check_functional(timetable(broken, 4)).results[0].mismatch
    assert (mismatch.op, mismatch.source, mismatch.item, mismatch.got) == ("rowmax", "rescale", 0, ("rescale", 1))
