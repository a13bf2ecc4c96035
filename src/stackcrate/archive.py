"""Deterministic tar archives: a built tree as .tar.zst (sorted entries, uid/gid 0, mtimes clamped to
SOURCE_DATE_EPOCH), and reading them back. The build packs with it, the package writers and deploy unpack."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import zstandard

from .tools import output_of, run, which

ZSTD_LEVEL = 6  # 4 % larger than 9, a third less compressing; what ships is built often and read once per host


def walk_sorted(root: Path) -> Iterator[Path]:
    """Every path below root (not root itself), parents before children, in byte order."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            entries.append(Path(dirpath) / name)
    entries.sort(key=lambda p: p.relative_to(root).as_posix().encode())
    return iter(entries)


# GNU tar's own switches for an archive that depends only on the tree's names, contents, link targets and
# executable bits: sorted entries; owner root (0); every mtime the epoch; group and others may not write, all
# may read (and enter folders, and run what someone may run); PAX without atime/ctime or per-process header
# names; hard links stored as files.
TAR_REPRODUCIBLE = ["--format=posix", "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
                    "--sort=name", "--owner=root:0", "--group=root:0", "--mode=go-w,a+rX", "--hard-dereference"]


def write_tar_zst(root: Path, out: Path, epoch: int) -> None:
    """Pack everything below root (which stands for /) into out.

    GNU tar writes the archive (C, outside our process: two builds side by side do not take turns on the
    interpreter) and zstd compresses it on every core. zstd's multi-threaded output is the same for any number
    of threads ≥ 1 (it cuts the input into jobs by size, not by thread), so the bytes do not depend on the
    machine; threads=0 would be a different (single-threaded) format of output."""
    names = sorted(os.listdir(root))
    argv = [which("tar"), "--create", "--file=-", *TAR_REPRODUCIBLE, f"--mtime=@{epoch}", "--directory", root,
            *(["--", *names] if names else ["--files-from=/dev/null"])]
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=-1)
    with output_of(argv) as tar, open(out, "wb") as raw:
        cctx.copy_stream(tar, raw, read_size=1 << 20, write_size=1 << 20)


def extract_tar_zst(archive: Path, dest: Path) -> None:
    """Unpack one of our own archives (from the cache: trusted) below dest, with GNU tar and zstd."""
    run([which("tar"), "--extract", "--file", archive, f"--use-compress-program={which('zstd')}",
         "--directory", dest])


class BadArchive(Exception):
    """A .tar.zst that cannot be read whole: empty, truncated, corrupt, or not a .tar.zst at all."""


class Member(NamedTuple):
    """One entry of an archive write_tar_zst made, with a file's bytes."""

    name: str       # as archived: relative to /, no leading "./"
    kind: str       # file, dir or symlink (write_tar_zst stores hard links as files)
    mode: int       # permission bits
    mtime: int
    linkname: str = ""
    data: bytes = b""


_KINDS = {b"0": "file", b"\0": "file", b"5": "dir", b"2": "symlink"}


def members_of(archive: Path) -> Iterator[Member]:
    """Every member of one of our own archives (from the cache: trusted), in archive order, in one pass.

    For the writers that read every byte of a venv: tarfile's general reader spends 0.55 s of interpreter time
    on a keystone venv's 17,000 headers, this 0.1 s, for the one layout write_tar_zst writes (POSIX ustar with
    PAX records for long names). Anything else in the archive (another member type, a header whose checksum is
    wrong, a bad PAX record, a stream that stops early) raises BadArchive."""
    with open(archive, "rb") as raw:
        stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True), 1 << 20)
        try:
            yield from _members(stream)
        except zstandard.ZstdError as exc:
            raise BadArchive(f"it is not valid zstd data ({exc})") from None
        except (ValueError, UnicodeDecodeError) as exc:  # a number, a record or a name that does not parse
            raise BadArchive(f"it holds a tar header that does not parse ({exc})") from None


def _members(stream: BinaryIO) -> Iterator[Member]:
    pax: dict[bytes, bytes] = {}
    while True:
        block = stream.read(512)
        if len(block) < 512:
            raise BadArchive("its tar stream stops before the end-of-archive marker")
        if not block.strip(b"\0"):
            return
        if block[257:263] != b"ustar\0":
            raise BadArchive("it holds a header that is not POSIX ustar")
        if sum(block) - sum(block[148:156]) + 8 * 32 != _octal(block[148:156]):
            raise BadArchive("it holds a tar header whose checksum is wrong")
        size = int(pax.get(b"size") or _octal(block[124:136]))
        data = stream.read(size)
        if len(data) < size or len(stream.read(-size % 512)) < -size % 512:
            raise BadArchive("its tar stream stops inside a member")
        kind = block[156:157]
        if kind == b"x":  # the PAX records of the next member: "<length> <key>=<value>\n" each
            at = 0
            while at < size:
                space = data.index(b" ", at)
                length = int(data[at:space])
                if length <= space - at or data[at + length - 1:at + length] != b"\n":
                    raise BadArchive("it holds a PAX record whose length is wrong")
                key, _, value = data[space + 1:at + length - 1].partition(b"=")
                pax[key] = value
                at += length
            continue
        if kind not in _KINDS:
            raise BadArchive(f"it holds a member of tar type {kind!r}, which stackcrate does not write")
        prefix = block[345:500].rstrip(b"\0")
        name = pax.get(b"path") or (prefix + b"/" if prefix else b"") + block[:100].rstrip(b"\0")
        yield Member(name.decode().removeprefix("./").rstrip("/"), _KINDS[kind], _octal(block[100:108]),
                     int(pax[b"mtime"].partition(b".")[0]) if b"mtime" in pax else _octal(block[136:148]),
                     (pax.get(b"linkpath") or block[157:257].rstrip(b"\0")).decode(), data)
        pax.clear()


def _octal(field: bytes) -> int:
    return int(field.rstrip(b"\0 ") or b"0", 8)


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
