"""Parameterized kernel specs: ``params`` (set with ``--set``), ``let`` (derived values), ``when`` and
expressions, resolved into a plain spec before validation (docs/spec-format.md, "Parameters").

Strings in numeric positions are expressions (twill/model/expr.py) over the machine's constants, the
parameters and the ``let`` values; ops and edges with a false ``when`` are dropped, and so is every
edge that touches a dropped op.
"""

from __future__ import annotations

from typing import Any, Mapping

from twill.errors import SpecError
from twill.model.expr import ExprError, evaluate
from twill.model.spec import MachineSpec, ParamSpec
from twill.model.validation import validate
from twill.model.yamlsource import Nested, SourceMap

# Fields whose strings are names or text, never expressions.
TEXT_FIELDS = frozenset({"name", "unit", "kind", "src", "dst", "barrier", "parts", "release", "machine",
                         "description", "source", "subtile", "overwrites"})
LOOP_EXPRESSIONS = ("subtile", "cross_role", "max_warps", "resident_smem")
TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a word"}


def machine_names(machine: MachineSpec) -> dict[str, Any]:
    """The names a machine gives every expression: its constants."""
    return {name: constant.value for name, constant in machine.constants.items()}


def instantiate(data: dict, source: SourceMap, machine: MachineSpec,
                settings: Mapping[str, Any]) -> tuple[dict, dict[str, Any]]:
    """``data`` with parameters resolved, and the parameters' values; records dropped list items in
    ``source.kept``."""
    data = dict(data)
    declared = data.pop("params", None) or {}
    lets = data.pop("let", None) or {}
    if not isinstance(declared, dict) or not isinstance(lets, dict):
        raise source.error(("params",) if not isinstance(declared, dict) else ("let",), "expected a mapping")
    names = machine_names(machine)
    for name in settings:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise SpecError(f"unknown parameter {name!r} (this spec has: {known})", field=f"--set {name}")
    for name, raw in declared.items():
        param = validate(ParamSpec, raw if isinstance(raw, dict) else {"default": raw}, Nested(source, ("params", name)))
        _check_name(name, names, source, ("params", name))
        names[name] = _param_value(name, param, settings, machine, source)
    for name, text in lets.items():
        _check_name(name, names, source, ("let", name))
        names[name] = _expression(text, names, source, ("let", name), "a value")
    for key in LOOP_EXPRESSIONS:
        if isinstance(data.get(key), str):
            data[key] = _expression(data[key], names, source, (key,))
    ops = data.get("ops")
    kept_ops, data["ops"] = _items(ops, "ops", names, source)
    dropped = _names(ops) - _names(data["ops"])
    kept_edges, data["edges"] = _items(data.get("edges"), "edges", names, source,
                                       skip=lambda e: e.get("src") in dropped or e.get("dst") in dropped)
    source.kept.update({"ops": kept_ops, "edges": kept_edges})
    for key in ("ops", "edges"):
        if data[key] is None:
            del data[key]
    return data, {name: names[name] for name in declared}


def _names(items: Any) -> set:
    return {item.get("name") for item in items if isinstance(item, dict)} if isinstance(items, list) else set()


def _check_name(name: str, names: dict, source: SourceMap, path: tuple) -> None:
    if name in names:
        raise source.error(path, f"{name!r} is already defined (a machine constant or an earlier name)", at_key=True)


def _param_value(name: str, param: ParamSpec, settings: Mapping[str, Any], machine: MachineSpec,
                 source: SourceMap) -> Any:
    if name in settings:
        value = settings[name]
        defaults = param.default.values() if isinstance(param.default, dict) else [param.default]
        wanted = {type(d) for d in defaults}
        if type(value) not in wanted and not (type(value) is int and float in wanted):
            kinds = " or ".join(sorted(TYPE_NAMES[t] for t in wanted))
            raise SpecError(f"expects {kinds}, got {value!r}", field=f"--set {name}")
    elif isinstance(param.default, dict):
        if machine.name not in param.default:
            raise source.error(("params", name, "default"), f"no default for machine {machine.name!r} "
                                                            f"(has: {', '.join(param.default)}); pass --set {name}=...")
        value = param.default[machine.name]
    else:
        value = param.default
    if param.choices is not None and value not in param.choices:
        message = f"{value!r} is not one of {', '.join(map(str, param.choices))}"
        if name in settings:
            raise SpecError(message, field=f"--set {name}")
        raise source.error(("params", name), message)
    return value


def _expression(value: Any, names: Mapping[str, Any], source: SourceMap, path: tuple,
                expected: str = "an integer") -> Any:
    if not isinstance(value, str):
        return value
    try:
        return evaluate(value, names)
    except ExprError as error:
        raise source.error(path, f"expected {expected}, or an expression: {error}") from None


def _items(items: Any, field: str, names: Mapping[str, Any], source: SourceMap,
           skip=lambda item: False) -> tuple[list[int], Any]:
    """Evaluate every item of the ``ops`` or ``edges`` list, dropping those with a false ``when`` and
    those ``skip`` names; returns (the original index of each item kept, the items)."""
    if not isinstance(items, list):
        return [], items
    kept, result = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            kept.append(i)
            result.append(item)
            continue
        path = (field, i)
        if skip(item):
            continue
        if "when" in item:
            condition = _expression(item["when"], names, source, path + ("when",), "true or false")
            if not isinstance(condition, bool):
                raise source.error(path + ("when",), f"`when` must be true or false, got {condition!r}")
            if not condition:
                continue
        kept.append(i)
        result.append(_resolve(item, names, source, path))
    return kept, result


def _resolve(node: Any, names: Mapping[str, Any], source: SourceMap, path: tuple) -> Any:
    """Replace every expression string under ``node`` (not text fields) by its value."""
    if isinstance(node, dict):
        return {key: value if key in TEXT_FIELDS else _resolve(value, names, source, path + (key,))
                for key, value in node.items() if key != "when"}
    if isinstance(node, list):
        return [_resolve(value, names, source, path + (i,)) for i, value in enumerate(node)]
    if "args" in path and isinstance(node, str) and node.isidentifier() and node not in names:
        return node  # a word argument such as `dtype: bf16`
    return _expression(node, names, source, path)
