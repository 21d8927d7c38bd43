"""The emitted Python launcher and benchmarks/gpu_check.py, without a GPU: what the launcher imports, that it
validates before it touches the driver, the driver calls it makes (against a recording fake), the size-expression
evaluator, an accumulated output (FA backward's dQ) zero-filled or added into, gpu_check --dry-run on good and
broken GEMM and FlashAttention directories (real ones, emitted here), and gpu_check's FlashAttention table."""

from __future__ import annotations

import ast
import ctypes
import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest

jinja2 = pytest.importorskip("jinja2")
driver = pytest.importorskip("cuda.bindings.driver")

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "twill" / "emit" / "templates"
GPU_CHECK = ROOT / "benchmarks" / "gpu_check.py"
KERNEL = "gemm_h100"
SMEM = 132096


def manifest(**changes) -> dict:
    """A GEMM manifest as CONTRACT.md describes it (the fields the launcher and gpu_check read, and a few more)."""
    data = {
        "format": 1, "kernel": KERNEL, "spec": "gemm", "machine": "h100", "target": "sm90a", "arch": "sm_90a",
        "source": f"{KERNEL}.cu", "cubin": f"{KERNEL}.cubin",
        "params": {"block_m": 128, "block_n": 128, "block_k": 64, "dtype": "bf16"},
        "block": [256, 1, 1], "grid": ["ceil(M / 128)", "ceil(N / 128)", "1"], "trip_count": "K / 64",
        "dynamic_smem": SMEM,
        "tmem": {"columns": 0, "map": []},
        "arguments": [
            {"name": "A", "kind": "tensor_map", "dtype": "bf16", "shape": ["M", "K"], "box": [64, 128], "swizzle": 128},
            {"name": "B", "kind": "tensor_map", "dtype": "bf16", "shape": ["N", "K"], "box": [64, 128], "swizzle": 128},
            {"name": "C", "kind": "output", "dtype": "fp32", "shape": ["M", "N"]},
            {"name": "M", "kind": "int"}, {"name": "N", "kind": "int"}, {"name": "K", "kind": "int"}],
        "size_rules": {"K": {"multiple_of": 64, "param": "block_k"}},
        "schedule": {"ii": 512, "stages": 2, "optimal": True},
    }
    data.update(changes)
    return data


def render_launcher() -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True)
    return environment.get_template("launcher.py.j2").render(kernel=KERNEL)


def emit(directory: Path, cubin: bool = False, **changes) -> Path:
    """An emitted directory: manifest.json, the rendered launcher, a stand-in source and optionally a cubin."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(manifest(**changes), indent=2))
    (directory / f"{KERNEL}.py").write_text(render_launcher())
    (directory / f"{KERNEL}.cu").write_text("// kernel source\n")
    if cubin:
        (directory / f"{KERNEL}.cubin").write_bytes(b"\x7fELF stand-in")
    return directory


_names = itertools.count()


def import_launcher(directory: Path, kernel: str = KERNEL):
    spec = importlib.util.spec_from_file_location(f"launcher_{next(_names)}", directory / f"{kernel}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Forbidden:
    """Stands in for the driver module where no driver call may happen."""

    def __getattr__(self, name):
        raise AssertionError(f"driver.{name} touched")


class RecordingDriver:
    """The real cuda.bindings.driver for types and enums; its cu* calls recorded and answered with success."""

    CALLS = ("cuInit", "cuDeviceGet", "cuDevicePrimaryCtxRetain", "cuCtxPushCurrent", "cuCtxPopCurrent",
             "cuModuleLoadData",
             "cuModuleGetFunction", "cuFuncSetAttribute", "cuTensorMapEncodeTiled", "cuLaunchKernel", "cuMemAlloc",
             "cuMemcpyHtoD", "cuMemcpyDtoH", "cuMemFree", "cuStreamSynchronize")

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []
        self.uploads: list[bytes] = []  # what each cuMemcpyHtoD sent, read at the call
        self._pointers = itertools.count(0x10000, 0x10000)

    def __getattr__(self, name):
        if name not in self.CALLS:
            return getattr(driver, name)

        def call(*args):
            self.calls.append((name, args))
            if name == "cuMemcpyHtoD":
                self.uploads.append(ctypes.string_at(args[1], args[2]))
            success = driver.CUresult.CUDA_SUCCESS
            if name == "cuTensorMapEncodeTiled":
                return success, driver.CUtensorMap()
            if name == "cuMemAlloc":
                return success, driver.CUdeviceptr(next(self._pointers))
            if name in ("cuDeviceGet", "cuDevicePrimaryCtxRetain", "cuCtxPopCurrent", "cuModuleLoadData",
                        "cuModuleGetFunction"):
                return success, f"<{name}>"
            return (success,)
        return call

    def named(self, name: str) -> list[tuple]:
        return [args for called, args in self.calls if called == name]


@pytest.fixture
def emitted(tmp_path):
    return emit(tmp_path / KERNEL)


@pytest.fixture
def launcher(emitted):
    return import_launcher(emitted)


def bf16(*shape):
    return np.zeros(shape, dtype=np.uint16)


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a Python file imports, anywhere in it, less the standard library's."""
    tree = ast.parse(path.read_text())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return roots - set(sys.stdlib_module_names)


