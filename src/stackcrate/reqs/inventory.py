"""The dependency inventory of a cloud: per component, its OpenStack libraries, third-party packages and
system packages, and who pulls in what.

Two ways in: a lock (exact: every package of every component's venv, with the dependency edges the resolver
saw), or a series plus component sources (requirement files and upper-constraints alone: direct
requirements only). The second is for series that cannot be built on today's Python (kilo and friends).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename

from ..cache import Cache
from ..distmeta import all_metadata
from ..errors import StackcrateError
from ..model.lock import Lock, LockedComponent
from ..model.source import LockedPath, LockedPypi
from ..sources import built_source_file, download, index_files
from .bindep import system_packages
from .classify import is_openstack
from .data import load_series_data
from .projectfiles import read_txt

BINDEP_FILES = ("bindep.txt", "other-requirements.txt")  # the latter: bindep's name before mitaka


def _sdist_member(name: str, version: str, cache: Cache, members: tuple[str, ...]) -> str | None:
    """Text of the first of ``members`` found at the top of the component's sdist on PyPI (cached: a
    released sdist never changes, so a second report needs no index query)."""
    memo = cache.dir("sdist-files") / f"{canonicalize_name(name)}-{version}-{'+'.join(members)}.json"
    if memo.exists():
        return json.loads(memo.read_text())["text"]
    text = _sdist_member_uncached(name, version, cache, members)
    memo.write_text(json.dumps({"text": text}))
    return text


def _sdist_member_uncached(name: str, version: str, cache: Cache, members: tuple[str, ...]) -> str | None:
    for f in index_files(name):
        fn = f["filename"]
        try:
            ok = fn.endswith(".tar.gz") and str(parse_sdist_filename(fn)[1]) == version
        except ValueError:
            ok = False
        if not ok:
            continue
        path = download(f["url"], f["hashes"]["sha256"], fn, cache)
        with tarfile.open(path) as tf:
            by_name = {m.name.split("/", 1)[-1]: m for m in tf.getmembers() if m.name.count("/") == 1}
            for want in members:
                if want in by_name:
                    return tf.extractfile(by_name[want]).read().decode()  # type: ignore[union-attr]
        return None
    return None


def _tree_member(root: Path, members: tuple[str, ...]) -> str | None:
    for want in members:
        if (root / want).is_file():
            return (root / want).read_text()
    return None


def _sysdeps(text: str | None, where: str, target: str | None = None) -> dict:
    if text is None:
        return {"source": None, "packages": {}}
    return {"source": "bindep.txt", "packages": system_packages(text, where, target)}


def _locked_bindep(c: LockedComponent, cache: Cache, base_dir: Path | None) -> str | None:
    src = c.source
    # git, path and patched components: sources.prepare keeps the tree's bindep.txt beside the wheel it built
    kept = built_source_file(cache, src, "bindep.txt")
    if kept:
        return kept.read_text()
    if isinstance(src, LockedPypi):
        return _sdist_member(c.name, c.version, cache, BINDEP_FILES)
    if isinstance(src, LockedPath) and base_dir is not None:
        return _tree_member((base_dir / src.path).resolve(), BINDEP_FILES)
    return None  # a git component whose wheel was built on another machine


def from_lock(lock: Lock, cache: Cache, base_dir: Path | None = None) -> dict:
    comps = {canonicalize_name(c.name) for c in lock.components}
    meta = all_metadata(list(lock.packages.values()), cache)
    required_by: dict[str, set[str]] = {k: set() for k in lock.packages}
    for k, p in lock.packages.items():
        for d in p.dependencies:
            required_by.setdefault(d, set()).add(k)
    pulled_by: dict[str, list[str]] = {k: [] for k in lock.packages}
    for c in lock.components:
        for n in c.closure:
            pulled_by.setdefault(n, []).append(c.name)
    packages = {}
    for k, p in sorted(lock.packages.items()):
        kind = "component" if k in comps else "openstack" if is_openstack(k, meta.get(k)) else "third-party"
        packages[k] = {"name": p.name, "version": p.version, "kind": kind,
                       "summary": (meta[k].get("Summary") or "") if k in meta else "",
                       "requires": sorted(p.dependencies), "required_by": sorted(required_by.get(k, ())),
                       "components": sorted(pulled_by.get(k, []))}
    components = []
    for c in lock.components:
        key = canonicalize_name(c.name)
        src = c.source
        bindep = _locked_bindep(c, cache, base_dir)
        closure = [n for n in c.closure if n != key]
        components.append({
            "name": c.name, "version": c.version, "source": src.type,
            "direct": sorted(lock.packages[key].dependencies) if key in lock.packages else [],
            "openstack": [n for n in closure if packages[n]["kind"] == "openstack"],
            "third_party": [n for n in closure if packages[n]["kind"] == "third-party"],
            "system": _sysdeps(bindep, f"{c.name} {c.version}: bindep.txt", lock.target),
        })
    return {"mode": "lock", "series": lock.series, "target": lock.target, "python": lock.python_version,
            "overrides": lock.overrides, "components": components, "packages": packages}


def parse_component_spec(spec: str) -> tuple[str, str | None, Path | None]:
    """'name==version' (sdist from PyPI) or '[name=]PATH' (a source tree) -> (name, version, path)."""
    if "==" in spec:
        name, version = spec.split("==", 1)
        return name.strip(), version.strip(), None
    name, _, path = spec.rpartition("=")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise StackcrateError(f"component source {spec!r}: folder {p} does not exist",
                              hint="give NAME==VERSION (its sdist from PyPI) or [NAME=]FOLDER")
    return (name or p.resolve().name), None, p


def from_requirements(series: str, specs: list[str], cache: Cache, constraints_dir: str | None = None) -> dict:
    """Direct requirements of each component, versions from the series' upper-constraints."""
    from ..series import get_series

    if not specs:
        raise StackcrateError("no components given", hint="add -c NAME==VERSION or -c [NAME=]FOLDER")
    sd = load_series_data(series, cache, constraints_dir)
    hi = get_series(series).python_max
    env = dict(default_environment())
    env.update(python_version=f"{hi[0]}.{hi[1]}", python_full_version=f"{hi[0]}.{hi[1]}.0",
               sys_platform="linux", platform_system="Linux")
    packages: dict[str, dict] = {}
    components = []
    for spec in specs:
        name, version, path = parse_component_spec(spec)
        if path is not None:
            req_file = path / "requirements.txt"
            if not req_file.is_file():
                raise StackcrateError(f"{req_file} does not exist", hint="point at the component's source tree")
            reqs = read_txt(req_file, str(req_file))
            bindep = _tree_member(path, BINDEP_FILES)
        else:
            text = _sdist_member(name, version, cache, ("requirements.txt",))
            if text is None:
                raise StackcrateError(f"{name} {version}: no sdist with a requirements.txt on the index",
                                      hint="give the source tree instead: -c NAME=FOLDER")
            tmp = cache.tempdir("inv-") / "requirements.txt"
            tmp.write_text(text)
            reqs = read_txt(tmp, f"{name}-{version}/requirements.txt")
            bindep = _sdist_member(name, version, cache, BINDEP_FILES)
        key = canonicalize_name(name)
        direct = []
        for r in reqs:
            req: Requirement = r.requirement
            if req.marker and not req.marker.evaluate(env):
                continue
            n = r.name
            direct.append(n)
            pins = sd.constraint_versions(n)
            entry = packages.setdefault(n, {
                "name": req.name, "version": pins[0] if pins else None,
                "kind": "openstack" if is_openstack(n, None) else "third-party", "summary": "",
                "requires": [], "required_by": [], "components": [], "specifiers": {}})
            entry["required_by"] = sorted(set(entry["required_by"]) | {key})
            entry["components"] = sorted(set(entry["components"]) | {name})
            entry["specifiers"][name] = str(req.specifier)
        packages[key] = {"name": name, "version": version, "kind": "component", "summary": "",
                         "requires": sorted(set(direct)), "required_by": [], "components": [name]}
        components.append({
            "name": name, "version": version, "source": "pypi" if path is None else "path",
            "direct": sorted(set(direct)),
            "openstack": sorted({n for n in direct if packages[n]["kind"] == "openstack"}),
            "third_party": sorted({n for n in direct if packages[n]["kind"] == "third-party"}),
            "system": _sysdeps(bindep, f"{path}/bindep.txt" if path else f"{name}-{version} sdist: bindep.txt"),
        })
    return {"mode": "requirements", "series": sd.series, "target": None,
            "python": f"{hi[0]}.{hi[1]}", "overrides": [], "components": components,
            "packages": dict(sorted(packages.items()))}
