"""Schedule files for ``twill verify`` (docs/hand-schedules.md).

Two forms, told apart by ``starts``:

* explicit: ``ii``, ``starts: {OP: cycle}`` and, for a joint problem, ``roles: {OP: id}``;
* structured: what an expert decides, with no cycle numbers:
  ``roles: {NAME: [OP@STAGE, ...]}`` (joint problems; each role's ops in issue order) or
  ``order: [OP@STAGE, ...]`` (a machine without warps: the ops in slot order), an optional ``ii``
  (omitted: the smallest II at which the structure is valid), and optional ``expect`` claims.

Both may carry ``machine:`` and ``params:`` (used unless the command line overrides them).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import Annotated

from twill.model.loop import Loop
from twill.model.placement import Structure
from twill.model.schedule import Schedule
from twill.model.validation import validate
from twill.model.yamlsource import SourceMap, load_yaml

PosInt = Annotated[int, Field(ge=1, strict=True)]
NonNegInt = Annotated[int, Field(ge=0, strict=True)]
Name = Annotated[str, Field(min_length=1)]
Scalar = Union[bool, int, float, str]

EXPECT_BY_OP = ("depth",)
EXPECT_BY_ROLE = ("setmaxnreg", "registers", "warps")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectSpec(Strict):
    """Claims about what the model derives from the schedule; each is reported as agree/disagree."""

    depth: Optional[dict[Name, PosInt]] = None        # ring slots of an op's result
    setmaxnreg: Optional[dict[Name, PosInt]] = None   # per role
    registers: Optional[dict[Name, NonNegInt]] = None  # per role: registers needed per thread
    warps: Optional[dict[Name, PosInt]] = None        # per role
    stages: Optional[PosInt] = None
    length: Optional[PosInt] = None
    ii: Optional[PosInt] = None                        # the II the structure is valid at first


class ScheduleFile(Strict):
    machine: Optional[Name] = None
    params: Optional[dict[Name, Scalar]] = None
    ii: Optional[PosInt] = None
    starts: Optional[dict[Name, NonNegInt]] = None
    roles: Optional[dict[Name, Any]] = None
    order: Optional[list[Any]] = None
    expect: Optional[ExpectSpec] = None


@dataclass(frozen=True)
class HandSchedule:
    file: str
    form: str                              # "explicit" | "structured"
    ii: int | None                         # None: find the smallest valid II (structured only)
    structure: Structure                   # given, or read off the explicit starts
    schedule: Schedule | None = None       # explicit form only
    expect: dict[str, Any] = field(default_factory=dict)
    role_names: tuple[str, ...] = ()       # by role id (explicit: "role N")


@dataclass(frozen=True)
class Header:
    """What a schedule file says about the problem itself."""

    machine: str | None
    params: dict[str, Any] | None


def _validate(data: Any, source: SourceMap) -> ScheduleFile:
    return validate(ScheduleFile, data, source)


def read_header(path: str | Path) -> Header:
    """``machine`` and ``params`` of a schedule file (a relative machine path is found next to it)."""
    data, source = load_yaml(path)
    spec = _validate(data, source)
    machine = spec.machine
    if machine is not None and Path(machine).suffix and not Path(machine).is_absolute():
        beside = Path(path).parent / machine
        machine = str(beside) if beside.is_file() else machine
    return Header(machine, dict(spec.params) if spec.params is not None else None)


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _entry(text: Any, at: tuple, index: dict[str, int], source: SourceMap) -> tuple[int, int]:
    """``OP`` or ``OP@STAGE`` -> (op index, stage)."""
    if not isinstance(text, str):
        raise source.error(at, f"expected OP or OP@STAGE, got {text!r}")
    name, _, stage = text.partition("@") if "@" in text else (text, "", "0")
    name = name.strip()
    if name not in index:
        raise source.error(at, f"unknown op {name!r}{_suggest(name, list(index))} "
                               f"(ops: {', '.join(index)})")
    stage = stage.strip()
    if not stage.isdigit():
        raise source.error(at, f"stage of {name!r} must be an integer >= 0, got {stage!r}")
    return index[name], int(stage)


def load_hand_schedule(path: str | Path, loop: Loop) -> HandSchedule:
    """Read and check a schedule file of either form against ``loop``."""
    data, source = load_yaml(path)
    spec = _validate(data, source)
    file = str(path)
    if spec.starts is not None:
        return _explicit(spec, loop, source, file)
    return _structured(spec, loop, source, file)


def _explicit(spec: ScheduleFile, loop: Loop, source: SourceMap, file: str) -> HandSchedule:
    names = [op.name for op in loop.ops]
    if spec.ii is None:
        raise source.error(("ii",), "required field is missing (an explicit schedule gives `ii` and `starts`)")
    if spec.order is not None:
        raise source.error(("order",), "`order` belongs to the structured form; an explicit schedule "
                                       "gives `starts`", at_key=True)
    for name in spec.starts:
        if name not in names:
            raise source.error(("starts", name), f"unknown op {name!r}{_suggest(name, names)} "
                                                 f"(loop {loop.name!r} has: {', '.join(names)})", at_key=True)
    missing = [name for name in names if name not in spec.starts]
    if missing:
        raise source.error(("starts",), f"no start given for op(s): {', '.join(missing)}")
    if loop.joint != (spec.roles is not None):
        raise source.error(("roles",) if spec.roles is not None else ("starts",),
                           "a joint problem (machine with `warps`) needs `roles`: the role of every op"
                           if loop.joint else "`roles` given, but the machine has no `warps` (no joint problem)")
    roles = None
    if loop.joint:
        for name, role in spec.roles.items():
            if name not in names:
                raise source.error(("roles", name), f"unknown op {name!r}{_suggest(name, names)}", at_key=True)
            if not isinstance(role, int) or isinstance(role, bool) or role < 0:
                raise source.error(("roles", name), f"role id must be an integer >= 0, got {role!r}")
        missing = [name for name in names if name not in spec.roles]
        if missing:
            raise source.error(("roles",), f"no role given for op(s): {', '.join(missing)}")
        roles = spec.roles
    schedule = Schedule.from_names(loop, spec.ii, spec.starts, roles)
    structure, role_names = structure_of(loop, schedule)
    return HandSchedule(file, "explicit", spec.ii, structure, schedule,
                        _expect(spec, loop, role_names, source), role_names)


def structure_of(loop: Loop, schedule: Schedule) -> tuple[Structure, tuple[str, ...]]:
    """The structure a schedule has: roles (numbered by id), stages, each role's ops by slot."""
    ii = schedule.ii
    stages = tuple(t // ii for t in schedule.starts)
    if schedule.roles is None:
        order = tuple(sorted(range(len(loop.ops)), key=lambda i: (schedule.starts[i] % ii, i)))
        return Structure(("all",), (order,), stages, joint=False), ("all",)
    ids = sorted(set(schedule.roles))
    role_ops = tuple(tuple(sorted((i for i, r in enumerate(schedule.roles) if r == rid),
                                  key=lambda i: (schedule.starts[i] % ii, i))) for rid in ids)
    names = tuple(f"role {rid}" for rid in ids)
    return Structure(names, role_ops, stages, joint=True), names


def _structured(spec: ScheduleFile, loop: Loop, source: SourceMap, file: str) -> HandSchedule:
    index = {op.name: i for i, op in enumerate(loop.ops)}
    if loop.joint:
        if spec.order is not None:
            raise source.error(("order",), "a joint problem (machine with `warps`) lists its ops per role: "
                                           "`roles: {NAME: [OP@STAGE, ...]}`", at_key=True)
        if spec.roles is None:
            raise source.error((), "no schedule: give `roles: {NAME: [OP@STAGE, ...]}` (structured) "
                                   "or `ii` and `starts` (explicit)")
        lists = list(spec.roles.items())
        paths = [("roles", name) for name, _ in lists]
    else:
        if spec.roles is not None:
            raise source.error(("roles",), "`roles` given, but the machine has no `warps` (no joint problem); "
                                           "list the ops in slot order with `order: [OP@STAGE, ...]`", at_key=True)
        if spec.order is None:
            raise source.error((), "no schedule: give `order: [OP@STAGE, ...]` (structured) "
                                   "or `ii` and `starts` (explicit)")
        lists, paths = [("all", spec.order)], [("order",)]
    stages: dict[int, int] = {}
    where: dict[int, tuple] = {}
    role_ops = []
    for (name, entries), at in zip(lists, paths):
        if not isinstance(entries, list) or not entries:
            raise source.error(at, "expected a non-empty list of OP or OP@STAGE")
        ops = []
        for j, text in enumerate(entries):
            op, stage = _entry(text, at + (j,), index, source)
            if op in stages:
                first = where[op]
                raise source.error(at + (j,), f"op {loop.ops[op].name!r} is listed twice (also at "
                                              f"{'.'.join(str(p) for p in first[:-1])}[{first[-1]}])")
            stages[op], where[op] = stage, at + (j,)
            ops.append(op)
        role_ops.append(tuple(ops))
    missing = [op.name for i, op in enumerate(loop.ops) if i not in stages]
    if missing:
        raise source.error(paths[0][:1], f"op(s) in no {'role' if loop.joint else 'list'}: {', '.join(missing)}")
    role_names = tuple(name for name, _ in lists)
    structure = Structure(role_names, tuple(role_ops), tuple(stages[i] for i in range(len(loop.ops))),
                          joint=loop.joint)
    return HandSchedule(file, "structured", spec.ii, structure, None,
                        _expect(spec, loop, role_names, source), role_names)


def _expect(spec: ScheduleFile, loop: Loop, role_names: tuple[str, ...], source: SourceMap) -> dict[str, Any]:
    if spec.expect is None:
        return {}
    ops = [op.name for op in loop.ops]
    claims = spec.expect.model_dump(exclude_none=True)
    for key in EXPECT_BY_OP:
        for name in claims.get(key, {}):
            if name not in ops:
                raise source.error(("expect", key, name), f"unknown op {name!r}{_suggest(name, ops)}", at_key=True)
    for key in EXPECT_BY_ROLE:
        if key in claims and not loop.joint:
            raise source.error(("expect", key), "per-role claims need a joint problem (machine with `warps`)",
                               at_key=True)
        for name in claims.get(key, {}):
            if name not in role_names:
                raise source.error(("expect", key, name), f"unknown role {name!r}{_suggest(name, list(role_names))} "
                                                          f"(roles: {', '.join(role_names)})", at_key=True)
    return claims
