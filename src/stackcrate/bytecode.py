"""Byte-compiling venvs: each wheel's modules once, shared by every venv that installs the wheel.

One lock means one version of each distribution for the whole cloud, so five services' venvs hold the same
oslo.*, SQLAlchemy, ... five times: half of what they byte-compile is the same source. A wheel's bytecode is
compiled once, from the wheel's own files, and kept in the cache by the wheel's sha256; each venv gets a copy
of it. Whatever of a venv no wheel's bytecode covers (uv's own files) is compiled in the venv, as before.

What makes a .pyc the same wherever it is used, and on every machine:
- unchecked-hash invalidation: packaging tools reset mtimes, which would make timestamp-based .pyc look stale
  (Python would rewrite them after install and `dpkg --verify` would fail);
- the file name compiled into it is relative to site-packages (`oslo_config/cfg.py`). Python puts the real
  path in place when it loads a .pyc beside its source (importlib's `_fix_co_filename`), so tracebacks and
  `inspect` show the venv's path;
- marshal's output depends on what the compiling process did before (FLAG_REF follows reference counts), so
  each wheel is compiled by a fresh process, and each venv's leftovers by a fixed number of processes with a
  fixed, sorted slice of the files each.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .buildroot import Bind, chroot_run
from .cache import Cache, digest_of, link_or_copy, remove_tree, sha256_file
from .errors import StackcrateError
from .targets import Target
from .tools import ToolFailed

BYTECODE_FORMAT = 1
COMPILE_CHUNKS = 4  # fixed, not the core count: the output must not depend on the machine
COMPILE_TIMEOUT = 1800.0
_COMPILE = ["-m", "compileall", "-q", "-f", "--invalidation-mode", "unchecked-hash"]
_HINT = ("a distribution in the lock ships a module this interpreter cannot compile; pick a version that supports "
         "the target's Python, or report it")

# Both run inside the build root with the target's interpreter. The driver starts one worker per wheel, as
# many at once as the machine has cores, biggest first (neither changes any output: each worker is fresh).
_DRIVER = r"""
import os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
top, worker, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
def one(name):
    p = subprocess.run([sys.executable, "-S", "-c", worker, os.path.join(top, name)], capture_output=True,
                       text=True, timeout=limit)
    return "" if p.returncode == 0 else p.stdout + p.stderr
names = sorted((n[:-4] for n in os.listdir(top) if n.endswith(".whl")),
               key=lambda n: -os.path.getsize(os.path.join(top, n + ".whl")))
