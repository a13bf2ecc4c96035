"""The deployment's artifacts: which ones it needs (from artifacts.json), and their venvs installed at the paths
they were built for, safely:

- every artifact is checked (sha256, whole archive, members) before anything is written under the install root;
- each venv is unpacked beside its place and renamed in (unpack.py), as hard links to the same venv kept in
  stackcrate's cache once it was unpacked there (kept_venvs.py): a deploy made anew does not unpack again;
- an installed venv that differs from its artifact (rebuilt, modified, not installed by stackcrate) is replaced
  only when asked (`init --reinstall`), and never while a process runs from it;
- the deployments using each venv are recorded beside it (installed.py): `rm --purge` removes only the venvs no
  other deployment uses.
With `venvs_from: debs` the venvs come from the .deb artifacts instead, installed by dpkg (apt on the hosts of
`deploy -i`), and are checked against artifacts.json the same way before anything runs from them (debs.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .. import tools
from ..cache import remove_tree, sha256_file
from ..errors import StackcrateError
from ..model.artifacts import Artifact, ArtifactIndex
from . import debs, installed, inuse, kept_venvs, unpack
from .checked import CheckedArtifacts, identity
from .config import Deployment
from .timer import Timer

ROOT = Path("/")
USED = "installed-venvs.json"  # in the state folder: the venvs this deployment uses


def needed_components(d: Deployment, fmt: str) -> list[str]:
    """The components whose artifact of `fmt` the deployment needs: every service's and the client's, and for the
    images (a container backend) the backing services' too."""
    from .backing import images_needed
    from .processes import services_here

    enabled = d.services.enabled()
    # a compute host of several hosts runs only nova-compute: nova's venv; the client goes where verify runs
    needed = [enabled[s].component for s in services_here(d)] + ([d.services.client] if d.has("control") else [])
    if fmt == "oci":
        needed += images_needed(d)
    return list(dict.fromkeys(needed))


def backend_format(d: Deployment) -> str:
    """The artifact format the deployment's backend runs from: venv archives (or Debian packages) locally,
    images in containers."""
    if d.backend != "local":
        return "oci"
    return "deb" if d.config.venvs_from == "debs" else "tar"


def artifacts(d: Deployment, fmt: str | None = None) -> dict[str, Artifact]:
    """component -> its artifact of format `fmt` (default: the one the deployment runs from), for every
    component the deployment needs."""
    fmt = fmt or backend_format(d)
    index = ArtifactIndex.load(d.artifacts_dir)
    by = {a.component: a for a in index.artifacts if a.format == fmt}
    # images_from engine: the archives stay on the deploy host (the engine's store holds the images)
    held = fmt == "oci" and d.config.images_from == "engine"
    missing = [c for c in needed_components(d, fmt) if c not in by or not (held or index.path(by[c]).is_file())]
    if missing:
        raise StackcrateError(f"missing artifact(s) ({fmt}) in {d.artifacts_dir}: {', '.join(missing)}",
                              hint="run `stackcrate deploy build` (with the configuration's backend), "
                                   "or add the component(s) to the manifest")
    return {c: by[c] for c in needed_components(d, fmt)}


def artifact_sha256(d: Deployment, component: str) -> str | None:
    """The sha256 of the artifact the component's venv (or image) comes from; None when artifacts.json does not
    list it (nothing to tell one build of it from another)."""
    try:
        return artifacts(d, backend_format(d))[component].sha256
    except (StackcrateError, KeyError):
        return None


def target(a: Artifact, root: Path = ROOT) -> Path:
    """Where a's venv lives under root (its install path when root is /)."""
    return root / a.install_path.lstrip("/")


@dataclass
class Planned:
    """What installing does with one component's venv: keep, install, replace (asked for) or refuse, and why."""
    component: str
    artifact: Artifact
    file: Path
    target: Path
    action: Literal["keep", "install", "replace", "refuse"]
    why: str = ""


