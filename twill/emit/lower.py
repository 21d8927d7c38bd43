"""Lower a verified joint schedule to its pipeline program (docs/pipeline.md).

Rules, per edge u -> v (distance d):
* different roles: a channel of u's items; v waits on full for item i - d, the last use of the item
  on v's role releases it (empty arrival at completion, landing the barrier's cycles later: no data
  travels back), u waits on empty before writing and
  signals full when it completes (TMA: the transaction bytes land);
* same role: program order, plus a local wait when u is asynchronous (issue shorter than its
  duration) and the edge needs u complete (delay >= duration); none where the unit's own in-order
  queue suffices (delay below the duration, e.g. MMAs accumulating into one accumulator);
* a blocking edge also makes v wait for every asynchronous op of its role issued before u (the
  latest such instance of each, from the schedule's times): wgmma.wait_group semantics, so work
  issued after u may stay in flight;
* a unit with one instance used by several roles gets order tokens between consecutive uses by
  different roles, in the schedule's order (FA3's ping-pong on the tensor core), where the schedule
  leaves the token's barrier time between the two issues; the other pairs are listed as unordered.
"""

from __future__ import annotations

from collections import defaultdict

from twill.model.joint import (channel_depth, crossing_edges, depth, handoff_cost, held_after_issue, layout,
                               order_tokens, register_bytes, register_depth, release_cost, value_memory)
from twill.model.loop import Dependence, Loop
from twill.model.schedule import Schedule
from twill.emit.program import Channel, LocalWait, Program, RoleProgram, Signal, Step, Value, Wait


def lower(loop: Loop, schedule: Schedule) -> Program:
    """The pipeline program of a joint schedule the verifier accepted."""
    if not loop.joint or schedule.roles is None:
        raise ValueError("lowering needs a joint schedule (a machine with warps, one role per op)")
    values = tuple(_value(loop, schedule, v) for v in range(len(loop.ops)))
    builder = _Builder(loop, schedule, values)
    for src in range(len(loop.ops)):
        crossing = crossing_edges(loop, schedule.roles, src)
        if crossing:
            builder.value_channel(src, crossing, values[src])
    for e in loop.edges:
        if schedule.roles[e.src] == schedule.roles[e.dst]:
            builder.same_role(e)
        if e.blocking:
            builder.drain(e)
    builder.order_tokens()
    roles = tuple(RoleProgram(r.id, r.warps, r.setmaxnreg, r.registers, builder.steps(r.ops))
                  for r in layout(loop, schedule).roles)
    return Program(loop, schedule, roles, tuple(builder.channels), values, tuple(builder.unordered))


def _value(loop: Loop, schedule: Schedule, v: int) -> Value:
    memory, size = value_memory(loop.ops[v])
    if memory == "registers":   # the register ring: copies live at once by rule 8 (registers are free once staged)
        return Value(v, memory, register_depth(loop, schedule, v), size)
    return Value(v, memory, depth(loop, schedule, v), size)


