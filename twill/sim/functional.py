"""Functional mode: replay a trace of a pipeline program through its ring slots (docs/pipeline.md).

Slot-replay rule. Storage is exactly the program's: u's own value ring (``program.values[u].depth``
slots) for readers on u's role, and u's channel ring (``channel.depth`` slots) for readers on other
roles; item q of u lives in slot ``q % depth`` of each. Events are taken in time order:

* u's instance i claims its slots when it issues (the item they held is gone; its bytes stay until
  new ones land) and its result lands in them when it completes;
* v's instance i reads each input edge u -> v (distance d) as item q = i - d when it issues: the
  slot must hold item q, landed. An item q < 0 is the loop-carried initial value (semantics);
* v keeps reading the slot until it releases it (``held_after_issue``: at its completion, or at its
  issue for an in-place update and ``release: issue``), and a release from another role reaches the
  producer the channel's ``release_latency`` later: the slot must still hold item q then;
* an edge whose delay is below its source's duration (an accumulator updated in place, MMA after
  MMA) is ordered by the unit's in-order queue, not by the schedule: at v's issue the slot must be
  item q's (possibly still in flight), and v takes the result the slot holds at its completion;
* within a cycle: results land, consumers release, ops issue and read, producers claim (an instance
  that completes when it issues lands right after its own reads);
* after the loop the final step reads each op's last item (N - 1) from its own ring.

Nothing is looked up by name or iteration: a ring with too few slots, or a read before the write
lands, finds another item (or its stale bytes). ``symbolic`` needs no semantics and reports the
first read that does not find the item its edge names (``Mismatch``); ``execute`` runs NumPy
semantics (twill/sim/semantics.py) on the values the slots physically hold, and ``check_functional``
does both and compares the outputs with a plain NumPy reference.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from twill.emit.program import Program
from twill.model.joint import held_after_issue
from twill.model.loop import Dependence
from twill.sim.semantics import Semantics, semantics_for
from twill.sim.trace import Trace


class FunctionalError(Exception):
    """A numeric run read a slot nothing had written (the symbolic check names the read)."""


@dataclass(frozen=True)
class Mismatch:
    """A read that found another item than its edge names: ``got`` is the (op, iteration) the slot
    held (None: never written), ``in_flight`` whether that item was still being written."""

    op: str
    iteration: int
    at: str                         # "issue", "completion" (a queued read) or "release"
    source: str
    item: int                       # the item of ``source`` the edge names: iteration - distance
    ring: str                       # "value NAME" (an op's own ring) or "channel NAME"
    slot: int
    got: tuple[str, int] | None
    in_flight: bool = False

    def text(self) -> str:
        found = "an empty slot" if self.got is None else f"{self.got[0]}({self.got[1]})"
        if self.in_flight:
            found += " being written"
        return (f"{self.op}({self.iteration}) at its {self.at} needs {self.source}({self.item}) in {self.ring} "
                f"slot {self.slot} and found {found}")


Initial = Callable[[str], Any]
Compute = Callable[[str, int, list[tuple[Dependence, Any]]], Any]
Item = tuple[int, int]              # (op, iteration)

# Phases of one cycle: results land (1: after queued reads), consumers release, ops issue and read,
# producers claim their slots. A result that completes when it issues lands right after its reads.
LAND, LAND_QUEUED, RELEASE, ISSUE, CLAIM = range(5)


@dataclass
class _Slot:
    tag: Item                       # the item last claimed or landed here
    landed: bool                    # whether that item's result is here yet
    data: Item | None               # the item whose result the slot physically holds
    value: Any


class _Rings:
    """The program's storage: each op's own value ring and each value channel's ring."""

    def __init__(self, program: Program):
        loop, roles = program.loop, program.schedule.roles
        self.value_ring = {v.op: f"value {loop.ops[v.op].name}" for v in program.values}
        self.channel_ring = {ch.producer: f"channel {ch.name}" for ch in program.value_channels}
        self.slots: dict[str, list[_Slot | None]] = {self.value_ring[v.op]: [None] * v.depth
                                                     for v in program.values}
        self.slots.update({self.channel_ring[ch.producer]: [None] * ch.depth
                           for ch in program.value_channels})
        self.ring_of = {e: self.value_ring[e.src] if roles[e.src] == roles[e.dst] else self.channel_ring[e.src]
                        for e in loop.edges}

    def _written(self, op: int) -> list[list[_Slot | None]]:
        return [self.slots[r] for r in (self.value_ring[op], self.channel_ring.get(op)) if r is not None]

    def claim(self, op: int, iteration: int) -> None:
        """The producer starts writing: the old item is gone (its bytes stay until the new ones land)."""
        for slots in self._written(op):
            old = slots[iteration % len(slots)]
            slots[iteration % len(slots)] = _Slot((op, iteration), False, old and old.data, old and old.value)

    def land(self, op: int, iteration: int, value: Any) -> None:
        """The result lands; the slot stays claimed if a later item claimed it meanwhile."""
        for slots in self._written(op):
            tag = slots[iteration % len(slots)].tag
            slots[iteration % len(slots)] = _Slot(tag, tag == (op, iteration), (op, iteration), value)

    def slot(self, ring: str, item: int) -> tuple[int, _Slot | None]:
        """(slot index, its state) where ``ring`` keeps ``item``."""
        slots = self.slots[ring]
        return item % len(slots), slots[item % len(slots)]


