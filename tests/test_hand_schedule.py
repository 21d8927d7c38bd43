"""Structured hand schedules (docs/hand-schedules.md): the file form, the solver-free placement and
its brute-force oracle, contradictions, expect claims, the binding chain, and the CLI report."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from joint_oracle import tiny_loop
from twill.cli import app
from twill.model.generate import random_loop
from twill.model.hand_schedule import load_hand_schedule
from twill.model.loader import load_spec
from twill.model.placement import Structure, place, schedule_of
from twill.model.schedule import Schedule
from twill.review import review
from twill.solver.backend import Settings
from twill.solver.backends import make_backend
from twill.solver.bounds import compute_bounds
from twill.solver.search import search
from twill.solver.verify import verify

ROOT = Path(__file__).resolve().parents[1]
TOY = str(ROOT / "specs" / "kernels" / "fig1-toy.yaml")
SCHEDULES = ROOT / "specs" / "schedules"
PROBLEMS = ROOT / "benchmarks" / "problems"
HAND = Path(__file__).parent / "hand"
DETERMINISTIC = Settings(deterministic=True)


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def reviewed(spec: Path | str, schedule: Path | str, **hand_fields):
    loop = load_spec(spec)
    hand = load_hand_schedule(schedule, loop)
    return review(loop, replace(hand, **hand_fields) if hand_fields else hand)


def twill(loop):
    return search(loop, make_backend("cpsat", DETERMINISTIC), 60, DETERMINISTIC)


# --- the file form and the derived starts ----------------------------------------------------------


def test_paper_structure_derives_the_paper_schedule():
    r = reviewed(TOY, SCHEDULES / "fig1-toy-structured.yaml")
    assert r.valid and r.ii == 2 and r.ii_source == "scan"
    assert r.schedule.starts == (0, 2, 3, 0)  # S, P, O, N: exactly specs/schedules/fig1-toy-paper.yaml
    assert r.placement.earliest
    assert [(c.what, c.agree) for c in r.claims] == [("stages", True), ("length", True)]


def test_an_ii_in_the_file_is_used_and_its_slack_reported():
    r = reviewed(TOY, SCHEDULES / "fig1-toy-structured.yaml", ii=5)
    assert r.valid and r.ii == 5 and r.best_ii == 2
    assert r.schedule.starts == (0, 5, 6, 0)


def test_unpipelined_structure_is_bound_by_its_chain():
    r = reviewed(TOY, SCHEDULES / "fig1-toy-inorder-structured.yaml")
    assert r.valid and r.ii == 3
    chain = r.binding[0]
    assert chain.kind == "cycle" and (chain.const, chain.coef) == (3, -1)
    assert [a.kind for a in chain.cycle] == ["window", "dependence", "dependence", "window_end"]
    assert "S -> P (delay 1)" in chain.text and "P -> O (delay 1)" in chain.text


def test_explicit_schedules_are_read_as_their_structure():
    r = reviewed(TOY, SCHEDULES / "fig1-toy-paper.yaml")
    assert r.hand.form == "explicit" and r.valid and r.ii == 2
    assert r.hand.structure.stages == (0, 1, 1, 0)
    assert r.hand.structure.role_ops == ((0, 1, 3, 2),)  # S, P, N at slot 0 (ties by op), then O


def _same_structure(loop, s: Structure, ii: int, starts) -> bool:
    if any(t // ii != k for t, k in zip(starts, s.stages)):
        return False
    # "b after a" on a role: b issues once a has finished issuing (a zero-issue op after an op
    # with issue cycles may not sit on that op's first slot).
    issue = [op.issue if s.joint else 0 for op in loop.ops]
    return all(all(starts[a] % ii + issue[a] <= starts[b] % ii for a, b in zip(seq, seq[1:])) for seq in s.role_ops)


def _random_structure(loop, rng: random.Random) -> Structure:
    n = len(loop.ops)
    roles = [rng.randrange(3 if loop.joint else 1) for _ in range(n)]
    used = sorted(set(roles))
    role_ops = []
    for r in used:
        ops = [i for i in range(n) if roles[i] == r]
        rng.shuffle(ops)
        role_ops.append(tuple(ops))
    return Structure(tuple(f"r{r}" for r in used), tuple(role_ops), tuple(rng.randrange(3) for _ in range(n)),
                     joint=loop.joint)


def _brute_force(loop, s: Structure, ii: int) -> list[tuple[int, ...]]:
    """Every valid schedule with the structure's roles, stages and order at ``ii``."""
    windows = [range(k * ii, k * ii + ii) for k in s.stages]
    found = []
    for starts in itertools.product(*windows):
        if not _same_structure(loop, s, ii, starts):
            continue
        if not verify(loop, Schedule(ii, starts, s.role_of if s.joint else None)):
            found.append(starts)
    return found


