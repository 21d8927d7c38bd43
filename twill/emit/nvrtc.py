"""Compile emitted CUDA C++ to a cubin with NVRTC, and read what ptxas and the SASS say about it.

NVRTC (wheel ``nvidia-cuda-nvrtc``, loaded through ``cuda-bindings``) runs its embedded ptxas
when given a real architecture (``sm_90a``, ``sm_100a``), so a cubin, the ``ptxas -v`` resource
lines and ptxas' performance diagnostics (``C75xx``) are all available on a machine without a
GPU. ``nvdisasm`` (wheel ``nvidia-cuda-nvdisasm``) turns the cubin into SASS text.

Everything here needs the ``cuda`` extra; :func:`nvrtc_available` says whether it is installed,
so that callers and tests can skip cleanly when it is not.

The NVRTC log (``--ptxas-options=-v``) looks like this, one block per entry function::

    ptxas info    : Compiling entry function 'k' for 'sm_90a'
    ptxas info    : Function properties for k
    ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
    ptxas info    : Used 232 registers, used 1 barriers, 1024 bytes smem
    ptxas info    : Compile time = 16.181 ms

and ptxas' performance diagnostics come back as ``ptxas info    : (C7508) Potential Performance
Loss: ...`` lines (not as warnings).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

__all__ = [
    "ARCHS",
    "CompileError",
    "CompileResult",
    "KernelResources",
    "compile_cuda",
    "nvrtc_available",
    "nvrtc_version",
    "sass",
    "sass_available",
    "sass_by_function",
    "sass_classes",
    "setmaxnreg_values",
    "template_dir",
    "read_template",
]

ARCHS = ("sm_90a", "sm_100a")

#: Options every compilation gets (the architecture is added in front).
BASE_OPTIONS = (
    "-std=c++17",
    "--ptxas-options=-v",
    "--ptxas-options=--warn-on-spills",
    "-lineinfo",
    "-DNDEBUG",
)


class CompileError(RuntimeError):
    """NVRTC (front end or embedded ptxas) rejected the source.

    ``str(err)`` is the first error lines of the log; ``err.log`` the whole log.
    """

    def __init__(self, message: str, log: str = "", arch: str | None = None):
        super().__init__(message)
        self.message = message
        self.log = log
        self.arch = arch


@dataclass(frozen=True)
class KernelResources:
    """What ``ptxas -v`` reported for one entry function."""

    registers: int = 0
    spill_stores: int = 0   # bytes
    spill_loads: int = 0    # bytes
    stack: int = 0          # bytes of stack frame
    smem_static: int = 0    # bytes of static shared memory (ptxas reserves 1 KB once mbarriers are used)
    barriers: int = 0       # named barriers used


@dataclass
class CompileResult:
    arch: str
    cubin: bytes
    ptx: str
    log: str
    seconds: float
    kernels: dict[str, KernelResources] = field(default_factory=dict)
    diagnostics: list[tuple[str, str]] = field(default_factory=list)   # every (C75xx) line: (code, message)

    def summary(self, kernel: str | None = None, *, with_sass: bool = True) -> dict:
        """The manifest's ``compile`` object for one entry function (the only one if ``kernel`` is None)."""
        if kernel is None:
            if len(self.kernels) != 1:
                raise ValueError(f"name the kernel: the cubin has {sorted(self.kernels)}")
            kernel = next(iter(self.kernels))
        res = self.kernels[kernel]
        out = {
            "arch": self.arch,
            "kernel": kernel,
            "registers": res.registers,
            "spill_stores": res.spill_stores,
            "spill_loads": res.spill_loads,
            "stack": res.stack,
            "smem_static": res.smem_static,
            "barriers": res.barriers,
            "seconds": round(self.seconds, 3),
            "diagnostics": [list(d) for d in self.diagnostics],
        }
        if with_sass:
            text = sass_by_function(sass(self.cubin)).get(kernel, "")
            out["sass_classes"] = sass_classes(text)
            out["setmaxnreg"] = setmaxnreg_values(text)
        return out


