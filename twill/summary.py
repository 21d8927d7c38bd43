"""What a schedule means in steady state: roles, buffers, hand-offs, utilization, throughput.

Plain data (dicts and lists) shared by the text report and the JSON output.
"""

from __future__ import annotations

from typing import Any

from twill.model.joint import crossing_register_values, depth, handoff_cost, layout, register_bytes
from twill.model.loop import Loop
from twill.model.schedule import Schedule

TMEM_BYTES_PER_COLUMN = 128 * 4  # 128 lanes of 32 bits


def role_names(loop: Loop, schedule: Schedule) -> dict[int, str]:
    """``producer`` for the variable-latency role, else ``wgN`` (warpgroup) or ``warpN``, by first op."""
    names, counts = {}, {"wg": 0, "warp": 0}
    for role in layout(loop, schedule).roles:
        if any(loop.ops[i].variable_latency for i in role.ops):
            names[role.id] = "producer"
            continue
        kind = "warp" if role.warps == 1 else "wg"
        names[role.id] = f"{kind}{counts[kind]}"
        counts[kind] += 1
    return names


def roles(loop: Loop, schedule: Schedule) -> list[dict[str, Any]]:
    names = role_names(loop, schedule)
    by_start = lambda i: (schedule.slot(i), schedule.starts[i])  # noqa: E731  (issue order in steady state)
    return [{"name": names[r.id], "warps": r.warps, "registers": r.registers, "setmaxnreg": r.setmaxnreg,
             "ops": [loop.ops[i].name for i in sorted(r.ops, key=by_start)]}
            for r in layout(loop, schedule).roles]


def buffers(loop: Loop, schedule: Schedule) -> list[dict[str, Any]]:
    """One ring per value in shared or tensor memory, plus staging for register values crossing roles."""
    rings = []
    for i, op in enumerate(loop.ops):
        d = depth(loop, schedule, i)
        if op.smem:
            rings.append({"value": op.name, "memory": "smem", "depth": d, "bytes": op.smem * d})
        if op.tmem:
            rings.append({"value": op.name, "memory": "tmem", "depth": d, "columns": op.tmem * d,
                          "bytes": op.tmem * d * TMEM_BYTES_PER_COLUMN})
    for i in crossing_register_values(loop, schedule.roles):
        d = depth(loop, schedule, i)
        rings.append({"value": loop.ops[i].name, "memory": "smem (register staging)", "depth": d,
                      "bytes": register_bytes(loop.ops[i]) * d})
    return rings


def handoffs(loop: Loop, schedule: Schedule) -> list[dict[str, Any]]:
    moves = []
    for e in loop.edges:
        if schedule.roles[e.src] == schedule.roles[e.dst]:
            continue
        nbytes = register_bytes(loop.ops[e.src])
        via = ("named barrier" if e.barrier == "named" else "mbarrier") + (f" + {nbytes} B via smem" if nbytes else "")
        moves.append({"src": loop.ops[e.src].name, "dst": loop.ops[e.dst].name, "via": via,
                      "cost": handoff_cost(loop, e)})
    return moves


def utilization(loop: Loop, schedule: Schedule) -> dict[str, float]:
    """Busy fraction of each unit (and, joint, each role's issue slot) in steady state."""
    busy = {unit: round(loop.usage(unit) / (cap * schedule.ii), 4)
            for unit, cap in loop.capacity.items() if loop.usage(unit)}
    if loop.joint:
        names = role_names(loop, schedule)
        for r in layout(loop, schedule).roles:
            issue = sum(loop.ops[i].issue for i in r.ops)
            busy[f"role {names[r.id]}"] = round(issue / schedule.ii, 4)
    return busy


def throughput(loop: Loop, schedule: Schedule) -> dict[str, float]:
    """Predicted steady-state throughput: one iteration per II cycles."""
    work = sum(op.work for op in loop.ops)
    return {"work_per_iteration": work, "work_per_cycle": round(work / schedule.ii, 3),
            "iterations_per_1000_cycles": round(1000 / schedule.ii, 4)}
