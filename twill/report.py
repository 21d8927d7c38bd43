"""Render bounds, search results and verification verdicts: readable text and the JSON contract."""

from __future__ import annotations

from typing import Any

from twill import summary
from twill.model.loop import Loop
from twill.model.schedule import Schedule
from twill.solver.bounds import Bounds
from twill.solver.search import SearchResult
from twill.solver.verify import unit_load

# Above this II the reservation table is printed as runs of slots instead of one column per slot.
MAX_TABLE_COLUMNS = 16


def columns(rows: list[list[str]], indent: str = "") -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def render_bounds(loop: Loop, bounds: Bounds) -> str:
    per_unit = ", ".join(f"{u.unit} {u.usage}/{u.capacity} -> {u.ii}" for u in bounds.units) or "none"
    binding = bounds.binding_unit.explain() if bounds.binding_unit else "no op uses a unit"
    recurrence = bounds.recurrence.explain() if bounds.recurrence else "no recurrence with positive delay"
    units = " ".join(f"{unit}={cap}" for unit, cap in loop.capacity.items())
    w = loop.warps
    kind = (f"\njoint problem: roles on at most {w.max_warps} warps (warpgroups of {w.warpgroup}), "
            f"smem {w.smem} B, tmem {w.tmem} columns, cross-role register values "
            f"{'allowed' if w.cross_role else 'banned'}") if w else ""
    return f"{loop.name}: {len(loop.ops)} ops, {len(loop.edges)} edges; units {units}{kind}\n" + columns([
        ["ResMII", f"{bounds.res_mii}  {binding}  (per unit: {per_unit})"],
        ["RecMII", f"{bounds.rec_mii}  {recurrence}"],
        ["MII", str(bounds.mii)],
    ])


def _cell(loop: Loop, holders: list[tuple[int, int]]) -> str:
    names = [loop.ops[i].name + (f"*{amount}" if amount > 1 else "") for i, amount in holders]
    return ",".join(names) if names else "."


def render_reservation_table(loop: Loop, schedule: Schedule) -> str:
    ii = schedule.ii
    units = [u for u in loop.capacity if loop.usage(u) > 0]
    if not units:
        return f"modulo reservation table (II = {ii}): no op uses a unit"
    loads = {u: [_cell(loop, h) for h in unit_load(loop, schedule, u)] for u in units}
    if ii <= MAX_TABLE_COLUMNS:
        rows = [["unit"] + [f"slot {s}" for s in range(ii)]] + [[u] + loads[u] for u in units]
        return f"modulo reservation table (II = {ii})\n" + columns(rows)
    lines = [f"modulo reservation table (II = {ii}), as runs of slots [from, to)"]
    for u in units:
        runs, begin = [], 0
        for s in range(1, ii + 1):
            if s == ii or loads[u][s] != loads[u][begin]:
                runs.append(f"[{begin},{s}) {loads[u][begin]}")
                begin = s
        lines.append(f"{u}: " + "  ".join(runs))
    return "\n".join(lines)


def render_ops(loop: Loop, schedule: Schedule) -> str:
    names = summary.role_names(loop, schedule) if loop.joint else {}
    rows = [["op", "start", "stage", "slot"] + (["role"] if loop.joint else [])]
    rows += [[op.name, str(schedule.starts[i]), str(schedule.stage(i)), str(schedule.slot(i))]
             + ([names[schedule.roles[i]]] if loop.joint else []) for i, op in enumerate(loop.ops)]
    return columns(rows)


def render_steady_state(loop: Loop, schedule: Schedule) -> str:
    """Roles, buffers and hand-offs (joint problems), then utilization and throughput."""
    parts = []
    if loop.joint:
        rows = [["role", "warps", "registers", "setmaxnreg", "ops (issue order)"]]
        rows += [[r["name"], str(r["warps"]), str(r["registers"]), str(r["setmaxnreg"]), " ".join(r["ops"])]
                 for r in summary.roles(loop, schedule)]
        parts.append(columns(rows))
        rings = summary.buffers(loop, schedule)
        rows = [["buffer", "memory", "depth", "bytes"]] + [
            [b["value"], b["memory"], str(b["depth"]), str(b["bytes"])] for b in rings]
        parts.append(columns(rows) if rings else "buffers: none")
        moves = summary.handoffs(loop, schedule)
        rows = [["hand-off", "via", "cycles"]] + [[f"{h['src']} -> {h['dst']}", h["via"], str(h["cost"])]
                                                  for h in moves]
        parts.append(columns(rows) if moves else "hand-offs: none (no edge crosses roles)")
    busy = ", ".join(f"{name} {100 * share:.0f}%" for name, share in summary.utilization(loop, schedule).items())
    rate = summary.throughput(loop, schedule)
    work = f"{rate['work_per_cycle']} work/cycle, " if rate["work_per_iteration"] else ""
    parts.append(f"steady state: {busy or 'no unit used'}; {work}"
                 f"{rate['iterations_per_1000_cycles']} iterations per 1000 cycles")
    return "\n\n".join(parts)


