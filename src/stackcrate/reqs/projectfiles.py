"""A project's requirement files, read line by line so findings can name the line and sync can rewrite it.

Read: requirements.txt, test-requirements.txt, doc/requirements.txt (and the files they include with -r/-c),
the ``[extras]`` of setup.cfg (pbr) and, in pyproject.toml, ``[project] dependencies``,
``[project.optional-dependencies]`` and ``[dependency-groups]`` (PEP 735). Each requirement keeps the exact
span of its text in the line, so a rewrite changes only that span (comments, order and layout stay).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import tomllib
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import StackcrateError
from ..textfile import read_text

TXT_FILES = ("requirements.txt", "test-requirements.txt", "doc/requirements.txt")  # what the gate reads


@dataclass
class ProjectReq:
    path: Path            # the file
    rel: str              # path relative to the project, for messages
    lineno: int           # 1-based
    section: str          # "" for a plain file, else the extra ("extras: ldap") or "dependencies"
    start: int            # span of the requirement text within the line
    end: int
    text: str             # the requirement as written
    requirement: Requirement
    quote: str = ""       # in pyproject.toml: the quote around the string (a rewrite must not use it inside)

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def where(self) -> str:
        return f"{self.rel}:{self.lineno}"

    @property
    def marker(self) -> str:
        return written_marker(self.text)


def written_marker(text: str) -> str:
    """The marker as written, spacing and quotes included: the gate compares this text, not its meaning."""
    return text.split(";", 1)[1].strip() if ";" in text else ""


def _parse(text: str, rel: str, lineno: int) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise StackcrateError(f"cannot parse requirement {text!r}: {exc}", where=f"{rel}:{lineno}",
                              hint="fix that line (PEP 508: name[extras]specifiers;marker)") from None


def read_txt(path: Path, rel: str) -> list[ProjectReq]:
    out = []
    for i, line in enumerate(read_text(path, "requirements file", shown=rel, newlines=False).splitlines(), 1):
        body = line.split("#", 1)[0]
        stripped = body.strip()
        if not stripped or stripped.startswith("-"):  # -r/-c/-e and options are not requirements
            continue
        start = body.index(stripped)
        out.append(ProjectReq(path, rel, i, "", start, start + len(stripped), stripped,
                              _parse(stripped, rel, i)))
    return out


_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_KEY = re.compile(r"^([A-Za-z0-9_.-]+)\s*=\s*(.*)$")
_STRING = re.compile(r"\"([^\"]*)\"|'([^']*)'")


def read_setup_cfg(path: Path, rel: str) -> list[ProjectReq]:
    """pbr's ``[extras]``: ``name =`` then one requirement per indented line (or one on the key's line)."""
    out, section, extra = [], None, None
    for i, line in enumerate(read_text(path, "requirements file", shown=rel, newlines=False).splitlines(), 1):
        m = _SECTION.match(line)
        if m:
            section, extra = m.group(1).strip(), None
            continue
        if section != "extras":
            continue
        body = line.split("#", 1)[0]
        if not body.strip():
            continue
        value_start = 0
        if not line[:1].isspace():
            k = _KEY.match(body)
            if not k:
                continue
            extra = k.group(1)
            value_start = k.start(2)
        if extra is None:
            continue
        value = body[value_start:].strip()
        if value:
            start = body.index(value, value_start)
            out.append(ProjectReq(path, rel, i, f"extras: {extra}", start, start + len(value), value,
                                  _parse(value, rel, i)))
    return out


_INLINE_TABLE = re.compile(r"\{[^}]*\}")


def read_pyproject(path: Path, rel: str) -> list[ProjectReq]:
    """String items of ``[project] dependencies``, ``[project.optional-dependencies]`` and
    ``[dependency-groups]`` arrays (a group's ``{include-group = ...}`` entries are not requirements)."""
    out, section, key, in_array = [], None, None, False
    text = read_text(path, "requirements file", shown=rel, newlines=False)
    try:  # the reader below goes line by line (to keep spans); TOML's own parser says if the file is valid
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StackcrateError(f"not valid TOML: {exc}", where=rel,
                              hint="fix the TOML syntax where the message says") from None
    for i, line in enumerate(text.splitlines(), 1):
        m = _SECTION.match(line)
        if m:
            section, key, in_array = m.group(1).strip(), None, False
            continue
        if section not in _PYPROJECT_LABELS:
            continue
        # Blank inline tables out (same length, so the spans stay right): their strings are no requirements.
        code = _INLINE_TABLE.sub(lambda t: " " * len(t.group(0)), _strip_toml_comment(line))
        start_at = 0
        if not in_array:
            k = _KEY.match(code.strip())
            if not k or "[" not in k.group(2):
                continue
            key = k.group(1)
            if section == "project" and key != "dependencies":
                continue
            in_array = True
            start_at = code.index("[") + 1
        for s in _STRING.finditer(code, start_at):
            value, quote = (s.group(1), '"') if s.group(1) is not None else (s.group(2), "'")
            out.append(ProjectReq(path, rel, i, _PYPROJECT_LABELS[section].format(key), s.start() + 1,
                                  s.end() - 1, value, _parse(value, rel, i), quote))
        if _closes(code[start_at:]):
            in_array = False
    return out


_PYPROJECT_LABELS = {"project": "dependencies", "project.optional-dependencies": "extras: {}",
                     "dependency-groups": "dependency-group: {}"}


def _strip_toml_comment(line: str) -> str:
    # A '#' outside quotes starts a comment.
    quote = None
    for j, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:j]
    return line


