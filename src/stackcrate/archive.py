"""Deterministic tar archives: a built tree as .tar.zst (sorted entries, uid/gid 0, mtimes clamped to
SOURCE_DATE_EPOCH), and reading them back. The build packs with it, the package writers and deploy unpack."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
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


class BadArchive(Exception):
    """A .tar.zst that cannot be read whole: empty, truncated, corrupt, or not a .tar.zst at all."""


class _WholeZstdStream:
    """The decompressed bytes of a .tar.zst for tarfile's stream mode, checking what zstandard does not: it returns
    what it has, silently, when the input stops inside a frame. Hashes the compressed bytes as it reads them."""

    def __init__(self, raw, chunk: int = 1 << 20):
        self._raw, self._chunk = raw, chunk
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = None
        self._buf, self._pos = b"", 0
        self.sha256 = hashlib.sha256()
        self.decompressed = 0

    def _fill(self) -> bool:
        data = self._raw.read(self._chunk)
        if not data:
            if self._frame is None:
                raise BadArchive("it is empty")
            if not self._frame.eof:
                raise BadArchive("it ends inside a zstd frame (truncated)")
            return False
        self.sha256.update(data)
        out = []
        while data:  # a file may hold several frames, one after the other
            if self._frame is None or self._frame.eof:
                self._frame = self._dctx.decompressobj()
            try:
                out.append(self._frame.decompress(data))
            except zstandard.ZstdError as exc:
                raise BadArchive(f"it is not valid zstd data ({exc})") from None
            data = self._frame.unused_data if self._frame.eof else b""
        self._buf = self._buf[self._pos:] + b"".join(out)
        self._pos = 0
        self.decompressed += sum(map(len, out))
        return True

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self._buf) - self._pos < n) and self._fill():
            pass
        end = len(self._buf) if n < 0 else self._pos + n
        piece = self._buf[self._pos:end]
        self._pos += len(piece)
        return piece

    def finish(self) -> str:
        """Read on to the end of the file (so its last frame is checked whole); the sha256 of all its bytes."""
        while self._fill():
            self._buf, self._pos = b"", 0
        return self.sha256.hexdigest()


def read_tar_zst(archive: Path, use: Callable[[tarfile.TarFile], None]) -> str:
    """Hand archive's tar stream to `use` (which goes through every member: iterates, or extracts them all), then
    read it to its end: every zstd frame complete with its checksum right, the tar's end-of-archive marker
    present. Returns the sha256 of the bytes read, so what was used is what was hashed; raises BadArchive."""
    with open(archive, "rb") as raw:
        stream = _WholeZstdStream(raw)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                use(tf)
                end = tf.offset  # where the end-of-archive marker starts, once every member was read
        except tarfile.TarError as exc:
            raise BadArchive(f"it is not a whole tar archive ({exc})") from None
        sha = stream.finish()
        # tarfile takes a stream that stops between members for the end of the archive; the marker is two
        # zero blocks, so a whole archive holds at least that much beyond the last member.
        if stream.decompressed < end + 2 * tarfile.BLOCKSIZE:
            raise BadArchive("its tar stream stops before the end-of-archive marker (truncated before it was "
                             "compressed)")
        return sha