def _plan(d: Deployment, component: str, a: Artifact, root: Path, reinstall: bool,
          look_inside: bool = True) -> Planned:
    """look_inside: also walk the venv to see whether its files changed after it was installed (~0.3 s)."""
    where = target(a, root)

    def plan(action: Literal["keep", "install", "replace", "refuse"], why: str = "") -> Planned:
        return Planned(component, a, d.artifacts_dir / a.file, where, action, why)

    if a.format == "deb":
        return _plan_deb(plan, a, d.artifacts_dir / a.file, where, reinstall, look_inside)
    rec = installed.read(where)
    if not os.path.lexists(where):
        return plan("install", "it was missing" if rec else "")
    differs = "replace" if reinstall else "refuse"
    if rec is None:
        return plan(differs, f"{where} exists but stackcrate did not install it (no record in "
                             f"{where.parent / installed.RECORDS}): it may come from a package or be made by hand")
    if rec.sha256 != a.sha256:
        return plan(differs, f"{where} was installed from another artifact: sha256 {rec.sha256} installed, "
                             f"{a.sha256} in artifacts.json (rebuilt under the same version?)")
    if not os.path.lexists(where / "bin" / "python"):
        return plan(differs, f"{where} is not a whole venv (it has no bin/python)")
    if look_inside and rec.tree and installed.tree_digest(where) != rec.tree:
        # Kept unless asked: an operator may have patched a file by hand on purpose.
        return plan("replace" if reinstall else "keep", f"files in {where} changed after it was installed")
    return plan("keep")


def _plan_deb(plan, a: Artifact, deb: Path, where: Path, reinstall: bool, look_inside: bool) -> Planned:
    """The same decision for a venv dpkg installs from a .deb (the .deb's own sha256 is checked next)."""
    pkg = debs.package(a)
    version = debs.installed_versions([pkg]).get(pkg)
    differs = "replace" if reinstall else "refuse"
    if version is None:
        if os.path.lexists(where):  # dpkg would write over files it does not own
            return plan(differs, f"{where} exists but dpkg did not install it (unpacked from a venv archive?)")
        return plan("install", f"dpkg -i {a.file}")
    if version != a.version:
        return plan(differs, f"dpkg has {pkg} {version} installed, artifacts.json lists {a.version}")
    if deb.is_file() and debs.installed_digest(pkg) != debs.contents_digest(deb):
        return plan(differs, f"{pkg} {version} as dpkg installed it holds other files than {a.file} (a package of "
                             "the same name and version built otherwise?)")
    if look_inside and (changed := debs.changed_files(pkg)):
        return plan("replace" if reinstall else "keep",
                    f"{len(changed)} file(s) of {pkg} changed after dpkg installed them ({', '.join(changed[:3])}"
                    f"{', ...' if len(changed) > 3 else ''})")
    return plan("keep")


def _check_files(planned: list[Planned], memo: Path) -> None:
    """Each artifact file matches artifacts.json (first: an altered file is told as such, at once); one to be
    unpacked (or refused: a broken artifact is the first thing to tell) is then read whole with the member
    rules. Files unchanged since they last passed are not read again; the others are read together, one worker
    process per core (the member rules are Python: 1.5 s of CPU for nova's archive)."""
    checked = CheckedArtifacts(memo)
    todo = []
    for p in planned:
        # a venv archive to unpack is read whole with stackcrate's member rules; a .deb is dpkg's to unpack
        whole_for = None if p.action == "keep" or p.artifact.format == "deb" else p.artifact.install_path
        sha = checked.sha256(p.file, whole_for)
        if sha is None:
            todo.append((p, whole_for))
        elif sha != p.artifact.sha256:
            raise _altered(p, sha)
    for (p, whole_for), (outcome, ident, sha, hint) in zip(todo, _in_workers(_read, [
            (p.file, p.artifact.sha256, whole_for) for p, whole_for in todo]), strict=True):
        if outcome != "ok":
            raise StackcrateError(str(sha), hint)
        checked.remember(p.file, ident, sha, whole_for if sha == p.artifact.sha256 else None)
        if sha != p.artifact.sha256:
            raise _altered(p, sha)
    checked.save()


