"""Cost kinds: the machine turns an op's shape (``kind: mma, args: {m: 64, n: 128, k: 128}``) into cycles,
units and footprints (docs/spec-format.md, "Cost kinds"). Fields the op gives itself win."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from twill.model.expr import ExprError, evaluate
from twill.model.spec import KindSpec, MachineSpec, OpSpec
from twill.model.template import machine_names
from twill.model.yamlsource import SourceMap

# KindSpec fields in evaluation order; each may use the values of those before it.
COST_FIELDS = ("occupancy", "reservations", "latency", "issue", "warps", "variable_latency", "registers", "smem",
               "tmem", "work")
WHOLE_FIELDS = frozenset(COST_FIELDS) - {"variable_latency", "reservations"}


def resolve_kind(op: OpSpec, machine: MachineSpec, at: tuple, source: SourceMap,
                 split: tuple[str, int] | None = None) -> OpSpec:
    """``op`` with the fields its kind computes filled in; ``split=(arg, n)`` costs one of ``n`` parts,
    with argument ``arg`` divided by ``n``."""
    if op.kind not in machine.kinds:
        known = ", ".join(machine.kinds) or "none"
        raise source.error(at + ("kind",), f"unknown kind {op.kind!r} (machine {machine.name!r} has: {known})")
    kind = machine.kinds[op.kind]
    args = _arguments(op, kind, at, source)
    if split is not None:
        arg, n = split
        if arg not in args:
            raise source.error(at + ("subtile",), f"kind {op.kind!r} has no argument {arg!r} to split "
                                                  f"(takes: {', '.join(kind.args)})")
        if not isinstance(args[arg], int) or args[arg] % n:
            raise source.error(at + ("subtile",), f"{arg} = {args[arg]!r} does not split into {n} equal parts")
        args[arg] //= n
    names = machine_names(machine) | args
    fields: dict[str, Any] = {"unit": kind.unit} if kind.unit is not None else {}
    for name in COST_FIELDS:
        value = getattr(kind, name)
        if value is None:
            continue
        names[name] = fields[name] = _evaluate(value, names, op, name, at, source)
    given = {name: getattr(op, name) for name in op.model_fields_set - {"kind", "args"}}
    if "reservations" in given:
        fields.pop("unit", None), fields.pop("occupancy", None)
    if "unit" in given or "occupancy" in given:
        fields.pop("reservations", None)
    try:
        return OpSpec.model_validate({**fields, **given, "kind": op.kind, "args": op.args})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise source.error(at + ("kind",), f"kind {op.kind!r} gives {where}: "
                                           f"{error['msg'].removeprefix('Value error, ')}") from None


def _arguments(op: OpSpec, kind: KindSpec, at: tuple, source: SourceMap) -> dict[str, Any]:
    for name in op.args:
        if name not in kind.args:
            raise source.error(at + ("args", name), f"kind {op.kind!r} takes no argument {name!r} "
                                                    f"(takes: {', '.join(kind.args) or 'none'})", at_key=True)
    missing = [name for name, default in kind.args.items() if default is None and name not in op.args]
    if missing:
        raise source.error(at + ("args",) if op.args else at + ("kind",),
                           f"kind {op.kind!r} needs argument(s): {', '.join(missing)}")
    return {name: op.args.get(name, default) for name, default in kind.args.items()}


def _evaluate(value: Any, names: dict, op: OpSpec, field: str, at: tuple, source: SourceMap) -> Any:
    """One kind field's value; cycle counts and sizes must come out whole."""
    if isinstance(value, list):  # reservations: each entry's numbers
        return [{key: item if key == "unit" else _evaluate(item, names, op, field, at, source)
                 for key, item in entry.items()} for entry in value]
    if not isinstance(value, str):
        return value
    try:
        result = evaluate(value, names)
    except ExprError as error:
        raise source.error(at + ("kind",), f"kind {op.kind!r}, field {field}: {error}") from None
    if field in WHOLE_FIELDS and (isinstance(result, bool) or not isinstance(result, int)):
        raise source.error(at + ("kind",), f"kind {op.kind!r}, field {field}: {value!r} gives {result!r}, "
                                           "not a whole number (round it with ceil() in the machine file)")
    return result
