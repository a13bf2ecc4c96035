"""Build: one venv per component, at its final install path, with the target's own interpreter, strictly from
the lock; then the artifacts. Everything is cached by a key over all that affects the result."""

from __future__ import annotations

import json
import mmap
import os
import shlex
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from packaging import tags
from packaging.utils import parse_wheel_filename

from . import __version__
from .buildroot import Bind, base_rootfs, chroot_run
from .cache import Cache, digest_of, remove_tree, sha256_file
from .errors import StackcrateError
from .lockfile import Lock, LockedComponent, LockedPackage
from .manifest import FORMATS, LoadedManifest
from .package import made_here
from .package.tarball import write_tar_zst
from .resolve import ensure_lock
from .series import get_series, require_buildable
from .sources import build_wheel, download, prepare
from .targets import Target, get_target
from .tools import ToolFailed, uv_bin
from .ui import UI

BUILD_FORMAT = 3  # bump when the way we build a component changes


@dataclass
class BuiltComponent:
    """A component's venv tree, packed as a tarball whose paths are relative to /."""

    name: str
    version: str
    install_path: str
    tarball: Path                 # cached; other formats unpack it
    key: str
    epoch: int
    target: Target
    series: str
    locked: LockedComponent
    packages: list[LockedPackage]
    rebuilt: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def target_tags(target: Target) -> list[tags.Tag]:
    arch, _, plat = target.uv_platform.partition("-")
    major, minor = (int(x) for x in plat.removeprefix("manylinux_").split("_"))
    platforms = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", f"linux_{arch}"]
    py = tuple(int(x) for x in target.python_minor.split("."))
    interp = f"cp{py[0]}{py[1]}"
    return list(tags.cpython_tags(py, [interp], platforms)) + list(
        tags.compatible_tags(py, interp, platforms))


def choose_wheel(pkg: LockedPackage, ranked: dict[tags.Tag, int]) -> dict | None:
    best, best_rank = None, None
    for w in pkg.wheels:
        fn = w.get("name") or unquote(urlparse(w["url"]).path.rsplit("/", 1)[-1])
        rank = min((ranked[t] for t in parse_wheel_filename(fn)[3] if t in ranked), default=None)
        if rank is not None and (best_rank is None or rank < best_rank):
            best, best_rank = {**w, "filename": fn}, rank
    return best


def fetch_wheels(lock: Lock, comp: LockedComponent, manifest: LoadedManifest, cache: Cache,
                 target: Target) -> dict[str, Path]:
    """Every wheel the component's venv needs, verified against the lock, keyed by package name."""
    ranked = {t: i for i, t in enumerate(target_tags(target))}
    jobs, out = [], {}
    for pkg in lock.closure_packages(comp):
        if pkg.key == _key(comp.name) and (pkg.vcs or pkg.directory or pkg.tool.get("patches")):
            idx, mcomp = _manifest_component(manifest, comp.name)
            out[pkg.key] = prepare(manifest, mcomp, idx, cache, locked_source=comp.source).wheel  # type: ignore
            continue
        wheel = choose_wheel(pkg, ranked)
        if wheel:
            jobs.append((pkg.key, wheel["url"], wheel["hashes"]["sha256"], wheel["filename"]))
        elif pkg.sdist and pkg.sdist.get("url"):
            out[pkg.key] = _wheel_from_sdist(pkg, cache, target)
        else:
            raise StackcrateError(f"the lock has no wheel or sdist of {pkg.name} {pkg.version} for {target.name}",
                                  hint="re-create the lock with `stackcrate lock`")
    with ThreadPoolExecutor(8) as pool:
        for key, path in zip([j[0] for j in jobs], pool.map(lambda j: download(*j[1:], cache), jobs), strict=True):
            out[key] = path
    return out


