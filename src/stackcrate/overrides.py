"""Security overrides (lock stage): which requirements accept or reject an overridden version, and in which
component.

uv only reports the first conflict it meets, and often without the component; this reads every locked
package's Requires-Dist (core metadata) and tests each overridden version against it with `packaging`.
"""

from __future__ import annotations

import email.parser
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .cache import Cache
from .distmeta import metadata_text
from .errors import ResolutionError
from .model.lock import LockedPackage
from .sources import wheel_metadata


@dataclass
class Verdict:
    override: str            # "webob==1.7.0"
    package: str             # the package whose requirement it is
    version: str
    requirement: str         # as written in its metadata, e.g. "WebOb>=1.7.1"
    accepts: bool
    components: list[str]    # the components whose venv holds that package

    def render(self) -> str:
        verb = "accepts" if self.accepts else "rejects"
        comps = ("component " if len(self.components) == 1 else "components ") + ", ".join(self.components)
        return (f"{comps}: {self.package} {self.version} requires {self.requirement}, "
                f"which {verb} the override {self.override}")


def marker_env(python_version: str) -> dict[str, str]:
    minor = ".".join(python_version.split(".")[:2])
    return {"python_version": minor, "python_full_version": python_version, "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def verdicts(packages: list[LockedPackage], overrides: list[str], closures: dict[str, set[str]],
             python_version: str, cache: Cache, local_wheels: dict[str, Path] | None = None) -> list[Verdict]:
    """Every requirement on an overridden package, in every package, with whether it accepts the version.

    closures: component name -> canonical names in its venv.
    """
    pins = {}
    for o in overrides:
        r = Requirement(o)
        pins[canonicalize_name(r.name)] = (o, next(iter(r.specifier)).version)
    env = marker_env(python_version)
    parser = email.parser.Parser()
    reqs: dict[str, list[Requirement]] = {}
    for p in packages:
        wheel = (local_wheels or {}).get(p.key)
        text = wheel_metadata(wheel) if wheel else metadata_text(p, cache)
        reqs[p.key] = [r for r in map(_req, parser.parsestr(text or "").get_all("Requires-Dist", [])) if r]
    # Requirements behind an extra count only when something in the lock asks for that extra.
    wanted_extras: dict[str, set[str]] = {}
    for p in packages:
        for r in reqs[p.key]:
            if r.extras and (r.marker is None or r.marker.evaluate(env)):
                wanted_extras.setdefault(canonicalize_name(r.name), set()).update(r.extras)
    out = []
    for p in packages:
        for req in reqs[p.key]:
            name = canonicalize_name(req.name)
            if name not in pins:
                continue
            extras = [""] + sorted(wanted_extras.get(p.key, ()))
            if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in extras):
                continue
            override, version = pins[name]
            try:
                accepts = req.specifier.contains(Version(version), prereleases=True)
            except InvalidVersion:
                accepts = True
            comps = sorted(c for c, members in closures.items() if p.key in members)
            out.append(Verdict(override, p.name, p.version, str(req), accepts, comps))
    return sorted(out, key=lambda v: (v.override, v.package))


def _req(line: str) -> Requirement | None:
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


def prove(packages: list[LockedPackage], overrides: list[str], closures: dict[str, set[str]],
          python_version: str, cache: Cache, local_wheels: dict[str, Path] | None = None) -> list[str]:
    """After a successful lock: one line per override saying which requirements accept it (the resolver
    already guarantees it; this shows the operator the evidence). Raises if one rejects it."""
    found = verdicts(packages, overrides, closures, python_version, cache, local_wheels)
    bad = [v for v in found if not v.accepts]
    if bad:
        raise ResolutionError("the overrides are rejected by these requirements:\n"
                              + "\n".join(f"  - {v.render()}" for v in bad),
                              hint="pick an override version every listed requirement accepts, or drop it")
    lines = []
    for o in overrides:
        mine = [v for v in found if v.override == o]
        comps = sorted({c for v in mine for c in v.components})
        if not mine:
            lines.append(f"override {o}: no locked package requires it")
            continue
        reqs = ", ".join(f"{v.package} ({v.requirement})" for v in mine)
        lines.append(f"override {o} is accepted by all {len(mine)} requirements on it, in "
                     f"{', '.join(comps)}: {reqs}")
    return lines
