"""`stackcrate reqs sync`: rewrite a project's requirement files to follow global-requirements.

Like OpenStack's requirements bot, but keeping the project's own lower bounds (global-requirements has none
since projects own them): for each requirement listed globally, the line keeps the exclusions the global list
also has, gets the global caps and marker, drops exclusions and caps the global list does not have, and keeps
(or gains) a lower bound no higher than the series' upper-constraints pin; name and marker are written as
global-requirements writes them (the gate compares the text), and a package listed there once per marker
gets one line per marker. Only the requirement's span in the line changes (or a line is added below it), so
comments, order, layout and line endings stay; repeated entries are removed. Requirements the global
list does not know are left alone (a human must decide: propose them to openstack/requirements or drop them).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import Specifier
from packaging.version import InvalidVersion, Version

from .check import CAP_OPS, global_line
from .data import SeriesData
from .projectfiles import ProjectReq, written_marker


@dataclass
class SyncResult:
    changed: dict[Path, tuple[str, str]] = field(default_factory=dict)  # path -> (old text, new text)
    unsynced: list[ProjectReq] = field(default_factory=list)              # not in global-requirements

    def diff(self, root: Path) -> str:
        out = []
        for path, (old, new) in sorted(self.changed.items()):
            rel = path.relative_to(root)
            out += difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"a/{rel}", f"b/{rel}")
        return "".join(out)


def _v(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def synced_requirement(r: ProjectReq, sd: SeriesData) -> str | None:
    """The requirement text global-requirements wants for this line (None: leave it as it is)."""
    gl = global_line(sd, r)
    if gl is None or r.name in sd.denylist:
        return None
    req, g = r.requirement, gl.requirement
    pins = [v for v in (_v(x) for x in sd.constraint_versions(r.name)) if v]
    ceiling = max(pins) if pins else None
    # The lower bound: the project's (or global's) highest; > stays >, while ~= and == become >=.
    bounds = [s for s in req.specifier if s.operator in (">=", ">", "~=", "==", "===")]
    bounds += [s for s in g.specifier if s.operator in (">=", ">")]
    lowers = [(Version(s.version), s.operator == ">") for s in bounds if _v(s.version)]
    lower, strict = max(lowers) if lowers else (None, False)
    if ceiling is not None and (lower is None or lower > ceiling or (strict and lower == ceiling)):
        lower, strict = ceiling, False  # the gate installs the pin, so the pin is a lower bound known to work
    # Exclusions: the project's that global-requirements also has (OpenStack asks a subset, not a copy).
    g_excl = {s.version for s in g.specifier if s.operator == "!="}
    excl = [s for s in req.specifier if s.operator == "!=" and s.version in g_excl]
    specs = [str(s) for s in sorted(excl, key=lambda s: _v(s.version) or Version("0"))]
    if lower is not None:
        specs.append(str(Specifier(f"{'>' if strict else '>='}{lower}")))
    specs += sorted(str(s) for s in g.specifier if s.operator in CAP_OPS)
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = written_marker(gl.text)  # global_line chose the line whose marker text is the project's, if any
    if {str(s) for s in req.specifier} == set(specs):
        if marker == r.marker and req.name == g.name:
            return None  # already right: no churn on clean files
        head = _NAME.sub(g.name, r.text.split(";", 1)[0].rstrip(), count=1)  # same specifiers, as written
    else:
        head = f"{g.name}{extras}{','.join(specs)}"
    return head + (f";{marker}" if marker else "")


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def _edit(r: ProjectReq, new: str) -> tuple[int, int, str]:
    """The span to replace and its new text. In pyproject.toml the requirement is a TOML string whose quotes
    the marker must not use: global-requirements writes ``'``, so a '...' string becomes a "..." one."""
    if r.quote == "'" and "'" in new:
        return r.start - 1, r.end + 1, f'"{new}"'
    if r.quote == '"' and '"' in new:
        return r.start, r.end, new.replace('"', "'")
    return r.start, r.end, new


def _drop(r: ProjectReq, line: str) -> tuple[int, int, str | None]:
    """How a repeated requirement goes: its whole line where it is alone on it (None), else, in an inline
    pyproject array, only its string and one comma beside it."""
    if not r.quote:
        return r.start, r.end, None
    start, end = r.start - 1, r.end + 1  # with its quotes
    if after := re.match(r"\s*,\s*", line[end:]):
        end += after.end()
    elif before := re.search(r",\s*$", line[:start]):
        start = before.start()
    if not (line[:start] + line[end:]).strip(" \t\r\n,"):
        return r.start, r.end, None
    return start, end, ""


