"""Broken pipeline programs, for the checks that must catch them (simulator and host twin)."""

from __future__ import annotations

import dataclasses

from twill.emit.program import Channel, Program


def with_channel(program: Program, name: str, make) -> Program:
    """``program`` with channel ``name`` replaced by ``make(channel)``."""
    return dataclasses.replace(program, channels=tuple(make(ch) if ch.name == name else ch for ch in program.channels))


def _as(kind: type, ch: Channel) -> Channel:
    return kind(**{f.name: getattr(ch, f.name) for f in dataclasses.fields(ch)})


def flipped(barrier_kind: str):
    """A channel whose waits on ``barrier_kind`` name the wrong parity."""
    class Flipped(Channel):
        def parity(self, barrier, item):
            return super().parity(barrier, item) ^ (barrier == barrier_kind)
    return lambda ch: _as(Flipped, ch)


def one_slot_short(ch: Channel) -> Channel:
    """A channel whose data ring has one slot fewer than its barriers admit items in flight."""
    class Short(Channel):
        def slot(self, item):
            return item % (self.depth - 1)
    return _as(Short, ch)


def without_wait(program: Program, step_name: str, channel: str) -> Program:
    """``program`` with step ``step_name``'s waits on ``channel`` removed."""
    ch = next(c for c in program.channels if c.name == channel)
    roles = tuple(dataclasses.replace(role, steps=tuple(
        dataclasses.replace(s, waits=tuple(w for w in s.waits if w.channel != ch.id)) if s.name == step_name else s
        for s in role.steps)) for role in program.roles)
    return dataclasses.replace(program, roles=roles)
