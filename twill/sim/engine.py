"""Event-driven simulation of a pipeline program (twill/emit/program.py has the rules it executes).

Each role walks ``program.instances(role, trips)`` one op at a time. An instance issues at the first
cycle when its role is free (the previous op's issue window has passed), each of its waits passes on
its barrier (``Barrier.passes``, in program order), each local wait's instance has completed, its
unit reservations fit (``Units``) and, in ``issue="timetable"`` mode, the schedule's own time
t(v) + i II has come. It completes ``duration`` cycles later. The role with the earliest such cycle
goes next (ties: the lower role id), so every later issue is at or after it: a barrier state or
unit booking a decision read is never changed afterwards by an arrival landing before it (hand-off
latencies are positive). When every role with work left waits on something no issued op will
provide, that is a deadlock. The checks then read the trace (twill/sim/checks.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from twill.emit.program import Program, RoleProgram, Step
from twill.sim.barriers import Barrier
from twill.sim.checks import Finding, Run, check
from twill.sim.trace import Event, Trace
from twill.sim.units import Units

Issue = Literal["asap", "timetable"]
ISSUE_MODES = ("asap", "timetable")


@dataclass(frozen=True)
class SimResult:
    trace: Trace
    findings: tuple[Finding, ...]
    issue: Issue
    latency_jitter: float
    seed: int
    latencies: dict[tuple[int, int], int]    # (op, iteration) -> latency drawn (variable-latency ops)
    total_cycles: int                        # last completion (the run starts at cycle 0)
    cycles_per_iteration: float | None       # steady state: mean issue-to-issue distance, middle half
    op_cycles: dict[int, float]              # the same per op
    utilization: dict[str, float]            # busy unit-cycles / (capacity x total cycles)
    role_busy: dict[int, float]              # issue-window cycles / total cycles, per role

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def ratio(self) -> float | None:
        """Measured cycles per iteration over the schedule's II."""
        cpi = self.cycles_per_iteration
        return None if cpi is None else cpi / self.trace.program.ii


@dataclass
class _Role:
    program: RoleProgram
    pending: list[tuple[Step, int]]     # (step, iteration) still to issue, in order
    free: int = 0                       # cycle the role may issue again
    busy: int = 0                       # issue-window cycles so far
    at: int = 0                         # index into pending


@dataclass
class _Blocked:
    cycle: int
    what: str


