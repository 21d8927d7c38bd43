"""The independent verifier: checks a schedule against the loop, using no solver and no solver variables."""

from __future__ import annotations

from dataclasses import dataclass

from twill.model.joint import handoff_cost
from twill.model.loop import Loop
from twill.model.schedule import Schedule
from twill.solver.verify_joint import verify_joint


@dataclass(frozen=True)
class Violation:
    constraint: str  # "ii" | "start" | "dependence" | "resource" | a joint rule (verify_joint.py)
    message: str


def unit_load(loop: Loop, schedule: Schedule, unit: str) -> list[list[tuple[int, int]]]:
    """Per slot of the modulo reservation table, the (op, amount) pairs holding ``unit``."""
    ii = schedule.ii
    table: list[list[tuple[int, int]]] = [[] for _ in range(ii)]
    for op_index, (start, op) in enumerate(zip(schedule.starts, loop.ops)):
        for res in op.reservations:
            if res.unit != unit:
                continue
            cycles = min(res.cycles, ii)
            wraps, rest = divmod(res.cycles, ii)
            for k in range(cycles):
                amount = res.amount * (wraps + (1 if k < rest else 0))
                table[(start + res.offset + k) % ii].append((op_index, amount))
    return table


def verify(loop: Loop, schedule: Schedule) -> list[Violation]:
    """Every violated constraint of ``schedule``; an empty list means the schedule is valid."""
    ii = schedule.ii
    if not isinstance(ii, int) or ii < 1:
        return [Violation("ii", f"II must be a positive integer, got {ii!r}")]
    if len(schedule.starts) != len(loop.ops):
        return [Violation("start", f"{len(schedule.starts)} starts for {len(loop.ops)} ops")]
    violations = []
    for op, start in zip(loop.ops, schedule.starts):
        if not isinstance(start, int) or start < 0:
            violations.append(Violation("start", f"op {op.name}: start must be an integer >= 0, got {start!r}"))
    if violations:
        return violations
    joint = [Violation(c, m) for c, m in verify_joint(loop, schedule)] if loop.joint else []
    if joint and joint[0].constraint == "role":
        return joint
    t = schedule.starts
    for e in loop.edges:
        crosses = loop.joint and schedule.roles[e.src] != schedule.roles[e.dst]
        needed = e.delay + (handoff_cost(loop, e) if crosses else 0) - ii * e.distance
        if t[e.dst] - t[e.src] < needed:
            violations.append(Violation(
                "dependence",
                f"edge {loop.edge_text(e)}: t({loop.ops[e.dst].name}) - t({loop.ops[e.src].name}) = "
                f"{t[e.dst] - t[e.src]} < {needed} at II {ii}{' with the cross-role hand-off' if crosses else ''}"))
    for unit, capacity in loop.capacity.items():
        for slot, holders in enumerate(unit_load(loop, schedule, unit)):
            used = sum(amount for _, amount in holders)
            if used > capacity:
                names = ", ".join(sorted({loop.ops[i].name for i, _ in holders}))
                violations.append(Violation(
                    "resource", f"unit {unit} at slot {slot} of II {ii}: {names} use {used} of {capacity}"))
    return violations + joint
