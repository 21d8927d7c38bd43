"""``twill emit --target host --check``: build the C++ twin and run it against NumPy (docs/emit.md).

The twin is compiled with the system C++ compiler (``CXX``, default ``g++``), optionally under
ThreadSanitizer, and run for the trip counts of the simulator's functional check (0, 1, 2,
stages - 1, stages, 64) on random inputs. A run fails on a wrong result, a sanitizer report, a
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
RUN_SECONDS = 300                # a run this long is a timeout


class HostBuildError(RuntimeError):
    pass


@dataclass
class TwinRun:
    trips: int
    ok: bool
    max_error: float             # max |twin - reference| / max(1, max |reference|)
    message: str
    seconds: float


def check_trips(kernel: Kernel) -> list[int]:
    stages = kernel.program.schedule.stages
    return sorted({0, 1, 2, max(stages - 1, 0), stages, 64})


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


def run_twin(kernel: Kernel, binary: Path, trips: int, *, seed: int = 0, delay_seed: int = 0,
             m: int | None = None, n: int | None = None) -> TwinRun:
    """One run of the twin at ``trips`` k-blocks, checked against the family's NumPy reference."""
    family = kernel.family
    m = m or 2 * family.block_m
    n = n or family.block_n
    k = trips * family.block_k
    inputs = family.inputs(np.random.default_rng(seed + trips), m, n, k)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / f"{name}.bin" for name in ("A", "B", "C")}
        to_bits(inputs["A"], family.dtype).tofile(paths["A"])
        to_bits(inputs["B"], family.dtype).tofile(paths["B"])
        command = [str(binary), str(m), str(n), str(k), str(paths["A"]), str(paths["B"]), str(paths["C"]),
                   str(DEADLOCK_SECONDS), str(delay_seed)]
        env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1")
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_SECONDS, env=env)
        except subprocess.TimeoutExpired:
            return TwinRun(trips, False, float("nan"), f"timeout after {RUN_SECONDS} s", RUN_SECONDS)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or "ThreadSanitizer" in done.stderr:
            return TwinRun(trips, False, float("nan"), _failure(done), seconds)
        got = np.fromfile(paths["C"], dtype=np.float32).reshape(m, n)
    want = family.reference(inputs)["C"]
    error = float(np.max(np.abs(got - want), initial=0.0) / max(1.0, float(np.max(np.abs(want), initial=0.0))))
    tolerance = 1e-5 * max(1, k // 64)
    ok = error <= tolerance
    return TwinRun(trips, ok, error, "" if ok else f"max relative error {error:.3g} > {tolerance:.1g}", seconds)


def _failure(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    if done.returncode == 3:
        return next((line for line in lines if line.startswith("deadlock")), "deadlock")
    race = next((line.strip() for line in lines if "WARNING: ThreadSanitizer" in line), None)
    if race:
        return f"sanitizer: {race.removeprefix('WARNING: ')}"
    return f"exit {done.returncode}: {lines[-1] if lines else ''}"
