"""User-facing errors.

Anything a user can fix (a bad mapping, a missing file, an unreadable archive) raises a ``LogmapError``. The CLI
prints its message on one line and exits with status 2; it never shows a traceback for these.
"""

from __future__ import annotations

from typing import Protocol


class Position(Protocol):
    """Where something is written in a mapping (``logmap.mapping.model.Where`` is one)."""

    # Read-only members, so that a frozen dataclass (Where) is a Position.
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...
    @property
    def key(self) -> str: ...


class LogmapError(Exception):
    """An error the user can fix; its message says how."""

    exit_code = 2


class MappingError(LogmapError):
    """A mapping file is invalid. Carries where: file, 1-based line and column, and the key path."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: int | None = None, key: str | None = None) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.reason = message
        super().__init__(self._format())

    @classmethod
    def at(cls, message: str, where: Position | None, **extra: object) -> MappingError:
        """The error ``message`` at a position of the mapping (none known: the message alone)."""
        if where is None:
            return cls(message, **extra)  # type: ignore[arg-type]
        return cls(message, file=where.file, line=where.line, column=where.column, key=where.key,
                   **extra)

    def _format(self) -> str:
        where = self.file or "<mapping>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.reason}"


class UnknownFieldError(MappingError):
    """A template names a field its input does not have. Carries the ``field`` and the ``known`` names, so that
    a caller can restate it (an export's reader lists its files' own columns)."""

    def __init__(self, message: str, *, field: str, known: list[str] | tuple[str, ...] = (), file: str | None = None,
                 line: int | None = None, column: int | None = None, key: str | None = None) -> None:
        self.field = field
        self.known = list(known)
        super().__init__(message, file=file, line=line, column=column, key=key)


class InputError(LogmapError):
    """An input file is missing, unreadable or not what it claims to be."""


class OutputError(LogmapError):
    """The output location cannot be used (for example a non-empty directory without --overwrite)."""