def _sampled_structure(loop, rng: random.Random, ii: int) -> Structure:
    """The structure of a random valid schedule when sampling finds one, else a random structure."""
    from twill.model.hand_schedule import structure_of

    n = len(loop.ops)
    for _ in range(300):
        roles = tuple(rng.randrange(3) for _ in range(n)) if loop.joint else None
        starts = tuple(rng.randrange(2 * ii) for _ in range(n))
        schedule = Schedule(ii, starts, roles)
        if not verify(loop, schedule):
            return structure_of(loop, schedule)[0]
    return _random_structure(loop, rng)


def _oracle_case(loop, seed: int) -> str:
    rng = random.Random(f"hand-{seed}")
    ii = compute_bounds(loop).mii + rng.randrange(4)
    s = _sampled_structure(loop, rng, ii) if seed % 3 else _random_structure(loop, rng)
    p = place(loop, s, ii)
    valid = _brute_force(loop, s, ii)
    if p.starts is None and p.blocked is None:
        assert not p.guessed and not any(a.kind == "unit" for a in p.cycle)
        assert not valid, f"seed {seed}: a contradiction is claimed, but {valid[0]} is valid"
        return "contradiction"
    if p.starts is None:  # list placement failed: units are placed greedily, no claim is made
        return "missed" if valid else "none"
    if p.starts is not None and p.earliest:
        for starts in valid:  # the least solution is below every valid schedule of the structure
            assert all(a <= b for a, b in zip(p.starts, starts)), (seed, p.starts, starts)
    if p.starts is not None:
        placed = schedule_of(s, p)
        assert _same_structure(loop, s, ii, placed.starts)
        if not verify(loop, placed):
            assert placed.starts in valid
            return "valid" if p.earliest else "valid-list"
    return "invalid" if valid else "none"


def test_joint_placement_is_earliest_against_brute_force():
    outcomes = [_oracle_case(tiny_loop(seed), seed) for seed in range(90)]
    # The oracle must have had something to compare against; list placement rarely misses.
    assert outcomes.count("valid") >= 10 and outcomes.count("contradiction") >= 5, outcomes
    assert outcomes.count("missed") <= 3, outcomes


def test_pure_placement_is_earliest_against_brute_force():
    outcomes = [_oracle_case(random_loop(3 + seed % 2, seed, max_latency=3), seed) for seed in range(60)]
    assert outcomes.count("valid") >= 15 and outcomes.count("missed") <= 8, outcomes


# --- contradictions ---------------------------------------------------------------------------


def test_an_order_against_a_dependence_is_impossible_at_every_ii(tmp_path):
    schedule = tmp_path / "backwards.yaml"
    schedule.write_text("roles:\n  one: [P@0, S@0, O@1, N@0]\n")
    r = reviewed(PROBLEMS / "fig1-toy-joint.yaml", schedule)
    assert r.impossible and not r.valid
    texts = [a.text for a in r.contradiction]
    assert "S -> P (delay 1)" in texts and any("one issues S after P" in t for t in texts)
    result = run("verify", str(PROBLEMS / "fig1-toy-joint.yaml"), str(schedule), "--deterministic")
    assert result.exit_code == 1
    assert "INVALID at every II: the structure contradicts itself" in result.stdout
    assert "S -> P (delay 1)" in result.stdout