def _closes(code: str) -> bool:
    return "]" in _STRING.sub("", code)


_INCLUDE = re.compile(r"^(?:-r|--requirement|-c|--constraint)(?:\s*=?\s*)(\S+)")


def _includes(path: Path, rel: str) -> list[tuple[Path, str]]:
    """The files a requirements file includes (-r/-c), relative to it as pip reads them; a missing one is an
    error, since skipping it would hide its requirements from the check."""
    out = []
    for i, line in enumerate(read_text(path, "requirements file", shown=rel, newlines=False).splitlines(), 1):
        m = _INCLUDE.match(line.split("#", 1)[0].strip())
        if not m:
            continue
        target = path.parent / m.group(1)
        target_rel = os.path.normpath(os.path.join(os.path.dirname(rel), m.group(1)))
        if not target.is_file():
            raise StackcrateError(f"{m.group(1)} (included here) does not exist: {target}", where=f"{rel}:{i}",
                                  hint="add the file, or fix or remove the include line")
        out.append((target, target_rel))
    return out


def read_project(root: Path) -> list[ProjectReq]:
    """Every requirement of the project at ``root`` (a folder, e.g. an unpacked sdist or a git checkout)."""
    root = Path(root)
    if root.is_file():
        raise StackcrateError(f"{root} is a file, not a project folder",
                              hint=f"pass the folder holding it: {root.parent}")
    if not root.is_dir():
        raise StackcrateError(f"project folder {root} does not exist",
                              hint="pass the folder holding requirements.txt (e.g. an unpacked sdist)")
    reqs: list[ProjectReq] = []
    present = [n for n in (*TXT_FILES, "setup.cfg", "pyproject.toml") if (root / n).is_file()]
    done: set[Path] = set()  # each file once, however often it is included (test-requirements -r requirements)

    def read_txt_tree(path: Path, rel: str) -> None:
        if path.resolve() in done:
            return
        done.add(path.resolve())
        reqs.extend(read_txt(path, rel))
        for target, target_rel in _includes(path, rel):
            read_txt_tree(target, target_rel)

    for name in present:
        if name in TXT_FILES:
            read_txt_tree(root / name, name)
        else:
            reqs.extend((read_setup_cfg if name == "setup.cfg" else read_pyproject)(root / name, name))
    if not any(n in present for n in TXT_FILES) and not reqs:
        raise StackcrateError(f"{root} holds no requirement files",
                              hint="expected requirements.txt, test-requirements.txt, doc/requirements.txt, "
                              "setup.cfg [extras] or pyproject.toml dependencies")
    return reqs
