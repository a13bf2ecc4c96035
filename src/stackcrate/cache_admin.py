"""The cache's upkeep (`stackcrate cache`): what each part holds and its size, removing parts (`clean`), and
removing the entries no command has used for a while (`prune`).

Each part is a row of PARTS (data, as the stages that fill them see them). An entry of a part with a depth is
marked when a command finds it in the cache (Cache.used: its mtime), so its mtime is its last use; parts without
one are small records of what was learnt (a few MB in all) and go only with `clean`. Both removals hold the cache
alone (Cache.in_use): no stackcrate command runs while they do. Each entry is renamed out of its part before it
is deleted: one cut short leaves no half-removed entry that a later command could take for a whole one."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .cache import IN_USE, Cache, remove_tree
from .errors import StackcrateError
from .package.oci import BLOBS, layer_blob
from .tools import uv

REMOVING = ".removing-"  # what an interrupted clean or prune left: removed by the next one
OCI_BLOBS = "/".join(BLOBS)  # layers by key (<key>.json) and their blobs by digest, shared by the images


@dataclass(frozen=True)
class Part:
    name: str
    holds: str
    # how many folders below the part's its entries lie (each marked when used and pruned by that); 0: records
    # of what was learnt, small, removed only by `clean`
    depth: int = 0
    companions: tuple[str, ...] = ()  # suffixes of files beside an entry that belong to it


PARTS = (
    Part("wheels", "downloaded wheels and sdists, by the sha256 of their bytes", 1),
    Part("built-wheels", "wheels built from sources", 1),
    Part("uv", "uv's own cache (its resolutions); `prune` asks uv to prune it"),
    Part("git", "bare mirrors of git sources, by URL", 1),
    Part("rootfs", "the targets' base root filesystems, by package set", 1, companions=(".tar",)),
    Part("bytecode", "each wheel's compiled modules, per target", 1),
    Part("components", "built venvs (tar.zst), by build key", 1),
    Part("packages", ".deb, .rpm and OCI images by their inputs; OCI layers shared by images", 2),
    Part("venvs", "venvs as their artifacts unpack, linked into install roots", 2),
    Part("made-files", "files services make from their venv and settings (the dashboard's static files)", 2),
    Part("schemas", "new clouds' databases as their migrations leave them", 2),
    Part("host-wheels", "stackcrate's own wheels for the hosts of a multi-node deployment", 1),
    Part("constraints", "fetched upper-constraints and requirements files"),
    Part("metadata", "wheel metadata read from indexes"),
    Part("sysdeps", "system packages found for components"),
    Part("sdist-files", "files read from sdists (bindep.txt, etc/)"),
    Part("options", "the options each service release knows"),
    Part("artifacts-checked", "artifact files already checked by deploy"),
    Part("locks", "inter-process locks"),
    Part("tmp", "work areas; what is left when no command runs was left by one that was stopped"),
)
BY_NAME = {p.name: p for p in PARTS}


@dataclass
class PartInfo:
    name: str
    holds: str
    bytes: int
    entries: int | None        # None: a part not made of entries
    oldest_use: float | None   # epoch seconds of the entry used longest ago
    newest_use: float | None

    def to_json(self) -> dict:
        return dict(vars(self))


@dataclass
class Removed:
    entries: int = 0
    bytes: int = 0


def _usage(path: Path, seen: set[tuple[int, int]]) -> int:
    """Bytes on disk of path and what lies below it, each inode counted once (hard links within the cache)."""
    total = 0
    stack = [path]
    while stack:
        p = stack.pop()
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
        if os.path.isdir(p) and not os.path.islink(p):
            try:
                stack.extend(e.path for e in os.scandir(p))
            except OSError:
                continue
    return total


def _entries(root: Path, part: Part) -> Iterator[tuple[Path, tuple[Path, ...]]]:
    """Each entry of the part with its companion files; an OCI layer is its <key>.json (its blob goes with the
    last layer that names it: _sweep_blobs)."""
    level = [root / part.name]
    for _ in range(part.depth):
        level = [child for folder in level for child in _children(folder)]
    for path in level:
        if path.parent.relative_to(root).as_posix() == OCI_BLOBS and path.suffix != ".json":
            continue
        if any(path.name.endswith(s) and path.with_name(path.name[:-len(s)]).exists() for s in part.companions):
            continue  # listed with its entry
        yield path, tuple(c for s in part.companions if (c := path.with_name(path.name + s)).exists())


def _children(folder: Path) -> list[Path]:
    """What a folder of a part holds (nothing when it is a file, or went meanwhile: `info` runs beside builds)."""
    if folder.is_symlink():
        return []
    try:
        return sorted(Path(e.path) for e in os.scandir(folder))
    except (NotADirectoryError, FileNotFoundError):
        return []


def _last_use(path: Path) -> float | None:
    """When a command last found the entry in the cache (None: it went meanwhile, replaced by a build)."""
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return None


def info(cache: Cache) -> list[PartInfo]:
    """Every part of the cache (and any folder of an older stackcrate) with its size; the root's own files
    aside."""
    root, seen = cache.root, set()
    rows = []
    known = [p for p in PARTS if (root / p.name).exists()]
    others = sorted(p.name for p in root.iterdir() if p.name not in BY_NAME and p.name != IN_USE) \
        if root.is_dir() else []
    for part in [*known, *(Part(name, "not a part of this stackcrate's cache (an older one's?)") for name in others)]:
        uses = [t for e, _ in _entries(root, part) if (t := _last_use(e)) is not None] if part.depth else []
        rows.append(PartInfo(part.name, part.holds, _usage(root / part.name, seen),
                             len(uses) if part.depth else None, min(uses, default=None), max(uses, default=None)))
    return rows


def clean(cache: Cache, names: list[str], wait: float) -> Removed:
    """Remove the named parts (all of the cache without names), once no other command uses the cache."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise StackcrateError(f"no part of the cache is called {', '.join(unknown)}",
                              hint=f"the parts are: {', '.join(BY_NAME)} (`stackcrate cache info` shows them)")
    root = cache.root
    if not root.is_dir():
        return Removed()
    with cache.in_use(alone=True, timeout=wait):
        targets = [root / n for n in names] if names else [p for p in sorted(root.iterdir()) if p.name != IN_USE]
        done, seen = Removed(), set()
        for path in targets:
            if os.path.lexists(path):
                done.bytes += _usage(path, seen)
                done.entries += 1
                _remove(root, path)
    return done


