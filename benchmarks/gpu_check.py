"""Check emitted kernels on a GPU: correctness against an fp64 reference, speed next to cuBLAS.

    python benchmarks/gpu_check.py out/gemm_h100 [out/gemm_b200 ...] --out results.json --markdown results.md
    python benchmarks/gpu_check.py out/gemm_h100 --dry-run     # no GPU needed: validate and print the plan

Each DIR is what `twill emit` writes: manifest.json, the launcher <kernel>.py, the source and (after --compile)
the cubin. Needs only torch, numpy and cuda-bindings (never twill, ortools or z3); --dry-run needs no torch.
Without a GPU it prints "no GPU: skipping" and exits 0. Exit code 1: a shape is incorrect, a kernel fails to load
or launch, or (--dry-run) a directory is inconsistent.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

REQUIRED = ("format", "kernel", "spec", "target", "source", "cubin", "params", "block", "grid", "trip_count",
            "dynamic_smem", "arguments")
TARGETS = ("sm90a", "sm100a", "host")
CAPABILITY = {"sm90a": (9, 0), "sm100a": (10, 0)}  # an arch-specific ("a") cubin runs on exactly this capability
ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
MAX_DYNAMIC_SMEM = 232448  # 227 KiB: the opt-in per-block limit of sm_90 and sm_100
MAX_BOX = 256  # a TMA box has at most 256 elements per dimension (cuTensorMapEncodeTiled)
TIME_BUDGET_S = 240.0  # the run stays under 5 minutes: shapes still waiting past this budget are skipped
HANG_TIMEOUT_S = 30.0  # a launch not finished by then is a deadlock (the GPU cannot be recovered)
WARMUP, REPEATS = 3, 20
SLEEP_CYCLES = 20_000_000  # ~10 ms of GPU busy-wait so the timed launches queue up behind it (no host gaps)
# Tolerance: max|C - ref| <= 2^-8 * max|ref|, ref the fp64 product of the same bf16 inputs. Each bf16 x bf16
# product is exact in fp32 (8 + 8 significand bits <= 24), so the kernel and the reference differ only in how the
# fp32 accumulator rounds its partial sums: about sqrt(K) * 2^-24 relative (2^-17 at K = 8192; the torch fp32
# error reported next to it measures that scale), leaving a wide margin should the tensor cores accumulate with
# fewer bits than IEEE fp32. A real bug is far above the threshold: one k-block lost or repeated moves the worst
# entry by about sqrt(block_k / K) * max|ref| >= 2^-3.5 max|ref| for block_k = 64, K <= 8192; a wrong swizzle,
# tile or barrier phase moves entries by O(max|ref|). K = 0 must give exact zeros.
REL_TOLERANCE = 2.0 ** -8


def shapes(block_k: int) -> list[tuple[int, int, int]]:
    """(M, N, K) to check, smallest first: K / block_k in {0, 1, 2, many}, sizes from {128, 4096, 8192}, and one
    shape with ragged M, N (TMA zero-fills the missing rows, the epilogue guards the stores)."""
    chosen = [(128, 128, 0), (128, 128, block_k), (128, 128, 2 * block_k), (200, 328, 2 * block_k),
              (128, 4096, 4096), (4096, 8192, 128), (4096, 4096, 4096), (8192, 8192, 8192)]
    return sorted(chosen, key=lambda s: s[0] * s[1] * max(s[2], 1))


def manifest_problems(directory: Path) -> tuple[dict | None, list[str]]:
    """The manifest and what is wrong with it or with the files it names (an empty list when consistent)."""
    path = directory / "manifest.json"
    if not path.is_file():
        return None, [f"{path} not found"]
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return None, [f"{path} is not JSON: {exc}"]
    missing = [key for key in REQUIRED if key not in manifest]
    if missing:
        return None, [f"{path} lacks {', '.join(missing)}"]
    problems = []
    if manifest["format"] != 1:
        problems.append(f"format {manifest['format']!r}, expected 1")
    if manifest["target"] not in TARGETS:
        problems.append(f"target {manifest['target']!r} is none of {', '.join(TARGETS)}")
    if not str(manifest["kernel"]).isidentifier():
        problems.append(f"kernel {manifest['kernel']!r} is not an identifier")
    for name in (manifest["source"], f"{manifest['kernel']}.py"):
        if not (directory / name).is_file():
            problems.append(f"{directory / name} not found")
    return manifest, problems + _launch_problems(manifest) + _argument_problems(manifest)


def _launch_problems(manifest: dict) -> list[str]:
    """Block, grid, shared memory and tile parameters."""
    problems = []
    block, grid, params = manifest["block"], manifest["grid"], manifest["params"]
    if not (isinstance(block, list) and len(block) == 3 and all(isinstance(b, int) and b > 0 for b in block)):
        problems.append(f"block {block!r} is not three positive ints")
    elif math.prod(block) > 1024:
        problems.append(f"block {block} has {math.prod(block)} threads, more than 1024")
    if not (isinstance(grid, list) and len(grid) == 3 and all(isinstance(g, str) for g in grid)):
        problems.append(f"grid {grid!r} is not three expressions")
    smem = manifest["dynamic_smem"]
    if not (isinstance(smem, int) and 0 <= smem <= MAX_DYNAMIC_SMEM):
        problems.append(f"dynamic_smem {smem!r} is not an int in [0, {MAX_DYNAMIC_SMEM}]")
    for key in ("block_m", "block_n", "block_k"):
        if not (isinstance(params.get(key), int) and params[key] > 0):
            problems.append(f"params.{key} {params.get(key)!r} is not a positive int")
    return problems


def _argument_problems(manifest: dict) -> list[str]:
    """The GEMM ABI: tensor maps A, B with a box whose inner side is block_k and fits the swizzle, then C, M, N, K."""
    arguments = manifest["arguments"]
    names = [a.get("name") for a in arguments]
    if names != ["A", "B", "C", "M", "N", "K"]:
        return [f"arguments {names} are not the GEMM ABI A, B, C, M, N, K"]
    problems = []
    for arg in arguments[:2]:
        box, swizzle, dtype = arg.get("box"), arg.get("swizzle"), arg.get("dtype")
        if arg.get("kind") != "tensor_map" or dtype not in ("bf16", "fp16"):
            problems.append(f"{arg['name']} is not a bf16/fp16 tensor_map")
        elif not (isinstance(box, list) and len(box) == 2 and all(isinstance(b, int) and 0 < b <= MAX_BOX
                                                                 for b in box)):
            problems.append(f"{arg['name']}.box {box!r} is not two ints in [1, {MAX_BOX}]")
        elif box[0] != manifest["params"].get("block_k"):
            problems.append(f"{arg['name']}.box[0] = {box[0]} is not block_k = {manifest['params'].get('block_k')}")
        elif swizzle not in (0, 32, 64, 128):
            problems.append(f"{arg['name']}.swizzle {swizzle!r} is none of 0, 32, 64, 128")
        elif swizzle and box[0] * ELEMENT_BYTES[dtype] > swizzle:
            problems.append(f"{arg['name']}: a box row of {box[0] * ELEMENT_BYTES[dtype]} bytes exceeds the "
                            f"{swizzle}B swizzle span")
    if [a.get("kind") for a in arguments[2:]] != ["output", "int", "int", "int"]:
        problems.append("C, M, N, K are not output, int, int, int")
    return problems


def import_launcher(directory: Path, kernel: str):
    """Import <kernel>.py from the directory by path (it reads manifest.json beside itself; no GPU needed)."""
    spec = importlib.util.spec_from_file_location(f"gpu_check_{kernel}", directory / f"{kernel}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plan_problems(launcher, manifest: dict) -> list[str]:
    """Where the launcher's grid or trip count disagrees with the tile sizes: the first planned shape that shows it."""
    params = manifest["params"]
    for m, n, k in shapes(params["block_k"]):
        sizes = {"M": m, "N": n, "K": k}
        expected = (math.ceil(m / params["block_m"]), math.ceil(n / params["block_n"]), 1)
        try:
            grid, trips = launcher.grid(**sizes), launcher.evaluate(manifest["trip_count"], sizes)
        except ValueError as exc:
            return [f"M={m} N={n} K={k}: {exc}"]
        problems = [f"grid {grid}, expected {expected}"] if grid != expected else []
        if trips != k // params["block_k"]:
            problems.append(f"trip count {trips}, expected {k // params['block_k']}")
        if problems:
            return [f"M={m} N={n} K={k}: " + ", ".join(problems)]
    return []


