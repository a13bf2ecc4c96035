"""Fetching component sources (PyPI, git, local path), applying patches, and building their wheels.

A component from PyPI without patches needs no source work: its wheel comes from the index like any other
locked package. Every other component becomes a prepared source tree (git checkout at a commit, an unpacked
sdist, or a copy of a local folder), patches applied in order, from which we build a wheel once, cached by
the digest of everything that went into it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from . import tools
from .cache import Cache, digest_of, remove_tree, sha256_file
from .errors import StackcrateError
from .manifest import Component, LoadedManifest
from .model.source import LockedGit, LockedPath, LockedPypi, Patch
from .tools import ToolFailed, git, uv

log = logging.getLogger("stackcrate")
INDEX_URL = os.environ.get("STACKCRATE_INDEX_URL", "https://pypi.org/simple")
SOURCE_FORMAT = 1
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class PreparedComponent:
    """What resolution needs to know about one component."""

    component: Component
    index: int                                # position in the manifest (for error messages)
    requirement: str                          # line given to the resolver
    source: LockedPypi | LockedGit | LockedPath  # recorded in the lock
    wheel: Path | None = None                 # built wheel, for components whose wheel we build
    version: str | None = None
    commit_time: int | None = None


def _field(idx: int, name: str) -> str:
    return f"components[{idx}].{name}"


def patch_records(manifest: LoadedManifest, comp: Component, idx: int) -> list[Patch]:
    out = []
    for j, p in enumerate(comp.patches):
        path = manifest.path_of(p)
        if not path.is_file():
            raise StackcrateError(f"patch file {p} does not exist (looked at {path})",
                                  where=f"{manifest.path}: {_field(idx, f'patches[{j}]')}",
                                  hint="fix the path; it is relative to the manifest's folder")
        out.append(Patch(path=p, sha256=sha256_file(path)))
    return out


def tree_digest(root: Path) -> str:
    """Digest of a local source tree: every file's path, mode and bytes (VCS internals and build junk skipped)."""
    h = hashlib.sha256()
    skip = {".git", ".tox", ".venv", "__pycache__", "build", "dist", ".eggs"}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.endswith(".egg-info"))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            rel = p.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0")
            if p.is_symlink():
                h.update(b"L" + os.readlink(p).encode())
            else:
                h.update(oct(p.stat().st_mode & 0o777).encode())
                h.update(sha256_file(p).encode())
    head = root / ".git"
    if head.exists():
        h.update(git(["rev-parse", "HEAD"], cwd=root, check=False).stdout.strip().encode())
    return h.hexdigest()


# ---------------------------------------------------------------- PyPI

def index_files(name: str) -> list[dict]:
    """The files the index has for a project (PEP 691 JSON simple API); none when it does not know it."""
    url = f"{INDEX_URL.rstrip('/')}/{canonicalize_name(name)}/"
    try:
        resp = tools.http(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"},
                          hint="check the network, or set STACKCRATE_INDEX_URL to a mirror")
    except tools.FetchFailed as exc:
        if exc.status == 404:
            return []
        raise
    try:
        return resp.json().get("files", [])
    except ValueError:
        raise StackcrateError(f"the package index answered {url} with something that is not JSON",
                              hint="point STACKCRATE_INDEX_URL at a PEP 691 (JSON simple API) index") from None


def index_versions(files: list[dict]) -> set[str]:
    versions = set()
    for f in files:
        fn = f["filename"]
        try:
            if fn.endswith(".whl"):
                versions.add(str(parse_wheel_filename(fn)[1]))
            elif fn.endswith((".tar.gz", ".zip")):
                versions.add(str(parse_sdist_filename(fn)[1]))
        except ValueError:  # not a name we can parse (legacy uploads): not a release we can use
            continue
    return versions


def check_pypi_version(manifest: LoadedManifest, comp: Component, idx: int) -> list[dict]:
    files = index_files(comp.name)
    versions = index_versions(files)
    wanted = comp.pypi.version  # type: ignore[union-attr]
    try:
        ok = any(Version(v) == Version(wanted) for v in versions)
    except InvalidVersion:
        ok = False
    if not ok:
        if not versions:
            raise StackcrateError(f"{comp.name} is not on the package index {INDEX_URL}",
                                  where=f"{manifest.path}: {_field(idx, 'name')}",
                                  hint="check the distribution name (e.g. openstack-placement for placement)")
        newest = sorted((v for v in versions if not Version(v).is_prerelease), key=Version)[-5:]
        raise StackcrateError(f"{comp.name} {wanted} is not on the package index {INDEX_URL}",
                              where=f"{manifest.path}: {_field(idx, 'pypi.version')}",
                              hint=f"newest releases: {', '.join(newest)}")
    return files


def _fetch_sdist(comp: Component, files: list[dict], cache: Cache) -> Path:
    wanted = Version(comp.pypi.version)  # type: ignore[union-attr]
    for f in files:
        fn = f["filename"]
        if fn.endswith(".tar.gz"):
            try:
                if parse_sdist_filename(fn)[1] == wanted:
                    return download(f["url"], f["hashes"]["sha256"], fn, cache)
            except ValueError:
                continue
    raise StackcrateError(f"{comp.name} {wanted} has no source distribution on the index, so patches cannot be "
                          "applied to it", hint="use a git source for this component instead")


