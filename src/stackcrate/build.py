"""The build stage: one venv per component, at its final install path, with the target's own interpreter,
strictly from the lock, byte-compiled reproducibly, packed as a deterministic .tar.zst. Cached by a key over
everything that affects the tree. Making other formats from it is the package stage's job."""

from __future__ import annotations

import json
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import unquote, urlparse

from . import __version__
from .archive import write_tar_zst
from .buildroot import Bind, base_rootfs, chroot_run
from .cache import Cache, digest_of, link_or_copy, remove_tree, sha256_file
from .errors import StackcrateError
from .manifest import LoadedManifest
from .model.built import BuiltComponent
from .model.lock import Lock, LockedComponent, LockedPackage
from .sources import build_wheel, download, prepare
from .targets import Target
from .tools import ToolFailed, uv_bin
from .ui import UI

BUILD_FORMAT = 3  # bump when the way we build a component changes
COMPILE_CHUNKS = 4  # fixed, not the core count: the output must not depend on the machine
INSTALL_TIMEOUT = 1800.0


def fetch_wheels(lock: Lock, comp: LockedComponent, manifest: LoadedManifest, cache: Cache,
                 target: Target, ui: UI | None = None) -> dict[str, Path]:
    """Every wheel the component's venv needs, verified against the lock, keyed by package name (downloads shown
    as a step: on a cold cache they are most of a build's time)."""
    jobs, out = [], {}
    ours = {c.key: c for c in lock.components if c.source.built_here}  # the component itself, or a library
    for pkg in lock.closure_packages(comp):
        if pkg.key in ours:
            idx, mcomp = manifest.component(ours[pkg.key].name)
            out[pkg.key] = prepare(manifest, mcomp, idx, cache, locked=ours[pkg.key].source).wheel
            continue
        wheel = pkg.best_wheel(target.wheel_ranks)
        if wheel:
            jobs.append((pkg.key, wheel["url"], wheel["hashes"]["sha256"], wheel["filename"]))
        elif pkg.sdist and pkg.sdist.get("url"):
            out[pkg.key] = _wheel_from_sdist(pkg, cache, target)
        else:
            raise StackcrateError(f"the lock has no wheel or sdist of {pkg.name} {pkg.version} for {target.name}",
                                  hint="re-create the lock with `stackcrate lock`")
    missing = [j for j in jobs if not (cache.root / "wheels" / j[2] / j[3]).exists()]
    step = ui.step(f"Downloading {len(missing)} distributions for {comp.name}") if ui and missing else nullcontext()
    with step, ThreadPoolExecutor(8) as pool:
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
            Cache.commit(out, built)
        finally:
            remove_tree(work)
    return sorted(built.glob("*.whl"))[0]


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
        link_or_copy(path, house / path.name)
        pkg = lock.packages[key]
        reqs.append(f"{pkg.name}=={pkg.version} --hash=sha256:{sha256_file(path)}")
    (work / "requirements.txt").write_text("\n".join(reqs) + "\n")
    venv_py = f"{install_path}/bin/python"
    binds: list[Bind] = [Bind(stage, install_path), Bind(house, "/mnt/wheels", readonly=True),
                         Bind(work / "requirements.txt", "/mnt/requirements.txt", readonly=True),
                         Bind(Path(uv_bin()), "/mnt/uv", readonly=True)]
    env = {"UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_CACHE_DIR": "/tmp/uv-cache",
           "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0",
           # Only compileall writes bytecode (a .pth-imported module would otherwise get a timestamp .pyc).
           "PYTHONDONTWRITEBYTECODE": "1"}
    steps = [
        ["/mnt/uv", "venv", "--quiet", "--python", target.python, install_path],
        ["/mnt/uv", "pip", "install", "--quiet", "--python", venv_py, "--offline", "--no-index", "--find-links",
         "/mnt/wheels", "--no-deps", "--require-hashes", "--link-mode", "copy", "-r", "/mnt/requirements.txt"],
        ["/mnt/uv", "pip", "check", "--quiet", "--python", venv_py],
    ]
    for argv in steps:
        try:
            chroot_run(root, argv, binds=binds, env=env, timeout=INSTALL_TIMEOUT)
        except ToolFailed as exc:
            raise StackcrateError(f"installing {comp.name} {comp.version} into {install_path} failed at "
                                  f"`uv {' '.join(argv[1:3])}`:\n{(exc.stderr or exc.stdout).strip()[-2000:]}",
                                  hint="the lock may be incomplete for this target; run `stackcrate lock` "
                                  "again") from None
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


