"""The normalized scheduling problem every solver and the verifier read.

Defaults are resolved (edge delays, reservation tables), names become indices, and nothing here
refers to files. Semantics: integer starts t(v) >= 0 and an initiation interval II such that
``t(dst) - t(src) >= delay - II * distance`` for every edge, and for every unit and residue
``r in [0, II)`` the reservations landing on ``r`` (modulo II) use at most the unit's capacity.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def duration(self) -> int:
        """Cycles from issue until the op has produced its result and released every unit."""
        return max([self.latency] + [r.offset + r.cycles for r in self.reservations])


@dataclass(frozen=True)
class Dependence:
    src: int
    dst: int
    delay: int
    distance: int


@dataclass(frozen=True)
class Loop:
    name: str
    capacity: dict[str, int]  # unit -> number of instances
    ops: tuple[Op, ...]
    edges: tuple[Dependence, ...]

    def usage(self, unit: str) -> int:
        """Unit-cycles one iteration needs on ``unit``."""
        return sum(r.cycles * r.amount for op in self.ops for r in op.reservations if r.unit == unit)

    def edge_text(self, edge: Dependence) -> str:
        return (f"{self.ops[edge.src].name} -> {self.ops[edge.dst].name} "
                f"(delay {edge.delay}, distance {edge.distance})")
