"""What a run of a pipeline program did: one event per op instance (docs/pipeline.md).

The simulator produces traces; the functional executor and the timeline picture consume them.
``timetable`` is the trace the schedule itself promises (every instance at t(v) + i II), the
reference a simulation with fixed latencies must reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass

from twill.emit.program import Program


@dataclass(frozen=True)
class Event:
    role: int
    op: int
    iteration: int
    issue: int       # cycle the role issued it (its unit reservations start from here)
    complete: int    # cycle its result is ready and its units are released


@dataclass(frozen=True)
class Trace:
    program: Program
    trips: int
    events: tuple[Event, ...]  # sorted by issue cycle


def timetable(program: Program, trips: int) -> Trace:
    """The schedule's own timing: op v of iteration i issues at t(v) + i II."""
    s, ops = program.schedule, program.loop.ops
    events = [Event(s.roles[step.op], step.op, i, s.starts[step.op] + i * s.ii,
                    s.starts[step.op] + i * s.ii + ops[step.op].duration)
              for role in program.roles for _, step, i in program.instances(role, trips)]
    return Trace(program, trips, tuple(sorted(events, key=lambda e: (e.issue, e.role))))
