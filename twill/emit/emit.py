"""``twill emit``: render a kernel through the one skeleton and write its directory (docs/emit.md).

The directory holds the source (``<name>.cu``, or ``<name>.cpp`` plus the twin runtime for the host),
``manifest.json`` and the launcher ``<name>.py``. It is written to a temporary sibling and renamed
into place, so a failed emit never leaves a half-written directory behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jinja2

from twill.emit.kernel import ARCH, EmitError, Kernel, smem_capacity

TEMPLATES = Path(__file__).parent / "templates"
RUNTIME = {"host": ("host_runtime.hpp",), "sm90a": ("ptx_common.cuh", "ptx_sm90a.cuh"),
           "sm100a": ("ptx_common.cuh", "ptx_sm100a.cuh")}


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def source_name(kernel: Kernel) -> str:
    return f"{kernel.name}.{'cpp' if kernel.target == 'host' else 'cu'}"


def render_source(kernel: Kernel) -> str:
    """The kernel's C++ source; device targets inline their PTX primitives so the file stands alone."""
    env = environment()
    lines = [line.rstrip() for line in
             env.get_template("kernel.j2").render(k=kernel, target_template=f"{kernel.target}.j2").splitlines()]
    # the macros' own line breaks leave blank lines inside function bodies: drop those
    kept = [line for n, line in enumerate(lines)
            if line or not next((later for later in lines[n + 1:] if later), "").startswith(" ")]
    text = "\n".join(line for n, line in enumerate(kept) if line or n == 0 or kept[n - 1]) + "\n"
    if kernel.target != "host":
        runtime = "\n".join((TEMPLATES / name).read_text() for name in RUNTIME[kernel.target])
        text = text.replace("// @primitives\n", runtime + "\n", 1)
    return text


def wgmma_wrapper(n: int, dtype: str, form: str = "ss", b_mn_major: bool = False) -> str:
    """The sm90a wgmma.mma_async wrapper for one (n, dtype, form, B major-ness), as the kernels get it."""
    return environment().from_string('{% import "wgmma.j2" as W %}{{ W.wgmma(n, dtype, form, mn) }}').render(
        n=n, dtype=dtype, form=form, mn=b_mn_major)


def render_launcher(kernel: Kernel) -> str:
    return environment().get_template("launcher.py.j2").render(kernel=kernel.name)


def manifest(kernel: Kernel, schedule_info: dict[str, Any]) -> dict[str, Any]:
    family, program = kernel.family, kernel.program
    return {
        "format": 1,
        "kernel": kernel.name,
        "spec": kernel.instance.loop.name,
        "machine": kernel.instance.machine.name,
        "target": kernel.target,
        "arch": ARCH.get(kernel.target),
        "source": source_name(kernel),
        "cubin": None if kernel.target == "host" else f"{kernel.name}.cubin",
        "params": kernel.params,
        "block": [kernel.threads, 1, 1],
        "grid": list(family.grid),
        "trip_count": family.trip_count,
        "dynamic_smem": kernel.dynamic_smem,
        "roles": [{"id": rc.role.id, "warps": list(rc.warps), "setmaxnreg": rc.role.setmaxnreg,
                   "needs": rc.role.registers, "ops": [s.step.name for s in rc.steps]} for rc in kernel.roles],
        "warpgroups": [{"warps": [g.first_warp, g.first_warp + 4], "setmaxnreg": g.setmaxnreg,
                        "roles": [rc.role.id for rc in g.roles]} for g in kernel.warpgroups],
        "setmaxnreg": kernel.uses_setmaxnreg,
        "smem": [b.manifest() for b in kernel.buffers],
        "tmem": {"columns": kernel.tmem_columns, "map": kernel.tmem_map},
        "barriers": [{"channel": ring.channel.name, "barrier": barrier, "slots": ring.channel.depth,
                      "arrivals": 1 if barrier == "full" else ring.channel.empty_arrivals,
                      "tx_bytes": ring.channel.tx_bytes if barrier == "full" else 0,
                      "offset": ring.full if barrier == "full" else ring.empty}
                     for ring in kernel.rings for barrier in ("full", "empty")]
                    + ([{"channel": "accumulators", "barrier": "full", "slots": 1, "arrivals": kernel.acc_arrivals, "tx_bytes": 0,
                         "offset": kernel.acc_barrier}] if kernel.acc_barrier is not None else []),
        "arguments": [a.manifest() for a in family.arguments],
        "size_rules": family.size_rules,
        "schedule": {"ii": program.ii, "stages": program.schedule.stages, **schedule_info},
        **({"warnings": kernel.warnings} if kernel.warnings else {}),
    }


def write_directory(out: str, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` into ``out`` atomically: a temporary sibling, renamed over ``out``."""
    target = Path(out)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise EmitError(f"cannot write: {exc.strerror}", file=out, field="-o") from None
    try:
        for name, content in files.items():
            path = staging / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        if target.exists():
            if not target.is_dir():
                raise EmitError("exists and is not a directory", file=out, field="-o")
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as exc:
        raise EmitError(f"cannot write: {exc.strerror}", file=out, field="-o") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def emitted_files(kernel: Kernel, schedule_info: dict[str, Any]) -> dict[str, str]:
    files = {source_name(kernel): render_source(kernel),
             "manifest.json": json.dumps(manifest(kernel, schedule_info), indent=2) + "\n",
             f"{kernel.name}.py": render_launcher(kernel)}
    if kernel.target == "host":
        files["host_runtime.hpp"] = (TEMPLATES / "host_runtime.hpp").read_text()
    return files


FATAL_DIAGNOSTICS = ("serialized", "ignored", "injected")   # C75xx lines that mean the schedule is not what runs


def compile_report(kernel: Kernel, source: str) -> tuple[dict[str, Any], bytes, list[str]]:
    """NVRTC the source to a cubin and read ptxas' numbers and the SASS; the problems that make the
    kernel unusable as scheduled (spills, stack, a serialized/ignored C75xx diagnostic, shared memory
    over the machine's limit) come back as one-line messages."""
    from twill.emit import nvrtc

    result = nvrtc.compile_cuda(source, ARCH[kernel.target], name=source_name(kernel))
    report = {**result.summary(kernel.name), "smem_dynamic": kernel.dynamic_smem}
    problems = []
    if report["spill_stores"] or report["spill_loads"]:
        problems.append(f"ptxas spills {report['spill_stores']} bytes stored, {report['spill_loads']} loaded")
    if report["stack"]:
        problems.append(f"ptxas uses a {report['stack']}-byte stack frame")
    problems += [f"ptxas {code}: {message}" for code, message in result.diagnostics
                 if any(word in message for word in FATAL_DIAGNOSTICS)]
    limit = smem_capacity(kernel.instance)
    if report["smem_static"] + kernel.dynamic_smem > limit:
        problems.append(f"shared memory {report['smem_static']} static + {kernel.dynamic_smem} dynamic bytes exceeds "
                        f"the machine's {limit}")
    return report, result.cubin, problems