def test_a_consumer_stages_before_its_producer_is_impossible(tmp_path):
    schedule = tmp_path / "early.yaml"
    schedule.write_text("order: [P@0, S@1, O@1, N@0]\n")
    r = reviewed(TOY, schedule)
    assert r.impossible and "S -> P (delay 1)" in [a.text for a in r.contradiction]


def test_a_fixed_ii_below_the_chain_is_a_named_contradiction(tmp_path):
    schedule = tmp_path / "tight.yaml"
    schedule.write_text("ii: 2\norder: [S, N, P, O]\n")
    r = reviewed(TOY, schedule)
    assert not r.valid and not r.impossible and r.contradiction
    out = run("verify", TOY, str(schedule), "--deterministic").stdout
    assert "INVALID at II 2: the structure's constraints contradict each other" in out
    assert "needs II >= 3; the structure is first valid at II 3" in out


# --- expect claims, binding chains, the FA3-like structure -----------------------------------------


def test_expect_claims_agree_or_disagree():
    r = reviewed(PROBLEMS / "gemm-tma.yaml", HAND / "gemm-tma.yaml")
    claims = {(c.what, c.subject): (c.expected, c.derived, c.agree) for c in r.claims}
    assert claims[("depth", "loadA")] == (3, 3, True)
    assert claims[("depth", "loadB")] == (3, 2, False)  # loadB waits 256 cycles for the TMA: shorter life
    assert claims[("warps", "mma")] == (1, 1, True)
    out = run("verify", str(PROBLEMS / "gemm-tma.yaml"), str(HAND / "gemm-tma.yaml"), "--deterministic").stdout
    assert "depth loadB 3: DISAGREE (derived 2)" in out and "depth loadA 3: agree" in out


def test_a_saturated_softmax_role_is_the_binding_chain():
    loop = load_spec(PROBLEMS / "softmax-rows.yaml")
    r = review(loop, load_hand_schedule(HAND / "softmax-rows-split.yaml", loop))
    assert r.valid and r.ii == 3260
    chain = r.binding[0]
    assert chain.kind == "cycle" and (chain.const, chain.coef) == (3260, -1)
    assert [a.kind for a in chain.cycle] == ["dependence", "dependence", "wrap"]
    assert "rowmax -> exp (delay 460)" in chain.text and "exp -> rowsum (delay 1100)" in chain.text
    assert any(b.kind == "saturated" and "role softmax" in b.text for b in r.binding)
    result = run("verify", str(PROBLEMS / "softmax-rows.yaml"), str(HAND / "softmax-rows-split.yaml"),
                 "--deterministic", "--json", "-")
    data = json.loads(result.stdout)
    assert result.exit_code == 0
    assert data["optimality"]["verdict"] == "not_optimal" and data["optimality"]["twill_ii"] == 2160
    assert data["optimality"]["throughput_gain_percent"] == 50.9
    assert data["binding"][0]["cycle"]["ops"] == ["rowmax", "exp", "rowsum"]
    assert data["binding"][0]["cycle"]["forces"] == "needs II >= 3260"
    assert {row["op"] for row in data["comparison"] if row["differs"]} >= {"rowmax", "exp", "rowsum"}


def test_fa3_like_structure_on_h100_subtiled():
    """FA3's roles and stages (producer warp, one warpgroup per row half, PV one stage behind) are
    valid under the model; the scan finds the first II where the list placement fits, and the
    binding chain names the II just below it."""
    loop = load_spec(PROBLEMS / "fa-fwd-h100-subtiled.yaml")
    r = review(loop, load_hand_schedule(HAND / "fa3-h100-subtiled.yaml", loop))
    assert r.valid, r.violations[:3]
    claims = {(c.what, c.subject): (c.derived, c.agree) for c in r.claims}
    assert claims[("setmaxnreg", "producer")] == (24, True)
    assert claims[("depth", "loadK")] == (2, True)
    assert r.best_ii == r.ii > r.bounds.mii  # scanned from MII 2460 up
    assert r.binding and r.binding[0].kind == "violation" and f"at II {r.ii - 1}" in r.binding[0].text


# --- CLI: exit codes and located errors ---------------------------------------------------------