def test_the_launcher_imports_only_stdlib_numpy_cuda_and_torch(emitted):
    assert imported_packages(emitted / f"{KERNEL}.py") == {"numpy", "cuda", "torch"}


def test_gpu_check_imports_nothing_from_twill():
    """It runs on a GPU machine without twill or its dependencies: stdlib, numpy and (when it runs) torch."""
    assert imported_packages(GPU_CHECK) == {"numpy", "torch"}


def test_importing_the_launcher_makes_no_driver_call(emitted, monkeypatch):
    import cuda.bindings

    recording = RecordingDriver()
    monkeypatch.setattr(cuda.bindings, "driver", recording)
    module = import_launcher(emitted)
    assert module.driver is recording and recording.calls == []
    assert module.KERNEL == KERNEL and module.MANIFEST["dynamic_smem"] == SMEM


@pytest.mark.parametrize("inputs, message", [
    ((np.zeros((128, 64), np.float32), bf16(128, 64)),
     "A has dtype float32, expected bf16 (numpy carries bf16 as uint16 bit patterns)"),
    ((bf16(128, 64), bf16(128, 32)), "B has K=32 but A has K=64"),
    ((bf16(128), bf16(128, 64)), "A must be 2-D (M, K), got shape (128,)"),
    ((bf16(128, 96), bf16(128, 96)), "K=96 is not a multiple of block_k=64"),
])
def test_numpy_inputs_are_validated_before_any_driver_call(launcher, inputs, message):
    launcher.driver = Forbidden()
    with pytest.raises(ValueError) as error:
        launcher.run(*inputs)
    assert str(error.value) == message


@pytest.mark.parametrize("out, message", [
    (np.zeros((128, 64), np.float32), "C has N=64 but B has N=128"),
    (np.zeros((128, 128), np.float64), "C has dtype float64, expected fp32"),
])
def test_a_bad_output_is_refused_before_any_driver_call(launcher, out, message):
    launcher.driver = Forbidden()
    with pytest.raises(ValueError, match=message):
        launcher.run(bf16(128, 64), bf16(128, 64), out=out)


def test_wrong_arguments_are_type_errors(launcher):
    launcher.driver = Forbidden()
    with pytest.raises(TypeError, match=r"run\(\) takes 2 inputs \(A, B\), got 1"):
        launcher.run(bf16(128, 64))
    with pytest.raises(TypeError, match="expected a torch tensor or a numpy array, got list"):
        launcher.run([[0]], bf16(128, 64))
    with pytest.raises(TypeError, match=r"unknown \['X'\], missing \['B'\]"):
        launcher.Kernel()(A=bf16(128, 64), X=bf16(1))


def test_validate_returns_the_sizes_and_accepts_k_zero(launcher):
    launcher.driver = Forbidden()
    assert launcher.validate({"A": bf16(200, 128), "B": bf16(328, 128)}) == {"M": 200, "K": 128, "N": 328}
    assert launcher.validate({"A": bf16(128, 0), "B": bf16(64, 0), "C": None}) == {"M": 128, "K": 0, "N": 64}


def test_a_missing_cubin_or_a_host_target_is_a_clear_error(tmp_path):
    module = import_launcher(emit(tmp_path / "gpu"))
    module.driver = Forbidden()
    with pytest.raises(RuntimeError, match=r"gemm_h100.cubin not found: compile it with: twill emit .* --compile"):
        module.load()
    module = import_launcher(emit(tmp_path / "host", cubin=True, target="host", arch=None))
    module.driver = Forbidden()
    with pytest.raises(RuntimeError, match="emitted for the host target"):
        module.run(bf16(128, 64), bf16(128, 64))


def test_a_manifest_for_another_kernel_is_refused_at_import(tmp_path):
    with pytest.raises(ImportError, match="describes kernel 'other', not 'gemm_h100'"):
        import_launcher(emit(tmp_path / "k", kernel="other"))


def test_driver_failures_name_the_cuda_result(launcher):
    assert launcher._check("cuDeviceGet", (driver.CUresult.CUDA_SUCCESS, 7)) == 7
    assert launcher._check("cuInit", (driver.CUresult.CUDA_SUCCESS,)) is None
    with pytest.raises(RuntimeError, match="gemm_h100: cuModuleLoadData failed: CUDA_ERROR_INVALID_IMAGE"):
        launcher._check("cuModuleLoadData", (driver.CUresult.CUDA_ERROR_INVALID_IMAGE, None))


