"""The one error type users see: a message naming what is wrong and a hint saying what to do."""

from __future__ import annotations


class StackcrateError(Exception):
    """An error caused by the user's input or environment; the CLI prints it without a traceback."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, *, where: str | None = None):
        self.message = message
        self.hint = hint
        self.where = where  # "file:line" or "file: field" when known
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ResolutionError(StackcrateError):
    """The components' requirements, the constraints and the overrides cannot all hold at once."""


class StaleLockError(StackcrateError):
    """The lock no longer matches its inputs."""
