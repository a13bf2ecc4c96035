"""The user's text files (manifests, vars, services and configuration files, constraints and requirement files),
read with errors that name the file and say what to do: missing, a folder, unreadable, or not UTF-8 (the
encoding YAML, pip and OpenStack's gate all read)."""

from __future__ import annotations

from pathlib import Path

from .errors import StackcrateError


def read_text(path: Path, what: str, *, hint: str | None = None, shown: str | None = None,
              newlines: bool = True) -> str:
    """The text of path; `what` names it in errors ("manifest", "services file"), `hint` says what to do when
    it is not there, `shown` is how errors name it (default: the path). newlines: \\r\\n and \\r read as \\n, as
    Python's text files read them (what a digest of the text was always taken of); False: the bytes as they are
    (a file rewritten in place keeps its line endings)."""
    name = shown or str(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise StackcrateError(f"{what} {name} does not exist", hint=hint) from None
    except IsADirectoryError:
        raise StackcrateError(f"{what} {name} is a directory", hint=hint) from None
    except PermissionError:
        raise StackcrateError(f"{what} {name} cannot be read: permission denied",
                              hint="make it readable by this user (or run as one who can read it)") from None
    except OSError as exc:
        raise StackcrateError(f"{what} {name} cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data[:exc.start].count(b"\n") + 1
        raise StackcrateError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                              where=f"{name}:{lineno}",
                              hint="save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if newlines else text