def _altered(p: Planned, sha: str) -> StackcrateError:
    return unpack.bad_artifact(p.file, f"its sha256 is {sha}, artifacts.json says {p.artifact.sha256}: it was "
                                       "changed or damaged after the build")


def _read(file: Path, expected: str, whole_for: str | None) -> tuple[str, list[int] | None, str | None, str | None]:
    """In a worker process: file's identity (taken first) and sha256, and when that is the one expected and
    whole_for is given, the sha256 of a whole read under the member rules: ("ok", identity, sha256, None), or
    ("error", None, message, hint). Bytes artifacts.json does not vouch for are never decompressed: a file
    altered after the build could be made to expand without bound."""
    try:
        ident = identity(file)
        sha = sha256_file(file)
        if sha == expected and whole_for:
            sha = unpack.check(file, whole_for)  # hashes what it reads: a file changed meanwhile shows
        return "ok", ident, sha, None
    except StackcrateError as exc:
        return "error", None, exc.message, exc.hint
    except OSError as exc:
        return "error", None, f"cannot read the artifact {file}: {exc}", "copy it again from the build's output"


def _workers(calls: int) -> int:
    return min(calls, os.cpu_count() or 1)


def _in_workers(fn, calls: list[tuple]) -> Iterator:
    """fn(*args) for each args in calls, in order, each as soon as it and those before it are done; in forked
    worker processes (one per core) when there are two or more: they start at once with what this process
    imported (fn only computes, logs nothing). Ctrl-C reaches them all."""
    if len(calls) < 2:
        yield from (fn(*args) for args in calls)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(_workers(len(calls)), mp_context=multiprocessing.get_context("fork")) as pool:
        for job in [pool.submit(fn, *args) for args in calls]:
            yield job.result()


def _refuse_differing(planned: list[Planned]) -> None:
    refused = [p for p in planned if p.action == "refuse"]
    if refused:
        raise StackcrateError("installed venv(s) differ from the deployment's artifacts:\n" +
                              "\n".join(f"  {p.component}: {p.why}" for p in refused),
                              hint="`stackcrate deploy init --reinstall` replaces them with the artifacts' venvs "
                                   "(once no process runs from them); or put back the artifacts they came from")


def _busy(venv: Path, state: Path) -> str:
    """The processes running from venv, this deployment's told as such, as a phrase; '' when there are none."""
    return ", ".join(f"{pid} ({'of this deployment' if inuse.mentions(pid, f'{state}/') else cmd[:80]})"
                     for pid, cmd in sorted(inuse.processes_using(venv).items()))


def _refuse_busy(planned: list[Planned], state: Path) -> None:
    busy = [(p, b) for p in planned if p.action == "replace" and (b := _busy(p.target, state))]
    if busy:
        raise StackcrateError("cannot replace venv(s) that processes run from:\n" +
                              "\n".join(f"  {p.target}: {b}" for p, b in busy),
                              hint="stop them first (`stackcrate deploy stop` stops this deployment's), then run "
                                   "`stackcrate deploy init --reinstall` again")


def prepare(d: Deployment, reinstall: bool = False, root: Path = ROOT) -> list[Planned]:
    """What installing will do, after every check that can refuse it, with nothing written under root (the
    state folder remembers which artifact files passed)."""
    planned = [_plan(d, c, a, root, reinstall) for c, a in artifacts(d).items()]
    _check_files(planned, d.cache.dir("artifacts-checked"))
    _refuse_differing(planned)
    _refuse_busy(planned, d.state)
    return planned


def summary(planned: list[Planned]) -> str:
    todo = [f"{p.component} ({p.action})" for p in planned if p.action != "keep"]
    return f"to install: {', '.join(todo)}" if todo else "all installed"