with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    failed = [f for f in pool.map(one, names) if f]
sys.stdout.write("".join(failed))
sys.exit(1 if failed else 0)
"""

# One wheel: each listed module read from the wheel and compiled under its site-packages path, as an
# unchecked-hash .pyc (PEP 552: magic, flags 0b01, the source's hash, the marshalled code), stored uncompressed
# in <wheel>.pyc.zip at its place in site-packages.
_WORKER = r"""
import importlib.util, marshal, os, sys, zipfile
base = sys.argv[1]
head = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little")
errors = []
with zipfile.ZipFile(base + ".whl") as zf, open(base + ".txt", encoding="utf-8") as listing, \
        zipfile.ZipFile(base + ".pyc.zip", "w", zipfile.ZIP_STORED) as out:
    for line in listing.read().splitlines():
        member, rel = line.split("\t")
        source = zf.read(member)
        try:
            code = compile(source, rel, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            errors.append(f"{os.path.basename(base)}: {member}: {exc}")
            continue
        folder, name = os.path.split(rel)
        pyc = os.path.join(folder, "__pycache__", name[:-3] + "." + sys.implementation.cache_tag + ".pyc")
        out.writestr(zipfile.ZipInfo(pyc, (1980, 1, 1, 0, 0, 0)),
                     head + importlib.util.source_hash(source) + marshal.dumps(code))
print("\n".join(errors))
sys.exit(1 if errors else 0)
"""


def wheel_sha256(wheel: Path) -> str:
    """A wheel's sha256: the name of its folder in the download store, or hashed (one built here)."""
    return wheel.parent.name if wheel.parent.parent.name == "wheels" else sha256_file(wheel)


def entry(wheel: Path, target: Target, cache: Cache) -> Path:
    """The cache file of a wheel's bytecode for a target: a zip of its .pyc files at their place in
    site-packages (one file, not thousands: a disk is slow at many small files)."""
    key = digest_of({"v": BYTECODE_FORMAT, "target": target.name, "python": target.python,
                     "wheel": wheel_sha256(wheel)})
    return cache.root / "bytecode" / f"{key}.zip"


def compile_wheels(wheels: list[Path], root: Path, target: Target, cache: Cache) -> int:
    """Byte-compile the modules of each wheel whose bytecode the cache lacks; returns how many were compiled."""
    entries = {entry(w, target, cache): w for w in wheels}
    todo = sorted((found, w) for found, w in entries.items() if not found.exists())
    for found in entries.keys() - {found for found, _ in todo}:
        cache.used(found)
    if not todo:
        return 0
    work = cache.scratch("bytecode-")
    try:
        for i, (_, wheel) in enumerate(todo):
            link_or_copy(wheel, work / f"{i}.whl")
            (work / f"{i}.txt").write_text("".join(f"{m}\t{rel}\n" for m, rel in modules(wheel)))
        try:
            chroot_run(root, [target.python, "-S", "-c", _DRIVER, "/mnt/bytecode", _WORKER, str(COMPILE_TIMEOUT)],
                       binds=[Bind(work, "/mnt/bytecode")], env={"PYTHONHASHSEED": "0",
                                                                  "PYTHONDONTWRITEBYTECODE": "1"},
                       timeout=COMPILE_TIMEOUT)
        except ToolFailed as exc:
            raise StackcrateError(f"byte-compiling wheels failed:\n{(exc.stdout + exc.stderr).strip()[-3000:]}",
                                  hint=_HINT) from None
        for i, (final, _) in enumerate(todo):
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            shutil.copyfile(work / f"{i}.pyc.zip", tmp)
            tmp.replace(final)
    finally:
        remove_tree(work)
    return len(todo)


def modules(wheel: Path) -> list[tuple[str, str]]:
    """The wheel's .py files that install into site-packages: (member name, path in site-packages), sorted."""
    with zipfile.ZipFile(wheel) as zf:
        found = [(info.filename, _site_packages_path(info.filename)) for info in zf.infolist() if not info.is_dir()]
    return sorted((m, rel) for m, rel in found if rel and rel.endswith(".py"))


def _site_packages_path(name: str) -> str | None:
    """Where a wheel member lands, relative to site-packages; None for one installed elsewhere (scripts,
    headers, data) or a path that would leave site-packages."""
    first, _, rest = name.partition("/")
    if first.endswith(".data"):
        kind, _, rest = rest.partition("/")
        if kind not in ("purelib", "platlib"):
            return None
        name = rest
    if name.startswith("/") or ".." in name.split("/"):
        return None
    return name


def write_into(site_packages: Path, wheels: list[Path], target: Target, cache: Cache) -> None:
    """Each wheel's cached bytecode written into a venv's site-packages, beside the installed sources. A module
    two wheels both ship is left to `compile_rest`: which one's source is installed is the installer's choice,
    and an unchecked .pyc must be the bytecode of the source beside it."""
    zips = [zipfile.ZipFile(found) for found in (entry(w, target, cache) for w in wheels) if found.exists()]
    try:
        providers: dict[str, list[zipfile.ZipFile]] = {}
        for zf in zips:
            for name in zf.namelist():
                providers.setdefault(name, []).append(zf)
        made: set[Path] = set()
        for name, found in sorted(providers.items()):
            dest = site_packages / name
            if len(found) > 1 or not dest.parent.parent.is_dir():
                continue  # a module two wheels ship, or one the installer did not put in place
            if dest.parent not in made:
                dest.parent.mkdir(exist_ok=True)
                made.add(dest.parent)
            dest.write_bytes(found[0].read(name))
    finally:
        for zf in zips:
            zf.close()


def compile_chunks(files: list[str], n: int = COMPILE_CHUNKS) -> list[list[str]]:
    """Split sorted file names into n fixed slices (every n-th file), so each slice is the same on every
    machine and run."""
    ordered = sorted(files)
    return [ordered[i::n] for i in range(n)]


def compile_rest(root: Path, stage: Path, install_path: str, target: Target, venv_py: str, binds: list[Bind],
                 env: dict, work: Path) -> None:
    """Byte-compile what no wheel's bytecode covered in the venv, in place, in parallel; a file that does not
    compile fails the build."""
    tag = "cpython-" + target.python_minor.replace(".", "")
    files = [p.relative_to(stage).as_posix() for p in stage.glob("lib/python*/site-packages/**/*.py")
             if not p.is_symlink() and not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").exists()]
    if not files:
        return
    lists = work / "compile"
    lists.mkdir()
    for i, chunk in enumerate(compile_chunks(files)):
        (lists / f"{i}.txt").write_text("".join(f"{install_path}/{f}\n" for f in chunk))
    all_binds = [*binds, Bind(lists, "/mnt/compile", True)]

    def one(i: int) -> str | None:
        try:
            chroot_run(root, [venv_py, "-S", *_COMPILE, "-i", f"/mnt/compile/{i}.txt"], binds=all_binds, env=env,
                       timeout=COMPILE_TIMEOUT)
        except ToolFailed as exc:
            return (exc.stdout + exc.stderr).strip()
        return None

    with ThreadPoolExecutor(COMPILE_CHUNKS) as pool:
        errors = [e for e in pool.map(one, range(COMPILE_CHUNKS)) if e]
    if errors:
        shown = "\n".join(ln for e in errors for ln in e.splitlines())[-3000:]
        raise StackcrateError(f"byte-compiling the venv at {install_path} failed:\n{shown}", hint=_HINT)
