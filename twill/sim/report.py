"""``twill simulate``: the report of a run as text and as JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from twill.sim.checks import KINDS
from twill.sim.engine import SimResult


def _how(r: SimResult) -> str:
    jitter = f", TMA latency jitter {r.latency_jitter:g} (seed {r.seed})" if r.latency_jitter else ", fixed latencies"
    return f"{r.trace.trips} iterations, {r.issue} issue{jitter}"


def render_simulation(r: SimResult) -> str:
    p = r.trace.program
    lines = [f"simulated {p.loop.name}: {_how(r)}; {r.total_cycles} cycles in all"]
    if r.cycles_per_iteration is None:
        lines.append(f"steady state: not measured (needs a complete run of at least 4 iterations); II {p.ii}")
    else:
        lines.append(f"steady state: {r.cycles_per_iteration:.1f} cycles per iteration against II {p.ii} "
                     f"(ratio {r.ratio:.4f})")
    lines.append("units (busy unit-cycles / capacity x cycles): "
                 + ", ".join(f"{u} {share:.0%}" for u, share in sorted(r.utilization.items())))
    lines.append("roles (issue-busy share): " + ", ".join(f"role {role} {share:.0%}"
                                                         for role, share in sorted(r.role_busy.items())))
    for kind in KINDS:
        found = [f for f in r.findings if f.kind == kind]
        lines.append(f"check {kind}: " + (f"FAILED ({len(found)})" if found else "passed"))
        lines += [f"  {f.message}" for f in found[:10]]
        if len(found) > 10:
            lines.append(f"  ... and {len(found) - 10} more")
    return "\n".join(lines)


def simulation_json(r: SimResult) -> dict[str, Any]:
    p = r.trace.program
    ops = p.loop.ops
    return {
        "name": p.loop.name, "ii": p.ii, "trips": r.trace.trips, "issue": r.issue,
        "latency_jitter": r.latency_jitter, "seed": r.seed, "ok": r.ok, "total_cycles": r.total_cycles,
        "cycles_per_iteration": r.cycles_per_iteration, "ratio": r.ratio,
        "op_cycles": {ops[v].name: c for v, c in r.op_cycles.items()},
        "utilization": r.utilization, "role_busy": {str(k): v for k, v in r.role_busy.items()},
        "findings": [asdict(f) for f in r.findings],
        "events": [asdict(e) | {"op": ops[e.op].name} for e in r.trace.events],
    }
