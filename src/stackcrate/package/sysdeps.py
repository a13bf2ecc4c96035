"""System dependencies of a built component, from two sources, each entry with the reasons it is there.

- declared: the component's bindep.txt, evaluated with the bindep library for the target platform, runtime
  entries only (rules selected by a user profile such as [test], [doc] or [compile] are left out);
- discovered: an ELF scan of every shared object in the venv; a library not shipped inside the venv is mapped
  to the package that ships it (Debian: the suite's Contents index; rpm: the soname itself, rpm's own
  `libfoo.so.1()(64bit)` capability).
The target interpreter package is always the first entry.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import tools
from ..archive import BadArchive, members_of
from ..cache import Cache, digest_of
from ..errors import StackcrateError
from ..model.built import BuiltComponent
from ..sources import built_source_file, download

SYSDEPS_FORMAT = 2

# bindep platform profiles of the platforms we package for (what `bindep` would detect on those systems).
PLATFORMS = {
    "debian-bookworm": ["platform:dpkg", "platform:debian", "platform:debian-bookworm", "platform:debian-12"],
    "debian-trixie": ["platform:dpkg", "platform:debian", "platform:debian-trixie", "platform:debian-13"],
    "rpm": ["platform:rpm", "platform:redhat", "platform:rhel", "platform:rhel-9"],
}
# OpenStack's bindep.txt files list build headers in the default profile (the gate compiles sdists); a venv
# we ship is already built, so headers are never needed at run time.
_HEADERS = re.compile(r"-(dev|devel|dev-all)$")


@dataclass
class SysDeps:
    kind: str                                                 # deb | rpm
    packages: dict[str, list[str]] = field(default_factory=dict)   # name (with version constraint) -> reasons
    dropped: dict[str, str] = field(default_factory=dict)         # bindep entries left out, and why

    def add(self, pkg: str, why: str) -> None:
        self.packages.setdefault(pkg, []).append(why)

    @property
    def names(self) -> list[str]:
        return list(self.packages)

    def to_json(self) -> dict:
        return {"kind": self.kind, "packages": self.packages, "dropped": self.dropped}


# ---------------------------------------------------------------- declared (bindep)

def bindep_text(built: BuiltComponent, cache: Cache) -> tuple[str | None, str]:
    """The component's bindep.txt and where it came from (None when the source has none)."""
    src = built.locked.source
    if src.built_here:
        # git/path/patched sources: sources.prepare keeps bindep.txt beside the wheel it builds
        f = built_source_file(cache, src, "bindep.txt")
        return (f.read_text(), f"{built.name} source tree") if f else (None, "no bindep.txt in the source")
    own = built.own_package
    if not own or not own.sdist:
        return None, "no sdist in the lock"
    name = own.sdist.get("name") or own.sdist["url"].rsplit("/", 1)[-1]
    sdist = download(own.sdist["url"], own.sdist["hashes"]["sha256"], name, cache)
    with tarfile.open(sdist) as tf:
        for m in tf.getmembers():
            if m.isfile() and m.name.count("/") == 1 and m.name.endswith("/bindep.txt"):
                return tf.extractfile(m).read().decode(), f"{name}:{m.name}"  # type: ignore[union-attr]
    return None, f"no bindep.txt in {name}"


def with_manifest_lines(text: str | None, origin: str, lines: tuple[str, ...]) -> tuple[str | None, str]:
    """The component's bindep.txt with the manifest's `bindep:` lines after it (evaluated alike)."""
    if not lines:
        return text, origin
    origin = f"{origin} and the manifest's bindep" if text is not None else "the manifest's bindep"
    return (text or "") + "".join(line + "\n" for line in lines), origin


def parse_bindep(text: str, where: str):
    """A bindep.txt parsed by the bindep library (bindep.depends.Depends); a clear error when it does not parse."""
    from bindep.depends import Depends, DependsException

    try:
        return Depends(text)
    except DependsException:
        pass
    # bindep's own message counts lines oddly: find the first line that does not parse on its own
    for number, line in enumerate(text.splitlines(), 1):
        try:
            Depends(line + "\n")
        except DependsException:
            raise StackcrateError(f"cannot parse bindep.txt line {number}: {line.strip()!r}", where=where,
                                  hint="fix the line (syntax: https://docs.opendev.org/opendev/bindep)") from None
    raise StackcrateError("cannot parse bindep.txt", where=where,
                          hint="fix the file (syntax: https://docs.opendev.org/opendev/bindep)")


