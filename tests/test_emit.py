"""twill emit: the host twin runs the GEMM's pipeline program against NumPy under ThreadSanitizer,
broken programs make it fail, device targets compile cleanly (when NVRTC is installed), and the
emitted kernels in kernels/ are fresh."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twill.emit import host, nvrtc
from twill.emit.driver import emit_kernel, kernel_name
from twill.emit.emit import emitted_files, source_name, write_directory
from twill.emit.kernel import EmitError, build_kernel
from twill.emit.lower import lower
from twill.emit.program import Program
from twill.model.hand_schedule import load_hand_schedule
from twill.model.loader import load_instance
from twill.review import review
from twill.solver.backend import Settings
from twill.solver.backends import make_backend
from twill.solver.search import search
from mutations import flipped, one_slot_short, with_channel, without_wait

ROOT = Path(__file__).resolve().parents[1]
GEMM = ROOT / "specs/kernels/gemm.yaml"
MACHINES = ("h100", "b200")
TARGET = {"h100": "sm90a", "b200": "sm100a"}
pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")


# The H100 backward ships FA3's schedule: the solved one computes dS on another role than dP's
# registers, which only the host twin emits so far.
SHIPPED_SCHEDULE = {("fa-bwd", "h100"): "specs/schedules/fa3-bwd-h100.yaml"}


def saved(machine: str, kernel: str = "gemm"):
    """A shipped kernel's spec instance, its saved schedule and the proof `twill emit` records for it."""
    from twill.cli import file_proof

    instance = load_instance(ROOT / f"specs/kernels/{kernel}.yaml", machine)
    path = SHIPPED_SCHEDULE.get((kernel, machine), f"kernels/{kernel}-{machine}.schedule.yaml")
    schedule = review(instance.loop, load_hand_schedule(str(ROOT / path), instance.loop)).schedule
    return instance, schedule, file_proof(instance.loop, schedule, path)


def compiled_clean(*args):
    """``emit_kernel(*args, compile_=True)``, checked: emitted, and ptxas reports no spill, no stack and
    no C75xx diagnostic. The result and its compile report."""
    result = emit_kernel(*args, compile_=True)
    assert result.ok, result.problems
    report = result.manifest["compile"]
    assert (report["spill_stores"], report["spill_loads"], report["stack"], report["diagnostics"]) == (0, 0, 0, [])
    return result, report


def short_trips(stages: int) -> list[int]:
    """The check's trip counts without the 64-iteration run, which FlashAttention's twins take minutes
    for under ThreadSanitizer: `python benchmarks/emit_compile.py --check` runs the full set on every variant."""
    return sorted({0, 1, 2, stages - 1, stages, 5})


def twin_runs(instance, program: Program, tmp_path: Path, trips: list[int], sanitize: bool = True, delay_seed=0):
    kernel = build_kernel(instance, program, "host", kernel_name(instance))
    directory = write_directory(str(tmp_path / "twin"), emitted_files(kernel, {}))
    binary = host.build(directory, source_name(kernel), tmp_path / "twin.bin", sanitize)
    return [host.run_twin(kernel, binary, t, delay_seed=delay_seed) for t in trips]


@pytest.mark.parametrize("machine", MACHINES)
def test_host_twin_matches_numpy_at_every_trip_count_under_tsan(machine, tmp_path):
    instance, schedule, proof = saved(machine)
    result = emit_kernel(instance, schedule, proof, "host", str(tmp_path / "out"), check=True, seed=3)
    stages = schedule.stages
    assert [run.trips for run in result.runs] == sorted({0, 1, 2, stages - 1, stages, 5, 64})
    assert result.ok, result.text()
    assert all(run.max_error < 1e-5 for run in result.runs)
    assert "host check: passed" in result.text()


@pytest.mark.parametrize("machine", MACHINES)
def test_freshly_solved_schedule_emits_and_checks(machine, tmp_path):
    instance = load_instance(GEMM, machine)
    solved = search(instance.loop, make_backend("cpsat", Settings(deterministic=True)), 30, Settings(deterministic=True))
    assert solved.optimal
    program = lower(instance.loop, solved.schedule)
    runs = twin_runs(instance, program, tmp_path, [0, 1, solved.schedule.stages, 9], sanitize=False)
    assert all(run.ok for run in runs), [run.message for run in runs]


# --- broken programs (the simulator's mutations): the twin must fail ---------------------------

@pytest.fixture(scope="module")
def h100():
    instance, schedule, _ = saved("h100")
    return instance, lower(instance.loop, schedule)


def failed(runs) -> list[str]:
    return [run.message for run in runs if not run.ok]


def test_flipped_full_parity_reads_early(h100, tmp_path):
    instance, program = h100
    messages = failed(twin_runs(instance, with_channel(program, "loadA", flipped("full")), tmp_path, [1, 8],
                                delay_seed=1))
    assert messages and all(m.startswith(("sanitizer", "max relative error")) for m in messages), messages


def test_flipped_empty_parity_deadlocks_naming_role_and_barrier(h100, tmp_path, monkeypatch):
    monkeypatch.setattr(host, "DEADLOCK_SECONDS", 1.0)
    instance, program = h100
    runs = twin_runs(instance, with_channel(program, "loadB", flipped("empty")), tmp_path, [1], sanitize=False)
    # the producer waits for a release that never comes, and the consumer for the data: whichever
    # deadline passes first is reported
    assert failed(runs)[0] in ("deadlock: role 0 waits on loadB.empty[0] for parity 0 (phase 0, 1 arrivals and "
                               "0 bytes pending)",
                               "deadlock: role 1 waits on loadA.full[0] for parity 0 (phase 0, 1 arrivals and "
                               "0 bytes pending)"), failed(runs)


def test_a_ring_one_slot_short_overwrites(h100, tmp_path):
    instance, program = h100
    runs = twin_runs(instance, with_channel(program, "loadA", one_slot_short), tmp_path, [12], delay_seed=2)
    assert failed(runs), "a producer writing a slot still being read must be caught"


def test_a_missing_full_wait_races(h100, tmp_path):
    instance, program = h100
    runs = twin_runs(instance, without_wait(program, "mma.0", "loadB"), tmp_path, [4], delay_seed=1)
    assert failed(runs) and failed(runs)[0].startswith("sanitizer"), failed(runs)


# --- device targets ---------------------------------------------------------------------------

needs_nvrtc = pytest.mark.skipif(not nvrtc.nvrtc_available(), reason="the cuda extra (NVRTC) is not installed")
EXPECTED_SASS = {"h100": ("UTMALDG", "HGMMA", "SYNCS", "USETMAXREG"), "b200": ("UTMALDG", "UTCHMMA", "UTCBAR", "LDTM")}


