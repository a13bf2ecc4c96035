"""The orchestration above the stages: "lock if stale, then build, then package", in one place.

The `lock`, `build` and `sysdeps` commands and `deploy build` all come through here; no stage calls an
earlier one to get its input, each is handed it.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from . import __version__
from .buildroot import build_root
from .cache import Cache, remove_tree, sha256_file
from .errors import StackcrateError, StaleLockError
from .manifest import LoadedManifest
from .model.artifacts import Artifact, ArtifactIndex, ArtifactSource
from .model.built import BuiltComponent
from .model.changes import change_lines, version_changes
from .model.lock import Lock, LockedComponent
from .model.source import LockedGit
from .model.system_image import SystemImage
from .package import Made, check_formats
from .package import make as make_artifacts
from .resolve import lock as resolve_lock
from .resolve import stale_reasons
from .series import get_series, require_buildable
from .targets import get_target
from .ui import UI


@dataclass(frozen=True)
class LockOutcome:
    lock: Lock
    path: Path
    written: bool       # resolved and written by this call (False: the existing lock was up to date)
    replaced: Lock | None = None  # the lock this call wrote over, when it could be read

    @property
    def changes(self) -> list[dict] | None:
        """What this call's re-lock changed against the lock it wrote over ({name, kind, old, new}); None when
        it wrote no lock, or none could be read before."""
        if not self.written or self.replaced is None:
            return None
        return version_changes(self.replaced.versions(), self.lock.versions())


def ensure_lock(manifest: LoadedManifest, lock_path: Path, cache: Cache, ui: UI, *, locked: bool = False,
                refresh: bool = False, upgrade: bool = False, upgrade_packages: tuple[str, ...] = (),
                constraints_dir: str | None = None, overrides: list[str] | None = None) -> LockOutcome:
    """The lock to build from: the existing one when it matches its inputs; otherwise resolve again and write
    it, unless `locked` (CI, build farms), which refuses instead. `refresh` resolves even when up to date
    (a moved git branch); `overrides` are --override pins added to the manifest's. Resolving again keeps the
    existing lock's versions where the inputs allow them, but those of upgrade_packages (which resolves again);
    `upgrade` resolves from the inputs alone (and always)."""
    existing = None  # read with --upgrade too: what the new lock changed is told against it
    if lock_path.exists():
        try:
            existing = Lock.load(lock_path)
        except StackcrateError as exc:
            if not (refresh or upgrade) or upgrade_packages:
                raise
            ui.warn(f"{exc.message}: resolving without its versions")  # --refresh re-creates it, as it always did
    current = None if upgrade else existing
    if upgrade_packages:
        if current is None:
            raise StackcrateError(f"--upgrade-package needs a lock to keep the other versions of: {lock_path} "
                                  f"{'is left aside by --upgrade' if upgrade else 'does not exist'}",
                                  hint="run `stackcrate lock` (without --upgrade-package) first" if not upgrade
                                  else "give --upgrade (every package) or --upgrade-package NAME, not both")
        upgrading = {canonicalize_name(n) for n in upgrade_packages}
        if unknown := sorted(upgrading - set(current.packages)):
            raise StackcrateError(f"--upgrade-package: {lock_path} has no package {', '.join(unknown)}",
                                  hint="name a package of the lock (`stackcrate reqs inventory` lists them)")
        if fixed := sorted(upgrading & {c.key for c in manifest.model.components}):
            raise StackcrateError(f"--upgrade-package {', '.join(fixed)}: a component's version is the manifest's",
                                  hint="change its version in the manifest")
        refresh = True
    if current is not None and not refresh:
        reasons = stale_reasons(current, manifest, cache, constraints_dir, lock_path,
                                None if overrides is None else list(overrides))
        if not reasons:
            return LockOutcome(current, lock_path, written=False)
        if locked:
            raise StaleLockError("the lock is stale: " + "; ".join(reasons),
                                 where=str(lock_path), hint="run `stackcrate lock` and review the change")
        ui.info(f"[yellow]re-locking:[/] {'; '.join(reasons)}")
    elif locked and not lock_path.exists():
        raise StaleLockError(f"no lock file at {lock_path}", hint="run `stackcrate lock` first")
    # another series or target is another world of versions: nothing of the old lock is preferred
    same_world = current is not None and (current.series, current.target) == (manifest.model.series,
                                                                              manifest.model.target)
    new = resolve_lock(manifest, cache, ui, constraints_dir=constraints_dir, extra_overrides=list(overrides or []),
                       prefer=current if same_world else None, upgrade_packages=upgrade_packages)
    new.write(lock_path)
    return LockOutcome(new, lock_path, written=True, replaced=existing)


def select(lock: Lock, only: list[str] | None) -> list[LockedComponent]:
    """The lock's components named by --component (all when none are named) that get a venv of their own
    (a library is built into the venvs that require it)."""
    own = [c for c in lock.components if not c.library]
    if not only:
        return own
    wanted = {canonicalize_name(o) for o in only}
    libraries = wanted & {c.key for c in lock.components if c.library}
    if libraries:
        raise StackcrateError(f"--component names a library: {', '.join(sorted(libraries))}",
                              hint="a library (library: true) is built into the venvs of the components that "
                                   "require it: name those")
    unknown = wanted - {c.key for c in own}
    if unknown:
        known = ", ".join(c.name for c in own)
        raise StackcrateError(f"unknown component in --component: {', '.join(sorted(unknown))}",
                              hint=f"components: {known}")
    return [c for c in own if c.key in wanted]


def built_components(manifest: LoadedManifest, lock: Lock, cache: Cache, ui: UI,
                     only: list[str] | None = None) -> list[BuiltComponent]:
    """Each selected component's venv, built (or found in the cache), in the lock's order.

    The build root is made while the wheels download. Then the wheels' bytecode is compiled (each once, for
    all venvs) while the components build side by side, as many as the machine has cores: a venv's install
    mostly waits on the disk, and takes the bytecode once it is there; packing uses the cores."""
    from .build import build_component, compile_shared, fetch_wheels  # the build stage brings its tools

    series = get_series(manifest.model.series)
    target = get_target(manifest.model.target)
    require_buildable(series, target.python_minor, target.name)
    comps = select(lock, only)
    with ThreadPoolExecutor(1) as side:
        rootfs = side.submit(_timed_rootfs, target, cache, ui)
        wheels = fetch_wheels(lock, comps, manifest, cache, target, ui)
        rootfs.result()
    with ThreadPoolExecutor(1) as side, ThreadPoolExecutor(max(1, min(len(comps), os.cpu_count() or 1))) as pool:
        compiled = side.submit(compile_shared, comps, wheels, manifest, cache, target, ui)
        builts = list(pool.map(lambda c: build_component(c, lock, manifest, cache, ui, target, wheels[c.name],
                                                         compiled.result), comps))
    for built in builts:
        if not built.rebuilt:
            ui.info(f"[green]✓[/] {built.name} {built.version}: up to date (cached build {built.key[:12]})")
    return builts


def _timed_rootfs(target, cache: Cache, ui: UI) -> None:
    with ui.step(f"Preparing the {target.name} build root"):
        build_root(target, cache)


@dataclass(frozen=True)
class BuildReport:
    out: Path
    artifacts: list[Artifact]
    rebuilt: list[bool]       # per artifact: written by this run
    lock_changes: list[dict] | None = None  # what the build's own re-lock changed, when it re-locked

    def to_json(self) -> dict:
        got = {"out": str(self.out), "artifacts": [dict(a.model_dump(mode="json", exclude_none=True), rebuilt=r)
                                                   for a, r in zip(self.artifacts, self.rebuilt, strict=True)]}
        return got if self.lock_changes is None else dict(got, lock_changes=self.lock_changes)


def build(manifest: LoadedManifest, lock_path: Path, out_dir: Path, cache: Cache, ui: UI, *, locked: bool = False,
          constraints_dir: str | None = None, formats: list[str] | None = None,
          only: list[str] | None = None, system_images: Sequence[SystemImage] = ()) -> BuildReport:
    """Lock if stale, build every (selected) component, make its artifacts, then deliver them to out_dir.
    `system_images` (backing services from the target's packages) are written beside the components' images;
    all images of one build share their base and system-package layers."""
    formats = check_formats(formats or list(manifest.model.formats))
    target = get_target(manifest.model.target)
    require_buildable(get_series(manifest.model.series), target.python_minor, manifest.model.target)
    locked_now = ensure_lock(manifest, lock_path, cache, ui, locked=locked, constraints_dir=constraints_dir)
    lock, lock_changes = locked_now.lock, locked_now.changes
    if lock_changes is not None:  # a build that re-locked says what moved, as `lock` does
        ui.info("\n".join([f"re-locked {lock_path}:", *change_lines(lock_changes)]))
    builts = built_components(manifest, lock, cache, ui, only)
    shared: list[str] = []
    if "oci" in formats or system_images:
        from .package.oci import shared_packages

        shared = shared_packages(builts, cache)
    calls = [functools.partial(make_artifacts, built, formats, cache, ui, shared) for built in builts]
    stacks = [[shared]] if "oci" in formats and builts else []
    if system_images:
        from .package.oci import make_system

        epoch = max((b.epoch for b in builts), default=0)  # the release's date, not the day of the build
        # every system image holds the packages of all of them: one layer (one mmdebstrap) that they share
        theirs = sorted({p for spec in system_images for p in spec.packages})
        stacks.append([shared, theirs])
        calls += [functools.partial(make_system, spec, target, [shared, theirs], epoch, cache, ui)
                  for spec in system_images]
    if stacks:
        from .package.oci import shared_layers

        calls.insert(0, functools.partial(shared_layers, target, stacks, cache, ui))
    results = _side_by_side(calls)[1 if stacks else 0:]
    made = [(built, m) for built, ms in zip(builts, results, strict=False) for m in ms]
    artifacts = [artifact_entry(b, m) for b, m in made]
    rebuilt = [b.rebuilt or m.made for b, m in made]
    files = [m for _, m in made]
    for sb in results[len(builts):]:
        for m in sb.made:
            artifacts.append(system_entry(sb, m, manifest, target))
            rebuilt.append(m.made)
            files.append(m)
    deliver(out_dir, files, artifacts)
    return BuildReport(out_dir, artifacts, rebuilt, lock_changes)


def _side_by_side(calls: list[Callable[[], Any]]) -> list[Any]:
    """Each call's result, in order, the calls run as many at once as the machine has cores: the writers spend
    their time in gzip, zstd and dpkg-deb, which run outside the interpreter's lock (the .rpm writer frames its
    payload in the interpreter: a third of its time). The first failure
    (in the calls' order) is raised once the calls already running are done; those not started yet never are."""
    with ThreadPoolExecutor(max(1, min(len(calls), os.cpu_count() or 1))) as pool:
        futures = [pool.submit(call) for call in calls]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _size(made: Made) -> int:
    """An artifact's bytes: its file's; an image's, all its blobs' (manifest, config, layers)."""
    if made.format != "oci":
        return made.path.stat().st_size
    from .package.oci import laid_out

    manifest = laid_out(made.path).manifest
    return made.path.stat().st_size + manifest["config"]["size"] + sum(d["size"] for d in manifest["layers"])


def dist_name(made: Made) -> str:
    """Where an artifact goes in the output folder: an image's manifest blob into the one OCI layout, the other
    files at the top."""
    from .package.oci import LAYOUT

    return f"{LAYOUT}/blobs/sha256/{made.path.name}" if made.format == "oci" else made.path.name


def system_entry(sb, made: Made, manifest: LoadedManifest, target) -> Artifact:
    return Artifact(
        component=sb.name, version=sb.version, format=made.format, file=dist_name(made),  # type: ignore[arg-type]
        sha256=sha256_file(made.path), size=_size(made), install_path="/",
        source=ArtifactSource(type="debian", revision=sb.version,
                              url=os.environ.get("STACKCRATE_DEBIAN_MIRROR") or target.mirror),
        series=manifest.model.series, target=target.name, source_date_epoch=sb.epoch, build_key=sb.key)


def artifact_entry(built: BuiltComponent, made: Made) -> Artifact:
    src = built.locked.source
    return Artifact(
        component=built.name, version=built.version, format=made.format, file=dist_name(made),  # type: ignore
        sha256=sha256_file(made.path), size=_size(made), install_path=built.install_path,
        source=ArtifactSource(type=src.type, revision=built.locked.revision,
                              url=src.url if isinstance(src, LockedGit) else None,
                              ref=src.ref if isinstance(src, LockedGit) else None),
        series=built.series, target=built.target.name, source_date_epoch=built.epoch, build_key=built.key)


def deliver(out_dir: Path, made: list[Made], artifacts: list[Artifact]) -> None:
    """Copy the finished artifacts into out_dir, all at the end, each by an atomic rename, the images into its
    one OCI layout (each blob once: `oci.gather`); then the index. Files the previous index listed that this build
    no longer makes are removed."""
    from .package.oci import LAYOUT, gather

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        previous = {a.file for a in ArtifactIndex.load(out_dir).artifacts}
    except StackcrateError:
        previous = set()  # none yet, or not one we can read: we only remove what we listed ourselves
    files = [m.path for m in made if m.format != "oci"]
    for f in files:
        dest = out_dir / f.name
        if dest.exists() and dest.stat().st_size == f.stat().st_size and sha256_file(dest) == sha256_file(f):
            continue
        tmp = out_dir / f".{f.name}.tmp-{os.getpid()}"
        shutil.copyfile(f, tmp)
        tmp.replace(dest)
    images = [m.path for m in made if m.format == "oci"]
    layout = out_dir / LAYOUT
    if images or layout.exists():
        # made anew beside the old one, then swapped in: blobs no image uses any more go with the old one
        new, old = out_dir / f".{LAYOUT}.new-{os.getpid()}", out_dir / f".{LAYOUT}.old-{os.getpid()}"
        remove_tree(new)
        if images:
            try:
                gather(images, new)
            except BaseException:
                remove_tree(new)
                raise
        if layout.exists():
            layout.rename(old)
        if images:
            new.rename(layout)
        remove_tree(old)
    for stale in previous - {f.name for f in files}:
        if not stale.startswith(f"{LAYOUT}/"):
            (out_dir / stale).unlink(missing_ok=True)
    ArtifactIndex(stackcrate=__version__, artifacts=artifacts).write(out_dir)


def system_deps(manifest: LoadedManifest, lock_path: Path, cache: Cache, ui: UI, *, kind: str,
                constraints_dir: str | None = None, only: list[str] | None = None) -> dict[str, dict]:
    """Each (selected) component's system dependencies for a package kind, with where each came from."""
    from .package.sysdeps import system_deps as deps_of

    lock = ensure_lock(manifest, lock_path, cache, ui, constraints_dir=constraints_dir).lock
    return {b.name: {"version": b.version, **deps_of(b, cache, kind).to_json()}
            for b in built_components(manifest, lock, cache, ui, only)}
