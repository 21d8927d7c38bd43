"""``twill emit --target host --check``: build the C++ twin and run it against NumPy (docs/emit.md).

The twin is compiled with the system C++ compiler (``CXX``, default ``g++``), optionally under
ThreadSanitizer, and run for the trip counts of the simulator's functional check (0, 1, 2,
stages - 1, stages, 5, 64: the simulator's ``check_trips``) on random inputs. A run fails on a wrong result, a sanitizer report, a
deadlock (the twin names the role and barrier) or a timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twill.emit.families import to_bits
from twill.emit.kernel import Kernel

DEADLOCK_SECONDS = 10.0          # a wait this long in the twin is a deadlock (exit 3)
RUN_SECONDS = 900                # a run this long is a timeout (a stuck wait is a deadlock after DEADLOCK_SECONDS)


class HostBuildError(RuntimeError):
    pass


@dataclass
class TwinRun:
    trips: int
    ok: bool
    max_error: float             # max |twin - reference| / max(1, max |reference|)
    message: str
    seconds: float


def build(source_dir: Path, source: str, out: Path, sanitize: bool) -> Path:
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise HostBuildError(f"no C++ compiler {compiler!r} (set CXX)")
    flags = ["-std=c++17", "-pthread", "-g"] + (["-O1", "-fsanitize=thread"] if sanitize else ["-O2"])
    command = [compiler, *flags, "-I", str(source_dir), str(source_dir / source), "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise HostBuildError(f"{compiler} failed:\n{done.stderr.strip()[:4000]}")
    return out


def run_twin(kernel: Kernel, binary: Path, trips: int, *, seed: int = 0, delay_seed: int = 0) -> TwinRun:
    """One run of the twin over ``trips`` loop iterations (the family picks the sizes), checked
    against the family's NumPy reference: the largest error over the outputs, relative to
    max(1, max |reference|); equal infinities (FA's log-sum-exp of an empty row) count as exact."""
    family = kernel.family
    sizes = family.twin_sizes(trips)
    names = {**sizes, **family.constants}
    inputs = family.inputs(np.random.default_rng(seed + trips), sizes)
    outputs = [a for a in family.arguments if a.kind == "output"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {a.name: Path(tmp) / f"{a.name}.bin" for a in family.arguments if a.kind != "int"}
        for a in family.arguments:
            if a.kind == "tensor_map":
                to_bits(inputs[a.name], family.dtype).tofile(paths[a.name])
            elif a.kind == "input":
                inputs[a.name].astype(np.float32).tofile(paths[a.name])
        command = [str(binary), *(str(sizes[a.name]) for a in family.arguments if a.kind == "int"),
                   *(str(paths[a.name]) for a in family.arguments if a.kind == "tensor_map"),
                   *(str(paths[a.name]) for a in family.arguments if a.kind == "input"),
                   *(str(paths[a.name]) for a in outputs), str(DEADLOCK_SECONDS), str(delay_seed)]
        env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1")
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_SECONDS, env=env)
        except subprocess.TimeoutExpired:
            return TwinRun(trips, False, float("nan"), f"timeout after {RUN_SECONDS} s", RUN_SECONDS)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or "ThreadSanitizer" in done.stderr:
            return TwinRun(trips, False, float("nan"), _failure(done), seconds)
        got = {a.name: np.fromfile(paths[a.name], dtype=np.float32).reshape([names[d] for d in a.shape])
               for a in outputs}
    want = family.reference(inputs, sizes)
    error = max((_error(got[name], want[name]) for name in got), default=0.0)
    tolerance = family.tolerance_for(trips)
    ok = error <= tolerance
    return TwinRun(trips, ok, error, "" if ok else f"max relative error {error:.3g} > {tolerance:.1g}", seconds)


def _error(got: np.ndarray, want: np.ndarray) -> float:
    """Max |got - want| over max(1, max |finite want|); equal values (infinities included) differ by 0,
    a NaN (an output never written) makes the error NaN, which no tolerance admits."""
    same = got == want
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(got.astype(np.float64) - want))
    finite = want[np.isfinite(want)]
    return float(np.max(diff, initial=0.0) / max(1.0, float(np.max(np.abs(finite), initial=0.0))))


def _failure(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    if done.returncode == 3:
        return next((line for line in lines if line.startswith("deadlock")), "deadlock")
    race = next((line.strip() for line in lines if "WARNING: ThreadSanitizer" in line), None)
    if race:
        return f"sanitizer: {race.removeprefix('WARNING: ')}"
    return f"exit {done.returncode}: {lines[-1] if lines else ''}"