# --------------------------------------------------------------------------------------------
# availability

@functools.lru_cache(maxsize=1)
def nvrtc_available() -> bool:
    """True when cuda-bindings imports and libnvrtc loads (the ``cuda`` extra is installed)."""
    try:
        from cuda.bindings import nvrtc
        err, major, _minor = nvrtc.nvrtcVersion()
        return err == nvrtc.nvrtcResult.NVRTC_SUCCESS and major >= 12
    except Exception:   # ImportError, DynamicLibNotFoundError, RuntimeError, ...
        return False


@functools.lru_cache(maxsize=1)
def sass_available() -> bool:
    """True when nvdisasm (wheel nvidia-cuda-nvdisasm, part of the cuda extra) can be found."""
    try:
        return bool(_nvdisasm())
    except Exception:
        return False


def nvrtc_version() -> tuple[int, int]:
    from cuda.bindings import nvrtc
    _err, major, minor = nvrtc.nvrtcVersion()
    return major, minor


# --------------------------------------------------------------------------------------------
# templates (device primitives included textually by the emitter)

def template_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def read_template(name: str) -> str:
    with open(os.path.join(template_dir(), name), encoding="utf-8") as f:
        return f.read()


# --------------------------------------------------------------------------------------------
# compile

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '([^']+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")
_DIAG = re.compile(r"\((C75\d\d)\)\s*(.*?)\s*$")
_ERROR = re.compile(r"\berror\b|\bfatal\b", re.IGNORECASE)


def _parse_kernels(log: str) -> dict[str, KernelResources]:
    kernels: dict[str, dict] = {}
    current: dict | None = None
    for line in log.splitlines():
        m = _ENTRY.search(line)
        if m:
            current = kernels.setdefault(m.group(1), {})
            continue
        if current is None:
            continue
        m = _FRAME.search(line)
        if m:
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
            continue
        m = _USED.search(line)
        if m:
            current.update(registers=int(m.group(1)), barriers=int(m.group(2) or 0),
                           smem_static=int(m.group(3) or 0))
    return {name: KernelResources(**vals) for name, vals in kernels.items()}


def _parse_diagnostics(log: str) -> list[tuple[str, str]]:
    out = []
    for line in log.splitlines():
        m = _DIAG.search(line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def _error_message(log: str, status: str, limit: int = 8) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    errors = [ln for ln in lines if _ERROR.search(ln)]
    picked = (errors or lines)[:limit]
    return "\n".join(picked) if picked else status


def _check(result):
    from cuda.bindings import nvrtc
    err = result[0]
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise CompileError(f"NVRTC call failed: {err}")
    return result[1] if len(result) == 2 else result[1:]


def compile_cuda(source: str, arch: str, *, name: str = "kernel.cu",
                 extra_options: tuple[str, ...] | list[str] = ()) -> CompileResult:
    """Compile ``source`` for ``arch`` ("sm_90a", "sm_100a", ...) with NVRTC and its embedded ptxas.

    Raises :class:`CompileError` when NVRTC or ptxas rejects the source.
    """
    from cuda.bindings import nvrtc

    options = [f"--gpu-architecture={arch}", *BASE_OPTIONS, *extra_options]
    t0 = time.perf_counter()
    prog = _check(nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []))
    try:
        opts = [o.encode() for o in options]
        (status,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        size = _check(nvrtc.nvrtcGetProgramLogSize(prog))
        buf = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, buf)
        log = buf.rstrip(b"\x00").decode(errors="replace").rstrip()
        if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise CompileError(_error_message(log, str(status)), log=log, arch=arch)
        size = _check(nvrtc.nvrtcGetPTXSize(prog))
        ptx = b" " * size
        nvrtc.nvrtcGetPTX(prog, ptx)
        size = _check(nvrtc.nvrtcGetCUBINSize(prog))
        cubin = b""
        if size:
            cubin = b" " * size
            nvrtc.nvrtcGetCUBIN(prog, cubin)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    seconds = time.perf_counter() - t0
    return CompileResult(
        arch=arch,
        cubin=cubin,
        ptx=ptx.rstrip(b"\x00").decode(errors="replace"),
        log=log,
        seconds=seconds,
        kernels=_parse_kernels(log),
        diagnostics=_parse_diagnostics(log),
    )


