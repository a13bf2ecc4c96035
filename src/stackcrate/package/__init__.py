"""Artifact writers: every format is made from the same built component tree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..cache import Cache, digest_of, remove_tree

# cache entries made by this process, so `build` can tell which artifacts it really wrote this time
made_here: set[Path] = set()


def cached(cache: Cache, fmt: str, inputs: dict, make: Callable[[Path], None]) -> Path:
    """The cache folder for one artifact made from `inputs`; `make(work)` fills a fresh folder when missing."""
    key = digest_of({"fmt": fmt, **inputs})
    final = cache.dir("packages", fmt) / key
    if final.is_dir():
        return final
    with cache.locked(f"package:{fmt}:{key}"):
        if final.is_dir():
            return final
        work = cache.tempdir(f"{fmt}-")
        try:
            out = work / "out"
            out.mkdir()
            make(out)
            Cache.publish(out, final)
            made_here.add(final)
        finally:
            remove_tree(work)
    return final


def unpack_component(built, dest: Path) -> Path:
    """The component's tree (paths relative to /) unpacked into dest."""
    from .tarball import extract_tar_zst

    dest.mkdir(parents=True, exist_ok=True)
    extract_tar_zst(built.tarball, dest)
    return dest


def describe(built) -> str:
    src = built.locked.source
    origin = src.get("url") or src.get("path") or "PyPI"
    return (f"OpenStack {built.name} {built.version} (series {built.series}) in a Python venv at "
            f"{built.install_path}, built by stackcrate from {origin} (revision {built.locked.revision}).")
