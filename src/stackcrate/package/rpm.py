""".rpm of a built component, written straight from its .tar.zst in rpm's v4 format (`rpmfile`).

Same naming as the .deb: `openstack-<name>-<version>`, so versions install side by side. Requires are the
interpreter, the bindep.txt entries for the rpm platform and, for each library the ELF scan found, rpm's own
soname capability (`libfoo.so.1()(64bit)`); nothing is derived from the venv's files themselves (rpmbuild's
automatic dependency generator would read the venv's own paths as dependencies).

Why not rpmbuild, which earlier versions ran: for a venv's 12,000 files it spent 3× the time of its own payload
compressor, mostly outside the package (libmagic reading every file to name its text encoding, for a class only
ELF objects need; an unpacked copy of the tree to read from). Here the tarball is read once, as a stream: each
file hashed, framed and handed to zstd on every core. The integration tests hold the result to rpmbuild's own
for the same tree (every file attribute rpm installs and verifies, the dependencies and the package's tags; not
the file classes, which rpmbuild takes from libmagic) and to rpm's checks (-K, install, -V).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path
from typing import NamedTuple

import zstandard

from ..archive import BadArchive, Member, members_of
from ..cache import Cache
from ..errors import StackcrateError
from ..model.built import BuiltComponent
from ..ui import UI
from . import Made, cached, rpmfile, sbom, sysdeps
from .deb import package_name
from .rpmfile import I18NSTRING, INT16, INT32, RPMLIB, SENSE, STRING, STRING_ARRAY

RPM_FORMAT = 4  # the cache key of what this writer writes: bumped with every change of its output

ZSTD_LEVEL = 3                          # zstd's own default: a package is written at every build
COMPRESSOR_CLI = f"zstd -q -{ZSTD_LEVEL} -T0"   # the same from the command line, for the benchmark
RELEASE = "1"

# what every package of this layout needs from the rpm that installs it (rpmbuild declares the same)
RPMLIB_REQUIRES = [("rpmlib(CompressedFileNames)", "3.0.4-1"), ("rpmlib(FileDigests)", "4.6.0-1"),
                   ("rpmlib(PayloadFilesHavePrefix)", "4.0-1"), ("rpmlib(PayloadIsZstd)", "5.4.18-1")]
SHA256 = 8   # rpm's PGPHASHALGO for file and payload digests


def make(built: BuiltComponent, cache: Cache, ui: UI) -> list[Made]:
    deps = sysdeps.system_deps(built, cache, "rpm")
    name = package_name(built)
    fname = f"{name}-{built.version}-{RELEASE}.x86_64.rpm"

    def build(out: Path) -> None:
        with ui.step(f"Writing {fname}"):
            write_rpm(built, deps, name, out / fname, scratch=out.parent)
            sbom.write(built, deps, out / f"{fname}.cdx.json", fname)

    inputs = {"v": RPM_FORMAT, "build": built.key, "deps": deps.to_json(), "order": deps.names}
    entry, made = cached(cache, "rpm", inputs, build)
    return [Made("rpm", entry / fname, made), Made("sbom", entry / f"{fname}.cdx.json", made)]


class PackagedFile(NamedTuple):
    path: str          # absolute, as installed
    mode: int          # with the file type bits
    size: int          # the link target's length for a symbolic link, 0 for a folder
    mtime: int
    ino: int           # its number in the payload (no two files share one: no hard links)
    digest: str = ""   # sha256 of a regular file's bytes
    linkto: str = ""
    elf: tuple[int, str] = (0, "")   # rpm's colour (1: 32-bit, 2: 64-bit) and class of an ELF object


def elf_class(data: bytes) -> tuple[int, str]:
    """rpm's colour and file class of an ELF object ((0, "") for anything else): what rpm tells 32- from 64-bit
    objects by, when a 32- and a 64-bit package install the same path."""
    if len(data) < 18 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return 0, ""
    bits, order = data[4], "little" if data[5] == 1 else "big"
    kind = {1: "relocatable", 2: "executable", 3: "shared object", 4: "core file"}.get(
        int.from_bytes(data[16:18], order), "")
    return bits, " ".join(filter(None, (f"ELF {32 * bits}-bit", "LSB" if data[5] == 1 else "MSB", kind)))


def write_rpm(built: BuiltComponent, deps: sysdeps.SysDeps, name: str, out: Path, scratch: Path) -> None:
    """Write the package to out; the compressed payload waits in the scratch folder until its digests are in the
    headers that come before it."""
    requires = _requires(deps, built.name)  # refused before anything is written
    payload = scratch / f"{out.name}.payload"
    try:
        files, payload_size, payload_sha = _payload(built, payload)
        main = rpmfile.header(_tags(built, name, files, requires, payload_sha), rpmfile.REGION_IMMUTABLE)
        sig = rpmfile.signature(main, payload.stat().st_size, payload_size)
        with open(out, "wb") as f, open(payload, "rb") as body:
            f.write(rpmfile.lead(f"{name}-{built.version}-{RELEASE}") + sig + main)
            f.flush()
            while os.sendfile(f.fileno(), body.fileno(), None, 1 << 24):  # copied by the kernel
                pass
    except ValueError as exc:  # a size rpm's 32-bit fields cannot hold (rpmfile._encode)
        raise StackcrateError(f"cannot write {out.name}: {exc}, too large for this rpm writer",
                              hint="ship this component as .tar.zst, .deb or OCI image") from None
    except BadArchive as exc:
        raise StackcrateError(f"cannot write {out.name}: the build's archive {built.tarball} is damaged: {exc}",
                              hint="remove that folder from the cache and build again") from None
    except OSError as exc:
        raise StackcrateError(f"cannot write {out.name}: {exc}",
                              hint="make room (or fix permissions) where stackcrate's cache is, and build again") \
            from None
    finally:
        payload.unlink(missing_ok=True)


def _payload(built: BuiltComponent, dest: Path) -> tuple[list[PackagedFile], int, str]:
    """Write the compressed cpio payload of everything at and below the install path to dest, reading the
    component's tarball once: (the package's files in path order, the payload's size, its sha256)."""
    root = built.install_path.strip("/")
    parents = {root.rsplit("/", i)[0] for i in range(1, root.count("/") + 1)}   # opt, opt/openstack
    files: list[PackagedFile] = []
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=-1)
    with _Hashed(dest) as hashed, compressor.stream_writer(hashed, closefd=False) as writer, \
            contextlib.closing(members_of(built.tarball)) as members:
        batch = _Batched(writer)
        for m in members:
            if m.name in parents:
                continue  # not the package's own
            if m.name != root and not m.name.startswith(root + "/"):
                raise StackcrateError(f"cannot write the rpm of {built.name}: its build holds /{m.name}, outside "
                                      f"{built.install_path}", hint="this is a bug of stackcrate's build: report it")
            f, data = _packaged(m, ino=len(files) + 1)
            files.append(f)
            batch.put(rpmfile.cpio_entry("." + f.path, f.mode, f.mtime, f.ino, len(data)))
            if data:
                batch.put(data)
                batch.put(rpmfile.pad(len(data)))
        batch.put(rpmfile.CPIO_TRAILER)
        batch.flush()
    files.sort(key=lambda f: f.path.encode())  # rpm looks files up by binary search
    return files, batch.size, hashed.sha256.hexdigest()


