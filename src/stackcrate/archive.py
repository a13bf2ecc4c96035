"""Deterministic tar archives: a built tree as .tar.zst (sorted entries, uid/gid 0, mtimes clamped to
SOURCE_DATE_EPOCH), and reading them back. The build packs with it, the package writers and deploy unpack."""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import zstandard

ZSTD_LEVEL = 9


def walk_sorted(root: Path) -> Iterator[Path]:
    """Every path below root (not root itself), parents before children, in byte order."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            entries.append(Path(dirpath) / name)
    entries.sort(key=lambda p: p.relative_to(root).as_posix().encode())
    return iter(entries)


def normalized_info(tf: tarfile.TarFile, path: Path, arcname: str, epoch: int) -> tarfile.TarInfo:
    info = tf.gettarinfo(str(path), arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = min(int(info.mtime), epoch)
    info.mode = stat.S_IMODE(info.mode)
    if info.isdir() or info.isreg() and info.mode & 0o111:
        info.mode = info.mode & ~0o022 | 0o755 if info.isdir() else info.mode & ~0o022
    else:
        info.mode &= ~0o022
    return info


def write_tar_zst(root: Path, out: Path, epoch: int) -> None:
    """Pack everything below root (which stands for /) into out."""
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=0)
    with open(out, "wb") as raw, cctx.stream_writer(raw, closefd=False) as zf, \
            tarfile.open(fileobj=zf, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for path in walk_sorted(root):
            info = normalized_info(tf, path, path.relative_to(root).as_posix(), epoch)
            if info.isreg():
                with open(path, "rb") as fh:
                    tf.addfile(info, fh)
            else:
                tf.addfile(info)


def extract_tar_zst(archive: Path, dest: Path) -> None:
    dctx = zstandard.ZstdDecompressor()
    with open(archive, "rb") as raw, dctx.stream_reader(raw) as zf, tarfile.open(fileobj=zf, mode="r|") as tf:
        try:
            tf.extractall(dest, filter="tar")
        except TypeError:  # Python < 3.11.4
            tf.extractall(dest)
