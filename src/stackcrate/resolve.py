"""The lock stage: every component's requirements resolved together (by uv) against the series'
upper-constraints (the components' own lines dropped) and the overrides, into one hash-pinned lock for the
whole cloud; and whether an existing lock still matches its inputs."""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from . import overrides as override_proof
from .cache import Cache, digest_of, remove_tree
from .constraints import Constraints, load_constraints
from .errors import ResolutionError, StackcrateError
from .manifest import LoadedManifest, parse_pin
from .model.lock import Lock, LockedComponent, LockedPackage
from .model.source import LockedGit, LockedPath
from .series import get_series, require_buildable
from .sources import PreparedComponent, patch_records, prepare, tree_digest
from .targets import get_target
from .tools import ToolFailed, uv
from .ui import UI

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def manifest_digest(manifest: LoadedManifest, extra_overrides: list[str], every_field: bool = False) -> str:
    """Digest of what decides the resolution (not formats or install paths): a change makes the lock stale. A
    component's fields at their default are left out, so a field a later stackcrate adds does not make every
    lock stale; every_field: the digest locks written before 2026-12-07 hold (each field, `library` when
    true), still accepted."""
    m = manifest.model
    comps = []
    for i, c in enumerate(m.components):
        d = c.model_dump(mode="json", exclude_defaults=not every_field)
        if every_field and not c.library:
            d.pop("library")
        d["patches"] = [p.model_dump() for p in patch_records(manifest, c, i)]
        if c.path:
            d["tree"] = tree_digest(manifest.path_of(c.path))
        comps.append(d)
    return digest_of({"series": m.series, "target": m.target, "constraints": m.constraints,
                      "overrides": sorted(set(m.overrides) | set(extra_overrides)), "components": comps})


def effective_constraints(constraints: Constraints, component_names: set[str],
                          overrides: list[str]) -> tuple[list[str], dict[str, str]]:
    """Constraint lines to give the resolver, and where each pin came from (for messages)."""
    pinned = {}
    for o in overrides:
        name, version = parse_pin(o)
        pinned[name] = version
    lines, origin = [], {}
    for cl in constraints.lines():
        if cl.name in component_names or cl.name in pinned:
            continue
        lines.append(cl.text)
        origin[cl.name] = f"{cl.text} (upper-constraints {constraints.source}, line {cl.lineno})"
    for name, version in sorted(pinned.items()):
        lines.append(f"{name}=={version}")
        origin[name] = f"{name}=={version} (override)"
    return lines, origin


def load_inputs(manifest: LoadedManifest, cache: Cache, constraints_dir: str | None, refresh: bool = True):
    m = manifest.model
    series = get_series(m.series)
    target = get_target(m.target)
    constraints = load_constraints(series.name, cache, source=m.constraints, base_dir=manifest.base_dir,
                                   constraints_dir=constraints_dir, refresh=refresh)
    return series, target, constraints


