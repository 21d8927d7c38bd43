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
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        head = f"{where}: {self.field}: " if self.field else f"{where}: "
        return head + self.message