def install(d: Deployment, t: Timer, reinstall: bool = False, root: Path = ROOT,
            planned: list[Planned] | None = None) -> None:
    """Install what prepare() planned (planned here when not given) and record this deployment as a user of
    every venv it needs. Each venv is planned again under its prefix's lock: another deployment may have
    installed or replaced it meanwhile."""
    plan = planned if planned is not None else prepare(d, reinstall, root)
    for prefix in dict.fromkeys(p.target.parent for p in plan):
        with installed.locked(prefix):
            nows = []
            for p in (p for p in plan if p.target.parent == prefix):
                now = _plan(d, p.component, p.artifact, root, reinstall, look_inside=False)
                if now.action == "keep" and p.action != "install":
                    now = p  # what only prepare()'s look inside the venv tells
                _check_files([now], d.cache.dir("artifacts-checked"))  # reads a file again only if it changed
                _refuse_differing([now])
                _refuse_busy([now], d.state)
                nows.append(now)
            # two venvs or more to unpack: together, in worker processes; the rest one by one, here
            together = [n for n in nows if n.artifact.format != "deb" and n.action != "keep"]
            together = together if len(together) > 1 else []
            for now in nows:
                if now not in together:
                    _apply(now, str(d.state), t, d.cache.root)
            if together:
                _unpack_together(together, str(d.state), t, d.cache.root)


def record_use(d: Deployment, root: Path = ROOT, also: list[Path] = ()) -> None:
    """Record in the state folder which venvs this deployment uses (init calls it once its checks passed: nothing
    is written there before); `also`: venvs it keeps a claim on (an upgrade's old release, until commit)."""
    _record_used(d.state, list(dict.fromkeys([*(target(a, root) for a in artifacts(d).values()), *also])))


def _apply(p: Planned, me: str, t: Timer, cache_root: Path) -> None:
    if p.artifact.format == "deb":  # dpkg's: no record of stackcrate's (rm --purge never removes them)
        if p.action == "keep" and p.why:
            t.ui.warn(f"{p.component}: {p.why}; kept as it is (`stackcrate deploy init --reinstall` puts back the "
                      "package's files)")
        elif p.action != "keep":
            with t.step(f"dpkg -i {p.file.name}") as info:
                info["note"] = f"replaced: {p.why}" if p.action == "replace" else ""
                debs.install([p.file])
        return
    if p.action == "keep":
        old = installed.read(p.target)
        if p.why:
            t.ui.warn(f"{p.component}: {p.why}; kept as it is (`stackcrate deploy init --reinstall` puts back the "
                      "artifact's files)")
        if old and (me not in old.users or old.tree is None):  # first use by this deployment, or an older record
            installed.write(p.target, old.model_copy(update={
                "users": old.users if me in old.users else [*old.users, me],
                "tree": old.tree or installed.tree_digest(p.target)}))
        return
    with t.step(f"Installing {p.artifact.file} at {p.target}") as info:
        info["note"] = f"replaced: {p.why}" if p.action == "replace" else p.why
        _record_installed(p, me, _place(p.file, p.artifact.install_path, p.artifact.sha256, p.target, cache_root))


def _place(file: Path, install_path: str, sha256: str, target: Path, cache_root: Path) -> str:
    """One venv installed as target, after removing what earlier installs that were killed left (the caller holds
    the prefix's lock): linked from stackcrate's cache (kept_venvs), unpacked where that cannot be; its tree
    digest."""
    unpack.remove_leftovers(target)
    digest = kept_venvs.place(cache_root, file, install_path, sha256, target)
    if digest is not None:
        return digest
    unpack.unpack(file, install_path, sha256, target)
    return installed.tree_digest(target)