def dry_run(directories: list[Path]) -> int:
    """Validate every directory and print the plan; 0 when all are consistent, else 1."""
    failed, planned = False, []
    for directory in directories:
        manifest, problems = manifest_problems(directory)
        if manifest is not None and not problems:
            try:
                launcher = import_launcher(directory, manifest["kernel"])
            except Exception as exc:  # whatever the launcher raises at import is the finding
                problems = [f"the launcher does not import: {type(exc).__name__}: {exc}"]
            else:
                problems = plan_problems(launcher, manifest)
        if problems:
            failed = True
            print(f"FAIL {directory}: " + "; ".join(problems))
            continue
        params = manifest["params"]
        print(f"ok   {directory}: {manifest['kernel']} ({manifest['target']}, tile {params['block_m']}x"
              f"{params['block_n']}x{params['block_k']}, {math.prod(manifest['block'])} threads, "
              f"{manifest['dynamic_smem']} B dynamic shared memory)")
        if manifest["target"] == "host":
            print("     host target: the GPU run skips it")
        elif not (directory / manifest["cubin"]).is_file():
            print(f"     warning: {manifest['cubin']} is not compiled yet (twill emit ... --compile); "
                  "the GPU run needs it")
        else:
            planned.append((manifest["kernel"], params["block_k"]))
    runs = [(kernel, shape) for kernel, block_k in planned for shape in shapes(block_k)]
    print(f"plan: {len(planned)} kernel(s) x {len(runs) // max(len(planned), 1)} shapes = {len(runs)} runs")
    for kernel, (m, n, k) in runs:
        print(f"  {kernel}  M={m} N={n} K={k}")
    return 1 if failed else 0