def _proof_rows(result: SearchResult) -> list[list[str]]:
    rows = []
    for step in result.proof:
        iis = f"II {step.ii}" if step.ii == step.through else f"II {step.ii}..{step.through}"
        rows.append([iis, step.result, step.by, step.detail])
    return rows


def runs(values: list[int]) -> list[tuple[int, int]]:
    """Sorted integers as maximal runs of consecutive values (first, last)."""
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def headline(result: SearchResult, show_time: bool) -> str:
    took = f", {result.seconds:.2f} s" if show_time else ""
    name, s = result.loop.name, result.schedule
    if result.status == "optimal":
        return f"{name}: II = {s.ii}, optimal ({result.backend}{took})"
    if result.status == "feasible":
        undecided = ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in runs(result.undecided))
        return (f"{name}: II = {s.ii}, NOT proven optimal: II {undecided} undecided within the time limit; "
                f"proven lower bound II >= {result.lower_bound} ({result.backend}{took})")
    if result.status == "infeasible":
        return f"{name}: no schedule exists at any II ({result.backend}{took})"
    return (f"{name}: no schedule found within the time limit; proven lower bound II >= "
            f"{result.lower_bound} ({result.backend}{took})")


def render_search(result: SearchResult, show_time: bool = True) -> str:
    loop, s = result.loop, result.schedule
    parts = [headline(result, show_time), "", render_bounds(loop, result.bounds), "",
             "proof\n" + columns(_proof_rows(result), "  ")]
    if s is not None:
        levels = [f"{o.name} {o.value} ({'minimal' if o.optimal else f'best found; lower bound {o.bound}'})"
                  for o in result.objectives]
        parts += ["at II " + str(s.ii) + ": " + ", ".join(levels), "",
                  render_reservation_table(loop, s), "", render_ops(loop, s), "", render_steady_state(loop, s)]
    return "\n".join(parts)


def _ops_json(loop: Loop, s: Schedule) -> dict[str, Any]:
    names = summary.role_names(loop, s) if loop.joint else {}
    return {op.name: {"start": s.starts[i], "stage": s.stage(i), "slot": s.slot(i)}
            | ({"role": names[s.roles[i]]} if loop.joint else {}) for i, op in enumerate(loop.ops)}


def search_json(result: SearchResult, show_time: bool = True) -> dict[str, Any]:
    """The stable JSON contract (keys are only ever added, never renamed)."""
    loop, bounds, s = result.loop, result.bounds, result.schedule
    return {
        "name": loop.name,
        "status": result.status,
        "ii": s.ii if s else None,
        "optimal": result.optimal,
        "mii": bounds.mii,
        "res_mii": bounds.res_mii,
        "rec_mii": bounds.rec_mii,
        "proof": [{"ii": p.ii, "through": p.through, "result": p.result, "by": p.by, "detail": p.detail}
                  for p in result.proof],
        "length": s.length(loop) if s else None,
        "stages": s.stages if s else None,
        "ops": _ops_json(loop, s) if s else {},
        "solve_seconds": round(result.seconds, 3) if show_time else None,
        "backend": result.backend,
        "lower_bound": result.lower_bound,
        "undecided": result.undecided,
        "objectives": {o.name: {"value": o.value, "optimal": o.optimal, "bound": o.bound}
                       for o in result.objectives},
        "res_mii_unit": bounds.binding_unit.unit if bounds.binding_unit and bounds.res_mii else None,
        "rec_mii_cycle": list(bounds.recurrence.ops) if bounds.recurrence else None,
        "roles": summary.roles(loop, s) if s and loop.joint else None,
        "buffers": summary.buffers(loop, s) if s and loop.joint else [],
        "handoffs": summary.handoffs(loop, s) if s and loop.joint else [],
        "utilization": summary.utilization(loop, s) if s else {},
        "throughput": summary.throughput(loop, s) if s else None,
    }
