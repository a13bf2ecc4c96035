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
from ..sources import built_source_file, download, index_files, index_versions
from .bindep import system_packages
from .classify import is_openstack
from .data import load_series_data
from .legacy import Index, settle
from .legacy import services as config_services
from .projectfiles import read_txt

BINDEP_FILES = ("bindep.txt", "other-requirements.txt")  # the latter: bindep's name before mitaka


def _sdist_member(name: str, version: str, cache: Cache, members: tuple[str, ...]) -> str | None:
    """Text of the first of ``members`` found at the top of the component's sdist on PyPI (cached: a
    released sdist never changes, so a second report needs no index query)."""
    memo = cache.dir("sdist-files") / f"{canonicalize_name(name)}-{version}-{'+'.join(members)}.json"
    if memo.exists():
        return json.loads(memo.read_text())["text"]
    texts = _sdist_texts(name, version, cache, lambda m: m in members)
    text = next((texts[m] for m in members if m in texts), None)
    memo.write_text(json.dumps({"text": text}))
    return text


def _sdist_configs(name: str, version: str, cache: Cache) -> dict[str, str]:
    """The sample configuration files (etc/...*.conf*, *.ini) in the component's sdist, by path (cached)."""
    memo = cache.dir("sdist-files") / f"{canonicalize_name(name)}-{version}-etc.json"
    if memo.exists():
        return json.loads(memo.read_text())
    texts = _sdist_texts(name, version, cache, _is_config)
    memo.write_text(json.dumps(texts))
    return texts


def _is_config(member: str) -> bool:
    return member.startswith("etc/") and (".conf" in member.rsplit("/", 1)[-1] or member.endswith(".ini"))


def _sdist_texts(name: str, version: str, cache: Cache, want) -> dict[str, str]:
    """The files of the component's sdist (paths below its top folder) that `want` picks, as text."""
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
            picked = {m.name.split("/", 1)[-1]: m for m in tf.getmembers()
                      if "/" in m.name and m.isfile() and want(m.name.split("/", 1)[-1])}
            return {k: tf.extractfile(m).read().decode(errors="replace")  # type: ignore[union-attr]
                    for k, m in picked.items()}
    return {}


def _tree_configs(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(errors="replace") for p in sorted((root / "etc").rglob("*"))
            if p.is_file() and _is_config(str(p.relative_to(root)))} if (root / "etc").is_dir() else {}


def _until_unreachable(index: Index) -> Index:
    """The index, asked no more once it could not be reached (each ask would wait out its retries again)."""
    failed: list[StackcrateError] = []

    def look(name: str) -> list[str]:
        if failed:
            raise failed[0]
        try:
            return index(name)
        except StackcrateError as exc:
            failed.append(exc)
            raise
    return look


def index_releases(name: str) -> list[str]:
    """Every version the package index has of a project."""
    return sorted(index_versions(index_files(name)))


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


def _component_files(name: str, version: str | None, path: Path | None, cache: Cache,
                     file: str) -> tuple[list, str] | None:
    """A requirements file of a component (its tree's, or its sdist's from PyPI): its lines and where it is."""
    if path is not None:
        req_file = path / file
        return (read_txt(req_file, str(req_file)), str(req_file)) if req_file.is_file() else None
    text = _sdist_member(name, version, cache, (file,))  # type: ignore[arg-type]
    if text is None:
        return None
    tmp = cache.tempdir("inv-") / file
    tmp.write_text(text)
    return read_txt(tmp, f"{name}-{version}/{file}"), f"{name}-{version}/{file}"


def from_requirements(series: str, specs: list[str], cache: Cache, constraints_dir: str | None = None,
                      tests: bool = False, index: Index | None = index_releases) -> dict:
    """Direct requirements of each component (and its test requirements when asked), each package at a version
    every component accepts (legacy.settle: the series' upper-constraints pin where it is accepted)."""
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
        found = _component_files(name, version, path, cache, "requirements.txt")
        if found is None:
            raise StackcrateError(f"{path / 'requirements.txt' if path else f'{name} {version}'}: no "
                                  "requirements.txt" + ("" if path else " in its sdist on the index"),
                                  hint="point at the component's source tree" if path else
                                  "give the source tree instead: -c NAME=FOLDER")
        runtime = found[0]
        test_found = _component_files(name, version, path, cache, "test-requirements.txt") if tests else None
        if path is not None:
            bindep, configs = _tree_member(path, BINDEP_FILES), _tree_configs(path)
        else:
            bindep = _sdist_member(name, version, cache, BINDEP_FILES)  # type: ignore[arg-type]
            configs = {} if bindep else _sdist_configs(name, version, cache)  # type: ignore[arg-type]
        key = canonicalize_name(name)
        direct, test_names = [], []
        for reqs, is_test in ((runtime, False), (test_found[0] if test_found else [], True)):
            for r in reqs:
                req: Requirement = r.requirement
                if req.marker and not req.marker.evaluate(env):
                    continue
                n = r.name
                (test_names if is_test else direct).append(n)
                pins = sd.constraint_versions(n)
                entry = packages.setdefault(n, {
                    "name": req.name, "version": pins[0] if pins else None,
                    "kind": "openstack" if is_openstack(n, None) else "third-party", "summary": "",
                    "requires": [], "required_by": [], "components": [], "specifiers": {}, "test_only": True})
                entry["test_only"] = entry["test_only"] and is_test
                entry["required_by"] = sorted(set(entry["required_by"]) | {key})
                entry["components"] = sorted(set(entry["components"]) | {name})
                prior = entry["specifiers"].get(name)
                entry["specifiers"][name] = ",".join(x for x in (prior, str(req.specifier)) if x)
        packages[key] = {"name": name, "version": version, "kind": "component", "summary": "",
                         "requires": sorted(set(direct) | set(test_names)), "required_by": [], "components": [name]}
        system = _sysdeps(bindep, f"{path}/bindep.txt" if path else f"{name}-{version} sdist: bindep.txt")
        if bindep is None:  # what its configuration needs, since it does not say which system packages
            system["services"] = config_services(configs, direct)
        components.append({
            "name": name, "version": version, "source": "pypi" if path is None else "path",
            "direct": sorted(set(direct)), "test": sorted(set(test_names) - set(direct)),
            "openstack": sorted({n for n in direct if packages[n]["kind"] == "openstack"}),
            "third_party": sorted({n for n in direct if packages[n]["kind"] == "third-party"}),
            "system": system,
        })
    look = _until_unreachable(index) if index else None
    for p in packages.values():
        if p["kind"] != "component":
            p.update(settle(p["name"], p["version"], p["specifiers"], look))
    return {"mode": "requirements", "series": sd.series, "target": None,
            "python": f"{hi[0]}.{hi[1]}", "overrides": [], "components": components,
            "packages": dict(sorted(packages.items()))}