def lock(manifest: LoadedManifest, cache: Cache, ui: UI, *, constraints_dir: str | None = None,
         extra_overrides: list[str] | None = None, prefer: Lock | None = None,
         upgrade_packages: tuple[str, ...] = ()) -> Lock:
    """Resolve the manifest's components together. prefer: an earlier lock whose versions are kept wherever the
    inputs still allow them (uv's preferences: a package upper-constraints does not pin, certifi say, does not
    move just because a component was added), upgrade_packages excepted; None resolves from the inputs alone."""
    m = manifest.model
    extra_overrides = list(extra_overrides or [])
    for o in extra_overrides:
        try:
            parse_pin(o)
        except ValueError as exc:
            raise StackcrateError(f"--override: {exc}") from None
    overrides = sorted(set(m.overrides) | set(extra_overrides))
    series, target, constraints = load_inputs(manifest, cache, constraints_dir)
    require_buildable(series, target.python_minor, target.name)

    prepared: list[PreparedComponent] = []
    with ui.step(f"Fetching sources of {len(m.components)} component(s)") as s:
        for i, comp in enumerate(m.components):
            prepared.append(prepare(manifest, comp, i, cache))
        s["note"] = ", ".join(f"{p.component.name} {p.version}" for p in prepared)

    names = {p.component.key for p in prepared}
    upgrading = {canonicalize_name(n) for n in upgrade_packages}
    lines, origin = effective_constraints(constraints, names, overrides)
    for n in sorted(upgrading & set(origin)):
        ui.info(f"{n} stays at its pin: {origin[n]}")
    work = cache.tempdir("lock-")
    try:
        reqs = [p.requirement for p in prepared]
        for p in prepared:
            reqs.extend(p.component.extra_requirements)
        (work / "requirements.in").write_text("\n".join(reqs) + "\n")
        (work / "constraints.txt").write_text("\n".join(lines) + "\n")
        if prefer is not None:
            _seed_preferences(work, prefer, names | upgrading)
        common = ["pip", "compile", "requirements.in", "-c", "constraints.txt", "--python-version",
                  target.python_version, "--python-platform", target.uv_platform, "--no-header", "--quiet"]
        with ui.step(f"Resolving against {series.name} upper-constraints") as s:
            try:
                uv([*common, "--format", "pylock.toml", "-o", "pylock.toml"], cwd=work, cache_dir=cache.dir("uv"))
                uv([*common, "--format", "requirements.txt", "--annotation-style", "split", "-o", "graph.txt"],
                   cwd=work, cache_dir=cache.dir("uv"))
            except ToolFailed as exc:
                error = explain_failure(exc.stderr or exc.stdout, prepared, origin, series.name)
                if overrides:
                    error = explain_overrides(work, common, constraints, names, overrides, prepared,
                                              target.python_version, cache, error)
                raise error from None
            pylock = tomllib.loads((work / "pylock.toml").read_text())
            graph = parse_via((work / "graph.txt").read_text())
            s["note"] = f"{len(pylock.get('packages', []))} packages"
    finally:
        remove_tree(work)

    packages: dict[str, LockedPackage] = {}
    for d in pylock.get("packages", []):
        pkg = LockedPackage.from_toml(d)
        pkg.dependencies = sorted(graph.get(pkg.key, set()))
        packages[pkg.key] = pkg
    components = []
    for p in prepared:
        pkg = packages[p.component.key]
        src = p.source
        if src.built_here:
            # Replace the resolver's pointer at our local wheel with where the source really comes from.
            pkg.wheels, pkg.sdist, pkg.vcs, pkg.directory = [], None, None, None
            if isinstance(src, LockedGit):
                pkg.vcs = {"type": "git", "url": src.url, "requested-revision": src.ref, "commit-id": src.commit}
            elif isinstance(src, LockedPath):
                pkg.directory = {"path": src.path, "editable": False}
            else:
                pkg.sdist = {"name": src.sdist, "hashes": {"sha256": src.sdist_sha256}}
            pkg.tool = {"patches": [x.model_dump() for x in src.patches], "source-digest": src.digest}
        closure = closure_of(p.component.key, packages)
        for extra_req in p.component.extra_requirements:
            closure |= closure_of(canonicalize_name(Requirement(extra_req).name), packages)
        epoch = max([p.commit_time or 0] + [upload_epoch(packages[n]) for n in closure])
        components.append(LockedComponent(name=p.component.name, version=pkg.version, source=src,
                                          closure=sorted(closure), source_date_epoch=epoch or 315532800,
                                          extras=sorted(p.component.extras), library=p.component.library))
    if overrides:
        with ui.step("Checking every requirement on the overridden packages"):
            proof = override_proof.prove(list(packages.values()), overrides,
                                         {c.name: set(c.closure) for c in components}, target.python_version,
                                         cache, {p.component.key: p.wheel for p in prepared if p.wheel})
        for line in proof:
            ui.info(line)
    return Lock(series=series.name, target=target.name, python_version=target.python_version,
                python_platform=target.uv_platform,
                # the --override pins of this lock, apart from the manifest's: an override later removed from the
                # manifest must make the lock stale, not pass for one given on the command line
                inputs={"manifest": manifest_digest(manifest, extra_overrides), "constraints": constraints.digest,
                        "extra_overrides": ",".join(sorted(set(extra_overrides)))},
                constraints_source=constraints.named, overrides=overrides, packages=packages,
                components=components, requires_python=f">={target.python_minor}")