def _record_installed(p: Planned, me: str, tree: str) -> None:
    """The record of a venv just placed: its artifact, its tree, this deployment among its users."""
    old = installed.read(p.target)
    installed.write(p.target, installed.VenvRecord(
        sha256=p.artifact.sha256, tree=tree, users=[*(u for u in (old.users if old else []) if u != me), me],
        unlisted_users=bool(old and old.unlisted_users)))


def _unpack_one(file: Path, install_path: str, sha256: str, target: Path,
                cache_root: Path) -> tuple[str, str | None, str | None]:
    """In a worker process: _place; ("ok", the tree digest, None) or ("error", message, hint)."""
    try:
        return "ok", _place(file, install_path, sha256, target, cache_root), None
    except StackcrateError as exc:
        return "error", exc.message, exc.hint


def _unpack_together(todo: list[Planned], me: str, t: Timer, cache_root: Path) -> None:
    """Install several venvs at once, one worker process per core (each links its venv from the cache, or reads
    and hashes its archive, then GNU tar and zstd unpack it); each record is written as its venv is in place.
    The first failure is the answer (the venvs already in place stay: each is whole, and recorded)."""
    failure: StackcrateError | None = None
    with t.step(f"Installing {len(todo)} venvs together ({_workers(len(todo))} at a time): "
                f"{', '.join(p.artifact.file for p in todo)}") as info:
        # the largest first: the last one unpacked alone leaves the other cores idle the shortest
        todo = sorted(todo, key=lambda p: p.file.stat().st_size, reverse=True)
        unpacked = _in_workers(_unpack_one, [(p.file, p.artifact.install_path, p.artifact.sha256, p.target,
                                              cache_root) for p in todo])
        for p, (outcome, digest, hint) in zip(todo, unpacked, strict=True):
            if outcome != "ok":
                failure = failure or StackcrateError(str(digest), hint)
                continue
            _record_installed(p, me, str(digest))
        info["note"] = ", ".join(f"{p.component} ({p.action})" for p in todo)
    if failure is not None:
        raise failure


