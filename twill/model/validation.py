"""Validate parsed YAML against a pydantic model; the first problem becomes a one-line located error."""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from twill.errors import SpecError
from twill.model.yamlsource import SourceMap

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any, source: SourceMap) -> M:
    """Validate ``data`` against ``model``; the first problem becomes a located ``SpecError``."""
    if not isinstance(data, dict):
        raise SpecError("expected a mapping at the top level", file=source.file, line=source.line(()))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key shows up as unknown plus missing: report the unknown key, suggest the missing one.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        path = _data_path(data, error["loc"], keep_last=error["type"] in ("missing", "extra_forbidden"))
        if error["type"] == "extra_forbidden":
            missing = [e["loc"][-1] for e in errors if e["type"] == "missing" and e["loc"][:-1] == error["loc"][:-1]]
            close = difflib.get_close_matches(str(path[-1]), [str(m) for m in missing], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise source.error(path, "unknown field" + hint, at_key=True) from None
        if error["type"] == "missing":
            raise source.error(path, "required field is missing") from None
        message = error["msg"].removeprefix("Value error, ")
        if "input" in error and not isinstance(error["input"], (dict, list)):
            message += f" (got {error['input']!r})"
        raise source.error(path, message) from None


def _data_path(data: Any, loc: tuple, keep_last: bool) -> tuple:
    """Drop pydantic's union tags from ``loc`` so only real keys and indices remain."""
    path, node = [], data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif keep_last and i == len(loc) - 1:
            pass
        else:
            continue
        path.append(part)
    return tuple(path)