def _packaged(m: Member, ino: int) -> tuple[PackagedFile, bytes]:
    """A member of the tarball as the package lists it, and its data in the payload."""
    path = "/" + m.name
    if m.kind == "dir":
        return PackagedFile(path, stat.S_IFDIR | m.mode, 0, m.mtime, ino), b""
    if m.kind == "symlink":
        target = m.linkname.encode()
        return PackagedFile(path, stat.S_IFLNK | 0o777, len(target), m.mtime, ino, linkto=m.linkname), target
    return PackagedFile(path, stat.S_IFREG | m.mode, len(m.data), m.mtime, ino, hashlib.sha256(m.data).hexdigest(),
                        elf=elf_class(m.data)), m.data


class _Batched:
    """Pieces handed to a writer: small ones a thousand at a time (each write into zstd has a cost of its own),
    large ones as they are (joining them would copy them once more)."""

    def __init__(self, writer):
        self._writer, self._pending, self.size = writer, [], 0

    def put(self, piece: bytes) -> None:
        self.size += len(piece)
        if len(piece) >= 1 << 16:
            self.flush()
            self._writer.write(piece)
            return
        self._pending.append(piece)
        if len(self._pending) >= 1024:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._writer.write(b"".join(self._pending))
            self._pending.clear()


class _Hashed:
    """A file being written, hashed on the way."""

    def __init__(self, path: Path):
        self._f = open(path, "wb")  # noqa: SIM115 (closed on leaving the with block)
        self.sha256 = hashlib.sha256()

    def __enter__(self) -> _Hashed:
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()


