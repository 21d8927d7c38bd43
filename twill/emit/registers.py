"""Register values of a role: which storage each op's result uses and which copy an instance touches.

A register value v (an op with registers of its own) is a ring of D(v) copies, slot = iteration % D
(modulo variable expansion, docs/pipeline.md). An op that ``overwrites`` an input writes that input's
copy; an op without storage that its family updates in place (FA's ``mask`` on S, ``rescale`` on O)
writes the copy of that input. Each role's loop is unrolled by U, the least common multiple of its
rings' depths: at unrolled position u of kernel iteration k = k0 + u (k0 - first_stage a multiple of
U), loop iteration i = k - stage has i mod D = (first_stage + u - stage) mod D, so every copy index
is a constant of the unrolled body.
"""

from __future__ import annotations

import math

from twill.emit.program import Program, RoleProgram
from twill.sim.semantics import split_name


class Registers:
    def __init__(self, program: Program, in_place: dict[str, str]):
        self.program, self.loop = program, program.loop
        self.in_place = in_place

    def owner(self, v: int) -> tuple[int, int] | None:
        """(op whose storage holds v's result, shift): v of iteration i is that op's copy of i - shift."""
        op, value = self.loop.ops[v], self.program.values[v]
        if op.overwrites is not None:
            return self._through(v, self.loop.ops[op.overwrites].name)
        base, part = split_name(op.name)
        if base in self.in_place:
            target = self.in_place[base] if part is None else f"{self.in_place[base]}.{part}"
            return self._through(v, target)
        return (v, 0) if value.memory == "registers" else None

    def _through(self, v: int, source: str) -> tuple[int, int] | None:
        edge = next(e for e in self.loop.edges if e.dst == v and self.loop.ops[e.src].name == source)
        inner = self.owner(edge.src)
        return None if inner is None else (inner[0], inner[1] + edge.distance)

    def depth(self, owner: int) -> int:
        return self.program.values[owner].depth

    def storages(self, role: RoleProgram) -> list[int]:
        """The register storages the role's ops own, in issue order."""
        return [s.op for s in role.steps if self.owner(s.op) == (s.op, 0)]

    def unroll(self, role: RoleProgram) -> int:
        return math.lcm(*[self.depth(v) for v in self.storages(role)], 1)

    def name(self, owner: int) -> str:
        return "r_" + self.loop.ops[owner].name.replace(".", "_")

    def copy(self, role: RoleProgram, u: int, stage: int, v: int, distance: int) -> str | None:
        """The C expression of the storage copy holding v's result of iteration i - distance, for a
        step of ``stage`` at unrolled position u (None: v's result is not in registers)."""
        held = self.owner(v)
        if held is None:
            return None
        owner, shift = held
        return f"{self.name(owner)}[{(role.first_stage + u - stage - distance - shift) % self.depth(owner)}]"