def test_cli_exit_codes(tmp_path):
    assert run("verify", TOY, str(SCHEDULES / "fig1-toy-structured.yaml"), "--deterministic").exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("order: [P@0, S@1, O@1, N@0]\n")
    assert run("verify", TOY, str(bad), "--deterministic").exit_code == 1


BAD_SCHEDULES = [
    ("order: [S@0, NN@0, P@1, O@1]\n", 1, "order[1]", "unknown op 'NN' (did you mean 'N'?)"),
    ("order:\n  - S@0\n  - P@x\n  - O@1\n  - N\n", 3, "order[1]", "stage of 'P' must be an integer"),
    ("order: [S@0, P@1, O@1]\n", 1, "order", "op(s) in no list: N"),
    ("order: [S@0, P@1, O@1, N, S]\n", 1, "order[4]", "op 'S' is listed twice"),
    ("roles:\n  one: [S, P, O, N]\n", 1, "roles", "the machine has no `warps`"),
    ("order: [S, P, O, N]\nexpect: {depth: {Q: 1}}\n", 2, "expect.depth.Q", "unknown op 'Q'"),
    ("order: [S, P, O, N]\nexpected: {}\n", 2, "expected", "unknown field"),
    ("ii: 0\norder: [S, P, O, N]\n", 1, "ii", "greater than or equal to 1"),
    ("{}\n", 1, None, "no schedule"),
]


@pytest.mark.parametrize("text, line, field, words", BAD_SCHEDULES)
def test_bad_schedule_files_are_located(tmp_path, text, line, field, words):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = run("verify", TOY, str(path))
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    prefix = f"error: {path}:{line}: " + (f"{field}: " if field else "")
    assert message.startswith(prefix), message
    assert words in message


def test_unknown_op_in_a_role_list_names_file_line_and_field(tmp_path):
    path = tmp_path / "fa.yaml"
    path.write_text("roles:\n  producer: [loadA, loadB]\n  mma:\n    - mmma@1\n")
    result = run("verify", str(PROBLEMS / "gemm-tma.yaml"), str(path))
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {path}:4: roles.mma[0]: unknown op 'mmma' (did you mean 'mma'?) "
                                     "(ops: loadA, loadB, mma)")


