"""`stackcrate reqs diff`: what changed between two series' constraints, two constraints files or two locks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ..cache import Cache
from ..constraints import parse_requirement_lines
from ..errors import StackcrateError
from ..model.lock import Lock
from .data import pinned_version, series_file

DEFAULT_PYTHON = "3.11"  # debian-bookworm's, the default target
KINDS = ("added", "removed", "major", "minor", "patch", "downgraded", "changed")


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
            return Side(str(p), {k: v.version for k, v in lock.packages.items()})
        text = p.read_text()
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


def classify(old: str, new: str) -> str | None:
    try:
        a, b = Version(old), Version(new)
    except InvalidVersion:
        return None if old == new else "changed"
    if a == b:
        return None
    if b < a:
        return "downgraded"
    ra, rb = a.release + (0,) * 3, b.release + (0,) * 3
    if ra[0] != rb[0]:
        return "major"
    if ra[1] != rb[1]:
        return "minor"
    return "patch"  # third release part, or a post/pre/dev release


def diff(old: Side, new: Side, python: str = DEFAULT_PYTHON) -> Diff:
    d = Diff(old, new, python)
    for key in sorted(set(old.versions) | set(new.versions)):
        a, b = old.versions.get(key), new.versions.get(key)
        kind = "added" if a is None else "removed" if b is None else classify(a, b)
        if kind:
            d.rows.append({"name": key, "kind": kind, "old": a, "new": b})
    return d


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