def _seed_preferences(work: Path, prefer: Lock, left_out: set[str]) -> None:
    """uv prefers the versions in the file it is about to write: give both its outputs the earlier lock's
    versions of packages from the index, but those of left_out (the components', which come from the manifest;
    those to upgrade). A package from a URL, git or a folder has no version to prefer (and `name==` would stop
    uv)."""
    kept = [p for k, p in sorted(prefer.packages.items())
            if k not in left_out and p.version and not (p.vcs or p.directory)]
    (work / "graph.txt").write_text("".join(f"{p.name}=={p.version}\n" for p in kept))
    (work / "pylock.toml").write_text('lock-version = "1.0"\ncreated-by = "stackcrate"\n' + "".join(
        f'\n[[packages]]\nname = "{p.name}"\nversion = "{p.version}"\n' for p in kept))


def explain_overrides(work: Path, common: list[str], constraints: Constraints, names: set[str],
                      overrides: list[str], prepared: list[PreparedComponent], python_version: str,
                      cache: Cache, error: ResolutionError) -> ResolutionError:
    """When overrides break the resolution: resolve without them, then add to ``error`` each component and
    requirement that rejects an overridden version (uv names only the first conflict it meets)."""
    lines, _ = effective_constraints(constraints, names, [])
    (work / "constraints.txt").write_text("\n".join(lines) + "\n")
    runs = [[*common, "--format", "pylock.toml", "-o", "pylock.plain.toml"],
            [*common, "--format", "requirements.txt", "--annotation-style", "split", "-o", "plain.txt"]]
    try:
        with ThreadPoolExecutor(2) as pool:  # both at once: this is on the error path the user waits on
            list(pool.map(lambda args: uv(args, cwd=work, cache_dir=cache.dir("uv")), runs))
    except ToolFailed:
        return error  # it fails without the overrides too: the overrides are not (only) to blame
    packages = {p.key: p for p in (LockedPackage.from_toml(d) for d in
                                   tomllib.loads((work / "pylock.plain.toml").read_text()).get("packages", []))}
    for k, deps in parse_via((work / "plain.txt").read_text()).items():
        if k in packages:
            packages[k].dependencies = sorted(deps)
    closures = {p.component.name: closure_of(p.component.key, packages) for p in prepared}
    wheels = {p.component.key: p.wheel for p in prepared if p.wheel}
    found = override_proof.verdicts(list(packages.values()), overrides, closures, python_version, cache, wheels)
    rejected = [v for v in found if not v.accepts]
    if not rejected:
        return error
    return ResolutionError(error.message + "\n  the overrides are rejected by these requirements:\n"
                           + "\n".join(f"    - {v.render()}" for v in rejected),
                           hint="pick an override version every listed requirement accepts, or drop it")


def closure_of(root: str, packages: dict[str, LockedPackage]) -> set[str]:
    """Every package reachable from root through the dependency edges (root included)."""
    seen, todo = set(), [root]
    while todo:
        n = todo.pop()
        if n in seen or n not in packages:
            continue
        seen.add(n)
        todo.extend(packages[n].dependencies)
    return seen


def upload_epoch(pkg: LockedPackage) -> int:
    """When the newest file of a locked package was uploaded (seconds since the epoch; 0 when unknown)."""
    times = [w.get("upload-time") for w in pkg.wheels] + [(pkg.sdist or {}).get("upload-time")]
    best = 0
    for t in times:
        if isinstance(t, datetime):
            best = max(best, int(t.timestamp()))
        elif isinstance(t, str):
            best = max(best, int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()))
    return best


