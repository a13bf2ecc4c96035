"""The package stage: every artifact format made from the same built component tree.

  tar  the build's own deterministic .tar.zst (extract at /)
  deb  a .deb by dpkg-deb            rpm  an .rpm in rpm's v4 format, read from the tarball (rpmfile)
  oci  an OCI image archive          (each of the last three with a CycloneDX SBOM beside it)
  (and system images: backing services from the target's own packages, see oci.make_system)
Every writer caches what it makes by its inputs, so making it again is a lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..cache import Cache, digest_of, remove_tree
from ..errors import StackcrateError
from ..manifest import FORMATS
from ..model.built import BuiltComponent
from ..ui import UI


@dataclass(frozen=True)
class Made:
    """One file an artifact writer produced, in the cache."""

    format: str      # tar, deb, rpm, oci, sbom
    path: Path
    made: bool       # written by this run (not found in the cache)


def check_formats(formats: list[str]) -> list[str]:
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise StackcrateError(f"unknown format {', '.join(bad)}", hint=f"use one of: {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def make(built: BuiltComponent, formats: list[str], cache: Cache, ui: UI,
         shared_packages: Sequence[str] = ()) -> list[Made]:
    """Every requested artifact of one component (the tarball is the build's own). `shared_packages`: the system
    packages of every component built with it, which its image holds in a layer the others' images share."""
    out = []
    for fmt in check_formats(formats):
        if fmt == "tar":
            out.append(Made("tar", built.tarball, built.rebuilt))
        elif fmt == "oci":
            from .oci import make as oci

            out.extend(oci(built, cache, ui, shared_packages))
        else:
            out.extend(_writer(fmt)(built, cache, ui))
    return out


def _writer(fmt: str) -> Callable[[BuiltComponent, Cache, UI], list[Made]]:
    # imported when asked for: each writer brings its own tools (zstandard, the build root, ...)
    if fmt == "deb":
        from .deb import make as writer
    else:
        from .rpm import make as writer
    return writer


def cached(cache: Cache, fmt: str, inputs: dict, make_into: Callable[[Path], None]) -> tuple[Path, bool]:
    """The cache folder of one artifact made from `inputs`, and whether this call made it: `make_into(work)`
    fills a fresh folder when the cache has none."""
    key = digest_of({"fmt": fmt, **inputs})
    final = cache.dir("packages", fmt) / key
    if final.is_dir():
        cache.used(final)
        return final, False
    with cache.locked(f"package:{fmt}:{key}"):
        if final.is_dir():
            return final, False
        work = cache.tempdir(f"{fmt}-")
        try:
            out = work / "out"
            out.mkdir()
            make_into(out)
            Cache.commit(out, final)
        finally:
            remove_tree(work)
    return final, True


@contextlib.contextmanager
def unpacked(built: BuiltComponent, cache: Cache) -> Iterator[Path]:
    """The component's tree (paths relative to /) for the block, in a scratch folder (`Cache.scratch`: in memory
    where there is room) that is removed afterwards."""
    from ..archive import extract_tar_zst

    scratch = cache.scratch(f"{built.name}-")
    try:
        tree = scratch / "tree"
        tree.mkdir()
        extract_tar_zst(built.tarball, tree)
        yield tree
    finally:
        remove_tree(scratch)