def test_a_numpy_gemm_makes_the_contract_driver_calls(tmp_path):
    module = import_launcher(emit(tmp_path / KERNEL, cubin=True))
    fake = module.driver = RecordingDriver()
    c = module.run(bf16(200, 128), bf16(328, 128))
    assert c.shape == (200, 328) and c.dtype == np.float32

    order = [name for name, _ in fake.calls]
    assert order[:8] == ["cuInit", "cuDeviceGet", "cuDevicePrimaryCtxRetain", "cuCtxPushCurrent", "cuModuleLoadData",
                         "cuModuleGetFunction", "cuFuncSetAttribute", "cuCtxPopCurrent"]
    assert fake.named("cuCtxPushCurrent") == [("<cuDevicePrimaryCtxRetain>",)] * 3  # load, the copies, the launch
    assert len(fake.named("cuCtxPopCurrent")) == 3
    assert fake.named("cuModuleLoadData") == [(b"\x7fELF stand-in",)]
    assert fake.named("cuModuleGetFunction") == [("<cuModuleLoadData>", b"gemm_h100")]
    assert fake.named("cuFuncSetAttribute") == [(
        "<cuModuleGetFunction>", driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, SMEM)]
    assert [nbytes for (nbytes,) in fake.named("cuMemAlloc")] == [200 * 128 * 2, 328 * 128 * 2, 200 * 328 * 4]
    assert len(fake.named("cuMemFree")) == 3 and order[-2:] == ["cuMemFree", "cuCtxPopCurrent"]

    encodes = fake.named("cuTensorMapEncodeTiled")
    assert len(encodes) == 2
    for (dtype, rank, address, dims, strides, box, element_strides, interleave, swizzle, l2, oob), rows, base in zip(
            encodes, (200, 328), (0x10000, 0x20000)):
        assert dtype == driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 and rank == 2
        assert address == base
        assert [int(d) for d in dims] == [128, rows] and [int(s) for s in strides] == [256]
        assert [int(b) for b in box] == [64, 128] and [int(e) for e in element_strides] == [1, 1]
        assert interleave == driver.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE
        assert swizzle == driver.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B
        assert l2 == driver.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B
        assert oob == driver.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE

    [launch] = fake.named("cuLaunchKernel")
    function, gx, gy, gz, bx, by, bz, smem, stream, (values, types), extra = launch
    assert function == "<cuModuleGetFunction>" and (gx, gy, gz) == (2, 3, 1) and (bx, by, bz) == (256, 1, 1)
    assert smem == SMEM and int(stream) == 0 and extra == 0
    assert types == (None, None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int)
    assert all(isinstance(v, driver.CUtensorMap) for v in values[:2])
    assert values[2:] == (0x30000, 200, 328, 128)
    assert order.index("cuLaunchKernel") < order.index("cuStreamSynchronize") < order.index("cuMemcpyDtoH")


def test_cuda_bindings_packs_the_launch_arguments(tmp_path):
    """The real cuLaunchKernel accepts the (values, types) kernelParams: it packs them (a CUtensorMap by its
    getPtr(), so by value) before it needs the driver; a packing problem would be a TypeError."""
    module = import_launcher(emit(tmp_path / KERNEL, cubin=True))
    fake = module.driver = RecordingDriver()
    module.run(bf16(128, 64), bf16(128, 64))
    [launch] = fake.named("cuLaunchKernel")
    try:
        driver.cuLaunchKernel(driver.CUfunction(), *launch[1:])
    except Exception as exc:  # no CUDA driver here: the arguments were packed, then loading libcuda failed
        assert not isinstance(exc, TypeError), exc


def test_k_zero_launches_with_unencoded_tensor_maps_and_m_zero_does_not_launch(tmp_path):
    module = import_launcher(emit(tmp_path / KERNEL, cubin=True))
    fake = module.driver = RecordingDriver()
    module.run(bf16(128, 0), bf16(128, 0))
    assert fake.named("cuTensorMapEncodeTiled") == [] and len(fake.named("cuLaunchKernel")) == 1
    fake.calls.clear()
    assert module.run(bf16(0, 64), bf16(128, 64)).shape == (0, 128)
    assert fake.named("cuLaunchKernel") == []


@pytest.mark.parametrize("expression, sizes, value", [
    ("ceil(M / 128)", {"M": 129}, 2),
    ("ceil(M / 128)", {"M": 128}, 1),
    ("ceil(N / 128)", {"N": 0}, 0),
    ("K / 64", {"K": 8192}, 128),
    ("(M + 127) // 128", {"M": 200}, 2),
    ("2 * (N - 1) + K", {"N": 3, "K": 1}, 5),
    ("1", {}, 1),
    ("min(K / 64, ceil((x + 1) * 128 / 64))", {"K": 256, "x": 0}, 2),   # a causal trip count, CTA x
    ("min(K / 64, ceil((x + 1) * 128 / 64))", {"K": 256, "x": 5}, 4),
    ("max(M, N) + y + z", {"M": 3, "N": 7, "y": 1, "z": 2}, 10),
])
def test_the_size_expression_evaluator(launcher, expression, sizes, value):
    assert launcher.evaluate(expression, sizes) == value


