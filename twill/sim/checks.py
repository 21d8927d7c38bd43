"""What the simulator checks on a run's trace, independently of how the program synchronizes:

* read before arrival: for every edge u -> v (distance d), v(i) issues no earlier than u(i - d)'s
  issue + the edge's delay (with u's drawn latency in place of its nominal one) + the hand-off
  latency when the roles differ;
* slot overwritten before released: when u(q) writes item q of a ring of D slots, every consumer
  of item q - D has released it (issued, for a self edge or ``release: issue``; completed otherwise);
* resources: the roles' register allocation, warps, shared and tensor memory within the machine.

Deadlocks are found while running (twill/sim/engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from twill.emit.program import Program
from twill.model.joint import THREADS_PER_WARP, ceil_div, handoff_cost, held_after_issue
from twill.model.loop import Dependence
from twill.sim.trace import Event, Trace

KINDS = ("deadlock", "read-before-arrival", "overwrite", "resources")


@dataclass(frozen=True)
class Finding:
    kind: str                   # one of KINDS
    message: str
    role: int | None = None
    op: int | None = None
    iteration: int | None = None
    cycle: int | None = None


@dataclass(frozen=True)
class Run:
    trace: Trace
    latencies: dict[tuple[int, int], int]   # drawn latencies of variable-latency instances


def check(run: Run) -> list[Finding]:
    return read_before_arrival(run) + overwrites(run.trace) + resources(run.trace.program)


def _index(trace: Trace) -> dict[tuple[int, int], Event]:
    return {(e.op, e.iteration): e for e in trace.events}


def read_before_arrival(run: Run) -> list[Finding]:
    trace = run.trace
    loop, roles = trace.program.loop, trace.program.schedule.roles
    ran, found = _index(trace), []
    for e in loop.edges:
        handoff = handoff_cost(loop, e) if roles[e.src] != roles[e.dst] else 0
        for i in range(max(0, e.distance), trace.trips):
            v, u = ran.get((e.dst, i)), ran.get((e.src, i - e.distance))
            if v is None:
                continue
            src = f"{loop.ops[e.src].name} (iteration {i - e.distance})"
            if u is None:
                arrives, why = None, "which never issued"
            else:
                extra = run.latencies.get((e.src, i - e.distance), loop.ops[e.src].latency) - loop.ops[e.src].latency
                arrives = u.issue + e.delay + extra + handoff
                why = f"ready at {arrives}: issue {u.issue} + delay {e.delay + extra}" + \
                      (f" + hand-off {handoff}" if handoff else "")
            if arrives is None or v.issue < arrives:
                found.append(Finding("read-before-arrival", f"{loop.ops[e.dst].name} (iteration {i}) issued at "
                                                            f"{v.issue} before the result of {src}, {why}",
                                     v.role, e.dst, i, v.issue))
    return found


def _rings(program: Program) -> list[tuple[int, int, list[Dependence]]]:
    """(op, slots, edges reading that ring) for every op whose result has storage: a value that
    crosses roles lives in its channel's ring, except that a register value also keeps its own
    register ring for the readers on its role."""
    loop, roles = program.loop, program.schedule.roles
    rings = []
    for value in program.values:
        if value.memory == "none":
            continue
        out = [e for e in loop.edges if e.src == value.op]
        ch = program.value_channel(value.op)
        if ch is None:
            rings.append((value.op, value.depth, out))
        elif value.memory == "registers":
            rings.append((value.op, ch.depth, [e for e in out if roles[e.dst] != roles[e.src]]))
            rings.append((value.op, value.depth, [e for e in out if roles[e.dst] == roles[e.src]]))
        else:
            rings.append((value.op, ch.depth, out))
    return rings


def overwrites(trace: Trace) -> list[Finding]:
    program = trace.program
    ops, ran, found = program.loop.ops, _index(trace), []
    for op, depth, edges in _rings(program):
        for q in range(depth, trace.trips):
            writer = ran.get((op, q))
            if writer is None:
                continue
            for e in edges:
                reader = ran.get((e.dst, q - depth + e.distance))
                if reader is None:
                    continue
                at_issue = not held_after_issue(program.loop, e)
                released = reader.issue if at_issue else reader.complete
                if released > writer.issue:
                    found.append(Finding(
                        "overwrite", f"{ops[op].name} (iteration {q}) issued at {writer.issue} into slot "
                                     f"{q % depth} of {depth} before {ops[e.dst].name} (iteration {reader.iteration}) "
                                     f"released item {q - depth} at {released}"
                                     f" ({'issue' if at_issue else 'completion'})",
                        writer.role, op, q, writer.issue))
    return found


def resources(program: Program) -> list[Finding]:
    """Registers as setmaxnreg allocates them (per warpgroup: single-warp roles packed by role id
    into warpgroups at the largest value among them), warps, and the rings in shared and tensor memory."""
    w, found = program.loop.warps, []
    low, high, step = w.setmaxnreg
    for r in program.roles:
        if not (r.registers <= r.setmaxnreg <= high and r.setmaxnreg >= low and r.setmaxnreg % step == 0):
            found.append(Finding("resources", f"role {r.id}: setmaxnreg {r.setmaxnreg} for {r.registers} registers "
                                              f"per thread (legal: {low}..{high} in steps of {step})", r.id))
    wide = [r for r in program.roles if r.warps > 1]
    narrow = [r.setmaxnreg for r in program.roles if r.warps == 1]
    packed = [max(narrow[g:g + w.warpgroup]) for g in range(0, len(narrow), w.warpgroup)]
    group_threads = w.warpgroup * THREADS_PER_WARP
    registers = sum(r.warps * THREADS_PER_WARP * r.setmaxnreg for r in wide) + group_threads * sum(packed)
    warps = sum(r.warps for r in wide) + w.warpgroup * ceil_div(len(narrow), w.warpgroup)
    smem = tmem = 0
    staged = {ch.producer for ch in program.value_channels}
    for ch in program.channels:
        smem += ch.depth * ch.slot_size if ch.memory == "smem" else 0
        tmem += ch.depth * ch.slot_size if ch.memory == "tmem" else 0
    for v in program.values:
        if v.op not in staged:
            smem += v.depth * v.size if v.memory == "smem" else 0
            tmem += v.depth * v.size if v.memory == "tmem" else 0
    for what, used, limit in (("registers", registers, w.register_file), ("warps", warps, w.max_warps),
                              ("shared memory bytes", smem, w.smem), ("tensor memory columns", tmem, w.tmem)):
        if used > limit:
            found.append(Finding("resources", f"{what}: {used} used, {limit} available"))
    return found
