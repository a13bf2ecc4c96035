"""`stackcrate reqs sync`: rewrite a project's requirement files to follow global-requirements.

Like OpenStack's requirements bot, but keeping the project's own lower bounds (global-requirements has none
since projects own them): for each requirement listed globally, the line keeps the exclusions the global list
also has, gets the global caps and marker, drops exclusions and caps the global list does not have, and keeps
(or gains) a lower bound no higher than the series' upper-constraints pin. Only the requirement's span in
the line changes, so comments, order and layout stay; repeated entries are removed. Requirements the global
list does not know are left alone (a human must decide: propose them to openstack/requirements or drop them).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

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
        if marker == r.marker:
            return None  # already right: no churn on clean files
        head = r.text.split(";", 1)[0].rstrip()  # same specifiers, keep them as written
    else:
        head = f"{req.name}{extras}{','.join(specs)}"
    return head + (f";{marker}" if marker else "")


def sync(reqs: list[ProjectReq], sd: SeriesData) -> SyncResult:
    result = SyncResult()
    edits: dict[Path, dict[int, list[tuple[int, int, str | None]]]] = {}
    seen: set[tuple] = set()
    for r in reqs:
        new = None
        if r.name not in sd.global_reqs and r.name not in sd.denylist:
            result.unsynced.append(r)
        else:
            new = synced_requirement(r, sd)
        # Key on the rewritten line: a marker fix can make it a repeat of an earlier one.
        key = (r.rel, r.section, r.name, written_marker(new) if new else r.marker)
        if key in seen:
            edits.setdefault(r.path, {}).setdefault(r.lineno, []).append((r.start, r.end, None))  # drop line
            continue
        seen.add(key)
        if new is not None:
            edits.setdefault(r.path, {}).setdefault(r.lineno, []).append((r.start, r.end, new))
    for path, by_line in edits.items():
        old = path.read_text()
        lines = old.splitlines(keepends=True)
        out = []
        for i, line in enumerate(lines, 1):
            changes = by_line.get(i)
            if not changes:
                out.append(line)
                continue
            if any(new is None for _, _, new in changes):
                continue  # a repeated requirement (one per line in these files): remove its line
            text = line
            for start, end, new in sorted(changes, reverse=True):
                text = text[:start] + new + text[end:]
            out.append(text)
        new_text = "".join(out)
        if new_text != old:
            result.changed[path] = (old, new_text)
    return result


def write(result: SyncResult) -> None:
    for path, (_, new) in result.changed.items():
        tmp = path.with_name(path.name + ".sc-tmp")
        tmp.write_text(new)
        tmp.replace(path)

