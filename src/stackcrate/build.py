"""The build stage: one venv per component, at its final install path, with the target's own interpreter,
strictly from the lock, byte-compiled reproducibly, packed as a deterministic .tar.zst. Cached by a key over
everything that affects the tree. Making other formats from it is the package stage's job."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import unquote, urlparse

from . import __version__, bytecode
from .archive import write_tar_zst
from .buildroot import Bind, build_root, chroot_run
from .cache import Cache, digest_of, link_or_copy, remove_tree, sha256_file
from .errors import StackcrateError
from .manifest import LoadedManifest
from .model.built import BuiltComponent
from .model.lock import Lock, LockedComponent, LockedPackage
from .sources import build_wheel, download, prepare
from .targets import Target
from .tools import ToolFailed, run, uv_bin, which
from .ui import UI

BUILD_FORMAT = 5  # bump when the way we build a component changes
INSTALL_TIMEOUT = 1800.0


def fetch_wheels(lock: Lock, comps: list[LockedComponent], manifest: LoadedManifest, cache: Cache,
                 target: Target, ui: UI | None = None) -> dict[str, dict[str, Path]]:
    """Every wheel each component's venv needs, verified against the lock, keyed by component then package name.
    The distributions missing from the cache are downloaded together, each once however many venvs use it
    (shown as one step: on a cold cache they are a large part of a build's time)."""
    ours = {c.key: c for c in lock.components if c.source.built_here}  # the component itself, or a library
    wanted: dict[str, dict[str, tuple]] = {}   # component -> package -> (url, sha256, filename)
    out: dict[str, dict[str, Path]] = {}
    for comp in comps:
        wanted[comp.name], out[comp.name] = {}, {}
        for pkg in lock.closure_packages(comp):
            if pkg.key in ours:
                idx, mcomp = manifest.component(ours[pkg.key].name)
                out[comp.name][pkg.key] = prepare(manifest, mcomp, idx, cache, locked=ours[pkg.key].source).wheel
            elif wheel := pkg.best_wheel(target.wheel_ranks):
                wanted[comp.name][pkg.key] = (wheel["url"], wheel["hashes"]["sha256"], wheel["filename"])
            elif pkg.sdist and pkg.sdist.get("url"):
                out[comp.name][pkg.key] = _wheel_from_sdist(pkg, cache, target)
            else:
                raise StackcrateError(
                    f"the lock has no wheel or sdist of {pkg.name} {pkg.version} for {target.name}",
                    hint=f"if {pkg.name} comes from a URL or git, make it a component of the manifest; else "
                         f"resolve it again: `stackcrate lock --upgrade-package {pkg.name}`")
    jobs = sorted({j for per in wanted.values() for j in per.values()})
    missing = [j for j in jobs if not (cache.root / "wheels" / j[1] / j[2]).exists()]
    step = (ui.step(f"Downloading {len(missing)} distributions for {len(comps)} component(s)")
            if ui and missing else nullcontext())
    with step, ThreadPoolExecutor(8) as pool:
        paths = dict(zip(jobs, pool.map(lambda j: download(*j, cache), jobs), strict=True))
    for name, per in wanted.items():
        out[name].update({key: paths[job] for key, job in per.items()})
    return out


def _wheel_from_sdist(pkg: LockedPackage, cache: Cache, target: Target) -> Path:
    assert pkg.sdist
    sha = pkg.sdist["hashes"]["sha256"]
    built = cache.dir("built-wheels") / f"sdist-{sha}-{target.python_minor}"
    with cache.locked(f"sdist:{sha}:{target.python_minor}"):
        found = sorted(built.glob("*.whl")) if built.exists() else []
        if found:
            cache.used(built)
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
        "wheels": sorted((k, p.name, bytecode.wheel_sha256(p)) for k, p in wheels.items()),
    })


def find_leaks(tree: Path, needles: list[str]) -> list[tuple[str, str]]:
    """Files below tree that still mention a build-time path (they would break on the target). grep reads the
    files (C, and outside our process, so two builds side by side do not take turns); the symlinks' targets are
    checked here."""
    raw = [n for n in needles if n]
    hits = []
    for dirpath, dirnames, files in os.walk(tree):
        for name in dirnames + files:
            p = Path(dirpath) / name
            if p.is_symlink():
                hits += [(str(p.relative_to(tree)), n) for n in raw if n in os.readlink(p)]
    if not raw:
        return hits
    found = run([which("grep"), "-rlZF", *(a for n in raw for a in ("-e", n)), "--", "."], cwd=tree, check=False,
                timeout=INSTALL_TIMEOUT)
    if found.returncode > 1:
        raise StackcrateError(f"scanning {tree} for build-time paths failed: {found.stderr.strip()[-500:]}")
    for rel in filter(None, found.stdout.split("\0")):
        data = (tree / rel).read_bytes()
        hits += [(rel.removeprefix("./"), n) for n in raw if n.encode() in data]
    return hits


