"""The pipeline program (twill/emit): structure of FA3 and GEMM, and, for every saved schedule, that
the schedule's own timing satisfies every wait the program asks for (the schedule is a witness that
the protocol admits it, for any trip count)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twill.cli import app
from twill.emit.lower import lower
from twill.model.hand_schedule import load_hand_schedule, read_header
from twill.model.loader import load_spec
from twill.review import review

ROOT = Path(__file__).resolve().parent.parent
SAVED = sorted((ROOT / "kernels").glob("*.schedule.yaml"))
FA4 = ROOT / "specs" / "schedules" / "fa4-b200.yaml"


def spec_of(path: Path) -> Path:
    name = path.name.removesuffix(".schedule.yaml").rsplit("-", 1)[0]
    return ROOT / "specs" / "kernels" / f"{name}.yaml"


def program_of(schedule_file: Path, spec: Path):
    header = read_header(schedule_file)
    loop = load_spec(spec, header.machine, header.params)
    reviewed = review(loop, load_hand_schedule(schedule_file, loop))
    assert reviewed.valid, (schedule_file, reviewed.violations[:3])
    return lower(loop, reviewed.schedule)


CASES = [(p, spec_of(p)) for p in SAVED] + [(FA4, ROOT / "specs" / "kernels" / "fa-fwd.yaml")]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c[0].name)
def program(request):
    return program_of(*request.param)


def test_every_shipped_kernel_has_a_saved_schedule():
    names = {p.name for p in SAVED}
    assert {"fa-fwd-h100.schedule.yaml", "fa-fwd-b200.schedule.yaml", "fa-bwd-h100.schedule.yaml",
            "gemm-h100.schedule.yaml", "gemm-b200.schedule.yaml",
            "fa-bwd-b200.schedule.yaml"} <= names


@pytest.mark.parametrize("trips", [0, 1, 2, 3, 7])
def test_each_role_runs_each_of_its_ops_once_per_iteration_in_schedule_time_order(program, trips):
    s = program.schedule
    for role in program.roles:
        seen = list(program.instances(role, trips))
        assert sorted((step.op, i) for _, step, i in seen) == sorted(
            (step.op, i) for step in role.steps for i in range(trips))
        times = [s.starts[step.op] + i * s.ii for _, step, i in seen]
        assert times == sorted(times) and len(set(times)) == len(times)


def _signal_times(program, trips):
    """(channel, barrier, item) -> cycles at which the timetable run arrives on it."""
    s, ops = program.schedule, program.loop.ops
    arrivals: dict[tuple[int, str, int], list[int]] = {}
    for role in program.roles:
        for _, step, i in program.instances(role, trips):
            issue = s.starts[step.op] + i * s.ii
            for sig in step.signals:
                q = i - sig.distance
                if program.channels[sig.channel].exists(q, trips):
                    at = issue if sig.at == "issue" else issue + ops[step.op].duration
                    arrivals.setdefault((sig.channel, sig.barrier, q), []).append(at)
    return arrivals


@pytest.mark.parametrize("trips", [1, 2, 3, 9])
def test_the_schedule_satisfies_every_wait_of_its_program(program, trips):
    """Full waits: the producer's arrival (plus the hand-off) lands by the consumer's scheduled issue.
    Empty waits: every consumer role released the slot's previous item by the producer's issue.
    Local waits: the awaited instance has completed. So the timetable never blocks, and the
    protocol cannot deadlock on this schedule for any trip count."""
    s, ops = program.schedule, program.loop.ops
    arrivals = _signal_times(program, trips)
    for role in program.roles:
        for _, step, i in program.instances(role, trips):
            issue = s.starts[step.op] + i * s.ii
            for w in step.waits:
                ch = program.channels[w.channel]
                q = i - w.distance
                if not ch.exists(q, trips):
                    continue
                if w.barrier == "full":
                    landed = arrivals[(ch.id, "full", q)]
                    assert len(landed) == 1 and landed[0] + ch.latency <= issue, (step.name, i, ch.name)
                elif q - ch.depth >= 0:
                    released = arrivals.get((ch.id, "empty", q - ch.depth), [])
                    assert len(released) == ch.empty_arrivals and max(released) <= issue, (step.name, i, ch.name)
            for w in step.local_waits:
                j = i - w.distance
                if 0 <= j < trips:
                    assert s.starts[w.op] + j * s.ii + ops[w.op].duration <= issue, (step.name, i, ops[w.op].name)


def test_every_cross_role_edge_is_a_channel_wait(program):
    loop, roles = program.loop, program.schedule.roles
    steps = {step.op: step for role in program.roles for step in role.steps}
    for e in loop.edges:
        if roles[e.src] == roles[e.dst]:
            continue
        ch = program.value_channel(e.src)
        assert any(w.channel == ch.id and w.barrier == "full" and w.distance == e.distance
                   for w in steps[e.dst].waits), loop.edge_text(e)
        assert ch.depth >= e.distance
        releases = [sig for step in steps.values() for sig in step.signals
                    if sig.channel == ch.id and sig.barrier == "empty"]
        assert len(releases) == ch.empty_arrivals == len(ch.consumer_roles)


def test_fa3_program_has_shared_kv_rings_ping_pong_tokens_and_wait_group_semantics():
    program = program_of(ROOT / "kernels" / "fa-fwd-h100.schedule.yaml", ROOT / "specs" / "kernels" / "fa-fwd.yaml")
    loop = program.loop
    name = {ch.name: ch for ch in program.channels}
    for kv in ("loadK", "loadV"):
        assert name[kv].depth == 2 and name[kv].empty_arrivals == 2 and name[kv].tx_bytes == 128 * 128 * 2
    tokens = [ch for ch in program.channels if ch.token]
    # the tensor core alternates between the two consumer warpgroups: one token each way
    tc = [ch for ch in tokens if ch.name.startswith("tc:")]
    assert len(tc) == 2 and {(ch.producer_role, ch.consumer_roles) for ch in tc} == {(1, (2,)), (2, (1,))}
    # closer pairs get no token (test_the_schedule_satisfies_every_wait_of_its_program: tokens never delay it)
    assert all("less than a 30-cycle token" in text or "more than once" in text for text in program.unordered)
    assert {program.channels[0].producer_role} == {0} and len(program.roles) == 3
    index = {op.name: i for i, op in enumerate(loop.ops)}
    for half in ("0", "1"):
        rowmax = next(st for r in program.roles for st in r.steps if st.name == f"rowmax.{half}")
        awaited = {loop.ops[w.op].name: w.distance for w in rowmax.local_waits}
        qk_distance = program.schedule.stage(index[f"rowmax.{half}"]) - program.schedule.stage(index[f"qk.{half}"])
        assert awaited[f"qk.{half}"] == 0 and qk_distance >= 0
        # the PV issued after this QK^T stays in flight: only an older one is awaited
        assert awaited.get(f"pv.{half}", 1) >= 1


def test_lower_command_prints_the_program_and_rejects_a_loop_without_warps():
    runner = CliRunner()
    ok = runner.invoke(app, ["lower", str(ROOT / "specs/kernels/gemm.yaml"),
                             str(ROOT / "kernels/gemm-b200.schedule.yaml")])
    assert ok.exit_code == 0 and "loadA: role 0 -> roles 1" in ok.output and "expect_tx 16384" in ok.output
    bad = runner.invoke(app, ["lower", str(ROOT / "specs/kernels/fig1-toy.yaml")])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "machine with warps" in bad.output


def test_save_schedule_round_trips_through_lower(tmp_path):
    runner = CliRunner()
    target = tmp_path / "gemm.yaml"
    solved = runner.invoke(app, ["solve", str(ROOT / "specs/kernels/gemm.yaml"), "-m", "b200", "--deterministic",
                                 "--save-schedule", str(target)])
    assert solved.exit_code == 0
    again = runner.invoke(app, ["lower", str(ROOT / "specs/kernels/gemm.yaml"), str(target)])
    assert again.exit_code == 0 and "II 256" in again.output


def test_a_writer_waits_for_an_asynchronous_reader_of_the_slot_it_reuses():
    """FA backward on H100: dV's wgmma reads P from S's registers (one slot) asynchronously; the next
    S must wait for that wgmma to complete before it overwrites them (found by the simulator)."""
    program = program_of(ROOT / "kernels" / "fa-bwd-h100.schedule.yaml", ROOT / "specs" / "kernels" / "fa-bwd.yaml")
    ops = program.loop.ops
    for half in "01":
        s = next(st for r in program.roles for st in r.steps if st.name == f"s.{half}")
        assert program.values[s.op].depth == 1
        assert ("dv." + half, 1) in {(ops[w.op].name, w.distance) for w in s.local_waits}
