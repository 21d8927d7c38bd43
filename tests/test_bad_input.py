"""Bad input: one located line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from twill.cli import app

GOOD = """\
name: toy
machine:
  units: {tc: 1, sfu: 1}
ops:
  - {name: S, unit: tc, latency: 1}
  - {name: P, unit: sfu, latency: 1}
edges:
  - {src: S, dst: P}
"""

# (case id, spec text, expected line, expected field, words the message must contain)
SPEC_CASES = [
    ("malformed-yaml", "name: toy\nops: [ {name: S\n", 3, None, "malformed YAML"),
    ("not-a-mapping", "- just\n- a list\n", 1, None, "mapping"),
    ("duplicate-yaml-key", GOOD.replace("name: toy\n", "name: toy\nname: again\n"), 2, "name", "duplicate key"),
    ("unknown-top-key", GOOD + "extra: 1\n", 9, "extra", "unknown field"),
    ("unknown-op-key", GOOD.replace("{name: P, unit: sfu, latency: 1}", "{name: P, unit: sfu, lattency: 1}"),
     6, "ops[1].lattency", "unknown field"),
    ("missing-latency", GOOD.replace("{name: P, unit: sfu, latency: 1}", "{name: P, unit: sfu}"),
     6, "ops[1].latency", "required"),
    ("negative-latency", GOOD.replace("{name: P, unit: sfu, latency: 1}", "{name: P, unit: sfu, latency: -3}"),
     6, "ops[1].latency", "-3"),
    ("string-latency", GOOD.replace("{name: S, unit: tc, latency: 1}", "{name: S, unit: tc, latency: fast}"),
     5, "ops[0].latency", "integer"),
    ("negative-distance", GOOD.replace("{src: S, dst: P}", "{src: S, dst: P, distance: -1}"),
     8, "edges[0].distance", "-1"),
    ("zero-occupancy", GOOD.replace("{name: S, unit: tc, latency: 1}", "{name: S, unit: tc, latency: 1, occupancy: 0}"),
     5, "ops[0].occupancy", "0"),
    ("duplicate-op", GOOD.replace("{name: P, unit: sfu", "{name: S, unit: sfu"), 6, "ops[1].name", "duplicate op"),
    ("unknown-edge-src", GOOD.replace("{src: S, dst: P}", "{src: Q, dst: P}"), 8, "edges[0].src", "unknown op 'Q'"),
    ("unknown-edge-dst", GOOD.replace("{src: S, dst: P}", "{src: S, dst: X}"), 8, "edges[0].dst", "unknown op 'X'"),
    ("unknown-unit", GOOD.replace("unit: sfu", "unit: mufu"), 6, "ops[1].unit", "unknown unit 'mufu'"),
    ("zero-capacity", GOOD.replace("sfu: 1}", "sfu: 0}"), 6, "ops[1].unit", "capacity 0"),
    ("negative-capacity", GOOD.replace("sfu: 1}", "sfu: -1}"), 3, "machine.units.sfu", "-1"),
    ("amount-over-capacity", GOOD.replace("{name: P, unit: sfu, latency: 1}",
                                          "{name: P, latency: 1, reservations: [{unit: sfu, amount: 2}]}"),
     6, "ops[1].reservations[0].unit", "needs 2"),
    ("unit-and-reservations", GOOD.replace("{name: P, unit: sfu, latency: 1}",
                                           "{name: P, unit: sfu, latency: 1, reservations: []}"),
     6, "ops[1]", "not both"),
    ("zero-distance-cycle", GOOD + "  - {src: P, dst: S}\n", 8, "edges[0]", "distance 0 and positive delay"),
    ("self-loop", GOOD + "  - {src: P, dst: P}\n", 9, "edges[1]", "distance 0 and positive delay"),
    ("no-machine", GOOD.replace("machine:\n  units: {tc: 1, sfu: 1}\n", ""), 1, "name", "no machine"),
    ("unknown-machine-name", GOOD.replace("machine:\n  units: {tc: 1, sfu: 1}\n", "machine: h900\n"),
     2, "machine", "unknown machine 'h900'"),
    ("no-ops", "name: toy\nmachine: {units: {tc: 1}}\nops: []\n", 3, "ops", "at least 1"),
]

JOINT = """\
name: joint
machine:
  units: {tc: 1, sfu: 1}
  warps: {max: 8}
  registers: {file: 65536, per_thread: 255, setmaxnreg: [24, 256, 8], overhead: 24}
  memories: {smem: {capacity: 1024}}
  handoff: {mbarrier: 92, named: 30, transfer_base: 61, transfer_per_kb: 16.1}