def compile_chunks(files: list[str], n: int = COMPILE_CHUNKS) -> list[list[str]]:
    """Split sorted file names into n fixed slices (every n-th file), so each slice is the same on every
    machine and run: the bytes of a .pyc depend on what the compiling process compiled before it."""
    ordered = sorted(files)
    return [ordered[i::n] for i in range(n)]


def compile_bytecode(root: Path, stage: Path, install_path: str, venv_py: str, binds: list[Bind], env: dict,
                     work: Path) -> None:
    """Byte-compile the venv in place, reproducibly and in parallel; a file that does not compile fails the build.

    unchecked-hash: packaging tools reset mtimes, which would make timestamp-based .pyc look stale (Python
    would rewrite them after install and `dpkg --verify` would fail). marshal output depends on what the
    compiling process did before (FLAG_REF follows refcounts), so each of a fixed number of processes compiles
    a fixed, sorted slice of the files.
    """
    files = [p.relative_to(stage).as_posix() for p in stage.glob("lib/python*/site-packages/**/*.py")
             if not p.is_symlink()]
    lists = work / "compile"
    lists.mkdir()
    for i, chunk in enumerate(compile_chunks(files)):
        (lists / f"{i}.txt").write_text("".join(f"{install_path}/{f}\n" for f in chunk))
    all_binds = [*binds, Bind(lists, "/mnt/compile", True)]

    def one(i: int) -> str | None:
        argv = [venv_py, "-S", "-m", "compileall", "-q", "-f", "--invalidation-mode", "unchecked-hash",
                "-i", f"/mnt/compile/{i}.txt"]
        try:
            chroot_run(root, argv, binds=all_binds, env=env, timeout=INSTALL_TIMEOUT)
        except ToolFailed as exc:
            return (exc.stdout + exc.stderr).strip()
        return None

    with ThreadPoolExecutor(COMPILE_CHUNKS) as pool:
        errors = [e for e in pool.map(one, range(COMPILE_CHUNKS)) if e]
    if errors:
        shown = "\n".join(ln for e in errors for ln in e.splitlines())[-3000:]
        raise StackcrateError(f"byte-compiling the venv at {install_path} failed:\n{shown}",
                              hint="a distribution in the lock ships a module this interpreter cannot compile; "
                              "pick a version that supports the target's Python, or report it")


def build_component(comp: LockedComponent, lock: Lock, manifest: LoadedManifest, cache: Cache, ui: UI,
                    target: Target) -> BuiltComponent:
    """The component's venv tarball, from the cache or built now."""
    install_path = manifest.install_path(comp.name, comp.version)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or comp.source_date_epoch)
    wheels = fetch_wheels(lock, comp, manifest, cache, target, ui)
    key = build_key(comp, target, install_path, wheels, epoch)
    entry = cache.dir("components") / key
    name = f"{comp.name}-{comp.version}.tar.zst"
    _, mcomp = manifest.component(comp.name)

    def built(rebuilt: bool) -> BuiltComponent:
        return BuiltComponent(name=comp.name, version=comp.version, install_path=install_path,
                              tarball=entry / name, key=key, epoch=epoch, target=target, series=lock.series,
                              locked=comp, packages=tuple(lock.closure_packages(comp)),
                              sysdeps_exclude=tuple(mcomp.sysdeps_exclude), bindep_extra=tuple(mcomp.bindep),
                              rebuilt=rebuilt)

    if (entry / name).exists():
        return built(False)
    with cache.locked(f"component:{key}"):
        if (entry / name).exists():
            return built(False)
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
            Cache.commit(done, entry)
        finally:
            remove_tree(work)
    return built(True)
