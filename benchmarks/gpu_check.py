"""Check emitted kernels on a GPU: correctness against a reference, speed next to cuBLAS or torch's SDPA backends.

    python benchmarks/gpu_check.py out/gemm_h100 out/fa_fwd [...] --out results.json --markdown results.md
    python benchmarks/gpu_check.py out/gemm_h100 out/fa_fwd --dry-run   # no GPU needed: validate, print the plan

Each DIR is what `twill emit` writes: manifest.json, the launcher <kernel>.py, the source and (after --compile)
the cubin. The manifest's "spec" picks the check: "gemm" (against an fp64 product, next to cuBLAS), "fa-fwd" and
"fa-bwd" (against torch's scaled_dot_product_attention in fp32, next to its flash, cuDNN and memory-efficient
backends). Needs only torch, numpy and cuda-bindings (never twill, ortools or z3); --dry-run needs no torch.
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
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

REQUIRED = ("format", "kernel", "spec", "target", "source", "cubin", "params", "block", "grid", "trip_count",
            "dynamic_smem", "arguments")
TARGETS = ("sm90a", "sm100a", "host")
CAPABILITY = {"sm90a": (9, 0), "sm100a": (10, 0)}  # an arch-specific ("a") cubin runs on exactly this capability
ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
NUMPY_DTYPES = {"bf16": np.uint16, "fp16": np.float16, "fp32": np.float32}  # as the launcher takes numpy arrays
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
# FlashAttention tolerances: max|X - ref| <= t * max|ref| per output, ref from fp32 attention of the same 16-bit
# inputs (scaled_dot_product_attention; its fp32 error, about 2^-20 relative, is negligible here).
# - O: 2^-7. The kernel rounds P to bf16 (unit roundoff 2^-9) before PV, as FA3 does; with N(0, 1) inputs that
#   puts max|O - ref| at 2^-8.8 .. 2^-10.5 of max|O| (an fp64 emulation of exactly that rounding, S = 128 ..
#   16384, causal or not), so 2^-7 leaves a margin of 3.5x or more. A lost or repeated KV block moves O by 2^-2.5
#   of max|O| or more (non-causal, S <= 16384), a wrong swizzle, tile or barrier phase by O(max|O|).
# - LSE (base 2): 2^-14. Nothing is rounded to 16 bits on its way: fp32 scores of exact bf16 products, an fp32
#   sum of exp2 (ex2.approx: 2^-22 relative), so its error is about 1e-5 absolute against max|LSE| of 8 (S = 128)
#   to 15 (S = 16384): 2^-14 max|LSE| (5e-4 .. 9e-4) leaves a margin of 50x. The LSE is also what catches a lost
#   block where O cannot: O of late causal rows is small against max|O| (row 0's O is one V row), but losing a
#   block of 128 of the 16384 keys a row sees moves its LSE by 0.0076 or more (the emulation), 8x the tolerance.
FA_FORWARD_TOLERANCE = {"O": 2.0 ** -7, "LSE": 2.0 ** -14}
# - dQ, dK, dV: 2^-6. The kernel rounds P and dS = P (dP - Delta) to bf16 before dV = P^T dO, dK = dS^T Q and
#   dQ = dS K (FA3's backward); the same fp64 emulation puts those errors at 2^-8.4 .. 2^-9.5 of max|ref|, so 2^-6
#   leaves 5x. A lost or repeated query block moves dK and dV by 2^-0.6 of max|ref| or more, a dQ not zeroed or
#   added twice by about max|dQ|.
FA_BACKWARD_TOLERANCE = {"dQ": 2.0 ** -6, "dK": 2.0 ** -6, "dV": 2.0 ** -6}
SEQLENS = (128, 1024, 8192, 16384)  # FA3's paper sweeps 512 .. 16k at 16k tokens a batch (arXiv:2407.08608, 4.1)
HEADS, TOKENS, MIN_BATCH, MAX_BATCH = 16, 16384, 2, 16  # batch = TOKENS / seqlen, kept in [MIN_BATCH, MAX_BATCH]
SDPA_BACKENDS = ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION")  # torch.nn.attention.SDPBackend
LSE_ROWS = 1024  # query rows per chunk of the reference LSE: a (H, rows, SK) fp32 block of scores, 1 GiB at most


def label(shape: dict) -> str:
    """A planned shape as the plan and the notes print it: "M=128 N=128 K=0", "B=2 H=16 S=16384"."""
    return " ".join(f"{name}={value}" for name, value in shape.items())


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
    if manifest["spec"] not in CHECKS:
        return None, [f"spec {manifest['spec']!r} is none of {', '.join(CHECKS)}"]
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
    check = CHECKS[manifest["spec"]]
    return manifest, problems + _launch_problems(manifest, check.tiles) + check.argument_problems(manifest)


def _launch_problems(manifest: dict, tiles: tuple[str, ...]) -> list[str]:
    """Block, grid, shared memory and the spec's tile parameters."""
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
    for key in tiles:
        if not (isinstance(params.get(key), int) and params[key] > 0):
            problems.append(f"params.{key} {params.get(key)!r} is not a positive int")
    return problems


