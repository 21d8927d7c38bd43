"""The normalized scheduling problem every solver and the verifier read.

Defaults are resolved (edge delays, reservation tables), names become indices, and nothing here
refers to files. Semantics: integer starts t(v) >= 0 and an initiation interval II such that
``t(dst) - t(src) >= delay - II * distance`` for every edge, and for every unit and residue
``r in [0, II)`` the reservations landing on ``r`` (modulo II) use at most the unit's capacity.
A loop with ``warps`` set is a joint problem: each op is also assigned a role (a warp or a
warpgroup) under the rules of docs/joint-model.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Barrier = Literal["mbarrier", "named"]
Release = Literal["complete", "issue"]


@dataclass(frozen=True)
class Reservation:
    unit: str
    offset: int
    cycles: int
    amount: int


@dataclass(frozen=True)
class Op:
    name: str
    latency: int
    reservations: tuple[Reservation, ...]
    # Joint problem only (ignored by pure modulo scheduling):
    issue_cycles: int | None = None  # cycles the issuing role is busy; None: the whole duration (synchronous)
    warps: int = 1                   # warps that must issue it together (1, or a warpgroup)
    variable_latency: bool = False   # goes on the dedicated producer role
    registers: int = 0               # per thread of the issuing role: the size of its register result
    smem: int = 0                    # bytes of shared memory while its result is live
    tmem: int = 0                    # tensor-memory columns while its result is live
    depth: int | None = None         # ring slots fixed by the user (1 for an accumulator); None: as the lifetime needs
    work: int = 0                    # useful work per iteration (e.g. FLOPs), for predicted throughput
    accumulator: bool = False        # updates its result in place (self edge of distance 1): one storage
    overwrites: int | None = None    # the input whose registers its result is written over (in place)
    scratch: int = 0                 # registers per thread it needs besides the live values, at its issue

    @property
    def duration(self) -> int:
        """Cycles from issue until the op has produced its result and released every unit."""
        return max([self.latency] + [r.offset + r.cycles for r in self.reservations])

    @property
    def issue(self) -> int:
        return self.duration if self.issue_cycles is None else self.issue_cycles

    def shares_unit(self, other: "Op") -> bool:
        return bool({r.unit for r in self.reservations} & {r.unit for r in other.reservations})

    @property
    def own_registers(self) -> int:
        """Registers per thread its result allocates while live: none when written over an input's."""
        return 0 if self.overwrites is not None else self.registers

    @property
    def has_value(self) -> bool:
        return self.registers > 0 or self.smem > 0 or self.tmem > 0


@dataclass(frozen=True)
class Dependence:
    src: int
    dst: int
    delay: int
    distance: int
    blocking: bool = False           # dst waits for src's result and drains its role's older async work
    barrier: Barrier = "mbarrier"    # how a cross-role hand-off synchronizes
    release: Release = "complete"    # dst frees src's buffer when it completes, or as soon as it issues


@dataclass(frozen=True)
class Warps:
    """What a CTA's warps can hold: the resources of warp specialization (docs/joint-model.md)."""

    max_warps: int            # warps per CTA
    warpgroup: int            # warps per warpgroup
    register_file: int        # 32-bit registers per SM available to the CTA
    max_registers: int        # per thread, hardware limit
    setmaxnreg: tuple[int, int, int]  # (min, max, step) of a warpgroup's register count
    overhead: int             # registers per thread every role needs besides its live values
    smem: int                 # bytes of shared memory
    tmem: int                 # tensor-memory columns
    mbarrier: int             # cycles of a cross-role hand-off through an mbarrier
    named: int                # cycles of a cross-role hand-off through a named barrier
    transfer_base: int        # cycles to move a register value through shared memory ...
    transfer_per_kb: float    # ... plus this many per KiB
    cross_role: bool = True   # False: no register value may cross roles


@dataclass(frozen=True)
class Loop:
    name: str
    capacity: dict[str, int]  # unit -> number of instances
    ops: tuple[Op, ...]
    edges: tuple[Dependence, ...]
    warps: Warps | None = None  # set: joint problem (roles, registers, memories, hand-offs)

    @property
    def joint(self) -> bool:
        return self.warps is not None

    def usage(self, unit: str) -> int:
        """Unit-cycles one iteration needs on ``unit``."""
        return sum(r.cycles * r.amount for op in self.ops for r in op.reservations if r.unit == unit)

    def edge_text(self, edge: Dependence) -> str:
        return (f"{self.ops[edge.src].name} -> {self.ops[edge.dst].name} "
                f"(delay {edge.delay}, distance {edge.distance})")