def _used(state: Path, prefixes: Iterable[Path]) -> list[Path]:
    """The venvs this deployment uses, as its state folder records them; when that file is missing or is not
    a list of absolute paths (edited by hand), those whose own records, in prefixes, name it as a user."""
    try:
        venvs = json.loads((state / USED).read_text())["venvs"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        venvs = None
    if isinstance(venvs, list) and all(isinstance(v, str) and os.path.isabs(v) for v in venvs):
        return [Path(v) for v in venvs]
    return installed.used_by(str(state), prefixes)


def prefixes(d: Deployment, root: Path = ROOT) -> list[Path]:
    """The folders d's venvs may be installed in: /opt/openstack, and those of its artifacts.json's entries when
    it can be read (the artifact files need not be there). An earlier release's venvs under another prefix,
    claimed during an upgrade, are not among them: that file names only the release the deployment runs."""
    found = [root / "opt" / "openstack"]
    with contextlib.suppress(StackcrateError, OSError, ValueError):
        found += [target(a, root).parent for a in ArtifactIndex.load(d.artifacts_dir).artifacts]
    return list(dict.fromkeys(found))


def _record_used(state: Path, venvs: list[Path]) -> None:
    """Remember the venvs this deployment uses; drop it from the users of those it no longer uses."""
    for gone in set(_used(state, {v.parent for v in venvs})) - set(venvs):
        with installed.locked(gone.parent):
            rec = installed.read(gone)
            if rec and str(state) in rec.users:
                installed.write(gone, rec.model_copy(update={"users": [u for u in rec.users if u != str(state)]}))
    state.mkdir(parents=True, exist_ok=True)
    tmp = state / f".{USED}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"venvs": [str(v) for v in venvs]}, indent=2) + "\n")
    tmp.replace(state / USED)


def release(state: Path, venvs: list[Path] | None = None, where: Iterable[Path] = ()) -> dict[str, list]:
    """For `rm --purge` (every venv it uses; `where`: the prefixes() to look in when the state folder's list of
    them cannot be read) and an upgrade's end (the release left behind): remove this deployment from the users of
    the venvs, and remove each one no other deployment uses and no process runs from. Users whose state folder is
    gone are dropped."""
    removed, kept, asides = [], [], []
    for venv in _used(state, where) if venvs is None else venvs:
        if not venv.parent.is_dir():
            continue
        with installed.locked(venv.parent):
            rec = installed.read(venv)
            if rec is None:
                if os.path.lexists(venv):
                    kept.append({"venv": str(venv), "why": "no record says stackcrate installed it"})
                continue
            others = [u for u in rec.users if u != str(state) and Path(u).is_dir()]
            busy = "" if others or rec.unlisted_users else _busy(venv, state)
            why = (f"used by {', '.join(others)}" if others else
                   "installed before stackcrate recorded which deployments use a venv: others may use it"
                   if rec.unlisted_users else busy and f"in use by {busy}")
            if why:
                installed.write(venv, rec.model_copy(update={"users": others}))
                kept.append({"venv": str(venv), "why": why})
                continue
            aside = Path(tempfile.mkdtemp(prefix=f".{venv.name}.tmp-", dir=venv.parent))
            if os.path.lexists(venv):
                os.rename(venv, aside / "old")  # gone at once; the files go below
            installed.forget(venv)
            asides.append(aside)
            removed.append(str(venv))
    remove_trees(asides)
    return {"removed": removed, "kept": kept}


def remove_trees(paths: list[Path], at_once: int = 4, timeout: float = 1800) -> None:
    """Folders removed side by side, each by `rm -rf`: what bounds a removal is the disk's metadata writes, which
    overlap (four nova venvs, 23,000 files each: 7.0 s at once, 15 s one after the other), and rm's own loop
    takes less CPU than shutil.rmtree's. What rm leaves (it failed, took too long or is missing) goes as before;
    what even that cannot remove stays (as shutil.rmtree(ignore_errors=True) left it)."""
    def one(path: Path) -> None:
        try:
            tools.run(["rm", "-rf", "--", path], check=False, timeout=timeout)
        except StackcrateError:  # timed out (ToolFailed), or no rm
            pass
        with contextlib.suppress(OSError):
            remove_tree(path)

    with ThreadPoolExecutor(max_workers=at_once) as pool:
        list(pool.map(one, paths))


def venvs(d: Deployment, root: Path = ROOT, needed: dict[str, Artifact] | None = None) -> dict[str, str]:
    """component -> its installed venv, for every component the deployment needs: present, and installed from
    the artifact artifacts.json lists (cheap: no artifact is read). needed: artifacts(d), when the caller has it."""
    out = {}
    needed = needed if needed is not None else artifacts(d)
    packages = [debs.package(a) for a in needed.values() if a.format == "deb"]
    dpkg_has = debs.installed_versions(packages) if packages else {}  # one dpkg-query for all
    for c, a in needed.items():
        where = target(a, root)
        if not os.path.lexists(where / "bin" / "python"):
            raise StackcrateError(f"{c} is not installed at {where}", hint="run `stackcrate deploy init`")
        if a.format == "deb":
            pkg = debs.package(a)
            if dpkg_has.get(pkg) != a.version:
                raise StackcrateError(f"{c} at {where}: dpkg does not have {pkg} {a.version} installed",
                                      hint="run `stackcrate deploy init` (it installs the .deb)")
            out[c] = str(where)
            continue
        rec = installed.read(where)
        if rec is None or rec.sha256 != a.sha256:
            raise StackcrateError(f"{c} at {where} was not installed from the artifact artifacts.json lists "
                                  f"(sha256 {a.sha256}; installed: {rec.sha256 if rec else 'no record'})",
                                  hint="`stackcrate deploy init --reinstall` installs it (stop the deployment "
                                       "first), or put back the artifact it came from")
        out[c] = str(where)
    return out