@dataclass
class _Sim:
    program: Program
    trips: int
    issue: Issue
    jitter: float
    rng: random.Random
    roles: list[_Role]
    units: Units
    barriers: dict[tuple[int, str, int], Barrier] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    done: dict[tuple[int, int], int] = field(default_factory=dict)      # (op, i) -> completion
    latencies: dict[tuple[int, int], int] = field(default_factory=dict)

    def barrier(self, channel: int, kind: str, slot: int) -> Barrier:
        key = (channel, kind, slot)
        if key not in self.barriers:
            ch = self.program.channels[channel]
            self.barriers[key] = Barrier(1 if kind == "full" else ch.empty_arrivals)
        return self.barriers[key]

    def ready(self, role: _Role) -> int | _Blocked:
        """The cycle the role's next instance issues at, or what it is blocked on."""
        step, i = role.pending[role.at]
        p, s = self.program, self.program.schedule
        t = role.free
        if self.issue == "timetable":
            t = max(t, s.starts[step.op] + i * s.ii)
        for w in step.waits:
            q, ch = i - w.distance, p.channels[w.channel]
            if not ch.exists(q, self.trips):
                continue
            slot, parity = ch.slot(q), ch.parity(w.barrier, q)
            passed = self.barrier(ch.id, w.barrier, slot).passes(parity, t)
            if passed is None:
                return _Blocked(t, f"{ch.name}.{w.barrier} barrier (slot {slot}, parity {parity}, item {q})")
            t = passed
        for w in step.local_waits:
            j = i - w.distance
            if not 0 <= j < self.trips:
                continue
            if (w.op, j) not in self.done:
                return _Blocked(t, f"completion of its own {p.loop.ops[w.op].name} (iteration {j})")
            t = max(t, self.done[w.op, j])
        return self.units.earliest(p.loop.ops[step.op], t)

    def commit(self, role: _Role, t: int) -> None:
        step, i = role.pending[role.at]
        role.at += 1
        p, op = self.program, self.program.loop.ops[step.op]
        latency = op.latency
        if op.variable_latency and self.jitter:
            latency = round(self.rng.uniform(op.latency * (1 - self.jitter), op.latency * (1 + self.jitter)))
            self.latencies[step.op, i] = latency
        duration = max([latency] + [r.offset + r.cycles for r in op.reservations])
        window = duration if op.issue_cycles is None else op.issue_cycles
        complete = t + duration
        role.free, role.busy = t + window, role.busy + window
        self.units.book(op, t)
        self.units.forget_before(t)
        self.done[step.op, i] = complete
        self.events.append(Event(role.program.id, step.op, i, t, complete))
        for sig in step.signals:
            q, ch = i - sig.distance, p.channels[sig.channel]
            if not ch.exists(q, self.trips):
                continue
            land = (t if sig.at == "issue" else complete) + (ch.latency if sig.barrier == "full" else ch.release_latency)
            if sig.barrier == "full" and ch.tx_bytes:  # expect_tx: the phase also waits for the bytes
                land = max(land, complete + ch.latency)
            self.barrier(ch.id, sig.barrier, ch.slot(q)).arrive(land)

    def run(self) -> list[Finding]:
        """Issue until every role is done; a deadlock finding per stuck role if they all block."""
        while True:
            active = [r for r in self.roles if r.at < len(r.pending)]
            if not active:
                return []
            ready = [(self.ready(r), r) for r in active]
            times = [(t, r.program.id, r) for t, r in ready if not isinstance(t, _Blocked)]
            if not times:
                return [self._deadlock(r, b) for b, r in ready]
            t, _, role = min(times, key=lambda x: x[:2])
            self.commit(role, t)

    def _deadlock(self, role: _Role, blocked: _Blocked) -> Finding:
        step, i = role.pending[role.at]
        return Finding("deadlock", f"role {role.program.id} stuck before {step.name} (iteration {i}) from cycle "
                                   f"{blocked.cycle}: waits on {blocked.what}",
                       role.program.id, step.op, i, blocked.cycle)


def simulate(program: Program, trips: int, *, latency_jitter: float = 0.0, seed: int = 0,
             issue: Issue = "asap") -> SimResult:
    """Run ``program`` for ``trips`` loop iterations; the trace, the checks' findings and measurements."""
    if trips < 0:
        raise ValueError(f"trips must be >= 0, got {trips}")
    if not 0 <= latency_jitter < 1:
        raise ValueError(f"latency jitter must be in [0, 1), got {latency_jitter}")
    if issue not in ISSUE_MODES:
        raise ValueError(f"issue must be one of {', '.join(ISSUE_MODES)}, got {issue!r}")
    roles = [_Role(r, [(step, i) for _, step, i in program.instances(r, trips)]) for r in program.roles]
    sim = _Sim(program, trips, issue, latency_jitter, random.Random(seed), roles, Units(program.loop.capacity))
    deadlocks = sim.run()
    events = tuple(sorted(sim.events, key=lambda e: (e.issue, e.role)))
    trace = Trace(program, trips, events)
    findings = deadlocks + check(Run(trace, sim.latencies))
    total = max((e.complete for e in events), default=0)
    op_cycles = _op_cycles(trace) if not deadlocks else {}
    return SimResult(
        trace, tuple(findings), issue, latency_jitter, seed, dict(sim.latencies), total,
        sum(op_cycles.values()) / len(op_cycles) if op_cycles else None, op_cycles,
        {u: sim.units.busy[u] / (c * total) if total else 0.0 for u, c in program.loop.capacity.items()},
        {r.program.id: r.busy / total if total else 0.0 for r in roles})


def _op_cycles(trace: Trace) -> dict[int, float]:
    """Per op, the mean issue-to-issue distance over the middle half of the iterations (needs 4)."""
    lo, hi = trace.trips // 4, trace.trips - 1 - trace.trips // 4
    if hi <= lo:
        return {}
    issue = {(e.op, e.iteration): e.issue for e in trace.events}
    return {v: (issue[v, hi] - issue[v, lo]) / (hi - lo) for v in range(len(trace.program.loop.ops))}