def download(url: str, sha256: str, filename: str, cache: Cache) -> Path:
    """Fetch a file into the content-addressed store and verify its sha256 (once per hash, ever)."""
    final = cache.dir("wheels", sha256) / filename
    if final.exists():
        cache.used(final.parent)
        return final
    tmp = final.with_name(f".{filename}.{os.getpid()}.fetched")
    got = tools.download(url, tmp, hint="check the network; files already downloaded stay cached")
    if got != sha256:
        tmp.unlink(missing_ok=True)
        raise StackcrateError(f"{filename}: sha256 {got} does not match the locked {sha256}",
                              hint="the index served different bytes than when locked; investigate before "
                              "re-locking")
    tmp.replace(final)
    return final


# ---------------------------------------------------------------- git

def _mirror(url: str, cache: Cache) -> Path:
    path = cache.dir("git") / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")
    if not (path / "HEAD").exists():
        tmp = cache.tempdir("git-")
        git(["init", "--quiet", "--bare", str(tmp)])
        Cache.commit(tmp, path)
    cache.used(path)
    return path


def _git_url(manifest: LoadedManifest, url: str) -> str:
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return url
    return str(manifest.path_of(url))  # a local path, relative to the manifest


def resolve_git(manifest: LoadedManifest, comp: Component, idx: int, cache: Cache,
                commit: str | None = None) -> tuple[Path, str]:
    """Make sure the commit for the component's ref (or the given locked commit) is in our mirror."""
    assert comp.git
    url = _git_url(manifest, comp.git.url)
    ref = comp.git.ref
    mirror = _mirror(url, cache)
    where = f"{manifest.path}: {_field(idx, 'git')}"
    with cache.locked(f"git:{mirror}"):
        want = commit or (ref if _SHA.match(ref) else None)
        if want and git(["cat-file", "-e", f"{want}^{{commit}}"], cwd=mirror, check=False).returncode == 0:
            return mirror, want
        ls = git(["ls-remote", url], check=False)
        if ls.returncode != 0:
            raise StackcrateError(f"cannot reach git repository {comp.git.url}: "
                                  f"{_last_line(ls.stderr)}", where=f"{where}.url",
                                  hint="check the URL, your network and credentials")
        try:
            if want:
                git(["fetch", "--quiet", "--tags", url, "+refs/heads/*:refs/remotes/origin/*"], cwd=mirror)
                if git(["cat-file", "-e", f"{want}^{{commit}}"], cwd=mirror, check=False).returncode != 0:
                    git(["fetch", "--quiet", url, want], cwd=mirror)
            else:
                git(["fetch", "--quiet", "--tags", url, ref], cwd=mirror)
                want = git(["rev-parse", "FETCH_HEAD^{commit}"], cwd=mirror).stdout.strip()
        except ToolFailed as exc:
            raise StackcrateError(f"ref {ref!r} not found in {comp.git.url}: {_last_line(exc.stderr)}",
                                  where=f"{where}.ref",
                                  hint="use an existing branch, tag, commit SHA or refs/changes/... ref") from None
        if git(["cat-file", "-e", f"{want}^{{commit}}"], cwd=mirror, check=False).returncode != 0:
            raise StackcrateError(f"commit {want} not found in {comp.git.url}", where=f"{where}.ref",
                                  hint="use a commit that exists in the repository")
        git(["update-ref", f"refs/stackcrate/{want}", want], cwd=mirror)
        return mirror, want


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].removeprefix("fatal: ") if lines else "unknown error"


def _checkout(mirror: Path, commit: str, dest: Path) -> int:
    git(["clone", "--quiet", "--shared", "--no-checkout", str(mirror), str(dest)])
    git(["checkout", "--quiet", "--detach", commit], cwd=dest)
    return int(git(["show", "-s", "--format=%ct", commit], cwd=dest).stdout.strip())


# ---------------------------------------------------------------- patches and wheels

def apply_patches(manifest: LoadedManifest, comp: Component, idx: int, tree: Path) -> None:
    for j, p in enumerate(comp.patches):
        path = manifest.path_of(p)
        res = git(["apply", "--whitespace=nowarn", str(path)], cwd=tree, check=False)
        if res.returncode != 0:
            raise StackcrateError(
                f"patch {p} does not apply to {comp.name}:\n{res.stderr.strip()}",
                where=f"{manifest.path}: {_field(idx, f'patches[{j}]')}",
                hint="rebase the patch onto the component's ref, or fix the patch order")


