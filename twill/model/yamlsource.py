"""Read YAML while remembering where every value came from.

``load_yaml`` returns plain Python data plus a ``SourceMap`` that turns a field path such as
``("ops", 2, "latency")`` into the line it was written on, so every error can name file, line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from twill.errors import SpecError

Path_ = tuple[Any, ...]


def field_name(path: Path_) -> str:
    """``("ops", 2, "latency")`` -> ``ops[2].latency``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "<document>"


class SourceMap:
    """Maps field paths of one YAML document to 1-based line numbers."""

    def __init__(self, file: str, root: yaml.Node | None):
        self.file = file
        self.root = root
        self.kept: dict[str, list[int]] = {}  # list field -> original index of each item still present

    def original(self, path: Path_) -> Path_:
        """``path`` in the file as written, when items of a list were dropped (``when:``) after parsing."""
        if len(path) >= 2 and path[0] in self.kept and isinstance(path[1], int) and path[1] < len(self.kept[path[0]]):
            return (path[0], self.kept[path[0]][path[1]]) + tuple(path[2:])
        return path

    def line(self, path: Path_) -> int | None:
        """Line of the deepest node along ``path`` that exists (path parts that are not keys are skipped)."""
        node = self.root
        if node is None:
            return None
        best = node.start_mark.line + 1
        for part in self.original(path):
            child = _child(node, part)
            if child is None:
                continue
            node = child
            best = node.start_mark.line + 1
        return best

    def root_keys(self) -> list[str]:
        """Top-level keys of the document (empty unless it is a mapping)."""
        if not isinstance(self.root, yaml.MappingNode):
            return []
        return [key.value for key, _ in self.root.value]

    def key_line(self, path: Path_) -> int | None:
        """Line of the *key* that ends ``path`` (for unknown or duplicate keys)."""
        written = self.original(path)
        parent = self.root
        for part in written[:-1]:
            parent = _child(parent, part) if parent is not None else None
        if isinstance(parent, yaml.MappingNode):
            for key, _ in parent.value:
                if key.value == written[-1]:
                    return key.start_mark.line + 1
        return self.line(path)

    def error(self, path: Path_, message: str, *, at_key: bool = False) -> SpecError:
        line = self.key_line(path) if at_key else self.line(path)
        return SpecError(message, file=self.file, line=line, field=field_name(self.original(path)))


class Nested(SourceMap):
    """The source map of one sub-document (e.g. an inline machine), for validation errors."""

    def __init__(self, parent: SourceMap, prefix: tuple):
        super().__init__(parent.file, parent.root)
        self.parent, self.prefix = parent, prefix

    def line(self, path):
        return self.parent.line(self.prefix + tuple(path))

    def key_line(self, path):
        return self.parent.key_line(self.prefix + tuple(path))

    def error(self, path, message, *, at_key=False):
        return self.parent.error(self.prefix + tuple(path), message, at_key=at_key)


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None


def _check_duplicate_keys(node: yaml.Node, path: Path_, source: SourceMap) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                raise SpecError(f"duplicate key {key.value!r}", file=source.file,
                                line=key.start_mark.line + 1, field=field_name(path + (key.value,)))
            seen.add(key.value)
            _check_duplicate_keys(value, path + (key.value,), source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(item, path + (index,), source)


def load_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    """Parse one YAML file; malformed YAML and duplicate keys become a ``SpecError``."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", file=file) from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"malformed YAML: {exc.problem or exc.context}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"malformed YAML: {exc}", file=file) from None
    finally:
        loader.dispose()
    source = SourceMap(file, root)
    if root is not None:
        _check_duplicate_keys(root, (), source)
    return data, source