def parse_via(text: str) -> dict[str, set[str]]:
    """uv's `# via` annotations, inverted into package -> its dependencies."""
    deps: dict[str, set[str]] = {}
    current = None
    in_via = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not raw.startswith(" ") and not line.startswith("#"):
            name = re.split(r"[\s=@\[;]", line, maxsplit=1)[0]
            current = canonicalize_name(name)
            deps.setdefault(current, set())
            in_via = False
            continue
        if line.startswith("# via"):
            in_via = True
            rest = line[len("# via"):].strip()
            parents = [rest] if rest else []
        elif in_via and line.startswith("#"):
            parents = [line.lstrip("#").strip()]
        else:
            continue
        for parent in parents:
            if not parent or parent.startswith(("-", "(")) or current is None:
                continue
            parent_name = re.split(r"[\s\[]", parent, maxsplit=1)[0]
            deps.setdefault(canonicalize_name(parent_name), set()).add(current)
    return deps


_NAME_IN_MSG = re.compile(r"\b([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?(?:[=<>!~]=?|==)")


def explain_failure(uv_text: str, prepared: list[PreparedComponent], origin: dict[str, str],
                    series: str) -> ResolutionError:
    """Turn uv's explanation into one message naming the components and the pins that block them."""
    lines = [ln.rstrip() for ln in uv_text.strip().splitlines() if ln.strip()]
    body = [re.sub(r"^\s*(?:×|╰─▶|\s)+", "", ln) for ln in lines]
    body = [re.sub(r"^(?:error|cause|help):\s*", "", b) for b in body if b and not b.lower().startswith("hint")]
    body = [b for b in body if not b.startswith("No solution found")]
    text = "\n".join("  " + b for b in body)
    mentioned = {canonicalize_name(m.group(1)) for m in _NAME_IN_MSG.finditer(uv_text)}
    blocking = [origin[n] for n in sorted(mentioned) if n in origin]
    comps = [f"{p.component.name} ({p.requirement.split(' @ ')[0]})" for p in prepared
             if p.component.key in mentioned]
    msg = f"the components' requirements cannot be satisfied together with the {series} constraints:\n{text}"
    if comps:
        msg += "\n  components involved: " + ", ".join(comps)
    if blocking:
        msg += "\n  pins involved:\n" + "\n".join(f"    - {b}" for b in blocking)
    hint = ("change or drop the blocking override, pick a component version made for this series, or add an "
            "override that every component accepts")
    return ResolutionError(msg, hint=hint)


def stale_reasons(lock_: Lock, manifest: LoadedManifest, cache: Cache, constraints_dir: str | None,
                  lock_path: Path, extra_overrides: list[str] | None = None) -> list[str]:
    """Reasons the lock no longer matches its inputs (empty when it is up to date).

    extra_overrides: the --override pins of this call; None means "those the lock was made with".
    """
    reasons = []
    _, _, constraints = load_inputs(manifest, cache, constraints_dir, refresh=False)
    if extra_overrides is None and "extra_overrides" in lock_.inputs:
        extra_overrides = [o for o in lock_.inputs["extra_overrides"].split(",") if o]
    elif extra_overrides is None:  # a lock of an older stackcrate: its overrides the manifest lacks were extra
        extra_overrides = [o for o in lock_.overrides if o not in manifest.model.overrides]
    held = lock_.inputs.get("manifest")  # the older form is computed only when needed: it hashes path trees too
    if held != manifest_digest(manifest, extra_overrides) and \
            held != manifest_digest(manifest, extra_overrides, every_field=True):
        reasons.append(f"the manifest {manifest.path.name} changed since {lock_path.name} was written")
    if constraints.digest != lock_.inputs.get("constraints"):
        reasons.append(f"the constraints ({constraints.source}) changed since {lock_path.name} was written")
    return reasons