class Box(NamedTuple):
    """What one side of a tensor map's box must be: `value`, named `what` in a complaint (None: unchecked)."""

    value: int
    what: str


def _tensor_map_problem(arg: dict, box_sides: list[Box | None], swizzles: tuple[int, ...]) -> str | None:
    """The first thing wrong with a tensor_map argument: its kind and dtype, the box's rank (the shape's) and
    sides, the swizzle, and a box row that overflows the swizzle span."""
    name, box, swizzle, dtype = arg["name"], arg.get("box"), arg.get("swizzle"), arg.get("dtype")
    if arg.get("kind") != "tensor_map" or dtype not in ("bf16", "fp16"):
        return f"{name} is not a bf16/fp16 tensor_map"
    if isinstance(box, list) and len(box) != len(arg.get("shape") or ()):
        return f"{name} has a box of rank {len(box)}, shape of rank {len(arg.get('shape') or ())}"
    if not (isinstance(box, list) and len(box) == len(box_sides)
            and all(isinstance(b, int) and 0 < b <= MAX_BOX for b in box)):
        return f"{name}.box {box!r} is not {len(box_sides)} ints in [1, {MAX_BOX}]"
    for i, (side, want) in enumerate(zip(box, box_sides)):
        if want is not None and side != want.value:
            return f"{name}.box[{i}] = {side} is not {want.what} = {want.value}"
    if swizzle not in swizzles:
        return f"{name}.swizzle {swizzle!r} is " + (f"none of {', '.join(map(str, swizzles))}" if len(swizzles) > 1
                                                     else f"not {swizzles[0]}")
    if swizzle and box[0] * ELEMENT_BYTES[dtype] > swizzle:
        return f"{name}: a box row of {box[0] * ELEMENT_BYTES[dtype]} bytes exceeds the {swizzle}B swizzle span"
    return None