def _requires(deps: sysdeps.SysDeps, component: str) -> list[tuple[str, int, str]]:
    """rpm's (name, sense flags, version) entries: rpm's own first requirements, and one per comparison of each
    system requirement ("pkg", or from bindep.txt "pkg (>= 1.0, < 2.0)"), in rpm's order (name, version, flags)."""
    out = {(n, RPMLIB | SENSE["<="], v) for n, v in RPMLIB_REQUIRES}
    for spec in deps.names:
        name, _, cons = spec.partition(" (")
        comparisons = [c.strip() for c in cons.rstrip(")").split(",") if c.strip()]
        for one in comparisons:
            op, _, version = one.partition(" ")
            if op not in SENSE or not version:
                raise StackcrateError(f"{component}: rpm cannot express the system requirement {spec!r} ({one!r})",
                                      hint="in bindep.txt use <, <=, ==, >= or >, or leave the package out with "
                                           "sysdeps_exclude in the manifest")
            out.add((name, SENSE[op], version))
        if not comparisons:
            out.add((name, 0, ""))
    return sorted(out, key=lambda r: (r[0], r[2], r[1]))


def _tags(built: BuiltComponent, name: str, files: list[PackagedFile], requires: list[tuple[str, int, str]],
          payload_sha: str) -> list[rpmfile.Entry]:
    evr = f"{built.version}-{RELEASE}"
    provides = sorted([(f"openstack-{built.name}", built.version), (name, evr), (f"{name}(x86-64)", evr)])
    dirs: dict[str, int] = {}
    dirindexes, basenames = [], []
    for f in files:
        head, _, base = f.path.rpartition("/")
        dirindexes.append(dirs.setdefault(head + "/", len(dirs)))
        basenames.append(base)
    classes = {"": 0, "directory": 1}
    fileclass = [classes.setdefault("directory" if stat.S_ISDIR(f.mode) else f.elf[1], len(classes))
                 for f in files]
    n = len(files)
    return [
        (100, STRING_ARRAY, ["C"]),                           # HEADERI18NTABLE
        (1000, STRING, name),
        (1001, STRING, built.version),
        (1002, STRING, RELEASE),
        (1004, I18NSTRING, [f"OpenStack {built.name} {built.version} ({built.series}), self-contained venv"]),
        (1005, I18NSTRING, [built.describe()]),
        (1006, INT32, [built.epoch]),                         # BUILDTIME
        (1007, STRING, "stackcrate"),                         # BUILDHOST
        (1009, INT32, [sum(f.size for f in files)]),          # SIZE
        (1014, STRING, f"Apache-2.0 and others (see the dist-info folders in {built.install_path})"),
        (1016, I18NSTRING, ["Unspecified"]),                  # GROUP
        (1020, STRING, f"https://pypi.org/project/{built.name}/"),
        (1021, STRING, "linux"),
        (1022, STRING, "x86_64"),
        (1028, INT32, [f.size for f in files]),
        (1030, INT16, [f.mode for f in files]),
        (1033, INT16, [0] * n),                               # FILERDEVS
        (1034, INT32, [f.mtime for f in files]),
        (1035, STRING_ARRAY, [f.digest for f in files]),
        (1036, STRING_ARRAY, [f.linkto for f in files]),
        (1037, INT32, [0] * n),                               # FILEFLAGS: plain files, no %config, %doc, ...
        (1039, STRING_ARRAY, ["root"] * n),
        (1040, STRING_ARRAY, ["root"] * n),
        (1044, STRING, f"{name}-{evr}.src.rpm"),              # SOURCERPM: what marks a binary package
        (1045, INT32, [0xFFFFFFFF] * n),                      # FILEVERIFYFLAGS: rpm -V checks everything
        (1047, STRING_ARRAY, [p for p, _ in provides]),
        (1048, INT32, [flags for _, flags, _ in requires]),
        (1049, STRING_ARRAY, [r for r, _, _ in requires]),
        (1050, STRING_ARRAY, [v for _, _, v in requires]),
        (1095, INT32, [1] * n),                               # FILEDEVICES
        (1096, INT32, [f.ino for f in files]),                # FILEINODES: no hard links
        (1097, STRING_ARRAY, [""] * n),                       # FILELANGS
        (1112, INT32, [SENSE["="]] * len(provides)),
        (1113, STRING_ARRAY, [v for _, v in provides]),
        (1116, INT32, dirindexes),
        (1117, STRING_ARRAY, basenames),
        (1118, STRING_ARRAY, list(dirs)),
        (1124, STRING, "cpio"),                               # PAYLOADFORMAT
        (1125, STRING, "zstd"),                               # PAYLOADCOMPRESSOR
        (1126, STRING, str(ZSTD_LEVEL)),                      # PAYLOADFLAGS
        (1140, INT32, [f.elf[0] for f in files]),             # FILECOLORS
        (1141, INT32, fileclass),
        (1142, STRING_ARRAY, list(classes)),                  # CLASSDICT
        (5011, INT32, [SHA256]),                              # FILEDIGESTALGO
        (5062, STRING, "utf-8"),                              # ENCODING
        (5092, STRING_ARRAY, [payload_sha]),                  # PAYLOADDIGEST: of the compressed payload
        (5093, INT32, [SHA256]),                              # PAYLOADDIGESTALGO
    ]