@needs_nvrtc
@pytest.mark.parametrize("machine", MACHINES)
def test_device_kernel_compiles_clean_with_the_expected_instructions(machine, tmp_path):
    instance, schedule, proof = saved(machine)
    result = emit_kernel(instance, schedule, proof, None, str(tmp_path / "out"), compile_=True)
    report = result.manifest["compile"]
    assert result.ok, result.problems
    assert (report["spill_stores"], report["spill_loads"], report["stack"]) == (0, 0, 0)
    assert report["diagnostics"] == []
    assert all(report["sass_classes"].get(name) for name in EXPECTED_SASS[machine]), report["sass_classes"]
    assert (tmp_path / "out" / f"gemm_{machine}.cubin").read_bytes()[:4] == b"\x7fELF"
    groups = result.manifest["warpgroups"]
    if result.manifest["setmaxnreg"]:
        assert sorted(report["setmaxnreg"]) == sorted(g["setmaxnreg"] for g in groups)
    dry = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--dry-run", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert dry.returncode == 0 and "plan: 1 kernel(s) x 8 shapes" in dry.stdout, dry.stdout + dry.stderr


@needs_nvrtc
def test_wgmma_kernel_is_rejected_for_blackwell(tmp_path):
    instance, schedule, _ = saved("h100")
    kernel = build_kernel(instance, lower(instance.loop, schedule), "sm90a", "gemm_h100")
    source = emitted_files(kernel, {})[source_name(kernel)]
    with pytest.raises(nvrtc.CompileError, match="wgmma"):
        nvrtc.compile_cuda(source, "sm_100a")


@pytest.mark.parametrize("machine", MACHINES)
def test_barriers_match_the_program(machine):
    instance, schedule, _ = saved(machine)
    program = lower(instance.loop, schedule)
    kernel = build_kernel(instance, program, TARGET[machine], kernel_name(instance))
    source = emitted_files(kernel, {})[source_name(kernel)]
    wanted = [(ch.name, barrier, ch.depth, 1 if barrier == "full" else ch.empty_arrivals)
              for ch in program.channels for barrier in ("full", "empty")]
    listed = json.loads(emitted_files(kernel, {})["manifest.json"])["barriers"]
    assert [(b["channel"], b["barrier"], b["slots"], b["arrivals"]) for b in listed if b["channel"] != "accumulators"] \
        == wanted
    for ring in kernel.rings:
        assert f"mbar_init((u64*)(smem + {ring.empty}) + s, {ring.channel.empty_arrivals});" in source
        assert f"for (int s = 0; s < {ring.channel.depth}; ++s)" in source


# --- the shipped kernels are fresh ------------------------------------------------------------

@pytest.mark.parametrize("machine, kernel", [(machine, kernel) for kernel in ("gemm", "fa-fwd", "fa-bwd")
                                             for machine in MACHINES])
def test_shipped_kernels_are_fresh(machine, kernel):
    """kernels/<kernel>-<machine>/ is what `twill emit specs/kernels/<kernel>.yaml
    kernels/<kernel>-<machine>.schedule.yaml -o kernels/<kernel>-<machine>` (SHIPPED_SCHEDULE's file
    where it names one) writes today (re-emit it when this fails)."""
    instance, schedule, proof = saved(machine, kernel)
    built = build_kernel(instance, lower(instance.loop, schedule), TARGET[machine], kernel_name(instance))
    directory = ROOT / f"kernels/{kernel}-{machine}"
    for name, content in emitted_files(built, proof).items():
        assert (directory / name).read_text() == content, f"kernels/{kernel}-{machine}/{name} is stale"


