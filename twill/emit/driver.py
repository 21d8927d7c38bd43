"""One emit: lower the schedule, place it on the target, write the directory, compile or check it."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twill.emit.emit import compile_report, emitted_files, manifest, source_name, write_directory
from twill.emit.host import HostBuildError, TwinRun, build, run_twin
from twill.emit.kernel import TARGETS, EmitError, Kernel, build_kernel, default_target
from twill.emit.lower import lower
from twill.model.loader import Instance
from twill.model.schedule import Schedule
from twill.sim.functional import check_trips


@dataclass
class EmitResult:
    kernel: Kernel
    directory: Path
    manifest: dict[str, Any]
    problems: list[str] = field(default_factory=list)   # compile problems (exit 1)
    runs: list[TwinRun] = field(default_factory=list)    # host twin runs (--check)
    check_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.check_error is None and all(run.ok for run in self.runs)

    def json(self) -> dict[str, Any]:
        data = {"directory": str(self.directory), "ok": self.ok, "manifest": self.manifest,
                "problems": self.problems}
        if self.runs or self.check_error:
            data["check"] = {"error": self.check_error,
                             "runs": [{"trips": r.trips, "ok": r.ok, "max_error": r.max_error, "message": r.message,
                                       "seconds": round(r.seconds, 3)} for r in self.runs]}
        return data

    def text(self) -> str:
        m, k = self.manifest, self.kernel
        lines = [f"emitted {m['kernel']} ({m['target']}) to {self.directory}/: {m['source']}, manifest.json, "
                 f"{m['kernel']}.py" + (f", {m['cubin']}" if "compile" in m and not self.problems else ""),
                 f"  block {m['block'][0]} threads ({len(k.warpgroups)} warpgroups), grid {' x '.join(m['grid'])}, "
                 f"trip count {m['trip_count']}, dynamic shared memory {m['dynamic_smem']} bytes"
                 + (f", tensor memory {m['tmem']['columns']} columns" if m["tmem"]["columns"] else "")]
        for role in m["roles"]:
            lines.append(f"  role {role['id']}: warps {role['warps'][0]}..{role['warps'][1] - 1}, setmaxnreg "
                         f"{role['setmaxnreg']} (needs {role['needs']}): {', '.join(role['ops'])}")
        lines.append(f"  {len(m['barriers'])} mbarrier arrays, {sum(b['slots'] for b in m['barriers'])} mbarriers")
        if "compile" in m and "error" not in m["compile"]:
            c = m["compile"]
            classes = ", ".join(f"{name} {count}" for name, count in c["sass_classes"].items()
                                if name in SHOWN_SASS)
            lines.append(f"  compiled for {c['arch']} in {c['seconds']:.2f} s: {c['registers']} registers, spills "
                         f"{c['spill_stores']}/{c['spill_loads']} bytes, stack {c['stack']}, shared memory "
                         f"{c['smem_static']} static + {c['smem_dynamic']} dynamic"
                         + (f", setmaxnreg {c['setmaxnreg']}" if c["setmaxnreg"] else ""))
            lines.append(f"  SASS: {classes}")
            lines += [f"  ptxas: {code} {message}" for code, message in c["diagnostics"]]
        lines += [f"warning: {w}" for w in self.kernel.warnings]
        lines += [f"error: {p}" for p in self.problems]
        if self.check_error:
            lines.append(f"error: host check: {self.check_error}")
        for run in self.runs:
            verdict = f"max relative error {run.max_error:.2e}" if run.ok else f"FAILED: {run.message}"
            lines.append(f"  twin, {run.trips} k-blocks: {verdict} ({run.seconds:.2f} s)")
        if self.runs:
            lines.append("host check: " + ("passed" if all(r.ok for r in self.runs) else "FAILED"))
        return "\n".join(lines)


SHOWN_SASS = ("UTMALDG", "HGMMA", "UTCHMMA", "UTCBAR", "LDTM", "SYNCS", "USETMAXREG", "WARPGROUP", "MUFU")


def kernel_name(instance: Instance) -> str:
    return f"{instance.loop.name}_{instance.machine.name}".replace("-", "_")


def emit_kernel(instance: Instance, schedule: Schedule, proof: dict[str, Any], target: str | None, out: str, *,
                compile_: bool = False, check: bool = False, sanitize: bool = True, seed: int = 0,
                trips: list[int] | None = None) -> EmitResult:
    """Lower the schedule, lay it out for ``target``, write the directory; ``compile_`` runs NVRTC,
    ``check`` runs the host twin at ``trips`` loop iterations (default: the simulator's check_trips)."""
    target = target or default_target(instance)
    if target not in TARGETS:
        raise EmitError(f"unknown target {target!r} (choose from {', '.join(TARGETS)})", field="--target")
    if compile_ and target == "host":
        raise EmitError("--compile is for device targets; the host twin is built by --check", field="--compile")
    if check and target != "host":
        raise EmitError("--check runs the host twin: pass --target host", field="--check")
    kernel = build_kernel(instance, lower(instance.loop, schedule), target, kernel_name(instance))
    files: dict[str, Any] = emitted_files(kernel, proof)
    data = manifest(kernel, proof)
    problems: list[str] = []
    if compile_:
        report, cubin, problems = _compile(kernel, files[source_name(kernel)])
        data["compile"] = report
        files["manifest.json"] = json.dumps(data, indent=2) + "\n"
        if not problems:
            files[f"{kernel.name}.cubin"] = cubin
    directory = write_directory(out, files)
    result = EmitResult(kernel, directory, data, problems)
    if check:
        _check(result, sanitize, seed, trips)
    return result


def _compile(kernel: Kernel, source: str) -> tuple[dict[str, Any], bytes, list[str]]:
    from twill.emit import nvrtc

    if not nvrtc.nvrtc_available():
        raise EmitError("--compile needs NVRTC: pip install 'twill[cuda]'", field="--compile")
    try:
        return compile_report(kernel, source)
    except nvrtc.CompileError as error:
        return {"arch": kernel.target, "error": str(error)}, b"", [f"NVRTC: {str(error).splitlines()[0]}"]


def _check(result: EmitResult, sanitize: bool, seed: int, trips: list[int] | None) -> None:
    kernel = result.kernel
    with tempfile.TemporaryDirectory() as tmp:
        try:
            binary = build(result.directory, source_name(kernel), Path(tmp) / "twin", sanitize)
        except HostBuildError as error:
            result.check_error = str(error)
            return
        result.runs = [run_twin(kernel, binary, n, seed=seed, delay_seed=seed)
                       for n in (trips if trips is not None else check_trips(kernel.program))]