@pytest.mark.parametrize("expression, sizes, message", [
    ("K / 64", {"K": 100}, "not an integer"),
    ("M ** 2", {"M": 2}, "only M, N, K"),
    ("__import__('os').getpid()", {}, "only M, N, K"),
    ("abs(M)", {"M": 1}, "only M, N, K"),
    ("X + 1", {}, "only M, N, K"),
    ("M + 1", {}, "needs M, which is not given"),
    ("M / (N - N)", {"M": 1, "N": 2}, "divides by zero"),
    ("ceil(M", {"M": 1}, "bad expression"),
    ("True", {}, "only M, N, K"),
    ("min(M)", {"M": 1}, "only M, N, K, x, y, z, numbers"),
    ("ceil(M, N)", {"M": 1, "N": 1}, "only M, N, K"),
    ("max(M, N, K)", {"M": 1, "N": 1, "K": 1}, "only M, N, K"),
    ("M + x", {"M": 1}, "needs x, which is not given"),
])
def test_the_evaluator_refuses_anything_else(launcher, expression, sizes, message):
    with pytest.raises(ValueError, match=message):
        launcher.evaluate(expression, sizes)


def test_grid_follows_the_manifest(launcher):
    assert launcher.grid(M=200, N=328, K=64) == (2, 3, 1)
    assert launcher.grid(M=8192, N=4096, K=8192) == (64, 32, 1)


def gpu_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GPU_CHECK), *args], capture_output=True, text=True, timeout=120)