# --- bad input: one line, exit 2 ----------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--target", "sm80"], "error: --target: unknown target 'sm80' (choose from sm90a, sm100a, host)"),
    (["--target", "host", "--compile"], "error: --compile: --compile is for device targets"),
    (["--check"], "error: --check: --check runs the host twin: pass --target host"),
    (["--set", "dtype=fp8"], "error: --set dtype: dtype 'fp8' has no op bodies yet (emitted: bf16, fp16)"),
    (["--set", "block_k=32"], "error: --set block_k: block_k = 32 gives 64-byte rows"),
])
def test_emit_bad_options_are_one_line_errors(args, message, tmp_path):
    from typer.testing import CliRunner
    from twill.cli import app

    schedule = [] if "--set" in args else [str(ROOT / "kernels/gemm-h100.schedule.yaml")]
    result = CliRunner().invoke(app, ["emit", str(GEMM), *schedule, "-m", "h100", "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_emit_refuses_a_spec_without_a_family_and_an_unwritable_directory(tmp_path):
    from typer.testing import CliRunner
    from twill.cli import app

    toy = str(ROOT / "specs/kernels/fig1-toy.yaml")
    result = CliRunner().invoke(app, ["emit", toy, "-m", "h100", "-o", str(tmp_path / "out"), "-t", "20"])
    assert result.exit_code == 2 and result.stderr == f"error: {toy}: name: no kernel family 'fig1-toy' to emit " \
                                                      "(known: gemm, fa-fwd, fa-bwd)\n"
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(app, ["emit", str(GEMM), str(ROOT / "kernels/gemm-h100.schedule.yaml"), "-o",
                                      str(tmp_path / "file")])
    assert result.exit_code == 2 and result.stderr.endswith("-o: exists and is not a directory\n")


# --- sm90a: completion signals delivered at the next commit --------------------------------------

def deferred_steps(instance, program: Program) -> list[str]:
    kernel = build_kernel(instance, program, "sm90a", kernel_name(instance))
    return [sc.step.name for rc in kernel.roles for sc in rc.steps if sc.deferred]


def test_gemm_releases_wait_for_the_next_wgmma_not_for_an_idle_tensor_core(h100):
    instance, program = h100
    assert deferred_steps(instance, program) == ["mma.1"]
    source = emitted_files(build_kernel(instance, program, "sm90a", "gemm_h100"), {})["gemm_h100.cu"]
    assert "wgmma_wait<1>();  // that iteration's wgmma groups have completed" in source


@pytest.mark.parametrize("depth, deferred", [(1, []), (2, ["mma.1"])])
def test_a_release_is_held_only_where_the_producer_never_needs_it_first(h100, depth, deferred):
    """With one slot, loadA of the next k-block needs the release mma.1 would hold: delivered at once."""
    instance, program = h100
    assert deferred_steps(instance, with_channel(program, "loadA", lambda ch: dataclasses.replace(ch, depth=depth))) \
        == deferred


def test_the_twin_holds_releases_as_sm90a_does_and_would_deadlock_on_an_unsafe_hold(h100, tmp_path, monkeypatch):
    instance, program = h100
    one_slot = with_channel(program, "loadA", lambda ch: dataclasses.replace(ch, depth=1))
    assert all(run.ok for run in twin_runs(instance, one_slot, tmp_path / "safe", [3], sanitize=False))
    two_slots = with_channel(program, "loadA", lambda ch: dataclasses.replace(ch, depth=2))
    assert all(run.ok for run in twin_runs(instance, two_slots, tmp_path / "held", [0, 1, 2, 9], delay_seed=4))
    import twill.emit.kernel as kernel_module

    monkeypatch.setattr(host, "DEADLOCK_SECONDS", 1.0)
    monkeypatch.setattr(kernel_module, "deferrable", lambda program, role, commits, held, slots:
                        {op for op, signals in held.items() if signals})
    runs = twin_runs(instance, one_slot, tmp_path / "unsafe", [3], sanitize=False)
    assert failed(runs) and failed(runs)[0].startswith("deadlock: role "), failed(runs)


# --- FlashAttention forward (host twin) ----------------------------------------------------------

FA_FWD = ROOT / "specs/kernels/fa-fwd.yaml"


def test_fa_forward_twin_matches_numpy_on_fa3s_schedule_under_tsan(tmp_path):
    """FA3's hand schedule (producer warp, one warpgroup per 64-row half): online softmax, register
    rings, order tokens and the resident Q tile, against NumPy attention (two batches of two heads)."""
    instance = load_instance(FA_FWD, "h100")
    hand = review(instance.loop, load_hand_schedule(str(ROOT / "specs/schedules/fa3-h100.yaml"), instance.loop))
    assert hand.valid
    trips = short_trips(hand.schedule.stages)
    result = emit_kernel(instance, hand.schedule, {}, "host", str(tmp_path / "out"), check=True, seed=1, trips=trips)
    assert result.ok, result.text()
    assert [run.trips for run in result.runs] == trips
    assert all(run.max_error < 2e-3 for run in result.runs)   # P rounded to bf16 before PV, as on the device


def test_the_twin_catches_p_overwritten_by_the_next_s(tmp_path):
    """The schedule saved before P's readers kept S's registers live issues QK^T(k) while the row sum
    of block k-1 still reads P. The rule now gives S two copies there (and the schedule too many
    registers); with S's ring one copy short, as it was lowered then, block 0 alone is right and
    from block 1 on the twin computes wrong rows."""
    import yaml

    from twill.model.schedule import Schedule

    instance = load_instance(FA_FWD, "h100")
    path = ROOT / "tests/emit/fa-fwd-h100-before-p-over-s.schedule.yaml"
    assert not review(instance.loop, load_hand_schedule(str(path), instance.loop)).valid
    data = yaml.safe_load(path.read_text())
    program = lower(instance.loop, Schedule.from_names(instance.loop, data["ii"], data["starts"], data["roles"]))
    qk0 = [op.name for op in instance.loop.ops].index("qk.0")
    assert program.values[qk0].depth == 2
    as_then = dataclasses.replace(program, values=tuple(
        dataclasses.replace(v, depth=1) if v.op == qk0 else v for v in program.values))
    runs = twin_runs(instance, as_then, tmp_path, [1, 2], sanitize=False)
    assert runs[0].ok and not runs[1].ok and runs[1].message.startswith("max relative error"), runs
    assert all(run.ok for run in twin_runs(instance, program, tmp_path / "now", [1, 2], sanitize=False))


def test_causal_fa_forward_twin_masks_and_stops_at_the_diagonal(tmp_path):
    """FA3's structure with the causal mask (tests/emit/fa3-h100-causal.yaml): as many query rows as
    keys, so CTA x runs x + 1 KV blocks; every CTA's trip count differs."""
    instance = load_instance(FA_FWD, "h100", {"causal": True})
    hand = review(instance.loop, load_hand_schedule(str(ROOT / "tests/emit/fa3-h100-causal.yaml"), instance.loop))
    assert hand.valid
    runs = twin_runs(instance, lower(instance.loop, hand.schedule), tmp_path, [0, 1, 2, 3, 5], delay_seed=2)
    assert all(run.ok and run.max_error < 2e-3 for run in runs), runs


@pytest.mark.parametrize("machine, params", [("h100", {"block_n": 256}), ("h100", {"tiles": 1}),
                                             ("h100", {"dtype": "fp16"}), ("b200", {"block_n": 64})])
def test_gemm_variants_compile_clean_and_their_twins_match(machine, params, tmp_path):
    """Other tile shapes and dtypes: two consumer warpgroups (block_n 256 on H100), one warpgroup with
    a 128-row accumulator (tiles 1), fp16, a narrower tensor-memory accumulator."""
    instance = load_instance(GEMM, machine, params)
    settings = Settings(deterministic=True)
    solved = search(instance.loop, make_backend("cpsat", settings), 30, settings)
    runs = twin_runs(instance, lower(instance.loop, solved.schedule), tmp_path, [0, 1, 5], sanitize=False)
    assert all(run.ok for run in runs), runs
    if nvrtc.nvrtc_available():
        result = emit_kernel(instance, solved.schedule, {}, None, str(tmp_path / "device"), compile_=True)
        assert result.ok and result.manifest["compile"]["diagnostics"] == [], result.problems


# --- FlashAttention forward on sm90a --------------------------------------------------------------

FA3 = ROOT / "specs/schedules/fa3-h100.yaml"


def fa3_program(params: dict | None = None, schedule: Path = FA3):
    instance = load_instance(FA_FWD, "h100", params)
    hand = review(instance.loop, load_hand_schedule(str(schedule), instance.loop))
    assert hand.valid
    return instance, hand.schedule, lower(instance.loop, hand.schedule)


@pytest.mark.parametrize("params, schedule", [(None, FA3), ({"causal": True}, ROOT / "tests/emit/fa3-h100-causal.yaml")])
def test_sm90a_waits_count_the_wgmma_groups_actually_issued(params, schedule):
    """A local wait says "at most n groups pending", n = the role's MMAs issued after the awaited one.
    Replaying each role's guarded loop for small trip counts must give the same n as the emitted
    guards (in_range terms), at every wait that the replay reaches."""
    instance, _, program = fa3_program(params, schedule)
    kernel = build_kernel(instance, program, "sm90a", kernel_name(instance))
    checked = 0
    for rc in kernel.roles:
        for trips in range(7):
            issued: list[tuple[str, int]] = []     # MMA instances in issue order
            for k in range(rc.role.first_stage, trips + rc.role.last_stage):
                for sc in rc.steps:
                    i = k - sc.step.stage
                    if not 0 <= i < trips:
                        continue
                    for w in sc.local_waits:
                        if 0 <= i - w.distance < trips:
                            awaited = issued.index((w.name, i - w.distance))
                            emitted = sum(0 <= k - back - stage < trips for back, stage in w.after)
                            assert emitted == len(issued) - awaited - 1, (sc.step.name, w, k, trips)
                            checked += 1
                    if sc.kind == "mma":
                        issued.append((sc.step.name, i))
    assert checked > 50


@needs_nvrtc
@pytest.mark.parametrize("params, schedule", [
    (None, FA3), ({"dtype": "fp16"}, FA3), ({"head_dim": 64}, FA3), ({"head_dim": 256, "block_n": 64}, FA3),
    ({"causal": True}, ROOT / "tests/emit/fa3-h100-causal.yaml")])
def test_fa_forward_compiles_clean_for_sm90a(params, schedule, tmp_path):
    """FA3's structure: Q K^T from shared memory (SS), P V with P from registers (RS) and V MN-major,
    the softmax on the accumulator fragments (MUFU.EX2), within each warpgroup's setmaxnreg."""
    instance, schedule, _ = fa3_program(params, schedule)
    result, report = compiled_clean(instance, schedule, {}, "sm90a", str(tmp_path / "out"))
    assert all(report["sass_classes"].get(name) for name in ("UTMALDG", "HGMMA", "MUFU", "USETMAXREG"))
    assert sorted(report["setmaxnreg"]) == sorted(g["setmaxnreg"] for g in result.manifest["warpgroups"])
    source = (tmp_path / "out" / "fa_fwd_h100.cu").read_text()
    assert "_rs_tb(" in source and "wgmma_desc_mn(" in source


# --- register values staged through shared memory (host twin) ------------------------------------

FA_BWD = ROOT / "specs/kernels/fa-bwd.yaml"


def reviewed_program(spec: Path, path: str, params=None):
    instance = load_instance(spec, "h100", params)
    hand = review(instance.loop, load_hand_schedule(str(ROOT / path), instance.loop))
    assert hand.valid
    return instance, lower(instance.loop, hand.schedule)


def staged(instance, program: Program) -> list[str]:
    return [ch.name for ch in program.value_channels
            if ch.memory == "smem" and instance.loop.ops[ch.producer].registers]


def test_fa_forward_h100_optimum_stages_p_and_alpha_and_exchanges_l_under_tsan(tmp_path):
    """The H100 optimum hands warpgroup 2's alpha and P to warpgroup 1 (rowsum.1) through shared
    memory, and l back to warpgroup 2 for the epilogue; its layout is the model's (rule 9: rings,
    barriers and slack) and fits the H100's 232448 bytes."""
    instance, program = reviewed_program(FA_FWD, "kernels/fa-fwd-h100.schedule.yaml")
    assert staged(instance, program) == ["alpha.1", "exp.1"]
    kernel = build_kernel(instance, program, "host", kernel_name(instance))
    assert [(x.name, x.source_role, x.target_role) for x in kernel.exchanges] == [("rowsum.1", 1, 2)]
    assert kernel.dynamic_smem == 231704 and kernel.warnings == []
    runs = twin_runs(instance, program, tmp_path, [0, 1, 3, 5], delay_seed=1)
    assert all(run.ok and run.max_error < 2e-3 for run in runs), runs


@needs_nvrtc
def test_fa_forward_h100_optimum_compiles_for_sm90a_within_its_setmaxnreg(tmp_path):
    """The optimum on the device: staged P and alpha read in place, l exchanged, register rings of
    ceil(L_reg / II) copies (qk.1 keeps one: its second copy would be the staged value's slot depth),
    and ptxas fits each warpgroup in the schedule's setmaxnreg (256 and 192; the model needs 255 and 187)."""
    instance, program = reviewed_program(FA_FWD, "kernels/fa-fwd-h100.schedule.yaml")
    depths = {instance.loop.ops[v.op].name: v.depth for v in program.values if v.memory == "registers"}
    assert depths["qk.0"] == 2 and depths["qk.1"] == 1
    schedule = review(instance.loop, load_hand_schedule(str(ROOT / "kernels/fa-fwd-h100.schedule.yaml"),
                                                        instance.loop)).schedule
    _, report = compiled_clean(instance, schedule, {}, "sm90a", str(tmp_path / "out"))
    assert sorted(report["setmaxnreg"]) == [24, 192, 256]
    source = (tmp_path / "out" / "fa_fwd_h100.cu").read_text()
    assert "FragmentView<float, 64> in_exp_1" in source and "RowView<float, 64> in_alpha_1" in source


@pytest.mark.parametrize("schedule, step, channel", [
    ("specs/schedules/fa3-bwd-h100.yaml", "storeDQ", "dq.0"),       # dQ_i read by the writer warp before it is staged
])
def test_a_staged_value_read_before_its_full_barrier_races(schedule, step, channel, tmp_path):
    instance, program = reviewed_program(FA_BWD, schedule)
    runs = twin_runs(instance, without_wait(program, step, channel), tmp_path, [4], delay_seed=1)
    assert failed(runs) and failed(runs)[0].startswith("sanitizer"), failed(runs)


def test_the_forward_optimums_p_wait_is_implied_by_its_order_tokens(tmp_path):
    """Not every missing wait is a bug: on the H100 forward optimum, rowsum.1 of block i reads P after
    rowmax.0 waited for rescale.1's token of block i, which warpgroup 2 passes after staging P; the
    exp.1 full wait is implied, and the twin (rightly) stays clean without it."""
    instance, program = reviewed_program(FA_FWD, "kernels/fa-fwd-h100.schedule.yaml")
    runs = twin_runs(instance, without_wait(program, "rowsum.1", "exp.1"), tmp_path, [4], delay_seed=1)
    assert all(run.ok for run in runs), runs


# --- FlashAttention forward on Blackwell (host twin): S, P and O in tensor memory ------------------

FA4 = ROOT / "specs/schedules/fa4-b200.yaml"
FA_B200_OPTIMUM = ROOT / "kernels/fa-fwd-b200.schedule.yaml"


def b200_program(schedule: Path = FA4, params: dict | None = None):
    instance = load_instance(FA_FWD, "b200", params)
    hand = review(instance.loop, load_hand_schedule(str(schedule), instance.loop))
    assert hand.valid
    return instance, hand.schedule, lower(instance.loop, hand.schedule)


@pytest.mark.parametrize("schedule", [FA4, FA_B200_OPTIMUM])
def test_fa_forward_b200_twin_matches_numpy_under_tsan(schedule, tmp_path):
    """FA4's hand schedule (an MMA warp, two softmax warpgroups, a correction warpgroup) and twill's
    optimum (each softmax warpgroup issues its own MMAs): S = Q K^T into tensor memory, ldS, P in
    16 bits over S's upper columns, read there by PV, O rescaled in tensor memory, alpha staged for
    the correction warpgroup, O / l read from tensor memory after the loop."""
    instance, solved, program = b200_program(schedule)
    trips = short_trips(solved.stages)
    result = emit_kernel(instance, solved, {}, "host", str(tmp_path / "out"), check=True, seed=2, trips=trips)
    assert result.ok, result.text()
    assert [run.trips for run in result.runs] == trips
    assert all(run.max_error < 2e-3 for run in result.runs)   # P rounded to bf16 before PV, as on the device
    assert [(m["name"], m["column"]) for m in result.manifest["tmem"]["map"]] == [
        ("qk.0", 0), ("qk.1", 128), ("pv.0", 256), ("pv.1", 384)]
    source = (tmp_path / "out" / "fa_fwd_b200.cpp").read_text()
    assert "tmem_pack_16x2<true>" in source and "tmem_unpack_16<true>" in source


@pytest.mark.parametrize("step, channel", [("pv.0", "stP.0"), ("ldS.1", "qk.1")])
def test_the_b200_twin_catches_a_missing_tensor_memory_wait(step, channel, tmp_path):
    """On FA4's schedule, PV reading P before it is stored and ldS reading S before QK^T's commit
    are each a race on the twin's tensor memory (or a wrong result)."""
    instance, _, program = b200_program()
    runs = twin_runs(instance, without_wait(program, step, channel), tmp_path, [4], delay_seed=1)
    assert failed(runs), runs


def test_fa_forward_variants_name_their_targets(tmp_path):
    """The Blackwell variant has no wgmma bodies (S and O are in tensor memory), the Hopper variant
    no tcgen05 ones."""
    instance, _, program = b200_program()
    with pytest.raises(EmitError, match="no op bodies for sm90a"):
        build_kernel(instance, program, "sm90a", kernel_name(instance))
    _, _, hopper = fa3_program()
    with pytest.raises(EmitError, match="no op bodies for sm100a"):
        build_kernel(load_instance(FA_FWD, "h100"), hopper, "sm100a", "fa")


def test_causal_fa_forward_b200_masks_s_in_registers_and_compiles_clean(tmp_path):
    """The causal optimum on B200 (II 3788): each softmax warpgroup masks the S its tcgen05.ld loaded,
    one row per thread, in place; the twin (as many query rows as keys: CTA x runs up to 2 x + 2 KV
    blocks) matches NumPy under ThreadSanitizer, and sm_100a compiles it without spills or stack."""
    instance, solved, _ = b200_program(ROOT / "tests/emit/fa-fwd-b200-causal.schedule.yaml", {"causal": True})
    assert solved.ii == 3788
    trips = short_trips(solved.stages)
    result = emit_kernel(instance, solved, {}, "host", str(tmp_path / "twin"), check=True, seed=2, trips=trips)
    assert result.ok and all(run.max_error < 2e-3 for run in result.runs), result.text()
    if nvrtc.nvrtc_available():
        compiled_clean(instance, solved, {}, "sm100a", str(tmp_path / "device"))
        assert "r_ldS_0[0][j] = -INFINITY" in (tmp_path / "device" / "fa_fwd_b200.cu").read_text()


@pytest.mark.parametrize("implied", [True, False])
def test_fa_forward_b200_hd64_waits_after_the_next_mma_is_issued(implied, tmp_path, monkeypatch):
    """The hd64 optimum on B200 (II 3138) issues QK^T of block i + 1 before PV of block i waits for
    QK^T of block i, and before the correction of block i drains it: one completion barrier cannot
    tell those instances apart. Both waits are implied (``_implied_by_commit``): ldS(i), which runs
    between QK^T(i)'s issue and either, waited for QK^T(i) itself; what is left is ldS's wait for
    QK^T(i) (its latest, so PV(i - 2) goes) and the correction's for PV(i - 1). Without that pass
    (``implied`` False) the two await later commits instead (``_await_completion``): PV awaits
    QK^T(i + 1)'s commit (complete by then in the schedule) and the correction PV(i - 1)'s, issued
    after QK^T(i) (the first iteration: QK^T(1)'s). Twin under ThreadSanitizer; sm_100a without
    spills or stack."""
    import twill.emit.kernel as kernel_module

    if not implied:
        monkeypatch.setattr(kernel_module, "_implied_by_commit", lambda steps: None)
    instance, solved, program = b200_program(ROOT / "tests/emit/fa-fwd-b200-hd64.schedule.yaml", {"head_dim": 64})
    assert solved.ii == 3138
    kernel = build_kernel(instance, program, "sm100a", kernel_name(instance))
    waits = {sc.step.name: [(w.name, w.distance, w.instance, w.via and w.via[1]) for w in sc.local_waits]
             for rc in kernel.roles for sc in rc.steps if sc.step.name in ("rescale.0", "ldS.0", "pv.0")}
    if implied:
        assert waits == {"rescale.0": [("ldS.0", 0, "", None), ("pv.0", 1, "i - 1", None)],
                         "ldS.0": [("qk.0", 0, "i - 0", None)], "pv.0": []}
    else:
        assert waits == {"rescale.0": [("qk.0", 0, "min(i + 1, trips - 1)", "i - 1"), ("ldS.0", 0, "", None),
                                       ("pv.0", 1, "i - 1", None)],
                         "ldS.0": [("qk.0", 0, "i - 0", None), ("pv.0", 2, "i - 2", None)],
                         "pv.0": [("qk.0", 0, "min(i + 1, trips - 1)", None)]}
    if implied:     # the twin has no completion barriers: the same either way
        trips = short_trips(solved.stages)
        result = emit_kernel(instance, solved, {}, "host", str(tmp_path / "twin"), check=True, seed=2, trips=trips)
        assert result.ok and all(run.max_error < 2e-3 for run in result.runs), result.text()
    if nvrtc.nvrtc_available():
        compiled_clean(instance, solved, {}, "sm100a", str(tmp_path / "device"))
        source = (tmp_path / "device" / "fa_fwd_b200.cu").read_text()
        assert source.count("(u32)(min(i + 1, trips - 1)) & 1u") == (0 if implied else 2)
        assert ("if (i - 1 >= 0 && i - 1 < trips) mbar_wait(" in source) is not implied


@pytest.mark.parametrize("durations, instance, via", [
    ((700, 400), "min(i + 1, trips - 1)", None),            # A(i + 1), issued before X(i), is done by then
    ((900, 400), "min(i + 1, trips - 1)", (8, "i + 0")),     # it is not; B(i), issued after A(i), is
    ((900, 600), None, None)])                                # neither is: refused
def test_an_sm100a_wait_after_the_next_instance_awaits_a_later_commit_done_in_time(durations, instance, via):
    """A role issues MMAs A (offset 100, stage 0) and B (500, stage 1), then X (900, stage 1) waits for
    A(i); II 1000, so A(i + 1) is issued before the wait and A's barrier parity cannot name A(i)."""
    from types import SimpleNamespace
    from twill.emit.kernel import LocalWait, StepContext, _await_completion
    from twill.emit.program import Step

    def step(op: int, stage: int, offset: int, kind: str = "mma") -> StepContext:
        sc = StepContext(Step(op, "ABX"[op], stage, offset, (), (), ()), kind, {}, "ABX"[op], None, [], [], [])
        sc.done_barrier = 8 * op if kind == "mma" else None
        return sc

    steps = [step(0, 0, 100), step(1, 1, 500), step(2, 1, 900, "scale")]
    loop = SimpleNamespace(ops=[SimpleNamespace(duration=d) for d in (*durations, 1)])
    wait = LocalWait("A", 0, [], barrier=0)
    if instance is None:
        with pytest.raises(EmitError, match="op 'X' waits for 'A' after its role issued the next instance"):
            _await_completion(steps, 2, 0, 1, wait, loop, 1000)
        return
    _await_completion(steps, 2, 0, 1, wait, loop, 1000)
    assert wait.instance == instance and (wait.via and wait.via[:2]) == via


def test_fa_forward_b200_hd256_fits_tensor_memory_with_one_query_tile(tmp_path):
    """Two 128-row tiles at head_dim 256 need 2 x (128 + 256) tensor-memory columns of 512: `twill emit`
    says so before it solves, naming the parameters; one 128-row tile (FA4's hd256 kernel keeps one per
    CTA) is optimal at II 2988 = RecMII with two copies of S and O: 512 columns. Twin under
    ThreadSanitizer; sm_100a without spills or stack."""
    from typer.testing import CliRunner
    from twill.cli import app

    result = CliRunner().invoke(app, ["emit", str(FA_FWD), "-m", "b200", "--set", "head_dim=256", "-o",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    assert result.stderr == ("error: --set tiles: head_dim = 256: 2 tiles of S (128 columns) and O (256) need 768 "
                             "tensor-memory columns of 512; one 128-row tile fits (--set block_m=128 --set tiles=1)\n")
    params = {"head_dim": 256, "block_m": 128, "tiles": 1}
    instance, solved, _ = b200_program(ROOT / "tests/emit/fa-fwd-b200-hd256.schedule.yaml", params)
    assert solved.ii == 2988
    trips = short_trips(solved.stages)
    result = emit_kernel(instance, solved, {}, "host", str(tmp_path / "twin"), check=True, seed=2, trips=trips)
    assert result.ok and all(run.max_error < 2e-3 for run in result.runs), result.text()
    assert [(m["name"], m["column"], m["columns"]) for m in result.manifest["tmem"]["map"]] == [
        ("qk", 0, 256), ("pv", 256, 256)]
    if nvrtc.nvrtc_available():
        compiled_clean(instance, solved, {}, "sm100a", str(tmp_path / "device"))
        source = (tmp_path / "device" / "fa_fwd_b200.cu").read_text()
        assert "tmem_base + 0 + (i % 2) * 128, umma_desc_k(" in source
        # the correction waits for QK^T(i) after QK^T(i + 1) is issued, with nothing earlier implying it: it
        # awaits PV(i - 1)'s commit (QK^T's latest in the first iteration); PV's own wait for QK^T(i) is implied
        # by that one (_implied_by_commit first, then _await_completion for what is left)
        assert source.count("(u32)(min(i + 1, trips - 1)) & 1u") == 1
        assert source.count("if (i - 1 >= 0 && i - 1 < trips) mbar_wait(") == 1


@needs_nvrtc
def test_fa_forward_b200_optimum_compiles_clean_for_sm100a(tmp_path):
    """FA4's structure on sm100a: S = Q K^T and O += P V by tcgen05.mma (P from tensor memory, V
    MN-major), tcgen05.ld/st for S, P and O's rescale, ex2 per row, the softmax warpgroups at
    setmaxnreg 208 and their own MMAs' completion barriers, within 0 spills and no stack."""
    instance, solved, _ = b200_program(FA_B200_OPTIMUM)
    result, report = compiled_clean(instance, solved, {}, "sm100a", str(tmp_path / "out"))
    assert all(report["sass_classes"].get(name) for name in ("UTCHMMA", "LDTM", "STTM", "MUFU", "UTCBAR", "UTMALDG"))
    assert sorted(report["setmaxnreg"]) == sorted(g["setmaxnreg"] for g in result.manifest["warpgroups"])
    source = (tmp_path / "out" / "fa_fwd_b200.cu").read_text()
    assert "umma_f16_ts(" in source and "umma_desc_mn(" in source and ".done" in json.dumps(result.manifest["smem"])


# --- FA4's emulated exp2 (exp_poly: the last `emulated` columns of P as a cubic on the FMA pipe) -----

def emulated_schedule(machine: str, emulated: int):
    """The solver's schedule of the forward with ``emulated`` columns of exp2 as the polynomial
    (tests/emit/fa-fwd-MACHINE-emulatedN.schedule.yaml, its command in the file)."""
    instance = load_instance(FA_FWD, machine, {"emulated": emulated})
    path = ROOT / f"tests/emit/fa-fwd-{machine}-emulated{emulated}.schedule.yaml"
    reviewed = review(instance.loop, load_hand_schedule(str(path), instance.loop))
    assert reviewed.valid
    return instance, reviewed.schedule


@pytest.mark.parametrize("machine, emulated, trips", [("h100", 16, None), ("h100", 64, None), ("b200", 32, [1, 3])])
def test_fa_forward_with_emulated_exp2_twin_matches_numpy_under_tsan(machine, emulated, trips, tmp_path):
    """exp computes the first block_n - emulated columns of P, exp_poly the others with ex2_poly; on
    H100 one consumer hands both column ranges of its P to the other (staged_columns). B200's twin
    runs one block and three (past its two stages) to keep the test short."""
    instance, schedule = emulated_schedule(machine, emulated)
    if machine == "h100":
        assert {name.split(".")[0] for name in staged(instance, lower(instance.loop, schedule))} >= {"exp", "exp_poly"}
    trips = trips or short_trips(schedule.stages)
    result = emit_kernel(instance, schedule, {}, "host", str(tmp_path / "out"), check=True, seed=2, trips=trips)
    assert result.ok, result.text()
    assert all(run.max_error < 2e-3 for run in result.runs)   # P rounded to bf16 before PV, as on the device
    source = (tmp_path / "out" / f"fa_fwd_{machine}.cpp").read_text()
    assert f"for (int j = {instance.params['block_n'] - emulated}; j < {instance.params['block_n']}; ++j)" in source
    assert "ex2_poly(e, " in source


def test_causal_fa_forward_with_emulated_exp2_gives_masked_keys_zero(tmp_path):
    """The diagonal block masks the last columns of its rows most, exp_poly's: ex2_poly(-inf) is +0
    (the clamp to -127, p(0) = 1). The functional tests' causal schedule, head_dim 64."""
    instance = load_instance(FA_FWD, "h100", {"causal": True, "emulated": 16, "head_dim": 64})
    path = ROOT / "tests/functional/fa-fwd-causal-poly-h100.schedule.yaml"
    reviewed = review(instance.loop, load_hand_schedule(str(path), instance.loop))
    assert reviewed.valid, reviewed.violations[:3]
    schedule = reviewed.schedule
    result = emit_kernel(instance, schedule, {}, "host", str(tmp_path / "out"), check=True, seed=2, trips=[1, 2, 3])
    assert result.ok, result.text()
    assert all(run.max_error < 2e-3 for run in result.runs)


@needs_nvrtc
@pytest.mark.parametrize("machine, emulated", [("h100", 16), ("h100", 64), ("b200", 16), ("b200", 64)])
def test_fa_forward_with_emulated_exp2_compiles_clean(machine, emulated, tmp_path):
    """ex2_poly on the device: its clamp (FMNMX) and exponent insertion (LEA) in the SASS, no spills."""
    instance, schedule = emulated_schedule(machine, emulated)
    _, report = compiled_clean(instance, schedule, {}, TARGET[machine], str(tmp_path / "out"))
    assert all(report["sass_classes"].get(name) for name in ("MUFU", "FMNMX", "LEA"))
    assert "ex2_poly(fmaf(" in (tmp_path / "out" / f"fa_fwd_{machine}.cu").read_text()


def test_emulated_columns_must_be_whole_fragment_groups(tmp_path):
    instance, _, program = b200_program()
    with pytest.raises(EmitError, match="emulated = 12: .* a multiple of 8"):
        build_kernel(load_instance(FA_FWD, "b200", {"emulated": 12}), program, "host", "fa")


def test_fp8_forward_on_hopper_names_the_operand_it_cannot_transpose():
    """wgmma takes 8-bit operands K-major only; PV's V is MN-major (PTX ISA, wgmma.mma_async)."""
    _, _, hopper = fa3_program()
    with pytest.raises(EmitError, match=r"dtype 'fp8': wgmma reads 8-bit A and B K-major only .* V transposed"):
        build_kernel(load_instance(FA_FWD, "h100", {"dtype": "fp8"}), hopper, "sm90a", "fa")


def test_fa4s_hand_schedule_fits_sm100a_at_the_ii_the_verifier_accepts():
    """FA4's schedule keeps K and V rings, the 64 KiB Q and alpha staged for the correction warpgroup.
    At II 5200, with the mbarriers and the 1024 bytes of alignment slack, it took 232900 bytes, over
    the B200's 232448; rule 9 now counts them, so the review places it at II 5650, where it fits."""
    instance, schedule, program = b200_program()
    assert schedule.ii == 5650
    kernel = build_kernel(instance, program, "sm100a", kernel_name(instance))
    assert kernel.dynamic_smem <= 232448 and not kernel.warnings


# --- FlashAttention backward (host twin) ---------------------------------------------------------

def test_fa_backward_twin_matches_numpy_on_fa3s_schedule_under_tsan(tmp_path):
    """FA3's structure: each consumer warpgroup hands its dP ring slot, rewritten with 16-bit dS^T in
    the operand layout, to the other one's dQ, and its dQ_i to the writer warp (TMA reduce-add)."""
    instance, program = reviewed_program(FA_BWD, "specs/schedules/fa3-bwd-h100.yaml")
    assert staged(instance, program) == ["dp.0", "dp.1", "dq.0", "dq.1"]
    source = emitted_files(build_kernel(instance, program, "host", "fa_bwd_h100"), {})["fa_bwd_h100.cpp"]
    assert "stage_boxed<true>(slot, r_dp_0[0].data(), 64, 64);" in source   # dS^T.0 for the other dQ
    runs = twin_runs(instance, program, tmp_path, [0, 1, 2, 5], delay_seed=2)
    assert all(run.ok and run.max_error < 5e-3 for run in runs), runs


@pytest.mark.parametrize("params", [None, {"dtype": "fp16"}])
def test_fa_backward_compiles_clean_for_sm90a_within_the_models_registers(params, tmp_path):
    """FA3's backward: five wgmmas (S^T, dP^T SS; dV, dK RS with P^T, dS^T from registers; dQ SS from
    the staged dS^T), exp2 on the fragments (MUFU.EX2), dQ_i added by the TMA reduce (UTMAREDG).
    ptxas fits each consumer in the setmaxnreg the model derives, LSE_i and Delta_i counted as the
    scratch of exp2 and dS (without it consumer0 got 224 and spilled)."""
    instance = load_instance(FA_BWD, "h100", params)
    hand = review(instance.loop, load_hand_schedule(str(ROOT / "specs/schedules/fa3-bwd-h100.yaml"), instance.loop))
    assert hand.valid
    result, report = compiled_clean(instance, hand.schedule, {}, "sm90a", str(tmp_path / "out"))
    assert all(report["sass_classes"].get(name) for name in ("UTMALDG", "HGMMA", "MUFU", "USETMAXREG", "UTMAREDG"))
    assert sorted(report["setmaxnreg"]) == sorted(g["setmaxnreg"] for g in result.manifest["warpgroups"])


def test_fa_backward_twin_of_the_solved_h100_schedule(tmp_path):
    """The solved schedule computes dS of one half on another role than its dP (over dP's slot) and
    converts it on a third: the twin follows the value through the slot, under ThreadSanitizer."""
    instance = load_instance(FA_BWD, "h100")
    path = "kernels/fa-bwd-h100.schedule.yaml"
    hand = review(instance.loop, load_hand_schedule(str(ROOT / path), instance.loop))
    trips = short_trips(hand.schedule.stages)
    result = emit_kernel(instance, hand.schedule, {}, "host", str(tmp_path / "out"), check=True, seed=2, trips=trips)
    assert result.ok, result.text()
    assert [run.trips for run in result.runs] == trips
    assert all(run.max_error < 5e-3 for run in result.runs)


def test_fa_backward_bad_params_are_one_line_errors(tmp_path):
    from typer.testing import CliRunner
    from twill.cli import app

    schedule = str(ROOT / "specs/schedules/fa3-bwd-h100.yaml")
    for args, message in ((["--target", "host", "--set", "block_m=32"], "error: --set block_m: block_m = 32 is not a "
                                                                         "multiple of 64"),
                          (["--target", "sm100a"], "error: --target: kernel family 'fa-bwd' has no op bodies for "
                                                   "sm100a yet (emitted: host, sm90a)")):   # Hopper's ops
        result = CliRunner().invoke(app, ["emit", str(FA_BWD), schedule, "-o", str(tmp_path / "out"), *args])
        assert result.exit_code == 2 and result.stderr.startswith(message), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


# --- FlashAttention backward on Blackwell: S^T, dP^T, dV, dK, dQ_i in tensor memory ----------------

def b200_backward():
    instance, schedule, _ = saved("b200", "fa-bwd")
    return instance, schedule, lower(instance.loop, schedule)


def test_fa_backward_b200_twin_matches_numpy_under_tsan(tmp_path):
    """The B200 optimum: S^T and dP^T from tensor memory into the softmax warpgroup's registers (ldS,
    ldDP), P^T and dS^T stored in 16 bits over their upper columns (stP), read there by dV and dK,
    and dS^T into shared memory, where dQ reads it; dV and dK accumulate in tensor memory and are
    stored after the accumulators barrier; dQ_i leaves tensor memory through storeDQ's fp32 slot for
    the TMA reduce-add. Against the fp64 attention backward."""
    instance, schedule, _ = b200_backward()
    trips = short_trips(schedule.stages)
    result = emit_kernel(instance, schedule, {}, "host", str(tmp_path / "out"), check=True, seed=2, trips=trips)
    assert result.ok, result.text()
    assert [run.trips for run in result.runs] == trips
    assert all(run.max_error < 5e-3 for run in result.runs)   # P and dS rounded to bf16, as on the device
    assert [(m["name"], m["column"]) for m in result.manifest["tmem"]["map"]] == [
        ("s", 0), ("dp", 64), ("dv", 128), ("dk", 256), ("dq", 384)]
    source = (tmp_path / "out" / "fa_bwd_b200.cpp").read_text()
    assert "tmem_pack_16x2<true>" in source and "tmem_unpack_16<true>" in source and "stage_boxed<true>" in source


def test_the_b200_backward_twin_catches_a_missing_shared_memory_wait(tmp_path):
    """dQ reading dS^T from stP's shared-memory tile before the softmax warpgroup wrote it is a race on
    the twin's shared memory (or a wrong result). The stP wait alone is implied: dq's order token comes
    from dP of the next block, which the softmax warpgroup issues after its stP."""
    instance, _, program = b200_backward()
    program = without_wait(without_wait(program, "dq", "stP"), "dq", "tc:dp>dq")
    runs = twin_runs(instance, program, tmp_path, [4], delay_seed=1)
    assert failed(runs), runs


@needs_nvrtc
def test_fa_backward_b200_optimum_compiles_clean_for_sm100a(tmp_path):
    """The B200 optimum on sm100a: S^T, dP^T by tcgen05.mma SS, dV and dK TS (P^T, dS^T in tensor
    memory), dQ SS .ws at M = 64 (dS^T MN-major from shared memory, K MN-major), tcgen05.ld/st in the
    softmax warpgroup, ex2 per element, dQ_i read from tensor memory by a warpgroup and added by a TMA
    reduce; 0 spills, no stack, no C75xx diagnostic, the program's setmaxnreg."""
    instance, schedule, _ = b200_backward()
    result, report = compiled_clean(instance, schedule, {}, "sm100a", str(tmp_path / "out"))
    assert all(report["sass_classes"].get(name) for name in ("UTCHMMA", "UTCHMMA.WS", "LDTM", "STTM", "MUFU",
                                                               "UTCBAR", "UTMALDG", "UTMAREDG"))
    assert sorted(report["setmaxnreg"]) == sorted(g["setmaxnreg"] for g in result.manifest["warpgroups"])
    assert report["registers"] <= max(report["setmaxnreg"])
    source = (tmp_path / "out" / "fa_bwd_b200.cu").read_text()
    assert "umma_f16_ws(" in source and "umma_idesc_f16(64, 128, true, true, true)" in source
    assert "tma_reduce_add_4d(&tmap_dQ" in source
    # ldS waits for S(i) and ldDP(i - 1) only: S(i)'s commit covers dP, dV and dK of block i - 1, which the
    # role issued before it (waiting for dP(i - 1) once dP(i) is issued could not name its phase)
    kernel = build_kernel(instance, lower(instance.loop, schedule), "sm100a", kernel_name(instance))
    ld_s = next(sc for rc in kernel.roles for sc in rc.steps if sc.step.name == "ldS")
    assert [(w.name, w.distance) for w in ld_s.local_waits] == [("s", 0), ("ldDP", 1)]


def test_fa_backward_b200_bad_params_are_one_line_errors(tmp_path):
    from typer.testing import CliRunner
    from twill.cli import app
    from twill.emit.families import FlashBackward, Unsupported

    schedule = str(ROOT / "kernels/fa-bwd-b200.schedule.yaml")
    result = CliRunner().invoke(app, ["emit", str(FA_BWD), schedule, "-m", "b200", "-o", str(tmp_path / "out"),
                                      "--target", "sm90a"])
    assert result.exit_code == 2 and result.stderr.startswith(
        "error: --target: kernel family 'fa-bwd' has no op bodies for sm90a yet"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    with pytest.raises(Unsupported, match="tiles = 2: on Blackwell dQ reads dS") as error:
        FlashBackward({"dtype": "bf16", "head_dim": 128, "block_m": 64, "block_n": 128},
                      {"s": 2, "ldS": 2, "dq": 1}).check()
    assert error.value.param == "tiles"
    with pytest.raises(Unsupported, match="block_n = 64 in 1 parts gives 64-row tiles; the bodies keep KV row r"):
        FlashBackward({"dtype": "bf16", "head_dim": 128, "block_m": 64, "block_n": 64}, {"s": 1, "ldS": 1, "dq": 1}).check()
    params = {"dtype": "bf16", "head_dim": 128, "block_m": 256, "block_n": 128}
    with pytest.raises(Unsupported, match="block_m = 256: dQ_i's rows are tensor-memory lanes") as error:
        FlashBackward(params, {"s": 1, "ldS": 1, "dq": 1}).check()
    assert error.value.param == "block_m"
