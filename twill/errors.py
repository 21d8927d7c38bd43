"""The one error type for bad input: it knows the file, line and field it is about."""

from __future__ import annotations


class SpecError(Exception):
    """Bad input, reported as one line: ``FILE:LINE: FIELD: MESSAGE``."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __str__(self) -> str:
        parts = [self.file + (f":{self.line}" if self.line is not None else "")] if self.file else []
        if self.field:
            parts.append(self.field)
        return ": ".join(parts + [self.message])