class Hang(Exception):
    """A launch did not finish within HANG_TIMEOUT_S."""


def wait(torch, what: str) -> None:
    """Wait for the current stream, polling, so a deadlocked kernel becomes a Hang instead of a stuck script."""
    event = torch.cuda.Event()
    event.record()
    deadline = time.monotonic() + HANG_TIMEOUT_S
    while not event.query():
        if time.monotonic() > deadline:
            raise Hang(f"{what} did not finish in {HANG_TIMEOUT_S:.0f} s (deadlock?)")
        time.sleep(0.001)


def time_ms(torch, launch, what: str) -> float:
    """Median GPU time of one launch over REPEATS, after WARMUP, with CUDA events; a busy-wait queued first keeps
    the host's launch overhead out of the measurement."""
    for _ in range(WARMUP):
        launch()
    wait(torch, what)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(REPEATS)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(REPEATS)]
    if hasattr(torch.cuda, "_sleep"):
        torch.cuda._sleep(SLEEP_CYCLES)
    for start, end in zip(starts, ends):
        start.record()
        launch()
        end.record()
    wait(torch, what)
    return statistics.median(start.elapsed_time(end) for start, end in zip(starts, ends))


def check_shape(torch, kernel, name: str, shape: tuple[int, int, int], seed: int) -> dict:
    """Correctness and timing of one shape; the inputs are N(0, 1) rounded to bf16."""
    m, n, k = shape
    generator = torch.Generator(device="cuda").manual_seed(seed)
    a = torch.randn((m, k), generator=generator, device="cuda").to(torch.bfloat16)
    b = torch.randn((n, k), generator=generator, device="cuda").to(torch.bfloat16)
    c = kernel(A=a, B=b)
    wait(torch, f"{name} M={m} N={n} K={k}")
    reference = a.double() @ b.double().T
    scale = reference.abs().max().item()
    error = (c.double() - reference).abs().max().item()
    fp32_error = (a.float() @ b.float().T - reference).abs().max().item()
    result = {"M": m, "N": n, "K": k, "max_abs_error": error, "max_abs_ref": scale,
              "rel_error": error / scale if scale else error,
              "torch_fp32_rel_error": fp32_error / scale if scale else fp32_error}
    result["correct"] = error <= REL_TOLERANCE * scale  # K = 0: scale 0, so exact zeros
    if k:
        flop = 2.0 * m * n * k
        result["ms"] = time_ms(torch, lambda: kernel(A=a, B=b, C=c), f"{name} M={m} N={n} K={k}")
        result["cublas_ms"] = time_ms(torch, lambda: torch.matmul(a, b.T), f"cuBLAS M={m} N={n} K={k}")
        result["tflops"] = flop / result["ms"] / 1e9
        result["cublas_tflops"] = flop / result["cublas_ms"] / 1e9
        result["vs_cublas"] = result["cublas_ms"] / result["ms"]
    return result