class _Replay:
    """One run of a trace: ``compute`` gives an instance's result from the (edge, value) it read;
    ``strict``: a read of a slot that never held data raises (a numeric run cannot go on)."""

    def __init__(self, trace: Trace, compute: Compute, initial: Initial, strict: bool):
        self.trace, self.compute, self.initial, self.strict = trace, compute, initial, strict
        loop = trace.program.loop
        self.names = [o.name for o in loop.ops]
        self.rings = _Rings(trace.program)
        self.mismatch: Mismatch | None = None
        self.queued = {e for e in loop.edges if e.delay < loop.ops[e.src].duration}
        held = [e for e in loop.edges if e not in self.queued and held_after_issue(loop, e) > 0]
        roles = trace.program.schedule.roles
        late = {c.producer: c.release_latency for c in trace.program.value_channels}
        self.held = {e: late[e.src] if roles[e.src] != roles[e.dst] else 0 for e in held}  # release delay
        self.inputs = {v: [e for e in loop.edges if e.dst == v] for v in range(len(loop.ops))}
        self._run()

    def _read(self, ring: str, op: int, item: int, reader: str, iteration: int, at: str) -> Any:
        """The value of ``item`` of ``op`` in its slot. At "issue", "release" and "end" the slot must
        hold that item, landed; a queued read only checks at issue that the item is the slot's
        (in flight or not) and at "completion" takes whatever result the slot holds."""
        slot, state = self.rings.slot(ring, item)
        want = (op, item)
        found = state and (state.data if at == "completion" else state.tag)
        if found == want and (state.landed or at in ("completion", "queued")):
            return state.value
        wrong = Mismatch(reader, iteration, "issue" if at == "queued" else at, self.names[op], item, ring, slot,
                         found and (self.names[found[0]], found[1]),
                         found is not None and found == state.tag and not state.landed)
        if self.mismatch is None:
            self.mismatch = wrong
        if self.strict and (state is None or state.data is None):
            raise FunctionalError(wrong.text())
        return state and state.value

    def _input(self, e: Dependence, iteration: int, at: str) -> Any:
        item = iteration - e.distance
        if item < 0:
            return self.initial(self.names[e.src])
        return self._read(self.rings.ring_of[e], e.src, item, self.names[e.dst], iteration, at)

    def _run(self) -> None:
        pending: list[tuple[int, int, int, int]] = []   # (cycle, phase, trace index, released input)
        for index, ev in enumerate(self.trace.events):
            pending.append((ev.issue, ISSUE, index, -1))
            if ev.complete == ev.issue:
                pending.append((ev.issue, ISSUE, index, -1))  # pops right after the read: lands at once
                continue
            pending.append((ev.issue, CLAIM, index, -1))
            pending += [(ev.complete + self.held[e], RELEASE, index, k)
                        for k, e in enumerate(self.inputs[ev.op]) if e in self.held]
            queued = any(e in self.queued for e in self.inputs[ev.op])
            pending.append((ev.complete, LAND_QUEUED if queued else LAND, index, -1))
        heapq.heapify(pending)
        reads: dict[int, list[tuple[Dependence, Any]]] = {}
        while pending:
            _, phase, index, k = heapq.heappop(pending)
            ev = self.trace.events[index]
            inputs = self.inputs[ev.op]
            if phase == ISSUE and index not in reads:
                reads[index] = [(e, self._input(e, ev.iteration, "queued" if e in self.queued else "issue"))
                                for e in inputs]
            elif phase == CLAIM:
                self.rings.claim(ev.op, ev.iteration)
            elif phase == RELEASE:
                self._input(inputs[k], ev.iteration, "release")
            else:
                got = [(e, self._input(e, ev.iteration, "completion") if e in self.queued else value)
                       for e, value in reads.pop(index)]
                if ev.complete == ev.issue:
                    self.rings.claim(ev.op, ev.iteration)
                self.rings.land(ev.op, ev.iteration, self.compute(self.names[ev.op], ev.iteration, got))

    def last(self, name: str) -> Any:
        """The final step's read of op ``name``'s last item (iteration N - 1) from its own ring."""
        trips = self.trace.trips
        if trips == 0:
            return self.initial(name)
        op = self.names.index(name)
        return self._read(self.rings.value_ring[op], op, trips - 1, "final step", trips, "end")


