"""The value of each objective for a schedule (docs/joint-model.md, "Objectives")."""

from __future__ import annotations

from twill.model.joint import crossing_register_values, depth, register_bytes
from twill.model.loop import Loop
from twill.model.schedule import Schedule

PURE_LEVELS = ("length", "stages")
JOINT_LEVELS = ("handoff_bytes", "length", "ring_slots", "roles")


def levels(loop: Loop) -> tuple[str, ...]:
    """Objectives minimized after II, in order."""
    return JOINT_LEVELS if loop.joint else PURE_LEVELS


def objective_value(loop: Loop, schedule: Schedule, name: str) -> int:
    if name == "length":
        return schedule.length(loop)
    if name == "stages":
        return schedule.stages
    if name == "handoff_bytes":
        return sum(register_bytes(loop.ops[i]) for i in crossing_register_values(loop, schedule.roles))
    if name == "ring_slots":
        return sum(depth(loop, schedule, i) for i, op in enumerate(loop.ops) if op.smem or op.tmem)
    if name == "roles":
        return len(set(schedule.roles))
    raise ValueError(f"unknown objective {name!r}")
