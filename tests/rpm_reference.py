"""rpmbuild as the reference rpm writer: the same tree (a build's .tar.zst) packaged by rpmbuild with the name,
tags and dependencies of a package stackcrate wrote, and the attributes both must agree on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# what rpm installs and verifies of each file (not FILECLASS: rpmbuild takes it from libmagic, stackcrate names
# ELF objects only; not FILEINODES: numbers, unique in both)
FILE_ATTRS = ("FILENAMES", "FILEMODES", "FILESIZES", "FILEDIGESTS", "FILEMTIMES", "FILELINKTOS", "FILEUSERNAME",
              "FILEGROUPNAME", "FILEFLAGS", "FILEVERIFYFLAGS", "FILECOLORS", "FILEDEVICES", "FILERDEVS", "FILELANGS")
PACKAGE_ATTRS = ("NAME", "VERSION", "RELEASE", "ARCH", "OS", "SUMMARY", "DESCRIPTION", "LICENSE", "URL", "GROUP",
                 "BUILDTIME", "SIZE", "SOURCERPM", "PAYLOADFORMAT", "PAYLOADCOMPRESSOR", "FILEDIGESTALGO")
# the settings stackcrate ran rpmbuild with when rpmbuild wrote its packages
RPMBUILD_SETTINGS = {
    "_buildhost": "stackcrate", "use_source_date_epoch_as_buildtime": "1", "clamp_mtime_to_source_date_epoch": "1",
    "__os_install_post": "%{nil}", "debug_package": "%{nil}", "_build_id_links": "none",
    "_binary_payload": "w3.zstdio", "_binary_filedigest_algorithm": "8",
}


def rpm(*args) -> str:
    return subprocess.run(["rpm", *map(str, args)], capture_output=True, text=True, check=True).stdout


def query(pkg: Path, tags: tuple[str, ...]) -> str:
    """One line per file for FILE_ATTRS, else one `TAG=value` line per tag."""
    fmt = "[" + " ".join(f"%{{{t}}}" for t in tags) + "\n]" if tags is FILE_ATTRS else \
        "\n".join(f"{t}=%{{{t}}}" for t in tags)
    return rpm("-qp", "--qf", fmt, pkg)


def rpmbuild_of(pkg: Path, tarball: Path, work: Path) -> Path:
    """rpmbuild's package of tarball's venv, declared as pkg declares it."""
    info = dict(line.split("=", 1) for line in query(pkg, ("NAME", "VERSION", "SUMMARY", "LICENSE", "URL",
                                                           "BUILDTIME")).split("\n"))
    name = info["NAME"]
    requires = [r for r in rpm("-qpR", pkg).splitlines() if not r.startswith("rpmlib(")]
    provides = [p for p in rpm("-qp", "--provides", pkg).splitlines()
                if not p.startswith((f"{name} ", f"{name}("))]  # rpmbuild adds those two itself
    top = work / "rpmbuild"
    (top / "SPECS").mkdir(parents=True)
    spec = top / "SPECS" / "ref.spec"
    spec.write_text("\n".join([
        f"Name: {name}", f"Version: {info['VERSION']}", "Release: 1", f"Summary: {info['SUMMARY']}",
        f"License: {info['LICENSE']}", f"URL: {info['URL']}", "AutoReqProv: no",
        *(f"Provides: {p}" for p in provides), *(f"Requires: {r}" for r in requires), "",
        "%description", rpm("-qp", "--qf", "%{DESCRIPTION}", pkg), "", "%install",
        f"mkdir -p %{{buildroot}} && tar -x -f {tarball} --use-compress-program=zstd -C %{{buildroot}}", "",
        "%files", f"/opt/openstack/{name.removeprefix('openstack-')}", ""]))
    defines = [a for k, v in {**RPMBUILD_SETTINGS, "_topdir": str(top)}.items() for a in ("--define", f"{k} {v}")]
    subprocess.run(["rpmbuild", "-bb", "--quiet", *defines, spec], check=True, capture_output=True,
                   env={**os.environ, "SOURCE_DATE_EPOCH": info["BUILDTIME"], "TZ": "UTC", "LC_ALL": "C"})
    (ref,) = (top / "RPMS").rglob("*.rpm")
    return ref


def differences(ours: Path, theirs: Path) -> dict[str, tuple[str, str]]:
    """What rpm reads differently from the two packages: {what: (ours, theirs)}; empty when they agree."""
    out = {}
    for what, read in (("files", lambda p: query(p, FILE_ATTRS)), ("tags", lambda p: query(p, PACKAGE_ATTRS)),
                       ("requires", lambda p: rpm("-qpR", p)), ("provides", lambda p: rpm("-qp", "--provides", p))):
        a, b = read(ours), read(theirs)
        if a != b:
            out[what] = (a, b)
    return out