def symbolic(trace: Trace) -> Mismatch | None:
    """The first read (in time order) that does not find the token of the item its edge names."""
    return _Replay(trace, lambda name, iteration, got: None, lambda name: None, strict=False).mismatch


def execute(trace: Trace, semantics: Semantics, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the trace with NumPy semantics on ``inputs`` (global memory); the kernel's outputs."""
    memory = {name: np.array(value, copy=True) for name, value in inputs.items()}

    names = [o.name for o in trace.program.loop.ops]

    def compute(name: str, iteration: int, got: list[tuple[Dependence, Any]]) -> Any:
        reads = {names[e.src]: value for e, value in got}
        if len(reads) != len(got):
            raise ValueError(f"{name} reads one op at two distances: semantics name inputs by source op")
        return semantics.compute(name, iteration, reads, memory)

    replay = _Replay(trace, compute, semantics.initial, strict=True)
    return semantics.finish(replay.last, memory, trace.trips)


@dataclass(frozen=True)
class TripResult:
    trips: int
    mismatch: Mismatch | None
    errors: dict[str, float]        # output -> max abs error against the reference (empty: symbolic only)
    tolerance: dict[str, float]

    @property
    def passed(self) -> bool:
        return self.mismatch is None and all(self.errors[k] <= self.tolerance[k] for k in self.errors)

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)


@dataclass(frozen=True)
class FunctionalReport:
    kernel: str
    numeric: bool                   # semantics exist (else only the symbolic check ran)
    results: tuple[TripResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def max_error(self) -> float:
        return max((r.max_error for r in self.results), default=0.0)

    def text(self) -> str:
        trips = ", ".join(str(r.trips) for r in self.results)
        failed = next((r for r in self.results if not r.passed), None)
        if failed is not None:
            if failed.mismatch is not None:
                why = failed.mismatch.text()
            else:
                why = ", ".join(f"{k} error {failed.errors[k]:.2e} > {failed.tolerance[k]:.1e}"
                                for k in failed.errors if failed.errors[k] > failed.tolerance[k])
            return f"functional {self.kernel}: FAILED at {failed.trips} trips: {why}"
        if not self.numeric:
            return f"functional {self.kernel}: every read found its item (trips {trips}; no NumPy semantics)"
        return (f"functional {self.kernel}: matches the NumPy reference (trips {trips}; "
                f"max abs error {self.max_error:.1e})")


def check_trips(program: Program) -> tuple[int, ...]:
    """The trip counts worth checking: none, one, two, around the stage count, a few, many."""
    stages = program.schedule.stages
    return tuple(sorted({0, 1, 2, max(stages - 1, 0), stages, 5, 64}))


def check_functional(traces: Trace | Sequence[Trace], seed: int = 0) -> FunctionalReport:
    """The symbolic check of each trace and, where the kernel has semantics, its numbers against the
    NumPy reference on random inputs (a run that reads the wrong items is not run numerically)."""
    traces = (traces,) if isinstance(traces, Trace) else tuple(traces)
    loop = traces[0].program.loop
    semantics = semantics_for(loop)
    results = []
    for trace in traces:
        mismatch = symbolic(trace)
        errors, tolerance = {}, {}
        if semantics is not None and mismatch is None:
            inputs = semantics.inputs(trace.trips, np.random.default_rng(seed))
            got, want = execute(trace, semantics, inputs), semantics.reference(inputs, trace.trips)
            for name, ref in want.items():
                errors[name] = float(np.max(np.abs(got[name] - ref), initial=0.0))
                tolerance[name] = semantics.tolerance * max(1.0, float(np.max(np.abs(ref), initial=0.0)))
        results.append(TripResult(trace.trips, mismatch, errors, tolerance))
    return FunctionalReport(loop.name, semantics is not None, tuple(results))