ops:
  - {name: S, unit: tc, latency: 1, warps: 4, registers: 64}
  - {name: P, unit: sfu, latency: 1, smem: 512}
edges:
  - {src: S, dst: P, blocking: true}
"""

OVERWRITES = JOINT.replace("latency: 1, smem: 512}", "latency: 1, overwrites: S}")  # P is written over S

JOINT_CASES = [
    ("warps-not-a-group", JOINT.replace("warps: 4,", "warps: 3,"), 9, "ops[0].warps", "warpgroup of 4"),
    ("too-many-registers", JOINT.replace("registers: 64", "registers: 240"), 9, "ops[0].registers",
     "exceed 255"),
    ("smem-too-small", JOINT.replace("smem: 512", "smem: 4096"), 10, "ops[1].smem", "machine has 1024"),
    ("no-tmem", JOINT.replace("smem: 512", "tmem: 32"), 10, "ops[1].tmem", "machine has 0"),
    ("bad-barrier", JOINT.replace("blocking: true", "barrier: semaphore"), 12, "edges[0].barrier", "mbarrier"),
    ("warps-without-registers", JOINT.replace(
        "  registers: {file: 65536, per_thread: 255, setmaxnreg: [24, 256, 8], overhead: 24}\n", ""),
     3, "machine", "no `registers` section"),
    ("setmaxnreg-shape", JOINT.replace("[24, 256, 8]", "[24, 256]"), 5, "machine.registers.setmaxnreg",
     "at least 3"),
    ("max-warps-over-machine", JOINT + "max_warps: 12\n", 13, "max_warps", "machine allows 8"),
    ("zero-subtile", JOINT + "subtile: 0\n", 13, "subtile", "greater than or equal to 1"),
    ("max-warps-below-a-warpgroup", JOINT + "max_warps: 2\n", 13, "max_warps", "less than one warpgroup"),
    ("issue-past-duration", JOINT.replace("latency: 1, warps: 4", "latency: 1, issue: 5, warps: 4"), 9,
     "ops[0].issue", "longer than the op itself"),
    ("setmaxnreg-off-step", JOINT.replace("[24, 256, 8]", "[20, 256, 8]"), 5, "machine.registers",
     "multiples of step"),
    ("accumulator-without-self-edge", JOINT.replace("registers: 64}", "registers: 64, accumulator: true}"), 9,
     "ops[0].accumulator", "{src: S, dst: S, distance: 1}"),
    ("accumulator-without-value", JOINT.replace("warps: 4, registers: 64}", "warps: 4, accumulator: true}")
     + "  - {src: S, dst: S, distance: 1}\n", 9, "ops[0].accumulator", "has no value"),
    ("accumulator-deeper", JOINT.replace("registers: 64}", "registers: 64, accumulator: true, depth: 2}")
     + "  - {src: S, dst: S, distance: 1}\n", 9, "ops[0].depth", "one storage"),
    ("overwrites-unknown-op", OVERWRITES.replace("overwrites: S", "overwrites: Q"), 10, "ops[1].overwrites",
     "unknown op 'Q'"),
    ("overwrites-not-an-input", OVERWRITES.replace("{src: S, dst: P, blocking: true}", "{src: P, dst: S}"), 10,
     "ops[1].overwrites", "no edge S -> P"),
    ("overwrites-itself", OVERWRITES.replace("overwrites: S", "overwrites: P"), 10, "ops[1].overwrites",
     "not an input"),
    ("overwrites-no-registers", OVERWRITES.replace("registers: 64", "smem: 64"), 10, "ops[1].overwrites",
     "holds no registers"),
    ("overwrites-another-part", OVERWRITES.replace("overwrites: S", "overwrites: S, subtile: true") + "subtile: 2\n",
     10, "ops[1].overwrites", "'P' is split into 2 parts and 'S' is not"),
]


@pytest.fixture
def runner():
    return CliRunner()


def run(runner, *args):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def assert_one_line_error(result, file, line, field, words):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    message = lines[0]
    assert "Traceback" not in result.output
    location = f"{file}:{line}:" if line is not None else f"{file}:"
    assert message.startswith(f"error: {location}"), message
    if field is not None:
        assert f": {field}: " in message, message
    assert words in message, message


@pytest.mark.parametrize("case,text,line,field,words", SPEC_CASES + JOINT_CASES,
                         ids=[c[0] for c in SPEC_CASES + JOINT_CASES])
@pytest.mark.parametrize("command", ["check", "solve"])
def test_bad_spec(tmp_path, runner, command, case, text, line, field, words):
    spec = tmp_path / f"{case}.yaml"
    spec.write_text(text)
    assert_one_line_error(run(runner, command, str(spec)), spec, line, field, words)


def test_joint_overrides_are_checked(tmp_path, runner):
    spec = tmp_path / "joint.yaml"
    spec.write_text(JOINT)
    result = run(runner, "check", str(spec), "--max-warps", "40")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --max-warps: 40 warps, the machine allows 8"
    assert run(runner, "check", str(spec), "--max-warps", "4").exit_code == 0


@pytest.mark.parametrize("text,line,field,words", [
    ("ii: 2\nstarts: {S: 0, P: 1}\n", 2, "starts", "needs `roles`"),
    ("ii: 2\nstarts: {S: 0, P: 1}\nroles: {S: 0, Q: 1}\n", 3, "roles.Q", "unknown op 'Q'"),
    ("ii: 2\nstarts: {S: 0, P: 1}\nroles: {S: 0}\n", 3, "roles", "no role given for op(s): P"),
])
def test_bad_joint_schedule(tmp_path, runner, text, line, field, words):
    spec, schedule = tmp_path / "joint.yaml", tmp_path / "schedule.yaml"
    spec.write_text(JOINT)
    schedule.write_text(text)
    assert_one_line_error(run(runner, "verify", str(spec), str(schedule)), schedule, line, field, words)


def test_roles_need_a_joint_problem(tmp_path, runner):
    spec, schedule = tmp_path / "good.yaml", tmp_path / "schedule.yaml"
    spec.write_text(GOOD)
    schedule.write_text("ii: 2\nstarts: {S: 0, P: 1}\nroles: {S: 0, P: 0}\n")
    assert_one_line_error(run(runner, "verify", str(spec), str(schedule)), schedule, 3, "roles", "no `warps`")


def test_good_spec_is_accepted(tmp_path, runner):
    spec = tmp_path / "good.yaml"
    spec.write_text(GOOD)
    assert run(runner, "check", str(spec)).exit_code == 0


def test_missing_file(tmp_path, runner):
    missing = tmp_path / "nope.yaml"
    assert_one_line_error(run(runner, "solve", str(missing)), missing, None, None, "cannot read file")


def test_unknown_machine_option(tmp_path, runner):
    spec = tmp_path / "good.yaml"
    spec.write_text(GOOD)
    result = run(runner, "check", str(spec), "--machine", "h900")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --machine: unknown machine 'h900' (shipped: b200, h100)"


def test_bad_machine_file(tmp_path, runner):
    spec, machine = tmp_path / "good.yaml", tmp_path / "mine.yaml"
    spec.write_text(GOOD)
    machine.write_text("name: mine\nunits:\n  tc: {count: 1, sorce: typo}\n")
    assert_one_line_error(run(runner, "check", str(spec), "--machine", str(machine)),
                          machine, 3, "units.tc.sorce", "unknown field")


def test_unknown_backend(tmp_path, runner):
    spec = tmp_path / "good.yaml"
    spec.write_text(GOOD)
    result = run(runner, "solve", str(spec), "--backend", "gurobi")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --backend: unknown backend 'gurobi' (choose from cpsat, z3)"


SCHEDULE_CASES = [
    ("unknown-op", "ii: 2\nstarts: {S: 0, P: 1, Q: 3}\n", 2, "starts.Q", "unknown op 'Q'"),
    ("missing-op", "ii: 2\nstarts: {S: 0}\n", 2, "starts", "no start given for op(s): P"),
    ("negative-start", "ii: 2\nstarts:\n  S: 0\n  P: -1\n", 4, "starts.P", "-1"),
    ("zero-ii", "ii: 0\nstarts: {S: 0, P: 1}\n", 1, "ii", "greater than or equal to 1"),
    ("missing-ii", "starts: {S: 0, P: 1}\n", 1, "ii", "required"),
]


@pytest.mark.parametrize("case,text,line,field,words", SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES])
def test_bad_schedule(tmp_path, runner, case, text, line, field, words):
    spec, schedule = tmp_path / "good.yaml", tmp_path / f"{case}.yaml"
    spec.write_text(GOOD)
    schedule.write_text(text)
    assert_one_line_error(run(runner, "verify", str(spec), str(schedule)), schedule, line, field, words)


def test_installed_command_prints_no_traceback(tmp_path):
    """The real entry point, in a fresh process, on a spec with a zero-distance cycle."""
    spec = tmp_path / "cycle.yaml"
    spec.write_text(GOOD + "  - {src: P, dst: S}\n")
    proc = subprocess.run([sys.executable, "-m", "twill", "solve", str(spec)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {spec}:8: edges[0]: dependence cycle S -> P -> S")