# --------------------------------------------------------------------------------------------
# SASS

def _nvdisasm() -> str:
    import cuda.pathfinder as pf   # never ask it for ptxas: it may fall back to a mismatched system copy
    exe = pf.find_nvidia_binary_utility("nvdisasm")
    if not exe:
        raise FileNotFoundError("nvdisasm not found (pip install nvidia-cuda-nvdisasm, or the cuda extra)")
    return exe


def sass(cubin: bytes) -> str:
    """SASS text of a cubin (``nvdisasm -c``: code sections only)."""
    if not cubin:
        raise ValueError("empty cubin (compiled for a virtual architecture?)")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "k.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        return subprocess.run([_nvdisasm(), "-c", path], check=True, capture_output=True, text=True).stdout


_SECTION = re.compile(r"^\s*\.section\s+\.text\.([^,\s]+)", re.MULTILINE)


def sass_by_function(sass_text: str) -> dict[str, str]:
    """Split ``nvdisasm`` output into one text per function (``.text.<name>`` section)."""
    marks = list(_SECTION.finditer(sass_text))
    return {m.group(1): sass_text[m.start(): marks[i + 1].start() if i + 1 < len(marks) else len(sass_text)]
            for i, m in enumerate(marks)}


# "/*0a40*/   @!P0 HGMMA.64x128x16.F32.BF16 R24, gdesc[UR4], R24, gsb0 ;"
_INSN = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Za-z0-9_]+)*)")

#: Opcode bases whose full form (with modifiers) is also counted: the async/tensor-core machinery.
FULL_FORM_PREFIXES = ("HGMMA", "IGMMA", "QGMMA", "BGMMA", "UTMA", "UBLKCP", "SYNCS", "USETMAXREG",
                      "WARPGROUP", "UTC", "LDTM", "STTM", "FENCE", "MEMBAR", "BAR", "ELECT", "UCGABAR")


def sass_classes(sass_text: str) -> dict[str, int]:
    """Count SASS instructions by class.

    Keys are the mnemonic before the first '.' ("HGMMA", "UTMALDG", "SYNCS", "USETMAXREG",
    "UTCHMMA", "UTCBAR", "LDTM", ...: these sum to the instruction count) plus, for the
    tensor-core / TMA / barrier / TMEM families (:data:`FULL_FORM_PREFIXES`), the full form
    with modifiers ("HGMMA.64x128x16.F32.BF16", "SYNCS.PHASECHK.TRANS64.TRYWAIT", ...).
    """
    counts: Counter[str] = Counter()
    for line in sass_text.splitlines():
        m = _INSN.match(line)
        if not m:
            continue
        full = m.group(1)
        base = full.split(".", 1)[0]
        counts[base] += 1
        if full != base and base.startswith(FULL_FORM_PREFIXES):
            counts[full] += 1
    return dict(sorted(counts.items()))


# "USETMAXREG.TRY_ALLOC.CTAPOOL UP0, 0xe8 ;"  /  "USETMAXREG.DEALLOC.CTAPOOL 0x28 ;"
_SETMAXREG = re.compile(r"\bUSETMAXREG\.[A-Z_.]+\s+(?:U?P\w+\s*,\s*)?(0x[0-9a-fA-F]+|\d+)\s*;")


def setmaxnreg_values(sass_text: str) -> list[int]:
    """Register counts of the USETMAXREG instructions, in program order.

    The count is the last immediate of the SASS instruction (``USETMAXREG.TRY_ALLOC.CTAPOOL UP0,
    0xe8`` is ``setmaxnreg.inc 232``; ``USETMAXREG.DEALLOC.CTAPOOL 0x28`` is ``setmaxnreg.dec 40``).
    """
    return [int(v, 0) for v in _SETMAXREG.findall(sass_text)]