def check_kernel(torch, directory: Path, started: float) -> dict:
    """Load one emitted kernel and run every shape that fits the time budget; a hang ends the kernel's report
    with "hang": true."""
    manifest, problems = manifest_problems(directory)
    report = {"directory": str(directory), "kernel": manifest["kernel"] if manifest else directory.name,
              "results": [], "skipped": []}
    if problems:
        report["error"] = "; ".join(problems)
        return report
    if manifest["target"] == "host":
        report["note"] = "host target: nothing to run on the GPU"
        return report
    capability = torch.cuda.get_device_capability()
    if CAPABILITY[manifest["target"]] != capability:
        report["note"] = (f"{manifest['target']} needs compute capability {CAPABILITY[manifest['target']]}, "
                          f"this GPU has {capability}: not run")
        return report
    try:
        kernel = import_launcher(directory, manifest["kernel"]).load(0)
    except Exception as exc:  # a missing cubin, a driver error: reported, and the run fails
        report["error"] = f"{type(exc).__name__}: {exc}"
        return report
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 calibration product must be true fp32
    for seed, shape in enumerate(shapes(manifest["params"]["block_k"])):
        if time.monotonic() - started > TIME_BUDGET_S:
            report["skipped"].append(list(shape))
            continue
        try:
            report["results"].append(check_shape(torch, kernel, manifest["kernel"], shape, seed))
        except Hang as exc:
            report.update(error=str(exc), hang=True)
            return report
        except Exception as exc:  # a launch error: recorded against the shape
            m, n, k = shape
            report["results"].append({"M": m, "N": n, "K": k, "correct": False,
                                      "error": f"{type(exc).__name__}: {exc}"})
    return report


def passed(reports: list[dict]) -> bool:
    """Every kernel loaded and every shape run was correct."""
    return all("error" not in r and all(x["correct"] for x in r["results"]) for r in reports)


def markdown(summary: dict) -> str:
    """The results as a markdown table, with what was skipped and why."""
    lines = [f"# gpu_check on {summary['device']}", "",
             f"torch {summary['torch']}. Correct: max|C - ref| <= 2^{math.log2(REL_TOLERANCE):.0f} max|ref|, ref the "
             "fp64 product of the same bf16 inputs. cuBLAS: torch.matmul on the bf16 inputs (bf16 output). Times: "
             f"median of {REPEATS} after {WARMUP} warm-up launches, CUDA events.", "",
             "| kernel | M | N | K | correct | rel. error | torch fp32 rel. error | ms | TFLOP/s | cuBLAS ms "
             "| cuBLAS TFLOP/s | cuBLAS ms / ms |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for report in summary["kernels"]:
        for r in report["results"]:
            if "error" in r:
                notes.append(f"- {report['kernel']} M={r['M']} N={r['N']} K={r['K']}: {r['error']}")
            cells = [report["kernel"], str(r["M"]), str(r["N"]), str(r["K"])] + _cells(r)
            lines.append("| " + " | ".join(cells) + " |")
        if report["skipped"]:
            notes.append(f"- {report['kernel']}: skipped (time budget of {TIME_BUDGET_S:.0f} s spent): "
                         + ", ".join("x".join(map(str, s)) for s in report["skipped"]))
        for key in ("error", "note"):
            if key in report:
                notes.append(f"- {report['directory']}: {report[key]}")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _cells(r: dict) -> list[str]:
    """The correctness and timing cells of one result row (blank where not measured)."""
    if "error" in r:
        return ["error"] + [""] * 7
    cells = ["yes" if r["correct"] else "NO", f"{r['rel_error']:.2e}", f"{r['torch_fp32_rel_error']:.2e}"]
    if "ms" not in r:  # K = 0: nothing to time
        return cells + [""] * 5
    return cells + [f"{r['ms']:.4f}", f"{r['tflops']:.1f}", f"{r['cublas_ms']:.4f}", f"{r['cublas_tflops']:.1f}",
                    f"{r['vs_cublas']:.2f}"]


def write(summary: dict, json_path: str | None, markdown_path: str | None) -> None:
    """Print the table and write the JSON and markdown files asked for."""
    table = markdown(summary)
    print(table)
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2) + "\n")
    if markdown_path:
        Path(markdown_path).write_text(table)


def gpu_torch():
    """torch when a CUDA GPU is usable, else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path, metavar="DIR", help="a twill emit output directory")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--markdown", help="write the results as a markdown table here")
    parser.add_argument("--dry-run", action="store_true", help="validate the directories and print the plan (no GPU)")
    args = parser.parse_args(argv)
    if args.dry_run:
        return dry_run(args.directories)
    torch = gpu_torch()
    if torch is None:
        print("no GPU: skipping (torch with CUDA is not available)")
        return 0
    started = time.monotonic()
    summary = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rel_tolerance": REL_TOLERANCE,
               "time_budget_s": TIME_BUDGET_S, "kernels": []}
    for directory in args.directories:
        report = check_kernel(torch, directory, started)
        summary["kernels"].append(report)
        if report.get("hang"):
            summary["passed"] = False
            write(summary, args.out, args.markdown)
            sys.stdout.flush()
            os._exit(1)  # the hung kernel still occupies the GPU: a normal exit would wait for it
    summary["passed"] = passed(summary["kernels"])
    summary["seconds"] = round(time.monotonic() - started, 1)
    write(summary, args.out, args.markdown)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
