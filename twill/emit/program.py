"""The pipeline program: what each role executes, with every wait and signal (docs/pipeline.md).

A schedule says when and on which role each op issues; the program says, for each role, the ops in
issue order with their stage (iteration offset), the barrier waits before each op and the signals
after it, and, for each value that crosses roles, its channel: a ring of ``depth`` slots with a full
and an empty barrier per slot. Both the simulator and the CUDA emitter read this one structure.

Execution rule (any trip count N, including 0, 1 and fewer iterations than stages): role r runs
``for k in range(first_k, N + last_stage)`` and, inside, each step in order for loop iteration
``i = k - step.stage`` when ``0 <= i < N`` (``Program.instances``). The prologue and epilogue are the
first and last ``last_stage - first_stage`` values of k, where some steps are guarded off.

Barrier rule (the phase/parity protocol of the hardware mbarrier): a channel carries one item per
loop iteration, numbered q = 0 .. N-1-tail (the producer's iteration for a value; for an order token
from the first producer/consumer pair that exists). Item q lives in slot ``q % depth``; its full barrier completes phase ``q // depth``
when the producer's arrival (and, for TMA, its transaction bytes) lands, and a consumer waits for
parity ``(q // depth) & 1``. The producer waits on the slot's empty barrier with parity
``((q // depth) & 1) ^ 1``, which a fresh barrier already satisfies, so the first ``depth`` writes
never block. Each consumer role releases the slot once (one arrival) after its last use of item q.
A wait or signal for an item q outside [0, N - tail) is skipped: no such item exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

from twill.model.loop import Loop
from twill.model.schedule import Schedule

BarrierKind = Literal["full", "empty"]
When = Literal["issue", "complete"]
Memory = Literal["smem", "tmem", "registers", "none"]


@dataclass(frozen=True)
class Channel:
    """A hand-off between roles: the value (or order token) of ``producer`` to ``consumers``."""

    id: int
    name: str
    producer: int                        # op index
    producer_role: int
    consumer_roles: tuple[int, ...]      # each releases a slot once, after its last use
    depth: int                           # ring slots (barrier pairs)
    memory: Memory                       # where a slot's data lives ("none": a signal or an order token)
    slot_size: int                       # bytes (smem) or columns (tmem) per slot; 0 without data
    tx_bytes: int                        # transaction bytes the full barrier expects (TMA), else 0
    latency: int                         # cycles from the producer's signal until consumers see it
    release_latency: int                 # cycles from a consumer's release until the producer sees it (barrier only)
    barrier: str                         # "mbarrier" or "named"
    token: bool = False                  # orders two roles' use of an in-order unit (ping-pong)
    tail: int = 0                        # the last ``tail`` items of a run do not exist (see ``exists``)

    @property
    def empty_arrivals(self) -> int:
        """Arrivals that complete an empty phase: one per consumer role."""
        return len(self.consumer_roles)

    def exists(self, item: int, trips: int) -> bool:
        """Whether a run of ``trips`` iterations has ``item``: waits and signals for others are skipped."""
        return 0 <= item < trips - self.tail

    def slot(self, item: int) -> int:
        return item % self.depth

    def parity(self, barrier: BarrierKind, item: int) -> int:
        """Parity a wait for ``item`` names: a consumer's on full, the producer's on empty."""
        phase = (item // self.depth) & 1
        return phase if barrier == "full" else phase ^ 1


@dataclass(frozen=True)
class Wait:
    """Before a step of iteration i: block on ``barrier`` of ``channel`` for item ``q = i - distance``
    (full: a consumer waits for the item; empty: the producer waits for its slot)."""

    channel: int
    barrier: BarrierKind
    distance: int


@dataclass(frozen=True)
class Signal:
    """After a step of iteration i (when it issues or completes): one arrival on ``barrier`` of
    ``channel`` for item ``q = i - distance`` (full: the producer's; empty: a consumer role's
    release after its last use)."""

    channel: int
    barrier: BarrierKind
    distance: int
    at: When


@dataclass(frozen=True)
class LocalWait:
    """Wait until this role's own asynchronous op ``op`` of iteration ``i - distance`` completed
    (wgmma.wait_group, tcgen05.wait, or a commit barrier); skipped when that iteration does not run."""

    op: int
    distance: int


@dataclass(frozen=True)
class Step:
    op: int
    name: str
    stage: int                      # at kernel iteration k the step runs loop iteration k - stage
    offset: int                     # cycle within II the schedule issues it at
    waits: tuple[Wait, ...]
    local_waits: tuple[LocalWait, ...]
    signals: tuple[Signal, ...]


@dataclass(frozen=True)
class Value:
    """Where an op's result lives and how many iterations of it are kept (slot = iteration % depth)."""

    op: int
    memory: Memory
    depth: int
    size: int                       # registers per thread, bytes or columns per slot; 0 without data


@dataclass(frozen=True)
class RoleProgram:
    id: int
    warps: int
    setmaxnreg: int
    registers: int                  # per thread needed (setmaxnreg is at least this)
    steps: tuple[Step, ...]         # steady-state body in issue order

    @property
    def first_stage(self) -> int:
        return min(step.stage for step in self.steps)

    @property
    def last_stage(self) -> int:
        return max(step.stage for step in self.steps)


@dataclass(frozen=True)
class Program:
    loop: Loop
    schedule: Schedule
    roles: tuple[RoleProgram, ...]
    channels: tuple[Channel, ...]
    values: tuple[Value, ...]       # one per op, indexed by op
    unordered: tuple[str, ...] = ()  # cross-role uses of a unit no token orders (docs/pipeline.md)

    @property
    def ii(self) -> int:
        return self.schedule.ii

    @property
    def value_channels(self) -> tuple[Channel, ...]:
        """The channels that carry a result (not order tokens): at most one per producer op."""
        return tuple(ch for ch in self.channels if not ch.token)

    def value_channel(self, op: int) -> Channel | None:
        """The channel carrying ``op``'s result to other roles, if it has one."""
        return next((ch for ch in self.value_channels if ch.producer == op), None)

    def role(self, role_id: int) -> RoleProgram:
        return next(r for r in self.roles if r.id == role_id)

    def instances(self, role: RoleProgram, trips: int) -> Iterator[tuple[int, Step, int]]:
        """(kernel iteration k, step, loop iteration i) in the role's issue order for ``trips`` iterations."""
        for k in range(role.first_stage, trips + role.last_stage):
            for step in role.steps:
                i = k - step.stage
                if 0 <= i < trips:
                    yield k, step, i