def _unpack_sdist(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tf:
        try:
            tf.extractall(dest, filter="data")
        except TypeError:  # Python < 3.11.4
            tf.extractall(dest)
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    return top


def build_wheel(tree: Path, out: Path, cache: Cache, epoch: int) -> Path:
    env = {"SOURCE_DATE_EPOCH": str(epoch), "SKIP_GENERATE_AUTHORS": "1", "SKIP_WRITE_GIT_CHANGELOG": "1",
           "PBR_INTEGRATION": "0"}
    try:
        uv(["build", "--quiet", "--wheel", "--out-dir", str(out), str(tree)], env=env,
           cache_dir=cache.dir("uv"))
    except ToolFailed as exc:
        raise StackcrateError(f"building a wheel from {tree.name} failed:\n{_tail(exc.stderr, 20)}",
                              hint="check the source tree builds with `uv build`") from None
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise StackcrateError(f"building {tree.name} produced {len(wheels)} wheels, expected one")
    return wheels[0]


def _tail(text: str, n: int) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def prepare(manifest: LoadedManifest, comp: Component, idx: int, cache: Cache,
            locked: LockedPypi | LockedGit | LockedPath | None = None) -> PreparedComponent:
    """Turn a manifest component into a requirement for the resolver (and a built wheel when needed).

    locked: the source as the lock recorded it, to build exactly that commit again (a branch may have moved).
    """
    extras = f"[{','.join(sorted(comp.extras))}]" if comp.extras else ""
    patches = patch_records(manifest, comp, idx)
    records = [p.model_dump() for p in patches]
    if comp.kind == "pypi" and not patches:
        check_pypi_version(manifest, comp, idx)
        version = comp.pypi.version  # type: ignore[union-attr]
        return PreparedComponent(comp, idx, f"{comp.name}{extras}=={version}", LockedPypi(version=version),
                                 version=version)

    if comp.kind == "git":
        assert comp.git
        locked_commit = locked.commit if isinstance(locked, LockedGit) else None
        mirror, commit = resolve_git(manifest, comp, idx, cache, commit=locked_commit)
        key: dict = {"git": commit, "patches": records}
    elif comp.kind == "pypi":
        files = check_pypi_version(manifest, comp, idx)
        sdist = _fetch_sdist(comp, files, cache)
        key = {"sdist": sdist.parent.name, "patches": records}
    else:
        path = manifest.path_of(comp.path or "")
        if not path.is_dir():
            raise StackcrateError(f"source folder {comp.path} does not exist (looked at {path})",
                                  where=f"{manifest.path}: {_field(idx, 'path')}",
                                  hint="fix the path; it is relative to the manifest's folder")
        key = {"tree": tree_digest(path), "patches": records}
    digest = digest_of({"v": SOURCE_FORMAT, "name": comp.key, **key})
    source: LockedPypi | LockedGit | LockedPath
    if comp.kind == "git":
        source = LockedGit(url=comp.git.url, ref=comp.git.ref, commit=commit, digest=digest,  # type: ignore
                           patches=patches)
    elif comp.kind == "pypi":
        source = LockedPypi(version=comp.pypi.version, sdist=sdist.name,  # type: ignore[union-attr]
                            sdist_sha256=sdist.parent.name, digest=digest, patches=patches)
    else:
        source = LockedPath(path=comp.path or "", digest=digest, patches=patches)

    built = cache.dir("built-wheels") / digest
    with cache.locked(f"wheel:{digest}"):
        found = sorted(built.glob("*.whl")) if built.exists() else []
        if not found:
            work = cache.tempdir("src-")
            try:
                commit_time = None
                if comp.kind == "git":
                    tree = work / comp.key
                    commit_time = _checkout(mirror, commit, tree)
                elif comp.kind == "pypi":
                    tree = _unpack_sdist(sdist, work / "sdist")
                else:
                    tree = work / comp.key
                    shutil.copytree(path, tree, symlinks=True)
                apply_patches(manifest, comp, idx, tree)
                epoch = commit_time or 315532800  # 1980-01-01: the earliest a zip can hold
                out = work / "wheel"
                build_wheel(tree, out, cache, epoch)
                if (tree / "bindep.txt").is_file():  # the component's system dependencies (package/sysdeps.py)
                    shutil.copyfile(tree / "bindep.txt", out / "bindep.txt")
                (out / "source.json").write_text(json.dumps({"commit_time": commit_time}))
                Cache.commit(out, built)
            finally:
                remove_tree(work)
            found = sorted(built.glob("*.whl"))
    cache.used(built)
    wheel = found[0]
    meta = json.loads((built / "source.json").read_text()) if (built / "source.json").exists() else {}
    wname, wversion, _, _ = parse_wheel_filename(wheel.name)
    if wname != comp.key:
        raise StackcrateError(f"the source of component {comp.name!r} builds the distribution {wname!r}",
                              where=f"{manifest.path}: {_field(idx, 'name')}",
                              hint=f"name the component {wname!r}")
    return PreparedComponent(comp, idx, f"{comp.name}{extras} @ {wheel.as_uri()}", source, wheel=wheel,
                             version=str(wversion), commit_time=meta.get("commit_time"))


def built_source_file(cache: Cache, source: LockedPypi | LockedGit | LockedPath, name: str) -> Path | None:
    """A file prepare() kept beside the wheel it built from the source tree (e.g. bindep.txt), if any."""
    if not source.built_here:
        return None
    f = cache.root / "built-wheels" / str(getattr(source, "digest", "")) / name
    return f if f.is_file() else None


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name).decode()
