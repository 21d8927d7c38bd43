"""A modulo schedule as a value: II, one start cycle per op and, for a joint problem, one role per op."""

from __future__ import annotations

from dataclasses import dataclass

from twill.model.loop import Loop


@dataclass(frozen=True)
class Schedule:
    ii: int
    starts: tuple[int, ...]
    roles: tuple[int, ...] | None = None  # role id per op (joint problems only)

    @classmethod
    def from_names(cls, loop: Loop, ii: int, starts: dict[str, int],
                   roles: dict[str, int] | None = None) -> "Schedule":
        role_ids = None if roles is None else tuple(roles[op.name] for op in loop.ops)
        return cls(ii, tuple(starts[op.name] for op in loop.ops), role_ids)

    def stage(self, op: int) -> int:
        return self.starts[op] // self.ii

    def slot(self, op: int) -> int:
        return self.starts[op] % self.ii

    def length(self, loop: Loop) -> int:
        """Cycles from the first issue of an iteration until its last op has finished."""
        return max(start + op.duration for start, op in zip(self.starts, loop.ops))

    @property
    def stages(self) -> int:
        return max(self.starts) // self.ii + 1
