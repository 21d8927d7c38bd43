"""Render the time-indexed baseline's answer (the Twill paper's encoding), text and JSON."""

from __future__ import annotations

from typing import Any

from twill.report import columns, render_ops
from twill.solver.timeindexed import TimeIndexedResult

CAVEAT = ("normalized costs (U = 300) and Alg. 1's search (one stage count per II): the first feasible "
          "II of the normalized problem, not a proof for real cycles")


def render_time_indexed(result: TimeIndexedResult, show_time: bool) -> str:
    norm, loop = result.normalized, result.normalized.loop
    took = f", {result.seconds:.2f} s" if show_time else ""
    if result.schedule is None:
        head = f"{loop.name}: time-indexed encoding: {result.status}, no schedule{took}"
    else:
        head = (f"{loop.name}: time-indexed encoding: II = {result.ii} normalized units "
                f"(about {result.real_ii} cycles), length {result.length}{took}")
    parts = [head, f"  {CAVEAT}",
             f"normalization: {norm.scale:.2f} cycles per unit, largest ratio error {norm.error}"
             f"{'' if norm.optimal else ' (not proven minimal)'}"]
    rows = [[f"II {s.ii}", "modulo schedule" if s.length is None else f"SWP-AND-WS at L {s.length}", s.result]
            + ([f"{s.seconds:.2f} s"] if show_time else []) for s in result.steps]
    if rows:
        parts.append("steps\n" + columns(rows, "  "))
    if result.schedule is not None:
        parts.append(render_ops(loop, result.schedule))
    return "\n\n".join(parts)


def time_indexed_json(result: TimeIndexedResult, show_time: bool) -> dict[str, Any]:
    norm, s = result.normalized, result.schedule
    return {
        "name": norm.loop.name,
        "encoding": "time-indexed",
        "status": result.status,
        "optimal": False,
        "caveat": CAVEAT,
        "ii_normalized": result.ii,
        "ii_cycles_estimate": result.real_ii,
        "length_normalized": result.length,
        "scale": norm.scale,
        "steps": [{"ii": x.ii, "length": x.length, "result": x.result} for x in result.steps],
        "ops": {op.name: {"start": s.starts[i]} | ({"role": s.roles[i]} if s.roles else {})
                for i, op in enumerate(norm.loop.ops)} if s else {},
        "solve_seconds": round(result.seconds, 3) if show_time else None,
    }
