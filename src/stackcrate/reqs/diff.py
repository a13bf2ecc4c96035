"""`stackcrate reqs diff`: what changed between two series' constraints, two constraints files or two locks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..cache import Cache
from ..constraints import parse_requirement_lines
from ..errors import StackcrateError
from ..model.changes import KINDS, version_changes
from ..model.lock import Lock
from ..textfile import read_text
from .data import pinned_version, series_file

DEFAULT_PYTHON = "3.11"  # debian-bookworm's, the default target


@dataclass
class Side:
    label: str
    versions: dict[str, str]   # canonical name -> version


@dataclass
class Diff:
    old: Side
    new: Side
    python: str = DEFAULT_PYTHON
    rows: list[dict] = field(default_factory=list)  # {name, kind, old, new}

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(KINDS, 0)
        for r in self.rows:
            c[r["kind"]] += 1
        c["upgraded"] = c["major"] + c["minor"] + c["patch"]
        c["unchanged"] = len(set(self.old.versions) & set(self.new.versions)) - sum(
            c[k] for k in ("major", "minor", "patch", "downgraded", "changed"))
        return c

    def to_dict(self) -> dict:
        return {"old": self.old.label, "new": self.new.label, "python": self.python, "counts": self.counts(),
                "changes": self.rows}


def load_side(spec: str, cache: Cache, constraints_dir: str | None, python: str = DEFAULT_PYTHON) -> Side:
    """A series name, an upper-constraints file, or a stackcrate lock.

    A constraints file pins some packages once per Python version (``;python_version=='3.9'``); we compare
    what one interpreter would get, so lines whose marker does not hold for ``python`` are left out.
    """
    p = Path(spec)
    if p.is_file():
        if p.suffix == ".lock" or p.name.endswith("pylock.toml"):
            lock = Lock.load(p)
            return Side(str(p), lock.versions())
        text = read_text(p, "constraints file")
        source = str(p)
    elif "/" in spec or spec.endswith((".txt", ".lock", ".toml")):
        raise StackcrateError(f"{spec} does not exist",
                              hint="pass a series name (e.g. 2025.1), a constraints file or a lock file")
    else:
        source, text = series_file(spec, "upper-constraints.txt", cache, constraints_dir)
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}
    versions = {}
    for cl in parse_requirement_lines(text, source):
        if cl.requirement.marker and not cl.requirement.marker.evaluate(env):
            continue
        v = pinned_version(cl.requirement)
        if v is None:
            raise StackcrateError(f"{cl.text!r} is not a pin (name===version)", where=f"{source}:{cl.lineno}",
                                  hint="a constraints file pins every package to one version")
        versions[cl.name] = v
    return Side(spec, versions)


def diff(old: Side, new: Side, python: str = DEFAULT_PYTHON) -> Diff:
    return Diff(old, new, python, version_changes(old.versions, new.versions))


def render_table(d: Diff) -> str:
    c = d.counts()
    head = (f"{d.old.label} → {d.new.label} (Python {d.python}): {c['added']} added, {c['removed']} removed, "
            f"{c['upgraded']} upgraded ({c['major']} major, {c['minor']} minor, {c['patch']} patch), {c['downgraded']} "
            f"downgraded, {c['changed']} changed, {c['unchanged']} unchanged")
    lines = [head, ""]
    width = max([len(r["name"]) for r in d.rows] + [7])
    lines.append(f"{'package':<{width}}  {'change':<10}  {'old':<16}  new")
    for r in sorted(d.rows, key=lambda r: (KINDS.index(r["kind"]), r["name"])):
        lines.append(f"{r['name']:<{width}}  {r['kind']:<10}  {r['old'] or '-':<16}  {r['new'] or '-'}")
    return "\n".join(lines)