def prune(cache: Cache, unused_for_days: float, wait: float) -> Removed:
    """Remove every entry no command used in the last unused_for_days days, the work areas stopped commands
    left, and what uv itself finds unused in its cache."""
    root = cache.root
    if not root.is_dir():
        return Removed()
    cutoff = time.time() - unused_for_days * 86400
    done, seen = Removed(), set()
    with cache.in_use(alone=True, timeout=wait):
        for leftover in [*root.glob(f"{REMOVING}*"), *sorted((root / "tmp").glob("*"))]:
            _remove(root, leftover)
        for part in PARTS:
            if not part.depth:
                continue
            for entry, companions in list(_entries(root, part)):
                used = _last_use(entry)
                if used is None or used >= cutoff:  # (None: it went meanwhile; 0.0 is 1970, not unknown)
                    continue
                for path in (entry, *companions):
                    done.bytes += _usage(path, seen)
                    _remove(root, path)
                done.entries += 1
        _sweep_blobs(cache)
        if (root / "uv").is_dir():
            uv(["cache", "prune"], cache_dir=root / "uv")
    return done


def _sweep_blobs(cache: Cache) -> None:
    """Remove the layer blobs no remaining layer record names (each record is removed before its blob, so a
    record always has its blob)."""
    root, folder = cache.root, cache.root.joinpath(*BLOBS)
    if not folder.is_dir():
        return
    named = set()
    for record in folder.glob("*.json"):
        try:
            named.add(layer_blob(json.loads(record.read_text()), cache).name)
        except (OSError, ValueError, KeyError, IndexError, AttributeError):
            _remove(root, record)  # unreadable: the layer is made again when an image needs it
    for blob in folder.iterdir():
        if blob.suffix != ".json" and blob.name not in named:
            _remove(root, blob)


def _remove(root: Path, path: Path) -> None:
    """path renamed out of its part (one step), then deleted."""
    aside = Path(tempfile.mkdtemp(prefix=REMOVING, dir=root))
    try:
        os.rename(path, aside / "x")
    except FileNotFoundError:
        pass
    remove_tree(aside)