def evaluate_bindep(text: str, platform: str, where: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Runtime entries of a bindep.txt for a platform: ([(package spec, line)], {dropped: why})."""
    profiles = PLATFORMS[platform] + ["runtime"]
    kept, dropped = [], {}
    for name, _selectors, versions in parse_bindep(text, where).active_rules(profiles):
        if _HEADERS.search(name):
            dropped[name] = "build headers (the venv is already built)"
            continue
        spec = name
        if versions:
            spec += " (" + ", ".join(f"{op} {v}" for op, v in versions) + ")"
        kept.append((spec, name))
    return kept, dropped


# ---------------------------------------------------------------- discovered (ELF)

def elf_needed(data: bytes) -> list[str]:
    """DT_NEEDED entries of a 64-bit little-endian ELF object (what the dynamic loader must find)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    try:
        return _needed(data)
    except (struct.error, IndexError, ValueError):  # truncated or odd objects (test data in wheels): no deps
        return []


def _needed(data: bytes) -> list[str]:
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    out = []
    for _name, kind, _fl, _addr, off, size, link, _info, _al, entsize in sections:
        if kind != 6:  # SHT_DYNAMIC
            continue
        stroff = sections[link][4]
        for i in range(0, size, entsize or 16):
            tag, val = struct.unpack_from("<qQ", data, off + i)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", stroff + val)
                out.append(data[stroff + val:end].decode())
    return out


def scan_tarball(tarball: Path) -> tuple[dict[str, list[str]], set[str]]:
    """({soname: [files needing it]}, basenames of every file shipped) for a component's .tar.zst (our own
    archive: read with archive.members_of, 5x quicker than tarfile)."""
    needed: dict[str, list[str]] = {}
    shipped: set[str] = set()
    try:
        for m in members_of(tarball):
            shipped.add(m.name.rsplit("/", 1)[-1])
            if m.kind == "file" and len(m.data) >= 64 and m.data[:4] == b"\x7fELF":
                for lib in elf_needed(m.data):
                    needed.setdefault(lib, []).append("/" + m.name)
    except BadArchive as exc:
        raise StackcrateError(f"cannot read the build's archive {tarball}: {exc}",
                              hint="remove that folder from the cache and build again") from None
    return needed, shipped


def contents_index(suite: str, mirror: str, cache: Cache) -> dict[str, list[str]]:
    """{library file name: [Debian packages shipping it]} from the suite's Contents-amd64 (fetched once)."""
    key = digest_of({"suite": suite, "mirror": mirror})[:16]
    path = cache.dir("sysdeps") / f"contents-{suite}-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    url = f"{mirror.rstrip('/')}/dists/{suite}/main/Contents-amd64.gz"
    raw = tools.http(url, timeout=120, hint="the ELF scan maps libraries to packages with it; check the network "
                     "or set STACKCRATE_DEBIAN_MIRROR").body
    index: dict[str, list[str]] = {}
    libpath = re.compile(rb"^(?:usr/)?lib(?:64)?/(?:x86_64-linux-gnu/)?((?:lib|ld-)[^/\s]*\.so[.\d]*)\s+(\S+)$")
    with gzip.open(io.BytesIO(raw)) as fh:
        for line in fh:
            m = libpath.match(line.rstrip(b"\n"))
            if m:
                pkgs = [p.rsplit("/", 1)[-1] for p in m.group(2).decode().split(",")]
                index.setdefault(m.group(1).decode(), []).extend(pkgs)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, sort_keys=True))
    tmp.replace(path)
    return index


def _pick(pkgs: list[str]) -> str:
    # prefer the plain runtime library package over -dbg/-dev/udeb variants and alternatives like libc6-i386
    return sorted(set(pkgs), key=lambda p: (bool(re.search(r"-(dbg|dev|udeb|i386|x32|amd64)\b", p)), len(p), p))[0]


# ---------------------------------------------------------------- both

def system_deps(built: BuiltComponent, cache: Cache, kind: str) -> SysDeps:
    """The merged system dependencies of a built component for a package kind (deb or rpm), cached."""
    key = digest_of({"v": SYSDEPS_FORMAT, "build": built.key, "kind": kind, "src": built.locked.source.to_dict(),
                     "exclude": sorted(built.sysdeps_exclude), "extra": list(built.bindep_extra)})
    path = cache.dir("sysdeps", "resolved") / f"{key}.json"
    if path.exists():
        d = json.loads(path.read_text())
        return SysDeps(d["kind"], d["packages"], d["dropped"])
    deps = SysDeps(kind)
    target = built.target
    deps.add(target.python_package, f"target interpreter {target.python}")
    text, origin = with_manifest_lines(*bindep_text(built, cache), built.bindep_extra)
    if text is not None:
        platform = target.name if kind == "deb" else "rpm"
        kept, deps.dropped = evaluate_bindep(text, platform, f"{built.name}: {origin}")
        excluded = set(built.sysdeps_exclude)
        for spec, name in kept:
            if name in excluded:
                deps.dropped[name] = "excluded in the manifest (sysdeps_exclude)"
                continue
            deps.add(spec, f"bindep.txt: {name}")
    needed, shipped = scan_tarball(built.tarball)
    missing = {lib: files for lib, files in sorted(needed.items()) if lib not in shipped}
    if missing and kind == "deb":
        index = contents_index(target.suite, target.mirror, cache)
        for lib, files in missing.items():
            if lib not in index:
                raise StackcrateError(f"{files[0]} needs {lib}, which no {target.suite} package ships",
                                      hint="add the library to the venv (a wheel that bundles it) or report it")
            deps.add(_pick(index[lib]), f"ELF: {_short(files)} needs {lib}")
    for lib, files in missing.items() if kind == "rpm" else ():
        deps.add(f"{lib}()(64bit)", f"ELF: {_short(files)} needs {lib}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(deps.to_json()))  # insertion order matters: the interpreter comes first
    tmp.replace(path)
    return deps


def _short(files: list[str]) -> str:
    return files[0] + (f" (+{len(files) - 1} more)" if len(files) > 1 else "")