def _wheel_from_sdist(pkg: LockedPackage, cache: Cache, target: Target) -> Path:
    assert pkg.sdist
    sha = pkg.sdist["hashes"]["sha256"]
    built = cache.dir("built-wheels") / f"sdist-{sha}-{target.python_minor}"
    with cache.locked(f"sdist:{sha}:{target.python_minor}"):
        found = sorted(built.glob("*.whl")) if built.exists() else []
        if found:
            return found[0]
        name = pkg.sdist.get("name") or unquote(urlparse(pkg.sdist["url"]).path.rsplit("/", 1)[-1])
        sdist = download(pkg.sdist["url"], sha, name, cache)
        work = cache.tempdir("sdist-")
        try:
            out = work / "wheel"
            build_wheel(sdist, out, cache, 315532800)
            Cache.publish(out, built)
        finally:
            remove_tree(work)
    return sorted(built.glob("*.whl"))[0]


def _key(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def _manifest_component(manifest: LoadedManifest, name: str):
    for i, c in enumerate(manifest.model.components):
        if c.key == _key(name):
            return i, c
    raise StackcrateError(f"component {name} is in the lock but not in the manifest",
                          hint="run `stackcrate lock` again")


def build_key(comp: LockedComponent, target: Target, install_path: str, wheels: dict[str, Path],
              epoch: int) -> str:
    return digest_of({
        "v": BUILD_FORMAT, "stackcrate": __version__, "target": target.name, "python": target.python,
        "install_path": install_path, "epoch": epoch, "extras": comp.extras,
        "wheels": sorted((k, p.name, p.parent.name if p.parent.parent.name == "wheels" else sha256_file(p))
                         for k, p in wheels.items()),
    })


def find_leaks(tree: Path, needles: list[str]) -> list[tuple[str, str]]:
    """Files below tree that still mention a build-time path (they would break on the target)."""
    raw = [n.encode() for n in needles if n]
    hits = []
    for dirpath, _, files in os.walk(tree):
        for f in files:
            p = Path(dirpath) / f
            if p.is_symlink():
                target = os.readlink(p).encode()
                hits += [(str(p.relative_to(tree)), n.decode()) for n in raw if n in target]
                continue
            if p.stat().st_size == 0:
                continue
            with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                hits += [(str(p.relative_to(tree)), n.decode()) for n in raw if mm.find(n) != -1]
    return hits


def build_venv(comp: LockedComponent, lock: Lock, wheels: dict[str, Path], install_path: str, target: Target,
               cache: Cache, work: Path, epoch: int) -> Path:
    """Create the venv inside the target rootfs at install_path (a bind mount of a folder of ours)."""
    root = base_rootfs(target, cache)
    tree = work / "root"
    stage = tree / install_path.lstrip("/")
    stage.mkdir(parents=True)
    house = work / "wheels"
    house.mkdir()
    reqs = []
    for key, path in sorted(wheels.items()):
        dest = house / path.name
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)
        pkg = lock.packages[key]
        reqs.append(f"{pkg.name}=={pkg.version} --hash=sha256:{sha256_file(path)}")
    (work / "requirements.txt").write_text("\n".join(reqs) + "\n")
    venv_py = f"{install_path}/bin/python"
    script = " && ".join([
        f"/mnt/uv venv --quiet --python {shlex.quote(target.python)} {shlex.quote(install_path)}",
        (f"/mnt/uv pip install --quiet --python {venv_py} --offline --no-index --find-links /mnt/wheels "
         "--no-deps --require-hashes --link-mode copy -r /mnt/requirements.txt"),
        f"/mnt/uv pip check --quiet --python {venv_py}",
    ])
    binds: list[Bind] = [Bind(stage, install_path), Bind(house, "/mnt/wheels", readonly=True),
                         Bind(work / "requirements.txt", "/mnt/requirements.txt", readonly=True),
                         Bind(Path(uv_bin()), "/mnt/uv", readonly=True)]
    env = {"UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_CACHE_DIR": "/tmp/uv-cache",
           "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0",
           # Only compileall writes bytecode (a .pth-imported module would otherwise get a timestamp .pyc).
           "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        chroot_run(root, ["/bin/sh", "-c", script], binds=binds, env=env)
    except ToolFailed as exc:
        raise StackcrateError(f"installing {comp.name} {comp.version} into {install_path} failed:\n"
                              f"{(exc.stderr or exc.stdout).strip()[-2000:]}",
                              hint="the lock may be incomplete for this target; run `stackcrate lock` again") from None
    drop_uv_cache_markers(stage)
    compile_bytecode(root, stage, install_path, venv_py, binds, env, work)
    leaks = find_leaks(stage, [str(work), str(cache.root), str(root)])
    if leaks:
        shown = "\n".join(f"  {install_path}/{f}: {n}" for f, n in leaks[:10])
        raise StackcrateError(f"built files of {comp.name} still contain build-time paths:\n{shown}",
                              hint="this is a packaging bug in that file's distribution; report it")
    return tree


def drop_uv_cache_markers(stage: Path) -> None:
    """uv leaves dist-info/uv_cache.json (with install timestamps) for some wheels: private and not reproducible."""
    for marker in stage.glob("lib/python*/site-packages/*.dist-info/uv_cache.json"):
        record = marker.parent / "RECORD"
        if record.exists():
            rel = f"{marker.parent.name}/uv_cache.json,"
            lines = [ln for ln in record.read_text().splitlines(keepends=True) if not ln.startswith(rel)]
            record.write_text("".join(lines))
        marker.unlink()


COMPILE_CHUNKS = 4  # fixed, not the core count: the output must not depend on the machine


def compile_bytecode(root: Path, stage: Path, install_path: str, venv_py: str, binds: list, env: dict,
                     work: Path) -> None:
    """Byte-compile the venv in place, reproducibly and in parallel.

    unchecked-hash: packaging tools reset mtimes, which would make timestamp-based .pyc look stale (Python
    would rewrite them after install and `dpkg --verify` would fail). marshal output depends on what the
    compiling process did before (FLAG_REF follows refcounts), so each of a fixed number of processes compiles
    a fixed, sorted slice of the files.
    """
    files = sorted(p.relative_to(stage).as_posix() for p in stage.glob("lib/python*/site-packages/**/*.py")
                   if not p.is_symlink())
    lists = work / "compile"
    lists.mkdir()
    for i in range(COMPILE_CHUNKS):
        chunk = files[i::COMPILE_CHUNKS]
        (lists / f"{i}.txt").write_text("".join(f"{install_path}/{f}\n" for f in chunk))
    jobs = " ".join(
        f"({venv_py} -S -m compileall -q -f --invalidation-mode unchecked-hash -i /mnt/compile/{i}.txt "
        f">/tmp/compile-{i}.log 2>&1 || true) &" for i in range(COMPILE_CHUNKS))
    chroot_run(root, ["/bin/sh", "-c", f"{jobs} wait"], binds=[*binds, Bind(lists, "/mnt/compile", True)],
               env=env)


def build_component(comp: LockedComponent, lock: Lock, manifest: LoadedManifest, cache: Cache, ui: UI,
                    target: Target) -> BuiltComponent:
    install_path = manifest.install_path(comp.name, comp.version)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or comp.source_date_epoch)
    wheels = fetch_wheels(lock, comp, manifest, cache, target)
    key = build_key(comp, target, install_path, wheels, epoch)
    entry = cache.dir("components") / key
    name = f"{comp.name}-{comp.version}.tar.zst"
    common = dict(name=comp.name, version=comp.version, install_path=install_path, key=key, epoch=epoch,
                  target=target, series=lock.series, locked=comp, packages=lock.closure_packages(comp),
                  extra={"sysdeps_exclude": _manifest_component(manifest, comp.name)[1].sysdeps_exclude})
    if (entry / name).exists():
        return BuiltComponent(tarball=entry / name, **common)
    with cache.locked(f"component:{key}"):
        if (entry / name).exists():
            return BuiltComponent(tarball=entry / name, **common)
        work = cache.tempdir("build-")
        try:
            with ui.step(f"Building {comp.name} {comp.version} venv at {install_path} "
                         f"({len(wheels)} distributions)"):
                tree = build_venv(comp, lock, wheels, install_path, target, cache, work, epoch)
            with ui.step(f"Packing {name}"):
                done = work / "out"
                done.mkdir()
                write_tar_zst(tree, done / name, epoch)
                (done / "build.json").write_text(json.dumps({"key": key, "install_path": install_path}))
            Cache.publish(done, entry)
        finally:
            remove_tree(work)
    return BuiltComponent(tarball=entry / name, rebuilt=True, **common)