class _Builder:
    def __init__(self, loop: Loop, schedule: Schedule, values: tuple[Value, ...]):
        self.loop, self.schedule, self.values = loop, schedule, values
        self.channels: list[Channel] = []
        self.unordered: list[str] = []
        self.waits: dict[int, list[Wait]] = defaultdict(list)
        self.local_waits: dict[int, dict[int, int]] = defaultdict(dict)  # op -> awaited op -> distance
        self.signals: dict[int, list[Signal]] = defaultdict(list)

    def _order_key(self, op: int, distance: int) -> tuple[int, int]:
        """When (kernel iteration offset, cycle) ``op`` uses the item of iteration i - distance."""
        return distance + self.schedule.stage(op), self.schedule.slot(op)

    def value_channel(self, src: int, crossing: list[Dependence], value: Value) -> None:
        loop, roles = self.loop, self.schedule.roles
        op = loop.ops[src]
        consumer_roles = tuple(sorted({roles[e.dst] for e in crossing}))
        memory, size = value.memory, value.size
        if memory == "registers":  # a register value travels through a shared-memory staging ring
            memory, size = "smem", register_bytes(op)
        ch = Channel(
            id=len(self.channels), name=op.name, producer=src, producer_role=roles[src],
            consumer_roles=consumer_roles, depth=channel_depth(loop, self.schedule, src),
            memory=memory, slot_size=size, tx_bytes=op.smem if op.variable_latency else 0,
            latency=max(handoff_cost(loop, e) for e in crossing),
            release_latency=max(release_cost(loop, e) for e in crossing),
            barrier="mbarrier" if any(e.barrier == "mbarrier" for e in crossing) else "named")
        self.channels.append(ch)
        self.waits[src].append(Wait(ch.id, "empty", 0))
        self.signals[src].append(Signal(ch.id, "full", 0, "complete"))
        for e in crossing:
            wait = Wait(ch.id, "full", e.distance)
            if wait not in self.waits[e.dst]:
                self.waits[e.dst].append(wait)
        for role in consumer_roles:
            last = max((e for e in crossing if roles[e.dst] == role),
                       key=lambda e: self._order_key(e.dst, e.distance))
            self.signals[last.dst].append(Signal(ch.id, "empty", last.distance, "complete"))

    def _local_wait(self, op: int, awaited: int, distance: int) -> None:
        """``op`` of iteration i waits for ``awaited`` of iteration i - distance (the latest instance
        wins: one op's instances complete in order on its unit)."""
        held = self.local_waits[op]
        held[awaited] = min(held.get(awaited, distance), distance)

    def same_role(self, e: Dependence) -> None:
        """Read after write: the reader waits for an asynchronous writer. Write after read: before
        writing item i into the slot of item i - D, the writer waits for an asynchronous reader of
        that item (iteration i - D + d) to complete, which program order alone does not give."""
        src, dst = self.loop.ops[e.src], self.loop.ops[e.dst]
        if e.src != e.dst and src.issue < src.duration <= e.delay:
            self._local_wait(e.dst, e.src, e.distance)
        value = self.values[e.src]
        if value.memory != "none" and dst.issue < dst.duration and held_after_issue(self.loop, e):
            self._local_wait(e.src, e.dst, value.depth - e.distance)

    def drain(self, e: Dependence) -> None:
        """The latest instance of each asynchronous op o of v's role issued strictly before u's
        instance (iteration i - d, at t(u) + (i - d) II) has iteration i - distance with
        distance = -floor((t(u) - d II - 1 - t(o)) / II)."""
        s, ops = self.schedule, self.loop.ops
        for o, op in enumerate(ops):
            if o != e.dst and s.roles[o] == s.roles[e.dst] and op.issue < op.duration:
                self._local_wait(e.dst, o, -((s.starts[e.src] - e.distance * s.ii - 1 - s.starts[o]) // s.ii))

    def order_tokens(self) -> None:
        """Tokens between consecutive uses of a one-instance unit by different roles; the pairs that get
        none (too close for the token's barrier, or an op holding the unit more than once) are noted
        in ``unordered``: there the hardware's arbitration, not the schedule, decides the order."""
        tokens, self.unordered = order_tokens(self.loop, self.schedule)
        for unit, a, b, distance in tokens:
            self._token(unit, a, b, distance)

    def _token(self, unit: str, a: int, b: int, distance: int) -> None:
        """b of iteration i + distance uses ``unit`` right after a of iteration i: a passes b a token
        when it issues. Items are numbered from the first pair that exists: by a's iteration when
        distance >= 0 (as a value read ``distance`` iterations later, so ``distance`` slots), by b's
        when distance < 0 (then the last -distance items have no producer: the channel's tail)."""
        loop, roles = self.loop, self.schedule.roles
        lead, lag = (0, distance) if distance >= 0 else (-distance, 0)
        ch = Channel(
            id=len(self.channels), name=f"{unit}:{loop.ops[a].name}>{loop.ops[b].name}", producer=a,
            producer_role=roles[a], consumer_roles=(roles[b],), depth=max(1, distance), memory="none",
            slot_size=0, tx_bytes=0, latency=loop.warps.named, release_latency=loop.warps.named, barrier="named",
            token=True, tail=lead)
        self.channels.append(ch)
        self.waits[a].append(Wait(ch.id, "empty", lead))
        self.signals[a].append(Signal(ch.id, "full", lead, "issue"))
        self.waits[b].append(Wait(ch.id, "full", lag))
        self.signals[b].append(Signal(ch.id, "empty", lag, "issue"))

    def steps(self, ops: tuple[int, ...]) -> tuple[Step, ...]:
        loop, s = self.loop, self.schedule
        return tuple(Step(v, loop.ops[v].name, s.stage(v), s.slot(v), tuple(self.waits[v]),
                          tuple(LocalWait(o, d) for o, d in sorted(self.local_waits[v].items())),
                          tuple(self.signals[v]))
                     for v in sorted(ops, key=s.slot))