def sync(reqs: list[ProjectReq], sd: SeriesData) -> SyncResult:
    result = SyncResult()
    edits: dict[Path, dict[int, list[tuple[int, int, str | None]]]] = {}
    seen: dict[tuple, ProjectReq] = {}
    lines: dict[Path, list[str]] = {}
    for r in reqs:
        new = None
        if r.name not in sd.global_reqs and r.name not in sd.denylist:
            result.unsynced.append(r)
        else:
            new = synced_requirement(r, sd)
        # Key on the rewritten line: a marker fix can make it a repeat of an earlier one.
        key = (r.rel, r.section, r.name, written_marker(new) if new else r.marker)
        if key in seen:
            if r.path not in lines:
                lines[r.path] = _read_keeping_newlines(r.path).splitlines(keepends=True)
            edits.setdefault(r.path, {}).setdefault(r.lineno, []).append(_drop(r, lines[r.path][r.lineno - 1]))
            continue
        seen[key] = r
        if new is not None:
            edits.setdefault(r.path, {}).setdefault(r.lineno, []).append(_edit(r, new))
    appends: dict[Path, dict[int, list[str]]] = {}
    for last, new in _missing_lines(seen, sd):
        if last.quote:  # a pyproject array: one more string after this one, valid inline or one per line
            edits.setdefault(last.path, {}).setdefault(last.lineno, []).append(
                (last.end + 1, last.end + 1, ', "' + new.replace('"', "'") + '"'))
        else:  # one requirement per line: a new line below, indented alike
            appends.setdefault(last.path, {}).setdefault(last.lineno, []).append(" " * last.start + new)
    for path in {*edits, *appends}:
        old = _read_keeping_newlines(path)
        new_text = _apply(old, edits.get(path, {}), appends.get(path, {}))
        if new_text != old:
            result.changed[path] = (old, new_text)
    return result


def _missing_lines(kept: dict[tuple, ProjectReq], sd: SeriesData) -> list[tuple[ProjectReq, str]]:
    """The lines to add after a project's last line of a package global-requirements lists once per marker:
    the project must list it on as many lines (the gate counts them), each synced like the others."""
    groups: dict[tuple, list[tuple[str, ProjectReq]]] = {}
    for (rel, section, name, marker), r in kept.items():
        if name in sd.global_reqs and name not in sd.denylist:
            groups.setdefault((rel, section, name, tuple(sorted(r.requirement.extras))), []).append((marker, r))
    out = []
    for group in groups.values():
        have = {m for m, _ in group}
        last = max((r for _, r in group), key=lambda r: (r.lineno, r.end))
        for gl in sd.global_reqs[last.name]:
            marker = written_marker(gl.text)
            if marker in have:
                continue
            text = f"{last.text.split(';', 1)[0].rstrip()};{marker}" if marker else last.text.split(";", 1)[0]
            twin = replace(last, text=text, requirement=Requirement(text))
            out.append((last, synced_requirement(twin, sd) or text))
    return out


def _apply(old: str, by_line: dict[int, list[tuple[int, int, str | None]]], appends: dict[int, list[str]]) -> str:
    out = []
    for i, line in enumerate(old.splitlines(keepends=True), 1):
        changes = by_line.get(i, [])
        if any(new is None for _, _, new in changes):
            continue  # a repeated requirement alone on its line: remove the line
        text = line
        for start, end, new in sorted(changes, reverse=True):
            text = text[:start] + new + text[end:]
        eol = text[len(text.rstrip("\r\n")):]
        out.append(text if eol or i not in appends else text + "\n")
        out += [added + (eol or "\n") for added in appends.get(i, [])]
    return "".join(out)


def _read_keeping_newlines(path: Path) -> str:
    # newline="": CRLF stays CRLF, so a rewrite changes only the requirements, not every line ending.
    with path.open(encoding="utf-8", newline="") as f:
        return f.read()


def write(result: SyncResult) -> None:
    for path, (_, new) in result.changed.items():
        tmp = path.with_name(path.name + ".sc-tmp")
        with tmp.open("w", encoding="utf-8", newline="") as f:  # the line endings as read
            f.write(new)
        tmp.replace(path)