def build_venv(comp: LockedComponent, lock: Lock, wheels: dict[str, Path], install_path: str, target: Target,
               cache: Cache, work: Path, tree: Path, epoch: int, ui: UI,
               bytecode_ready: Callable[[], object] = lambda: None) -> Path:
    """Create the venv inside the target rootfs at install_path (a bind mount of a folder below `tree`, which
    stands for the target's /)."""
    root = build_root(target, cache)
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
    with ui.step(f"Installing {len(wheels)} distributions into {install_path}"):
        for argv in steps:
            try:
                chroot_run(root, argv, binds=binds, env=env, timeout=INSTALL_TIMEOUT)
            except ToolFailed as exc:
                raise StackcrateError(f"installing {comp.name} {comp.version} into {install_path} failed at "
                                      f"`uv {' '.join(argv[1:3])}`:\n{(exc.stderr or exc.stdout).strip()[-2000:]}",
                                      hint="the lock may be incomplete for this target; re-create it with "
                                      "`stackcrate lock --upgrade`") from None
        drop_uv_cache_markers(stage)
    site_packages = stage / f"lib/python{target.python_minor}/site-packages"
    bytecode_ready()  # the wheels' bytecode (`compile_shared`), which may still be compiling while uv installs
    bytecode.write_into(site_packages, list(wheels.values()), target, cache)
    with ui.step(f"Byte-compiling the rest of {install_path}"):
        bytecode.compile_rest(root, stage, install_path, target, venv_py, binds, env, work)
    leaks = find_leaks(stage, [str(work), str(tree), str(cache.root), str(root)])
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


def _placement(comp: LockedComponent, manifest: LoadedManifest) -> tuple[str, int]:
    """Where the component's venv lives on the target, and the epoch its files are dated."""
    return (manifest.install_path(comp.name, comp.version),
            int(os.environ.get("SOURCE_DATE_EPOCH") or comp.source_date_epoch))


def output_of(comp: LockedComponent, manifest: LoadedManifest, cache: Cache, target: Target,
              wheels: dict[str, Path]) -> tuple[str, Path]:
    """The component's build key and where its tarball is (or will be) in the cache."""
    install_path, epoch = _placement(comp, manifest)
    key = build_key(comp, target, install_path, wheels, epoch)
    return key, cache.dir("components") / key / f"{comp.name}-{comp.version}.tar.zst"


def compile_shared(comps: list[LockedComponent], wheels: dict[str, dict[str, Path]], manifest: LoadedManifest,
                   cache: Cache, target: Target, ui: UI) -> None:
    """The bytecode of every wheel that a component still to build installs, each compiled once (`bytecode`)."""
    needed = sorted({w for c in comps if not output_of(c, manifest, cache, target, wheels[c.name])[1].exists()
                     for w in wheels[c.name].values()})
    if needed:
        with ui.step(f"Byte-compiling {len(needed)} distributions, each once") as note:
            note["note"] = f"{bytecode.compile_wheels(needed, build_root(target, cache), target, cache)} compiled now"


def build_component(comp: LockedComponent, lock: Lock, manifest: LoadedManifest, cache: Cache, ui: UI,
                    target: Target, wheels: dict[str, Path],
                    bytecode_ready: Callable[[], object] = lambda: None) -> BuiltComponent:
    """The component's venv tarball, from the cache or built now from its wheels (`fetch_wheels`);
    `bytecode_ready` returns once the wheels' shared bytecode is in the cache."""
    install_path, epoch = _placement(comp, manifest)
    key, tarball = output_of(comp, manifest, cache, target, wheels)
    _, mcomp = manifest.component(comp.name)

    def built(rebuilt: bool) -> BuiltComponent:
        return BuiltComponent(name=comp.name, version=comp.version, install_path=install_path,
                              tarball=tarball, key=key, epoch=epoch, target=target, series=lock.series,
                              locked=comp, packages=tuple(lock.closure_packages(comp)),
                              sysdeps_exclude=tuple(mcomp.sysdeps_exclude), bindep_extra=tuple(mcomp.bindep),
                              rebuilt=rebuilt)

    if tarball.exists():
        cache.used(tarball.parent)
        return built(False)
    with cache.locked(f"component:{key}"):
        if tarball.exists():
            return built(False)
        work, tree = cache.tempdir("build-"), cache.scratch("venv-")
        try:
            build_venv(comp, lock, wheels, install_path, target, cache, work, tree, epoch, ui, bytecode_ready)
            with ui.step(f"Packing {tarball.name}"):
                done = work / "out"
                done.mkdir()
                write_tar_zst(tree, done / tarball.name, epoch)
                (done / "build.json").write_text(json.dumps({"key": key, "install_path": install_path}))
            Cache.commit(done, tarball.parent)
        finally:
            remove_tree(work)
            remove_tree(tree)
    return built(True)
