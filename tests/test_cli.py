"""The command line as a user sees it: golden output, the JSON contract, determinism, verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twill.cli import app

SPECS = Path(__file__).resolve().parents[1] / "specs"
TOY = str(SPECS / "kernels" / "fig1-toy.yaml")
JSON_KEYS = {"name", "status", "ii", "optimal", "mii", "res_mii", "rec_mii", "proof", "length", "stages",
             "ops", "solve_seconds"}


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_check_prints_the_bounds_and_what_binds_them():
    out = run("check", TOY).stdout
    assert "ResMII  2  unit tc: 2 cycles of work on 1 instance(s)" in out
    assert "RecMII  1  recurrence O -> O: delay 1 over distance 1" in out
    assert "MII     2" in out


GOLDEN_TOY = """\
fig1-toy: II = 2, optimal (cpsat)

fig1-toy: 4 ops, 3 edges; units tc=1 sfu=1
ResMII  2  unit tc: 2 cycles of work on 1 instance(s)  (per unit: tc 2/1 -> 2, sfu 1/1 -> 1)
RecMII  1  recurrence O -> O: delay 1 over distance 1
MII     2

proof
  II 1  infeasible  res_mii  unit tc: 2 cycles of work on 1 instance(s)
  II 2  feasible    cpsat    stage bound 2
at II 2: length 4 (minimal), stages 2 (minimal)

modulo reservation table (II = 2)
unit  slot 0  slot 1
tc    S       O
sfu   P       .

op  start  stage  slot
S   0      0      0
P   2      1      0
O   3      1      1
N   0      0      0

steady state: tc 100%, sfu 50%; 500.0 iterations per 1000 cycles
"""


def test_solve_paper_example_golden():
    result = run("solve", TOY, "--deterministic")
    assert result.exit_code == 0
    assert result.stdout == GOLDEN_TOY


@pytest.mark.parametrize("backend", ["cpsat", "z3"])
def test_solve_json_contract(backend):
    result = run("solve", TOY, "--backend", backend, "--json", "-")
    data = json.loads(result.stdout)
    assert JSON_KEYS <= set(data)
    assert (data["status"], data["ii"], data["optimal"], data["mii"], data["res_mii"], data["rec_mii"]) == \
        ("optimal", 2, True, 2, 2, 1)
    assert data["proof"][0] == {"ii": 1, "through": 1, "result": "infeasible", "by": "res_mii",
                                "detail": "unit tc: 2 cycles of work on 1 instance(s)"}
    assert (data["length"], data["stages"]) == (4, 2)
    assert set(data["ops"]) == {"S", "P", "O", "N"}
    assert all(o["stage"] * 2 + o["slot"] == o["start"] for o in data["ops"].values())
    assert isinstance(data["solve_seconds"], float)


def test_deterministic_output_is_byte_identical(tmp_path):
    outputs = []
    for i in range(2):
        target = tmp_path / f"run{i}.json"
        text = run("solve", TOY, "--deterministic", "--json", str(target)).stdout
        outputs.append((text, target.read_bytes()))
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0][1])["solve_seconds"] is None


def test_verify_paper_schedule_is_optimal():
    result = run("verify", TOY, str(SPECS / "schedules" / "fig1-toy-paper.yaml"), "--deterministic")
    assert result.exit_code == 0
    assert "valid at II 2 (length 4, stages 2)" in result.stdout
    assert "optimal: II 2 equals the proven minimum (proof: II 1 infeasible (res_mii: unit tc: 2 cycles of " \
           "work on 1 instance(s)); II 2 feasible (cpsat))" in result.stdout


def test_verify_unpipelined_schedule_shows_the_gap():
    result = run("verify", TOY, str(SPECS / "schedules" / "fig1-toy-inorder.yaml"), "--json", "-")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["valid"], data["ii"], data["optimal_ii"], data["gap"]) == (True, 3, 2, 1)
    text = run("verify", TOY, str(SPECS / "schedules" / "fig1-toy-inorder.yaml")).stdout
    assert "not optimal: twill finds II 2 (50.0% higher throughput), proven minimal" in text


def test_verify_names_the_violated_constraint(tmp_path):
    # The paper's illegal schedule: O collides with S on the tensor core (2 = 0 mod 2).
    schedule = tmp_path / "bad.yaml"
    schedule.write_text("ii: 2\nstarts: {S: 0, P: 1, O: 2, N: 0}\n")
    result = run("verify", TOY, str(schedule))
    assert result.exit_code == 1
    assert "INVALID at II 2: 1 violated constraint(s)" in result.stdout
    assert "resource: unit tc at slot 0 of II 2: O, S use 2 of 1" in result.stdout
    schedule.write_text("ii: 2\nstarts: {S: 0, P: 0, O: 3, N: 0}\n")
    out = run("verify", TOY, str(schedule)).stdout
    assert "dependence: edge S -> P (delay 1, distance 0): t(P) - t(S) = 0 < 1 at II 2" in out


def test_solve_exit_code_when_nothing_is_found():
    result = run("solve", TOY, "--deterministic", "--time-limit", "0")
    assert result.exit_code == 1
    assert "no schedule found within the time limit; proven lower bound II >= 2" in result.stdout


def test_machine_option_overrides_inline_machine():
    out = run("check", TOY, "--machine", "h100").stdout
    assert "units tc=1 tma=1 sfu=1 alu=1" in out


def test_time_indexed_encoding_is_a_labelled_baseline():
    """--encoding time-indexed runs the paper's encoding and never claims optimality."""
    spec = str(Path(__file__).parent / "joint" / "handoff-chain.yaml")
    result = run("solve", spec, "--encoding", "time-indexed", "--deterministic", "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["encoding"] == "time-indexed" and data["optimal"] is False
    # rowmax and rescale cost 4 cycles each and normalize to 1 unit: one role issues both, II 2 units.
    assert data["ii_normalized"] == 2 and data["ii_cycles_estimate"] == 8
    assert run("solve", spec, "--encoding", "bogus").exit_code == 2
