"""What every solver backend answers: one query about one II."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from twill.model.loop import Loop
from twill.model.schedule import Schedule

# Pure modulo scheduling minimizes length then stages; the joint problem handoff_bytes, length,
# ring_slots, roles (docs/joint-model.md). Values: twill.model.objectives.objective_value.
Objective = Literal["length", "stages", "handoff_bytes", "ring_slots", "roles"]
Status = Literal["optimal", "feasible", "infeasible", "unknown"]


@dataclass(frozen=True)
class Query:
    """Find a schedule at ``ii`` minimizing ``objective``, with each objective in ``limits`` at most its value."""

    ii: int
    objective: Objective
    limits: tuple[tuple[Objective, int], ...] = ()
    hint: Schedule | None = None


@dataclass(frozen=True)
class Outcome:
    status: Status      # "optimal": the objective is proven minimal; "infeasible": no schedule at this II
    schedule: Schedule | None
    value: int | None   # objective value of ``schedule``
    bound: int | None   # proven lower bound on the objective (None if nothing was proven)
    work: float         # seconds used (deterministic seconds in deterministic mode)
    stage_bound: int    # the largest stage index the model allowed (complete by bounds.stage_bound)


@dataclass(frozen=True)
class Settings:
    """Solver settings shared by all backends. Deterministic: one worker, fixed seed, work-based limits."""

    deterministic: bool = False
    workers: int = 0     # 0: all cores
    seed: int = 0


class Backend(Protocol):
    name: str

    def solve(self, loop: Loop, query: Query, seconds: float | None) -> Outcome: ...