def test_gpu_check_dry_run_validates_and_prints_the_plan(tmp_path):
    compiled = emit(tmp_path / "compiled", cubin=True)
    uncompiled = emit(tmp_path / "uncompiled")
    result = gpu_check(str(compiled), str(uncompiled), "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok   {compiled}: gemm_h100 (sm90a, tile 128x128x64, 256 threads" in result.stdout
    assert "warning: gemm_h100.cubin is not compiled yet" in result.stdout
    assert "plan: 1 kernel(s) x 8 shapes = 8 runs" in result.stdout
    assert "gemm_h100  M=8192 N=8192 K=8192" in result.stdout


@pytest.mark.parametrize("breakage, message", [
    ({"grid": None}, "grid None is not three expressions"),
    ({"dynamic_smem": 300000}, "dynamic_smem 300000 is not an int in [0, 232448]"),
    ({"grid": ["ceil(M / 64)", "ceil(N / 128)", "1"]}, "M=128 N=128 K=0: grid (2, 1, 1), expected (1, 1, 1)"),
    ({"trip_count": "K / 32"}, "M=128 N=128 K=64: trip count 2, expected 1"),
    ({"params": {"block_m": 128, "block_n": 128, "block_k": 32}}, "A.box[0] = 64 is not block_k = 32"),
    ({"source": "missing.cu"}, "missing.cu not found"),
    ({"kernel": "other"}, "other.py not found"),
])
def test_gpu_check_dry_run_names_the_problem_of_a_broken_directory(tmp_path, breakage, message):
    broken = emit(tmp_path / "broken", cubin=True, **breakage)
    result = gpu_check(str(emit(tmp_path / "good", cubin=True)), str(broken), "--dry-run")
    assert result.returncode == 1
    assert f"FAIL {broken}: " in result.stdout and message in result.stdout


def test_gpu_check_dry_run_reports_a_launcher_that_does_not_import(tmp_path):
    broken = emit(tmp_path / "broken", cubin=True)
    (broken / f"{KERNEL}.py").write_text("raise ImportError('boom')\n")
    result = gpu_check(str(broken), "--dry-run")
    assert result.returncode == 1 and "the launcher does not import: ImportError: boom" in result.stdout


def test_gpu_check_without_a_gpu_skips(emitted):
    result = gpu_check(str(emitted))
    if "no GPU: skipping" not in result.stdout:
        pytest.skip("a GPU is present here")
    assert result.returncode == 0


# --- an accumulated output (FA backward's dQ), on a real emitted manifest -----------------------------------------

FA_FWD = ("specs/kernels/fa-fwd.yaml", "specs/schedules/fa3-h100.yaml")
FA_CAUSAL = ("specs/kernels/fa-fwd.yaml", "tests/emit/fa3-h100-causal.yaml")
FA_BWD = ("specs/kernels/fa-bwd.yaml", "specs/schedules/fa3-bwd-h100.yaml")


def twill_emit(spec: str, schedule: str, out: Path, *options: str) -> Path:
    """`twill emit SPEC SCHEDULE -o OUT ...` through twill's CLI, in this process."""
    from typer.testing import CliRunner
    from twill.cli import app

    result = CliRunner().invoke(app, ["emit", str(ROOT / spec), str(ROOT / schedule), "-o", str(out), *options])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def fa(tmp_path_factory):
    """Real emitted FlashAttention directories: the FA3-structured forward for sm90a (compiled where NVRTC is
    here), its causal twin and the backward for the host target (the backward has no device target yet)."""
    from twill.emit.nvrtc import nvrtc_available

    root = tmp_path_factory.mktemp("fa")
    compiled = nvrtc_available()
    return SimpleNamespace(
        compiled=compiled,
        fwd=twill_emit(*FA_FWD, root / "fa_fwd", "--target", "sm90a", *(["--compile"] if compiled else [])),
        causal=twill_emit(*FA_CAUSAL, root / "fa_causal", "--target", "host"),
        bwd=twill_emit(*FA_BWD, root / "fa_bwd", "--target", "host"))


def as_device(directory: Path, into: Path, **changes) -> Path:
    """A copy of an emitted directory whose manifest claims sm90a with a stand-in cubin (for the recording driver)
    and takes `changes`."""
    copy = Path(shutil.copytree(directory, into))
    data = json.loads((copy / "manifest.json").read_text())
    data.update(target="sm90a", arch="sm_90a", cubin=f"{data['kernel']}.cubin", **changes)
    (copy / "manifest.json").write_text(json.dumps(data))
    (copy / data["cubin"]).write_bytes(b"\x7fELF stand-in")
    return copy


def fa_bwd_inputs(sq=64, sk=128, heads=2, batches=1, dim=128) -> list[np.ndarray]:
    """Q, K, V, dO (bf16 bit patterns) and LSE, Delta (fp32) of one FA backward launch."""
    return [bf16(batches, sq, heads, dim), bf16(batches, sk, heads, dim), bf16(batches, sk, heads, dim),
            bf16(batches, sq, heads, dim), np.zeros((batches, heads, sq), np.float32),
            np.zeros((batches, heads, sq), np.float32)]


def test_numpy_fa_backward_uploads_a_zero_dq_and_passes_lse_and_delta_by_pointer(fa, tmp_path):
    module = import_launcher(as_device(fa.bwd, tmp_path / "bwd"), "fa_bwd_h100")
    assert module.INPUTS == ["Q", "K", "V", "dO", "LSE", "Delta"] and module.ACCUMULATED == {"dQ"}
    fake = module.driver = RecordingDriver()
    dq, dk, dv = module.run(*fa_bwd_inputs())
    assert dq.shape == (1, 64, 2, 128) and dk.shape == dv.shape == (1, 128, 2, 128) and dq.dtype == np.float32
    inputs = [x.nbytes for x in fa_bwd_inputs()]
    assert [n for (n,) in fake.named("cuMemAlloc")] == inputs + [dq.nbytes, dk.nbytes, dv.nbytes]
    # the six inputs, then dQ (zeros: the kernel adds into it); dK and dV are written whole, never uploaded
    assert [n for _, _, n in fake.named("cuMemcpyHtoD")] == inputs + [dq.nbytes]
    assert fake.uploads[-1] == bytes(dq.nbytes)
    order = [name for name, _ in fake.calls]
    assert order.index("cuLaunchKernel") > max(i for i, name in enumerate(order) if name == "cuMemcpyHtoD")

    [launch] = fake.named("cuLaunchKernel")
    _, gx, gy, gz, *_, (values, types), _ = launch
    assert (gx, gy, gz) == (1, 2, 1)  # ceil(SK / 128) KV blocks, H, B
    # dQ, the TMA reduce's destination, is a tensor map over its memory; dK and dV pointers
    assert types == (None,) * 4 + (ctypes.c_void_p,) * 2 + (None,) + (ctypes.c_void_p,) * 2 + (ctypes.c_int,) * 4
    pointers = [int(p) for (p,) in (args[:1] for args in fake.named("cuMemcpyHtoD"))]
    assert values[4:6] == tuple(pointers[4:6])  # LSE and Delta: the device copies, by pointer
    assert values[9:] == (64, 128, 2, 1)  # SQ, SK, H, B
    encodes = fake.named("cuTensorMapEncodeTiled")
    assert len(encodes) == 5 and all(rank == 4 for _, rank, *_ in encodes)
    assert [int(d) for d in encodes[0][3]] == [128, 2, 64, 1]  # Q: D, H, SQ, B innermost first
    assert [int(b) for b in encodes[0][5]] == [64, 1, 64, 1] and [int(b) for b in encodes[1][5]] == [64, 1, 128, 1]
    assert encodes[4][2] == pointers[6] and [int(b) for b in encodes[4][5]] == [64, 1, 64, 1]  # dQ: fp32, a part


def test_numpy_fa_backward_adds_into_a_given_dq(fa, tmp_path):
    module = import_launcher(as_device(fa.bwd, tmp_path / "bwd"), "fa_bwd_h100")
    fake = module.driver = RecordingDriver()
    given = np.full((1, 64, 2, 128), 1.5, np.float32)
    dq, dk, _ = module.run(*fa_bwd_inputs(), out=(given, None, None))
    assert dq is given and np.all(given == 1.5)  # the fake kernel added nothing: the caller's values are kept
    assert fake.uploads[-1] == given.tobytes()  # and they went to the device before the launch
    assert dk.shape == (1, 128, 2, 128)


class FakeDevice(NamedTuple):
    index: int


class FakeTensor:
    """What the launcher's torch path reads of a tensor: dtype, shape, device, layout and address."""

    is_cuda = True
    device = FakeDevice(0)

    def __init__(self, shape, dtype, address):
        self.shape, self.dtype, self.address = tuple(shape), dtype, address

    def is_contiguous(self):
        return True

    def data_ptr(self):
        return self.address


class FakeTorch:
    """Stands in for torch (not installed here): records how the launcher allocates its outputs."""

    Tensor = FakeTensor
    bfloat16, float16, float32 = "torch.bfloat16", "torch.float16", "torch.float32"

    def __init__(self):
        self.allocations: list[tuple[str, tuple]] = []
        self.addresses = itertools.count(0x100000, 0x100000)
        self.cuda = SimpleNamespace(current_stream=lambda device: SimpleNamespace(cuda_stream=0))

    def tensor(self, *shape, dtype="torch.bfloat16"):
        return FakeTensor(shape, dtype, next(self.addresses))

    def zeros(self, shape, dtype, device):
        self.allocations.append(("zeros", tuple(shape)))
        return self.tensor(*shape, dtype=dtype)

    def empty(self, shape, dtype, device):
        self.allocations.append(("empty", tuple(shape)))
        return self.tensor(*shape, dtype=dtype)


def test_torch_fa_backward_allocates_dq_with_zeros_and_adds_into_a_given_one(fa, tmp_path):
    module = import_launcher(as_device(fa.bwd, tmp_path / "bwd"), "fa_bwd_h100")
    fake_torch, fake = FakeTorch(), RecordingDriver()
    module.torch, module.driver = fake_torch, fake
    q, k, v, d_out = (fake_torch.tensor(1, s, 2, 128) for s in (64, 128, 128, 64))
    lse, delta = (fake_torch.tensor(1, 2, 64, dtype=fake_torch.float32) for _ in range(2))
    dq, dk, dv = module.run(q, k, v, d_out, lse, delta)
    assert fake_torch.allocations == [("zeros", (1, 64, 2, 128)), ("empty", (1, 128, 2, 128)),
                                      ("empty", (1, 128, 2, 128))]
    [launch] = fake.named("cuLaunchKernel")
    values = launch[-2][0]
    assert values[4:6] + values[7:9] == (lse.address, delta.address, dk.address, dv.address)
    assert fake.named("cuTensorMapEncodeTiled")[4][2] == dq.address   # dQ: a tensor map over the zeros

    fake_torch.allocations.clear()
    given = fake_torch.tensor(1, 64, 2, 128, dtype=fake_torch.float32)
    assert module.run(q, k, v, d_out, lse, delta, out=(given, None, None))[0] is given
    assert fake_torch.allocations == [("empty", (1, 128, 2, 128))] * 2  # a given dQ is added into, not zeroed


def test_torch_gemm_output_is_still_allocated_empty(tmp_path):
    module = import_launcher(emit(tmp_path / KERNEL, cubin=True))
    fake_torch = module.torch = FakeTorch()
    module.driver = RecordingDriver()
    module.run(fake_torch.tensor(200, 128), fake_torch.tensor(328, 128))
    assert fake_torch.allocations == [("empty", (200, 328))]


# --- gpu_check on FlashAttention directories ------------------------------------------------------------------

def gpu_check_module():
    spec = importlib.util.spec_from_file_location(f"gpu_check_{next(_names)}", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dry_run(capsys, *directories: Path) -> tuple[int, str]:
    """gpu_check --dry-run in this process (the subprocess tests above cover the command line)."""
    code = gpu_check_module().main([*map(str, directories), "--dry-run"])
    return code, capsys.readouterr().out


def test_gpu_check_dry_run_plans_real_fa_directories(fa):
    result = gpu_check(str(fa.fwd), str(fa.causal), str(fa.bwd), "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"ok   {fa.fwd}: fa_fwd_h100 (sm90a, fa-fwd, head_dim 128, tile 128x128, 384 threads, " in out
    assert f"ok   {fa.causal}: fa_fwd_h100 (host, fa-fwd, head_dim 128, tile 128x128, causal, 384 threads" in out
    assert f"ok   {fa.bwd}: fa_bwd_h100 (host, fa-bwd, head_dim 128, tile 64x128, 384 threads" in out
    assert out.count("host target: the GPU run skips it") == 2
    if fa.compiled:
        assert "plan: 1 kernel(s) x 4 shapes = 4 runs" in out
        assert out.index("fa_fwd_h100  B=16 H=16 S=128\n") < out.index("fa_fwd_h100  B=16 H=16 S=1024\n") \
            < out.index("fa_fwd_h100  B=2 H=16 S=8192\n") < out.index("fa_fwd_h100  B=2 H=16 S=16384\n")
    else:
        assert "warning: fa_fwd_h100.cubin is not compiled yet" in out and "plan: 0 kernel(s), 0 runs" in out


def _set(path: str, value):
    """A change to a manifest at a dotted path ("arguments.0.box.0"); value None deletes the entry."""
    def change(data):
        *parents, last = path.split(".")
        for key in parents:
            data = data[int(key)] if isinstance(data, list) else data[key]
        key = int(last) if isinstance(data, list) else last
        if value is None:
            del data[key]
        else:
            data[key] = value
    return change


@pytest.mark.parametrize("directory, change, message", [
    ("fwd", _set("arguments.0.box.0", 32), "Q.box[0] = 32 is not one 128-byte row = 64"),
    ("fwd", _set("arguments.0.box.2", 64), "Q.box[2] = 64 is not block_m = 128"),
    ("fwd", _set("arguments.2.box", [64, 1, 128]), "V has a box of rank 3, shape of rank 4"),
    ("fwd", _set("arguments.1.swizzle", 64), "K.swizzle 64 is not 128"),
    ("fwd", _set("arguments.3.dtype", "bf16"), "O.dtype 'bf16' is not fp32"),
    ("fwd", _set("arguments.4.kind", "input"), "LSE is 'input', expected output"),
    ("fwd", _set("arguments.3.shape", ["B", "H", "SQ", "D"]), "O.shape ['B', 'H', 'SQ', 'D'] is not "
                                                            "['B', 'SQ', 'H', 'D']"),
    ("fwd", _set("arguments.5", None), "are not the fa-fwd ABI Q, K, V, O, LSE, SQ, SK, H, B"),
    ("fwd", _set("spec", "fa-fwd2"), "spec 'fa-fwd2' is none of gemm, fa-fwd, fa-bwd"),
    ("fwd", _set("params.head_dim", None), "params.head_dim None is not a positive int"),
    ("fwd", _set("grid", ["ceil(SQ / 64)", "H", "B"]), "B=16 H=16 S=128: grid (2, 16, 16), expected (1, 16, 16)"),
    ("fwd", _set("grid", ["ceil(SQ / 128)", "B", "H"]), "B=2 H=16 S=8192: grid (64, 2, 16), expected (64, 16, 2)"),
    ("fwd", _set("grid", ["ceil(SK / 128)", "H", "B"]), "B=16 H=16 S=128 SK=256: grid (2, 16, 16), expected "
                                                        "(1, 16, 16)"),
    ("fwd", _set("trip_count", "SK / 64"), "B=16 H=16 S=128: trip count 2 for CTA x = 0, expected 1"),
    ("fwd", _set("params.causal", True), "B=16 H=16 S=128 SK=256: trip count 2 for CTA x = 0, expected 1"),
    ("fwd", _set("size_rules.D.equals", 64),
     "no planned shape fits the launcher: B=16 H=16 S=128: D=128, but the kernel was emitted for head_dim=64"),
    ("causal", _set("trip_count", "SK / 128"), "B=16 H=16 S=128 SK=256: trip count 2 for CTA x = 0, expected 1"),
    ("causal", _set("trip_count", "min(SK / 128, ceil(x * 128 / 128))"),
     "B=16 H=16 S=128: trip count 0 for CTA x = 0, expected 1"),
    ("bwd", _set("arguments.6.accumulated", None), "dQ is not marked accumulated"),
    ("bwd", _set("arguments.4.kind", "tensor_map"), "LSE is 'tensor_map', expected input"),
    ("bwd", _set("grid", ["ceil(SQ / 128)", "H", "B"]), "B=16 H=16 S=128 SK=256: grid (1, 16, 16), expected "
                                                        "(2, 16, 16)"),
    ("bwd", _set("trip_count", "SQ / 128"), "B=16 H=16 S=128: trip count 1 for CTA x = 0, expected 2"),
])
def test_gpu_check_dry_run_names_the_problem_of_a_broken_fa_directory(fa, tmp_path, capsys, directory, change,
                                                                      message):
    broken = Path(shutil.copytree(getattr(fa, directory), tmp_path / "broken"))
    data = json.loads((broken / "manifest.json").read_text())
    change(data)
    (broken / "manifest.json").write_text(json.dumps(data))
    code, out = dry_run(capsys, fa.fwd, broken)
    assert code == 1 and f"ok   {fa.fwd}: " in out
    assert f"FAIL {broken}: " in out and message in out, out


def test_gpu_check_plans_only_the_seqlens_the_size_rules_take(fa, tmp_path, capsys):
    coarse = as_device(fa.fwd, tmp_path / "coarse", size_rules={"SK": {"multiple_of": 1024, "param": "block_n"}})
    code, out = dry_run(capsys, coarse)
    assert code == 0, out
    assert "not planned: B=16 H=16 S=128: SK=128 is not a multiple of block_n=1024" in out
    assert "plan: 1 kernel(s) x 3 shapes = 3 runs" in out and "S=128\n" not in out


def test_gpu_check_refuses_a_launcher_older_than_its_manifest(fa, tmp_path, capsys):
    """A launcher rendered before "input" arguments existed cannot drive the backward: named at import."""
    old = as_device(fa.bwd, tmp_path / "old")
    launcher = old / "fa_bwd_h100.py"
    launcher.write_text(launcher.read_text().replace('("tensor_map", "input", "output", "int")',
                                                     '("tensor_map", "output", "int")'))
    code, out = dry_run(capsys, old)
    assert code == 1 and "the launcher does not import: ImportError: " in out
    assert "argument LSE has unsupported kind 'input'" in out


def test_gpu_check_without_a_gpu_skips_fa_directories(fa):
    result = gpu_check(str(fa.fwd), str(fa.bwd))
    if "no GPU: skipping" not in result.stdout:
        pytest.skip("a GPU is present here")
    assert result.returncode == 0


def test_gpu_check_tables_fa_results_per_spec():
    """The markdown of a run's results (made up here: the GPU run cannot happen in CI): one table per spec, each
    SDPA backend's columns, and what did not run in the notes."""
    module = gpu_check_module()
    timed = {"FLASH_ATTENTION": {"ms": 0.5, "tflops": 550.0},
             "CUDNN_ATTENTION": {"error": "RuntimeError: No available kernel"},
             "EFFICIENT_ATTENTION": {"ms": 1.0, "tflops": 275.0}}
    row = {"B": 16, "H": 16, "S": 1024, "causal": True, "sdpa_errors": {"O": 2e-3}, "ms": 0.4, "sdpa": timed}
    row = module.FlashForward.finish(row, {"O": 1e-3, "LSE": 3e-7}, 2.2e11)
    wrong = module.FlashForward.finish({**row, "S": 8192}, {"O": 1e-3, "LSE": 1e-3}, 2.2e11)
    k_zero = {"M": 128, "N": 128, "K": 0, "max_abs_error": 0.0, "max_abs_ref": 0.0, "rel_error": 0.0,
              "torch_fp32_rel_error": 0.0, "correct": True}
    summary = {"device": "NVIDIA H100", "torch": "2.5.0", "kernels": [
        {"directory": "out/gemm", "kernel": "gemm_h100", "spec": "gemm", "results": [k_zero], "skipped": [],
         "not_planned": []},
        {"directory": "out/fa", "kernel": "fa_fwd_h100", "spec": "fa-fwd", "results": [row, wrong],
         "skipped": [{"B": 2, "H": 16, "S": 16384}], "not_planned": []},
        {"directory": "out/bwd", "kernel": "fa_bwd_h100", "spec": "fa-bwd", "results": [], "skipped": [],
         "not_planned": [], "note": "host target: nothing to run on the GPU"}]}
    table = module.markdown(summary)
    assert "## gemm" in table and "## fa-fwd" in table and "## fa-bwd" not in table  # nothing of fa-bwd ran
    assert "| gemm_h100 | 128 | 128 | 0 | yes | 0.00e+00 | 0.00e+00 |  |  |  |  |  |" in table
    assert ("| kernel | B | H | S | causal | correct | errors | SDPA errors | ms | TFLOP/s | FLASH ms | FLASH TFLOP/s "
            "| CUDNN ms | CUDNN TFLOP/s | EFFICIENT ms | EFFICIENT TFLOP/s | fastest SDPA ms / ms |") in table
    assert ("| fa_fwd_h100 | 16 | 16 | 1024 | yes | yes | O 1.0e-03, LSE 3.0e-07 | O 2.0e-03 | 0.4000 | 550.0 "
            "| 0.5000 | 550.0 | n/a |  | 1.0000 | 275.0 | 1.25 |") in table
    assert "| fa_fwd_h100 | 16 | 16 | 8192 | yes | NO | O 1.0e-03, LSE 1.0e-03 |" in table
    assert "- fa_fwd_h100: SDPA CUDNN_ATTENTION skipped at B=16 H=16 S=1024, B=16 H=16 S=8192: RuntimeError" in table
    assert "- fa_fwd_h100: skipped (time budget of 240 s spent): B=2 H=16 S=16384" in table
    assert "- out/bwd: host target: nothing to run on the GPU" in table
    assert not module.passed(summary["kernels"]) and module.passed(
        [{**summary["kernels"][1], "results": [row]}])