def test_schedule_file_carries_machine_and_params(tmp_path):
    spec = Path(__file__).parent / "params" / "kernel.yaml"
    path = tmp_path / "s.yaml"
    path.write_text("params: {size: 4}\norder: [a@0, b@0]\n")
    data = json.loads(run("verify", str(spec), str(path), "--deterministic", "--json", "-").stdout)
    small = data["ii"]
    data = json.loads(run("verify", str(spec), str(path), "--deterministic", "--json", "-", "--set", "size=16").stdout)
    assert data["ii"] > small  # the command line wins over the file
    joint = tmp_path / "j.yaml"
    joint.write_text("machine: h100\nroles:\n  wg: [S, P, O, N]\n")  # fig1-toy on the H100's warps
    result = run("verify", TOY, str(joint), "--deterministic", "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["roles"][0]["name"] == "wg"


def test_json_keeps_the_old_keys_and_adds_the_review():
    result = run("verify", TOY, str(SCHEDULES / "fig1-toy-inorder-structured.yaml"), "--deterministic",
                 "--json", "-")
    data = json.loads(result.stdout)
    assert {"schedule", "valid", "ii", "violations", "length", "stages", "optimal_ii", "gap", "search"} <= set(data)
    assert {"form", "ii_source", "structure_best_ii", "placement", "starts", "structure", "roles", "buffers",
            "expect", "optimality", "binding", "comparison", "contradiction", "impossible"} <= set(data)
    assert (data["ii"], data["optimal_ii"], data["gap"]) == (3, 2, 1)
    assert data["starts"] == {"S": 0, "P": 1, "O": 2, "N": 0}
    assert data["optimality"]["proof"].startswith("II 1 infeasible (res_mii: unit tc")


def test_report_fits_one_screen():
    loop = load_spec(PROBLEMS / "softmax-rows.yaml")
    out = run("verify", str(PROBLEMS / "softmax-rows.yaml"), str(HAND / "softmax-rows-split.yaml"),
              "--deterministic").stdout
    assert len(out.splitlines()) <= 40 and max(map(len, out.splitlines())) <= 200
    del loop


# --- FA3 and FA4 as written by their authors, on specs/kernels/fa-fwd.yaml (and fa-bwd.yaml) ---------


def reviewed_with_header(schedule: Path, kernel: str = "fa-fwd"):
    from twill.model.hand_schedule import read_header

    header = read_header(schedule)
    loop = load_spec(ROOT / "specs" / "kernels" / f"{kernel}.yaml", header.machine, header.params)
    return review(loop, load_hand_schedule(schedule, loop))


def test_fa3_schedule_is_valid_with_fa3s_register_split():
    r = reviewed_with_header(SCHEDULES / "fa3-h100.yaml")
    assert r.valid and r.ii_source == "scan" and r.ii >= r.bounds.mii
    claims = {(c.what, c.subject): c for c in r.claims}
    for role, value in (("producer", 24), ("consumer0", 240), ("consumer1", 240)):
        assert claims[("setmaxnreg", role)].agree, claims[("setmaxnreg", role)]
    assert all(claims[("warps", role)].agree for role in ("producer", "consumer0", "consumer1"))
    assert claims[("depth", "loadK")].agree
    assert r.schedule.stages == 3  # loads, QK^T and softmax, then PV one stage behind


def test_fa3_backward_schedule_is_valid_with_dq_staged_out_of_registers():
    r = reviewed_with_header(SCHEDULES / "fa3-bwd-h100.yaml", "fa-bwd")
    assert r.valid and r.ii == 3231, r.violations[:3]
    claims = {(c.what, c.subject): c for c in r.claims}
    assert all(claims[("warps", role)].agree for role in ("producer", "dq_writer", "consumer0", "consumer1"))
    assert claims[("setmaxnreg", "producer")].agree
    # At II 3231 the Q tile's ring needs 3 slots (FA3: 2): its last reader, dk.0, releases it 6625 cycles
    # after the load, just over 2 II.
    assert claims[("depth", "loadQ")].derived == 3
    # dQ frees its 32 registers once copied into the writer warp's staging buffer (rule 8), not when the
    # TMA reduce-add completes; consumer1 issues dQ before its dV completes, so dQ is live with S/P and
    # dP/dS: 248 there, not 240. consumer0's peak is at its exp2 and dS, which read LSE_i and Delta_i
    # at 16 columns each (scratch): 232, where ptxas compiles the emitted kernel without a spill.
    from twill.model.joint import layout

    need = {role.id: role.registers for role in layout(r.loop, r.schedule).roles}
    assert [need[r.hand.role_names.index(name)] for name in ("consumer0", "consumer1")] == [232, 248]


def test_fa4_schedule_is_valid_and_fills_tensor_memory():
    from twill.model.joint import tmem_columns

    r = reviewed_with_header(SCHEDULES / "fa4-b200.yaml")
    assert r.valid, r.violations[:3]
    assert tmem_columns(r.loop, r.schedule) == 512  # S0, S1, O0, O1: FA4's tensor memory map
    claims = {(c.what, c.subject): c for c in r.claims}
    assert all(claims[("warps", role)].agree for role in ("load", "mma", "softmax0", "softmax1", "correction"))
    # The model hands leftover registers to every warpgroup alike, so FA4's 192/192/80 split is reported
    # as a disagreement, not hidden.
    assert claims[("setmaxnreg", "correction")].agree is False


def test_explicit_starts_later_than_the_placement_are_pointed_out(tmp_path):
    schedule = tmp_path / "late.yaml"
    schedule.write_text("ii: 2\nstarts: {S: 0, P: 3, O: 5, N: 0}\n")
    r = reviewed(TOY, schedule)
    assert r.valid and r.earliest == (0, 2, 5, 0)  # P one cycle earlier in the same stage
    data = json.loads(run("verify", TOY, str(schedule), "--deterministic", "--json", "-").stdout)
    assert data["placed_starts"] == {"S": 0, "P": 2, "O": 5, "N": 0}
    assert "the same structure also places validly at this II with starts P 2 (given 3)" in \
        run("verify", TOY, str(schedule), "--deterministic").stdout
