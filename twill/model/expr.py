"""Arithmetic expressions in spec and machine files: a small, safe subset of Python syntax.

``evaluate("ceil(2*m*n*k / tc_flops[dtype])", names)`` walks the parsed tree itself (no ``eval``):
numbers, strings, booleans, names, ``+ - * / // % **``, comparisons, ``and or not``,
``a if c else b``, ``table[key]`` and the functions in ``FUNCTIONS``.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Mapping

Value = int | float | bool | str

FUNCTIONS = {"min": min, "max": max, "ceil": math.ceil, "floor": math.floor, "log2": math.log2,
             "int": int, "round": round}
BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
           ast.NotIn: lambda a, b: a not in b}


class ExprError(ValueError):
    """An expression that does not parse or cannot be evaluated; the message says why."""


def evaluate(text: str, names: Mapping[str, Any]) -> Any:
    """The value of ``text`` with ``names`` bound; ``ExprError`` on anything outside the subset."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ExprError(f"cannot parse expression {text!r}") from None
    try:
        value = _eval(tree.body, names)
    except ExprError:
        raise
    except ZeroDivisionError:
        raise ExprError(f"division by zero in {text!r}") from None
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ExprError(f"cannot evaluate {text!r}: {exc}") from None
    return as_int_if_whole(value)


def as_int_if_whole(value: Any) -> Any:
    """``128.0`` -> ``128``: cycle counts and sizes are integers whenever the arithmetic allows."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _eval(node: ast.AST, names: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ("true", "false"):
            return node.id == "true"
        if node.id not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ExprError(f"unknown name {node.id!r} (known: {known})")
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        return BINARY[type(node.op)](_eval(node.left, names), _eval(node.right, names))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        value = _eval(node.operand, names)
        return -value if isinstance(node.op, ast.USub) else +value if isinstance(node.op, ast.UAdd) else not value
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, names) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and all(type(op) in COMPARE for op in node.ops):
        left = _eval(node.left, names)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, names)
            if not COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, names) else node.orelse, names)
    if isinstance(node, ast.Subscript):
        table, key = _eval(node.value, names), _eval(node.slice, names)
        if not isinstance(table, Mapping):
            raise ExprError("only tables (mappings) can be indexed")
        if key not in table:
            raise ExprError(f"no entry {key!r} (has: {', '.join(map(str, table))})")
        return table[key]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(item, names) for item in node.elts]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
            and not node.keywords):
        return FUNCTIONS[node.func.id](*(_eval(arg, names) for arg in node.args))
    raise ExprError(f"not allowed in an expression: {ast.unparse(node)!r}")
