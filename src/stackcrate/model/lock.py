"""stackcrate.lock: a PEP 751 (pylock.toml format) lock for the whole cloud, plus stackcrate's own table.

Standard part: every Python distribution with its version, its wheel/sdist URLs and sha256 hashes, and
``dependencies`` (package-level edges). Components built from git use a ``vcs`` entry (with ``commit-id``),
local paths a ``directory`` entry. ``[tool.stackcrate]`` records the series, target, input digests (so a stale
lock is detected) and, per component, its source, version, closure and SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import tomli_w
from packaging import tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from pydantic import ValidationError

from ..errors import StackcrateError
from .source import LockedGit, LockedPath, LockedPypi, source_from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOCK_FORMAT = 1


@dataclass
class LockedPackage:
    name: str
    version: str
    wheels: list[dict[str, Any]] = field(default_factory=list)   # {name?, url, hashes:{sha256}, size, upload-time}
    sdist: dict[str, Any] | None = None
    vcs: dict[str, Any] | None = None
    directory: dict[str, Any] | None = None
    dependencies: list[str] = field(default_factory=list)        # canonical names
    tool: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    def best_wheel(self, ranked: dict[tags.Tag, int]) -> dict[str, Any] | None:
        """The locked wheel a target installs: the one whose best tag ranks first among ``ranked`` (a target's
        tags, most specific first: Target.wheel_ranks()); with its file name under "filename"."""
        best, best_rank = None, None
        for w in self.wheels:
            fn = w.get("name") or unquote(urlparse(w["url"]).path.rsplit("/", 1)[-1])
            rank = min((ranked[t] for t in parse_wheel_filename(fn)[3] if t in ranked), default=None)
            if rank is not None and (best_rank is None or rank < best_rank):
                best, best_rank = {**w, "filename": fn}, rank
        return best

    def to_toml(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.dependencies:
            d["dependencies"] = [{"name": n} for n in sorted(self.dependencies)]
        for k in ("vcs", "directory", "sdist"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        if self.wheels:
            d["wheels"] = self.wheels
        if self.tool:
            d["tool"] = {"stackcrate": self.tool}
        return d

    @classmethod
    def from_toml(cls, d: dict[str, Any]) -> "LockedPackage":
        return cls(name=d["name"], version=str(d.get("version", "")), wheels=list(d.get("wheels", [])),
                   sdist=d.get("sdist"), vcs=d.get("vcs"), directory=d.get("directory"),
                   dependencies=[canonicalize_name(x["name"]) for x in d.get("dependencies", [])],
                   tool=d.get("tool", {}).get("stackcrate", {}))


@dataclass
class LockedComponent:
    name: str
    version: str
    source: LockedPypi | LockedGit | LockedPath
    closure: list[str]              # canonical names of every package the component's venv holds (itself too)
    source_date_epoch: int
    extras: list[str] = field(default_factory=list)
    library: bool = False           # built into the venvs that require it, no venv of its own

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def revision(self) -> str:
        return self.source.revision


@dataclass
class Lock:
    series: str
    target: str
    python_version: str
    python_platform: str
    inputs: dict[str, str]           # {manifest: sha256, constraints: sha256, extra_overrides: "a==1,b==2"}
    constraints_source: str
    overrides: list[str]
    packages: dict[str, LockedPackage]
    components: list[LockedComponent]
    requires_python: str = ">=3.10"

    def component(self, name: str) -> LockedComponent:
        for c in self.components:
            if c.key == canonicalize_name(name):
                return c
        raise KeyError(name)

    def versions(self) -> dict[str, str]:
        """Each package's version, by canonical name (what `reqs diff` and a re-lock compare)."""
        return {k: p.version for k, p in self.packages.items()}

    def closure_packages(self, component: LockedComponent) -> list[LockedPackage]:
        return [self.packages[n] for n in component.closure]

    def dumps(self) -> str:
        doc: dict[str, Any] = {
            "lock-version": "1.0",
            "created-by": "stackcrate",
            "requires-python": self.requires_python,
            "environments": [
                (f"python_full_version == '{self.python_version}' and sys_platform == 'linux' "
                 "and platform_machine == 'x86_64'")
            ],
            "packages": [self.packages[k].to_toml() for k in sorted(self.packages)],
            "tool": {"stackcrate": {
                "format": LOCK_FORMAT,
                "series": self.series,
                "target": self.target,
                "python-version": self.python_version,
                "python-platform": self.python_platform,
                "constraints-source": self.constraints_source,
                "overrides": self.overrides,
                "inputs": self.inputs,
                "components": [
                    {"name": c.name, "version": c.version, "extras": c.extras, "source": c.source.to_dict(),
                     "closure": c.closure, "source-date-epoch": c.source_date_epoch,
                     **({"library": True} if c.library else {})}
                    for c in self.components
                ],
            }},
        }
        header = ("# stackcrate.lock: PEP 751 lock (pylock.toml format) written by `stackcrate lock`.\n"
                  "# Do not edit by hand; commit it next to the manifest.\n")
        return header + tomli_w.dumps(doc)

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.dumps())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Lock":
        try:
            doc = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise StackcrateError(f"no lock file at {path}", hint="run `stackcrate lock` first") from None
        except tomllib.TOMLDecodeError as exc:
            raise StackcrateError(f"{path} is not valid TOML: {exc}",
                                  hint="re-create it with `stackcrate lock --upgrade`") from None
        t = doc.get("tool", {}).get("stackcrate")
        if not t or t.get("format") != LOCK_FORMAT:
            raise StackcrateError(f"{path} was not written by this version of stackcrate",
                                  hint="re-create it with `stackcrate lock --upgrade`")
        packages = {}
        for d in doc.get("packages", []):
            p = LockedPackage.from_toml(d)
            packages[p.key] = p
        try:
            comps = [LockedComponent(name=c["name"], version=c["version"], source=source_from_dict(c["source"]),
                                     closure=list(c["closure"]), source_date_epoch=int(c["source-date-epoch"]),
                                     extras=list(c.get("extras", [])), library=bool(c.get("library", False)))
                     for c in t.get("components", [])]
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise StackcrateError(f"{path}: a component entry of [tool.stackcrate] is not valid: {exc}",
                                  hint="re-create it with `stackcrate lock --upgrade`") from None
        return cls(series=t["series"], target=t["target"], python_version=t["python-version"],
                   python_platform=t["python-platform"], inputs=dict(t["inputs"]),
                   constraints_source=t["constraints-source"], overrides=list(t.get("overrides", [])),
                   packages=packages, components=comps, requires_python=doc.get("requires-python", ">=3.10"))