def import_launcher(directory: Path, kernel: str):
    """Import <kernel>.py from the directory by path (it reads manifest.json beside itself; no GPU needed)."""
    spec = importlib.util.spec_from_file_location(f"gpu_check_{kernel}", directory / f"{kernel}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def relative_error(got, reference) -> float:
    """max|got - reference| / max|reference| of two torch tensors (the absolute error where the reference is 0;
    NaN anywhere gives NaN, which no tolerance accepts)."""
    scale = reference.abs().max().item()
    error = (got.float() - reference.float()).abs().max().item()
    return error / scale if scale else error


class Gemm:
    """GEMM: C[M, N] = A[M, K] @ B[N, K]^T, against the fp64 product of the same bf16 inputs, next to cuBLAS."""

    spec = "gemm"
    tiles = ("block_m", "block_n", "block_k")
    shape_keys = ("M", "N", "K")
    columns = (*shape_keys, "correct", "rel. error", "torch fp32 rel. error", "ms", "TFLOP/s", "cuBLAS ms",
               "cuBLAS TFLOP/s", "cuBLAS ms / ms")

    @staticmethod
    def describe(manifest: dict) -> str:
        params = manifest["params"]
        return f"tile {params['block_m']}x{params['block_n']}x{params['block_k']}"

    @staticmethod
    def argument_problems(manifest: dict) -> list[str]:
        """Tensor maps A, B with a box whose inner side is block_k and fits the swizzle, then C, M, N, K."""
        arguments = manifest["arguments"]
        names = [a.get("name") for a in arguments]
        if names != ["A", "B", "C", "M", "N", "K"]:
            return [f"arguments {names} are not the GEMM ABI A, B, C, M, N, K"]
        block_k = Box(manifest["params"].get("block_k"), "block_k")
        problems = [problem for arg in arguments[:2]
                    if (problem := _tensor_map_problem(arg, [block_k, None], (0, 32, 64, 128)))]
        if [a.get("kind") for a in arguments[2:]] != ["output", "int", "int", "int"]:
            problems.append("C, M, N, K are not output, int, int, int")
        return problems

    @staticmethod
    def plan(launcher, manifest: dict) -> tuple[list[dict], list[str]]:
        """(M, N, K) to check, smallest first: K / block_k in {0, 1, 2, many}, sizes from {128, 4096, 8192}, and
        one shape with ragged M, N (TMA zero-fills the missing rows, the epilogue guards the stores); nothing left
        out."""
        block_k = manifest["params"]["block_k"]
        chosen = [(128, 128, 0), (128, 128, block_k), (128, 128, 2 * block_k), (200, 328, 2 * block_k),
                  (128, 4096, 4096), (4096, 8192, 128), (4096, 4096, 4096), (8192, 8192, 8192)]
        return [{"M": m, "N": n, "K": k} for m, n, k in sorted(chosen, key=lambda s: s[0] * s[1] * max(s[2], 1))], []

    @staticmethod
    def plan_problems(launcher, manifest: dict, shapes: list[dict]) -> list[str]:
        """Where the launcher's grid or trip count disagrees with the tile sizes: the first shape that shows it."""
        params = manifest["params"]
        for sizes in shapes:
            m, n, k = sizes["M"], sizes["N"], sizes["K"]
            expected = (math.ceil(m / params["block_m"]), math.ceil(n / params["block_n"]), 1)
            try:
                grid, trips = launcher.grid(**sizes), launcher.evaluate(manifest["trip_count"], sizes)
            except ValueError as exc:
                return [f"{label(sizes)}: {exc}"]
            problems = [f"grid {grid}, expected {expected}"] if grid != expected else []
            if trips != k // params["block_k"]:
                problems.append(f"trip count {trips}, expected {k // params['block_k']}")
            if problems:
                return [f"{label(sizes)}: " + ", ".join(problems)]
        return []

    @staticmethod
    def run(torch, kernel, manifest: dict, sizes: dict, seed: int) -> dict:
        """Correctness and timing of one shape; the inputs are N(0, 1) rounded to bf16."""
        name, (m, n, k) = manifest["kernel"], (sizes["M"], sizes["N"], sizes["K"])
        generator = torch.Generator(device="cuda").manual_seed(seed)
        a = torch.randn((m, k), generator=generator, device="cuda").to(torch.bfloat16)
        b = torch.randn((n, k), generator=generator, device="cuda").to(torch.bfloat16)
        c = kernel(A=a, B=b)
        wait(torch, f"{name} {label(sizes)}")
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
            result["ms"] = time_ms(torch, lambda: kernel(A=a, B=b, C=c), f"{name} {label(sizes)}")
            result["cublas_ms"] = time_ms(torch, lambda: torch.matmul(a, b.T), f"cuBLAS {label(sizes)}")
            result["tflops"] = flop / result["ms"] / 1e9
            result["cublas_tflops"] = flop / result["cublas_ms"] / 1e9
            result["vs_cublas"] = result["cublas_ms"] / result["ms"]
        return result

    @staticmethod
    def explanation() -> str:
        return (f"Correct: max|C - ref| <= 2^{math.log2(REL_TOLERANCE):.0f} max|ref|, ref the fp64 product of the "
                "same bf16 inputs. cuBLAS: torch.matmul on the bf16 inputs (bf16 output).")

    @staticmethod
    def notes(report: dict) -> list[str]:
        return []

    @staticmethod
    def cells(r: dict) -> list[str]:
        """One result row's cells after the kernel's name (blank where not measured)."""
        shape = [str(r["M"]), str(r["N"]), str(r["K"])]
        if "error" in r:
            return shape + ["error"] + [""] * 7
        cells = shape + ["yes" if r["correct"] else "NO", f"{r['rel_error']:.2e}", f"{r['torch_fp32_rel_error']:.2e}"]
        if "ms" not in r:  # K = 0: nothing to time
            return cells + [""] * 5
        return cells + [f"{r['ms']:.4f}", f"{r['tflops']:.1f}", f"{r['cublas_ms']:.4f}", f"{r['cublas_tflops']:.1f}",
                        f"{r['vs_cublas']:.2f}"]


class Slot(NamedTuple):
    """One argument of a FlashAttention ABI: `rows` names the param of a tensor map box's row side."""

    name: str
    kind: str
    shape: tuple[str, ...] = ()
    rows: str | None = None
    accumulated: bool = False


QUERIES, KEYS, ROWS = ("B", "SQ", "H", "D"), ("B", "SK", "H", "D"), ("B", "H", "SQ")
SIZES = (Slot("SQ", "int"), Slot("SK", "int"), Slot("H", "int"), Slot("B", "int"))
TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


class Attention:
    """What the FlashAttention checks share: the ABI's form, the planned (B, H, S), the grid and trip count per
    CTA, the fp32 reference, the SDPA backends and the table. Subclasses give the ABI, the rows a CTA owns, its
    trip count (`trips`) and run one shape (`run`)."""

    spec = ""
    abi: tuple[Slot, ...] = ()
    tolerance: dict[str, float] = {}
    grid_rows = ("SQ", "block_m")  # the rows a CTA owns and their block: the forward's queries
    flop_factor = 1.0
    tiles = ("head_dim", "block_m", "block_n")
    shape_keys = ("B", "H", "S")
    columns = (*shape_keys, "causal", "correct", "errors", "SDPA errors", "ms", "TFLOP/s",
               *(f"{name.split('_')[0]} {unit}" for name in SDPA_BACKENDS for unit in ("ms", "TFLOP/s")),
               "fastest SDPA ms / ms")

    @staticmethod
    def causal(manifest: dict) -> bool:
        return bool(manifest["params"].get("causal", False))

    @classmethod
    def describe(cls, manifest: dict) -> str:
        params = manifest["params"]
        return (f"{cls.spec}, head_dim {params['head_dim']}, tile {params['block_m']}x{params['block_n']}"
                + (", causal" if cls.causal(manifest) else ""))

    @classmethod
    def argument_problems(cls, manifest: dict) -> list[str]:
        """The ABI: names and kinds in order, each tensor's dims, fp32 inputs and outputs (dQ accumulated), and
        16-bit tensor maps of 4-D boxes (64 elements = one 128-byte swizzled row of D, one head, block_m or
        block_n rows, one batch)."""
        arguments, params = manifest["arguments"], manifest["params"]
        names = [a.get("name") for a in arguments]
        if names != [slot.name for slot in cls.abi]:
            return [f"arguments {names} are not the {cls.spec} ABI {', '.join(slot.name for slot in cls.abi)}"]
        problems = []
        if isinstance(params.get("head_dim"), int) and params["head_dim"] % 64:
            problems.append(f"params.head_dim {params['head_dim']} is not a multiple of 64 (128-byte box rows)")
        for arg, slot in zip(arguments, cls.abi):
            if arg.get("kind") != slot.kind:
                problems.append(f"{slot.name} is {arg.get('kind')!r}, expected {slot.kind}")
            elif slot.kind != "int" and list(arg.get("shape") or ()) != list(slot.shape):
                problems.append(f"{slot.name}.shape {arg.get('shape')!r} is not {list(slot.shape)}")
            elif slot.kind == "tensor_map":
                rows = Box(params.get(slot.rows), slot.rows)
                sides = [Box(64, "one 128-byte row"), Box(1, "one head"), rows, Box(1, "one batch")]
                problems += [problem] if (problem := _tensor_map_problem(arg, sides, (128,))) else []
            elif slot.kind != "int" and arg.get("dtype") != "fp32":
                problems.append(f"{slot.name}.dtype {arg.get('dtype')!r} is not fp32")
            elif bool(arg.get("accumulated")) != slot.accumulated:
                problems.append(f"{slot.name} is {'' if arg.get('accumulated') else 'not '}marked accumulated")
        return problems

    @staticmethod
    def sizes(manifest: dict, shape: dict) -> dict[str, int]:
        """The launcher's sizes for a planned (B, H, S): as many queries as keys, D the kernel's head_dim."""
        return {"SQ": shape["S"], "SK": shape["S"], "H": shape["H"], "B": shape["B"],
                "D": manifest["params"]["head_dim"]}

    @classmethod
    def plan(cls, launcher, manifest: dict) -> tuple[list[dict], list[str]]:
        """(B, H, S) for S in SEQLENS, smallest first, that the launcher accepts (its size_rules: whole blocks, the
        head_dim); each one refused is named with the launcher's reason. Checked on zero-stride numpy stand-ins,
        so no memory and no driver."""
        shapes, refused = [], []
        for s in SEQLENS:
            shape = {"B": min(MAX_BATCH, max(MIN_BATCH, TOKENS // s)), "H": HEADS, "S": s}
            sizes = cls.sizes(manifest, shape)
            stand_ins = {arg["name"]: np.broadcast_to(np.zeros((), NUMPY_DTYPES[arg["dtype"]]),
                                                      [sizes[dim] for dim in arg["shape"]])
                         for arg in manifest["arguments"] if arg["kind"] in ("tensor_map", "input")}
            try:
                launcher.validate(stand_ins)
            except (TypeError, ValueError) as exc:
                refused.append(f"{label(shape)}: {exc}")
            else:
                shapes.append(shape)
        return sorted(shapes, key=lambda s: s["B"] * s["S"] ** 2), refused

    @classmethod
    def plan_problems(cls, launcher, manifest: dict, shapes: list[dict]) -> list[str]:
        """Where the launcher's grid or the trip count of some CTA x disagrees with the ABI: the first shape that
        shows it, each also with twice as many keys as queries (so an expression with SQ for SK shows)."""
        for shape in shapes:
            square = cls.sizes(manifest, shape)
            for name, sizes in ((label(shape), square),
                                (f"{label(shape)} SK={2 * shape['S']}", {**square, "SK": 2 * shape["S"]})):
                problem = cls._launch_problem(launcher, manifest, sizes)
                if problem:
                    return [f"{name}: {problem}"]
        return []

    @classmethod
    def _launch_problem(cls, launcher, manifest: dict, sizes: dict) -> str | None:
        """The launcher's grid against (ceil(rows / block), H, B), then each CTA x's trip count."""
        params, causal = manifest["params"], cls.causal(manifest)
        expected = cls.grid(params, sizes)
        try:
            grid = launcher.grid(**sizes)
            if grid != expected:
                return f"grid {grid}, expected {expected}"
            trips = [launcher.evaluate(manifest["trip_count"], {**sizes, "x": x}) for x in range(grid[0])]
        except ValueError as exc:
            return str(exc)
        wrong = [(x, got, cls.trips(params, sizes, x, causal)) for x, got in enumerate(trips)
                 if got != cls.trips(params, sizes, x, causal)]
        return f"trip count {wrong[0][1]} for CTA x = {wrong[0][0]}, expected {wrong[0][2]}" if wrong else None

    @classmethod
    def grid(cls, params: dict, sizes: dict) -> tuple[int, int, int]:
        """(ceil(rows / block), H, B): one CTA per block of the rows it owns, per head and batch."""
        rows, block = cls.grid_rows
        return math.ceil(sizes[rows] / params[block]), sizes["H"], sizes["B"]

    @classmethod
    def flop(cls, manifest: dict, shape: dict) -> float:
        """4 B H S^2 D for the forward (two matmuls of 2 S^2 D per head), flop_factor times that, halved when
        causal (half the scores are masked)."""
        flop = 4.0 * shape["B"] * shape["H"] * shape["S"] ** 2 * manifest["params"]["head_dim"] * cls.flop_factor
        return flop / 2 if cls.causal(manifest) else flop

    @classmethod
    def finish(cls, result: dict, errors: dict, flop: float) -> dict:
        """Fill in correctness against the tolerances, TFLOP/s and the speedup over the fastest SDPA backend."""
        result["errors"] = errors
        result["correct"] = all(errors[name] <= tolerance for name, tolerance in cls.tolerance.items())
        result["tflops"] = flop / result["ms"] / 1e9
        timed = {name: t["ms"] for name, t in result["sdpa"].items() if "ms" in t}
        if timed:
            result["fastest_sdpa"] = min(timed, key=timed.get)
            result["vs_fastest_sdpa"] = timed[result["fastest_sdpa"]] / result["ms"]
        return result

    @classmethod
    def explanation(cls) -> str:
        bounds = ", ".join(f"max|{name} - ref| <= 2^{math.log2(t):.0f} max|ref|" for name, t in cls.tolerance.items())
        return (f"Correct: {bounds}; {cls.reference_text} SDPA: torch's backends on the same 16-bit inputs "
                f"(16-bit outputs){cls.timing_text}; SDPA errors: its default backend's, for scale. TFLOP/s "
                f"count {cls.flop_factor:g} x 4 B H S^2 D, halved when causal. The last column is the fastest "
                "backend's ms over the kernel's.")

    reference_text = ""
    timing_text = ""

    @classmethod
    def cells(cls, r: dict) -> list[str]:
        """One result row's cells after the kernel's name (blank where not measured)."""
        shape = [str(r["B"]), str(r["H"]), str(r["S"]), {True: "yes", False: "no"}.get(r.get("causal"), "")]
        if "error" in r:
            return shape + ["error"] + [""] * (len(cls.columns) - len(shape) - 1)
        cells = shape + ["yes" if r["correct"] else "NO", _errors(r["errors"]), _errors(r["sdpa_errors"]),
                         f"{r['ms']:.4f}", f"{r['tflops']:.1f}"]
        for name in SDPA_BACKENDS:
            timed = r["sdpa"].get(name, {})
            cells += [f"{timed['ms']:.4f}", f"{timed['tflops']:.1f}"] if "ms" in timed else ["n/a", ""]
        return cells + [f"{r['vs_fastest_sdpa']:.2f}" if "vs_fastest_sdpa" in r else ""]

    @staticmethod
    def notes(report: dict) -> list[str]:
        """The SDPA backends that raised, once per backend and message, with the shapes they raised at."""
        failures: dict[tuple[str, str], list[str]] = {}
        for r in report["results"]:
            for name, timed in r.get("sdpa", {}).items():
                if "error" in timed:
                    shape = label({key: r[key] for key in Attention.shape_keys})
                    failures.setdefault((name, timed["error"]), []).append(shape)
        return [f"- {report['kernel']}: SDPA {name} skipped at {', '.join(shapes)}: {error}"
                for (name, error), shapes in failures.items()]


def _errors(errors: dict) -> str:
    return ", ".join(f"{name} {value:.1e}" for name, value in errors.items())


class FlashForward(Attention):
    """fa-fwd: O (B, SQ, H, D) and the base-2 LSE (B, H, SQ) of Q, K, V (B, S, H, D); CTA (x, h, b) owns query rows
    x * block_m and runs SK / block_n KV blocks, causal: those up to its diagonal."""

    spec = "fa-fwd"
    abi = (Slot("Q", "tensor_map", QUERIES, "block_m"), Slot("K", "tensor_map", KEYS, "block_n"),
           Slot("V", "tensor_map", KEYS, "block_n"), Slot("O", "output", QUERIES), Slot("LSE", "output", ROWS),
           *SIZES)
    tolerance = FA_FORWARD_TOLERANCE
    reference_text = ("ref: fp32 scaled_dot_product_attention of the same inputs, LSE = log2(e) logsumexp of the "
                      "fp32 scores Q K^T / sqrt(D).")

    @staticmethod
    def trips(params: dict, sizes: dict, x: int, causal: bool) -> int:
        """Key j is visible to query r iff j <= r (top-left aligned): CTA x's last query sees ceil((x + 1) block_m
        / block_n) blocks."""
        blocks = sizes["SK"] // params["block_n"]
        return min(blocks, math.ceil((x + 1) * params["block_m"] / params["block_n"])) if causal else blocks

    @classmethod
    def run(cls, torch, kernel, manifest: dict, shape: dict, seed: int) -> dict:
        """Correctness against fp32 attention and timing next to each SDPA backend; inputs N(0, 1) in 16 bits."""
        causal, what = cls.causal(manifest), f"{manifest['kernel']} {label(shape)}"
        q, k, v = attention_inputs(torch, manifest, cls.sizes(manifest, shape), seed, ("SQ", "SK", "SK"))
        o, lse = kernel(Q=q, K=k, V=v)
        wait(torch, what)
        reference, _ = attention_reference(torch, q, k, v, causal)
        errors = {"O": relative_error(o, reference),
                  "LSE": relative_error(lse, lse_reference(torch, q, k, causal))}
        result = {**shape, "causal": causal,
                  "sdpa_errors": {"O": relative_error(sdpa(torch, q, k, v, causal), reference)}}
        del reference
        result["ms"] = time_ms(torch, lambda: kernel(Q=q, K=k, V=v, O=o, LSE=lse), what)
        result["sdpa"] = sdpa_times(torch, lambda: lambda: sdpa(torch, q, k, v, causal), cls.flop(manifest, shape),
                                    label(shape))
        return cls.finish(result, errors, cls.flop(manifest, shape))


class FlashBackward(Attention):
    """fa-bwd: dQ (accumulated), dK, dV (B, S, H, D) fp32 of Q, K, V, dO and the forward's LSE (base 2) and
    Delta = rowsum(dO O); CTA (x, h, b) owns KV rows x * block_n and runs SQ / block_m query blocks."""

    spec = "fa-bwd"
    abi = (Slot("Q", "tensor_map", QUERIES, "block_m"), Slot("K", "tensor_map", KEYS, "block_n"),
           Slot("V", "tensor_map", KEYS, "block_n"), Slot("dO", "tensor_map", QUERIES, "block_m"),
           Slot("LSE", "input", ROWS), Slot("Delta", "input", ROWS), Slot("dQ", "output", QUERIES, accumulated=True),
           Slot("dK", "output", KEYS), Slot("dV", "output", KEYS), *SIZES)
    tolerance = FA_BACKWARD_TOLERANCE
    grid_rows = ("SK", "block_n")  # a CTA owns a KV block
    flop_factor = 2.5  # five matmuls of 2 S^2 D per head against the forward's two, as FA2 counts (arXiv:2307.08691)
    reference_text = ("ref: autograd of fp32 scaled_dot_product_attention of the same inputs; the kernel gets its "
                      "LSE (base 2) and Delta = rowsum(dO O).")
    timing_text = (": torch.autograd.grad of one forward, which computes Delta itself; the kernel's ms includes "
                   "zeroing dQ, not Delta")

    @staticmethod
    def trips(params: dict, sizes: dict, x: int, causal: bool) -> int:
        return sizes["SQ"] // params["block_m"]

    @classmethod
    def run(cls, torch, kernel, manifest: dict, shape: dict, seed: int) -> dict:
        """Correctness against autograd of fp32 attention and timing next to each SDPA backend's backward."""
        causal, what = cls.causal(manifest), f"{manifest['kernel']} {label(shape)}"
        q, k, v, d_out = attention_inputs(torch, manifest, cls.sizes(manifest, shape), seed, ("SQ", "SK", "SK", "SQ"))
        reference, gradients = attention_reference(torch, q, k, v, causal, d_out)
        lse = lse_reference(torch, q, k, causal)
        delta = (d_out.float() * reference).sum(-1).transpose(1, 2).contiguous()  # (B, H, SQ)
        del reference
        dq, dk, dv = kernel(Q=q, K=k, V=v, dO=d_out, LSE=lse, Delta=delta)
        wait(torch, what)
        names = ("dQ", "dK", "dV")
        errors = {name: relative_error(got, ref) for name, got, ref in zip(names, (dq, dk, dv), gradients)}
        calibration = sdpa_gradients(torch, q, k, v, d_out, causal)()
        result = {**shape, "causal": causal,
                  "sdpa_errors": {name: relative_error(got, ref)
                                  for name, got, ref in zip(names, calibration, gradients)}}
        del gradients, calibration

        def launch():
            dq.zero_()  # dQ is accumulated: the kernel adds into it
            kernel(Q=q, K=k, V=v, dO=d_out, LSE=lse, Delta=delta, dQ=dq, dK=dk, dV=dv)

        result["ms"] = time_ms(torch, launch, what)
        result["sdpa"] = sdpa_times(torch, lambda: sdpa_gradients(torch, q, k, v, d_out, causal),
                                    cls.flop(manifest, shape), label(shape))
        return cls.finish(result, errors, cls.flop(manifest, shape))


CHECKS = {check.spec: check for check in (Gemm, FlashForward, FlashBackward)}


def attention_inputs(torch, manifest: dict, sizes: dict, seed: int, rows: tuple[str, ...]) -> list:
    """N(0, 1) tensors (B, rows, H, D) rounded to the kernel's 16-bit dtype, one per entry of `rows`."""
    generator = torch.Generator(device="cuda").manual_seed(seed)
    dtype = getattr(torch, TORCH_DTYPES[manifest["arguments"][0]["dtype"]])
    return [torch.randn((sizes["B"], sizes[r], sizes["H"], sizes["D"]), generator=generator, device="cuda").to(dtype)
            for r in rows]


def sdpa(torch, q, k, v, causal: bool):
    """torch's scaled_dot_product_attention of (B, S, H, D) tensors, as (B, S, H, D): it takes (B, H, S, D), so
    the heads are transposed in and out (views: the last dimension stays contiguous, as the backends need)."""
    heads = [x.transpose(1, 2) for x in (q, k, v)]
    return torch.nn.functional.scaled_dot_product_attention(*heads, is_causal=causal).transpose(1, 2)


def attention_reference(torch, q, k, v, causal: bool, d_out=None):
    """fp32 attention of 16-bit (B, S, H, D) inputs: O (B, S, H, D) and, given dO, [dQ, dK, dV] by autograd.
    torch picks the backend for fp32 inputs (the flash backends take 16 bits only; the memory-efficient one
    accumulates in fp32 without materializing the S x S scores, which at S = 16384 would need 32 GiB)."""
    leaves = [x.float().requires_grad_(d_out is not None) for x in (q, k, v)]
    o = sdpa(torch, *leaves, causal)
    if d_out is None:
        return o.detach(), None
    o.backward(d_out.float())
    return o.detach(), [x.grad for x in leaves]


def lse_reference(torch, q, k, causal: bool):
    """log2(e) * logsumexp of the fp32 scores Q K^T / sqrt(D) (the base-2 LSE the kernels store), (B, H, SQ),
    computed LSE_ROWS query rows at a time; causal: key j counts for query r iff j <= r."""
    batches, queries, _, dim = q.shape
    keys = torch.arange(k.shape[1], device=q.device)
    out = torch.empty((batches, q.shape[2], queries), dtype=torch.float32, device=q.device)
    for b in range(batches):
        k_t = k[b].float().permute(1, 2, 0)  # (H, D, SK)
        for r0 in range(0, queries, LSE_ROWS):
            scores = torch.matmul(q[b, r0:r0 + LSE_ROWS].float().transpose(0, 1), k_t) / math.sqrt(dim)
            if causal:
                rows = torch.arange(r0, r0 + scores.shape[1], device=q.device)
                scores.masked_fill_(keys[None, :] > rows[:, None], float("-inf"))
            out[b, :, r0:r0 + LSE_ROWS] = torch.logsumexp(scores, dim=-1)
    return out * math.log2(math.e)


def sdpa_gradients(torch, q, k, v, d_out, causal: bool):
    """A function returning SDPA's (dQ, dK, dV) (B, S, H, D) for dO, from one forward on 16-bit leaves built
    now (so under the backend the caller selected); each call runs the backward alone."""
    leaves = [x.detach().requires_grad_() for x in (q, k, v)]
    out = sdpa(torch, *leaves, causal)
    return lambda: torch.autograd.grad(out, leaves, d_out, retain_graph=True)


def sdpa_times(torch, make, flop: float, what: str) -> dict[str, dict]:
    """ms and TFLOP/s of `make()` (a launch built under the backend) for each SDPA backend of this torch; a backend
    that is missing or raises (inputs it does not take, say) gets its reason instead."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError as exc:
        return {name: {"error": f"torch.nn.attention: {exc}"} for name in SDPA_BACKENDS}
    times = {}
    for name in SDPA_BACKENDS:
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            times[name] = {"error": f"SDPBackend.{name} is not in torch {torch.__version__}"}
            continue
        with warnings.catch_warnings(record=True) as caught:  # why a backend refuses comes as warnings
            warnings.simplefilter("always")
            try:
                with sdpa_kernel(backend):
                    ms = time_ms(torch, make(), f"SDPA {name} {what}")
            except Hang:
                raise
            except Exception as exc:
                reasons = [first_line(w.message) for w in caught if first_line(w.message)][:2]
                times[name] = {"error": "; ".join([f"{type(exc).__name__}: {first_line(exc)}", *reasons])[:300]}
                continue
        times[name] = {"ms": ms, "tflops": flop / ms / 1e9}
    return times


def first_line(message) -> str:
    """The first non-blank line of an exception's or a warning's text ("" if none)."""
    return next((line.strip() for line in str(message).splitlines() if line.strip()), "")


class Prepared(NamedTuple):
    """A directory read and planned: its manifest, its spec's check, its launcher module, the shapes to run, the
    shapes the launcher refuses (with why), and what is wrong (nothing to run when not empty)."""

    manifest: dict | None
    check: type | None
    launcher: object
    shapes: list[dict]
    refused: list[str]
    problems: list[str]


def prepare(directory: Path) -> Prepared:
    """Validate a directory, import its launcher and plan its shapes (no GPU, no driver call)."""
    manifest, problems = manifest_problems(directory)
    if manifest is None or problems:
        return Prepared(manifest, None, None, [], [], problems)
    check = CHECKS[manifest["spec"]]
    try:
        launcher = import_launcher(directory, manifest["kernel"])
    except Exception as exc:  # whatever the launcher raises at import is the finding
        return Prepared(manifest, check, None, [], [], [f"the launcher does not import: {type(exc).__name__}: {exc}"])
    shapes, refused = check.plan(launcher, manifest)
    problems = check.plan_problems(launcher, manifest, shapes) if shapes else \
        ["no planned shape fits the launcher: " + "; ".join(refused)]
    return Prepared(manifest, check, launcher, shapes, refused, problems)


def dry_run(directories: list[Path]) -> int:
    """Validate every directory and print the plan; 0 when all are consistent, else 1."""
    failed, planned = False, []
    for directory in directories:
        manifest, check, _, shapes, refused, problems = prepare(directory)
        if problems:
            failed = True
            print(f"FAIL {directory}: " + "; ".join(problems))
            continue
        print(f"ok   {directory}: {manifest['kernel']} ({manifest['target']}, {check.describe(manifest)}, "
              f"{math.prod(manifest['block'])} threads, {manifest['dynamic_smem']} B dynamic shared memory)")
        for reason in refused:
            print(f"     not planned: {reason}")
        if manifest["target"] == "host":
            print("     host target: the GPU run skips it")
        elif not (directory / manifest["cubin"]).is_file():
            print(f"     warning: {manifest['cubin']} is not compiled yet (twill emit ... --compile); "
                  "the GPU run needs it")
        else:
            planned.append((manifest["kernel"], shapes))
    runs = [(kernel, shape) for kernel, shapes in planned for shape in shapes]
    counts = {len(shapes) for _, shapes in planned}
    print(f"plan: {len(planned)} kernel(s) x {counts.pop()} shapes = {len(runs)} runs" if len(counts) == 1
          else f"plan: {len(planned)} kernel(s), {len(runs)} runs")
    for kernel, shape in runs:
        print(f"  {kernel}  {label(shape)}")
    return 1 if failed else 0


def check_kernel(torch, directory: Path, started: float) -> dict:
    """Load one emitted kernel and run every planned shape that fits the time budget; a hang ends the kernel's
    report with "hang": true."""
    manifest, check, launcher, shapes, refused, problems = prepare(directory)
    report = {"directory": str(directory), "kernel": manifest["kernel"] if manifest else directory.name,
              "spec": manifest["spec"] if manifest else None, "results": [], "skipped": [], "not_planned": refused}
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
        kernel = launcher.load(0)
    except Exception as exc:  # a missing cubin, a driver error: reported, and the run fails
        report["error"] = f"{type(exc).__name__}: {exc}"
        return report
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 calibration and reference products must be true fp32
    for seed, shape in enumerate(shapes):
        if time.monotonic() - started > TIME_BUDGET_S:
            report["skipped"].append(shape)
            continue
        try:
            report["results"].append(check.run(torch, kernel, manifest, shape, seed))
        except Hang as exc:
            report.update(error=str(exc), hang=True)
            return report
        except Exception as exc:  # a launch error, an allocation that failed: recorded against the shape
            report["results"].append({**shape, "correct": False, "error": f"{type(exc).__name__}: {exc}"})
        torch.cuda.empty_cache()  # the next, larger shape gets the memory back
    return report


def passed(reports: list[dict]) -> bool:
    """Every kernel loaded and every shape run was correct."""
    return all("error" not in r and all(x["correct"] for x in r["results"]) for r in reports)


def markdown(summary: dict) -> str:
    """The results as a markdown table per spec, with what was skipped and why."""
    lines = [f"# gpu_check on {summary['device']}", "",
             f"torch {summary['torch']}. Times: median of {REPEATS} after {WARMUP} warm-up launches, CUDA events."]
    for spec, check in CHECKS.items():
        reports = [r for r in summary["kernels"] if r.get("spec") == spec and r["results"]]
        if not reports:
            continue
        columns = ("kernel", *check.columns)
        lines += ["", f"## {spec}", "", check.explanation(), "", "| " + " | ".join(columns) + " |",
                  "|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in columns) + "|"]
        lines += ["| " + " | ".join([report["kernel"], *check.cells(r)]) + " |"
                  for report in reports for r in report["results"]]
    notes = []
    for report in summary["kernels"]:
        if report["results"]:
            check = CHECKS[report["spec"]]
            notes += [f"- {report['kernel']} {label({k: r[k] for k in check.shape_keys})}: {r['error']}"
                      for r in report["results"] if "error" in r] + check.notes(report)
        if report["skipped"]:
            notes.append(f"- {report['kernel']}: skipped (time budget of {TIME_BUDGET_S:.0f} s spent): "
                         + ", ".join(label(s) for s in report["skipped"]))
        notes += [f"- {report['kernel']}: not planned: {reason}" for reason in report.get("not_planned", [])]
        for key in ("error", "note"):
            if key in report:
                notes.append(f"- {report['directory']}: {report[key]}")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


TEXT_COLUMNS = {"kernel", "correct", "causal", "errors", "SDPA errors"}  # left-aligned in the tables


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
               "fa_tolerances": {"fa-fwd": FA_FORWARD_TOLERANCE, "fa-bwd": FA_BACKWARD_TOLERANCE},
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