def make_formats(built: BuiltComponent, formats: list[str], cache: Cache, ui: UI) -> list[tuple[str, Path]]:
    """Every requested artifact of one component, as (format, path in the cache)."""
    out = []
    for fmt in formats:
        if fmt == "tar":
            out.append(("tar", built.tarball))
        else:
            import importlib

            try:
                mod = importlib.import_module(f"stackcrate.package.{fmt}")
            except ModuleNotFoundError:
                raise StackcrateError(f"the {fmt} format is not available in this version of stackcrate") from None
            out.extend(mod.make(built, cache, ui))
    return out


def check_formats(formats: list[str]) -> list[str]:
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise StackcrateError(f"unknown format {', '.join(bad)}", hint=f"use one of: {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def build(manifest: LoadedManifest, lock_path: Path, out_dir: Path, cache: Cache, ui: UI, *, locked: bool = False,
          constraints_dir: str | None = None, formats: list[str] | None = None,
          only: list[str] | None = None) -> dict[str, Any]:
    formats = check_formats(formats or list(manifest.model.formats))
    series = get_series(manifest.model.series)
    target = get_target(manifest.model.target)
    require_buildable(series, target.python_minor, target.name)
    lock = ensure_lock(manifest, lock_path, cache, ui, locked=locked, constraints_dir=constraints_dir)
    wanted = [c for c in lock.components if not only or _key(c.name) in {_key(o) for o in only}]
    if only and len(wanted) != len(set(only)):
        known = ", ".join(c.name for c in lock.components)
        raise StackcrateError(f"unknown component in --component {', '.join(only)}", hint=f"components: {known}")
    with ui.step(f"Preparing the {target.name} build root"):
        base_rootfs(target, cache)
    artifacts, files = [], []
    for comp in wanted:
        built = build_component(comp, lock, manifest, cache, ui, target)
        if not built.rebuilt:
            ui.info(f"[green]✓[/] {comp.name} {comp.version}: up to date (cached build {built.key[:12]})")
        for fmt, path in make_formats(built, formats, cache, ui):
            files.append(path)
            artifacts.append({
                "component": comp.name, "version": comp.version, "format": fmt, "file": path.name,
                "sha256": sha256_file(path), "size": path.stat().st_size, "install_path": built.install_path,
                "source": {"type": comp.source["type"], "revision": comp.revision,
                           **({"url": comp.source["url"], "ref": comp.source["ref"]}
                              if comp.source["type"] == "git" else {})},
                "series": lock.series, "target": target.name, "source_date_epoch": built.epoch,
                "build_key": built.key, "rebuilt": built.rebuilt or path.parent in made_here,
            })
    publish_outputs(out_dir, files, artifacts)
    return {"out": str(out_dir), "artifacts": artifacts}


def publish_outputs(out_dir: Path, files: list[Path], artifacts: list[dict]) -> None:
    """Copy the finished artifacts into out_dir all at the end, each by an atomic rename; then the index."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "artifacts.json"
    previous = set()
    if index.exists():
        try:
            previous = {a["file"] for a in json.loads(index.read_text()).get("artifacts", [])}
        except (ValueError, KeyError, AttributeError):
            previous = set()
    for f in files:
        dest = out_dir / f.name
        if dest.exists() and dest.stat().st_size == f.stat().st_size and sha256_file(dest) == sha256_file(f):
            continue
        tmp = out_dir / f".{f.name}.tmp-{os.getpid()}"
        shutil.copyfile(f, tmp)
        tmp.replace(dest)
    for stale in previous - {f.name for f in files}:
        (out_dir / stale).unlink(missing_ok=True)
    clean = [{k: v for k, v in a.items() if k != "rebuilt"} for a in artifacts]
    tmp = out_dir / f".artifacts.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"stackcrate": __version__, "artifacts": clean}, indent=2, sort_keys=True) + "\n")
    tmp.replace(index)
