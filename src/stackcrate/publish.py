"""The publish stage: turn a build's output folder into repositories many machines install from.

  apt/  a flat apt repository (Packages, Packages.gz, Release): `deb [trusted=yes] file:/path/apt ./`
  yum/  a yum repository made by createrepo_c
  oci/  one OCI image layout holding every image (tags name:version), for skopeo/podman/registries
Everything is written beside the target and renamed into place, so a failed publish leaves no half repo.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import time
from pathlib import Path

from .cache import remove_tree
from .errors import StackcrateError
from .model.artifacts import ArtifactIndex
from .package.oci import gather
from .tools import ToolFailed, dpkg_deb, run, which


def apt_repo(debs: list[Path], dest: Path, epoch: int, place=shutil.copyfile) -> None:
    """place(src, dst) puts each .deb into the repository (a copy; a caller may link instead)."""
    dest.mkdir(parents=True)
    stanzas = []
    for deb in sorted(debs):
        place(deb, dest / deb.name)
        control = dpkg_deb(["--field", deb]).stdout.strip()
        data = deb.read_bytes()
        stanzas.append(f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    (dest / "Packages").write_bytes(packages)
    (dest / "Packages.gz").write_bytes(gzip.compress(packages, 9, mtime=0))
    files = {n: (dest / n).read_bytes() for n in ("Packages", "Packages.gz")}
    release = ["Origin: stackcrate", "Label: stackcrate", "Architectures: amd64",
               "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(epoch)), "MD5Sum:"]
    release += [f" {hashlib.md5(b).hexdigest()} {len(b)} {n}" for n, b in files.items()]
    release += ["SHA256:"] + [f" {hashlib.sha256(b).hexdigest()} {len(b)} {n}" for n, b in files.items()]
    (dest / "Release").write_text("\n".join(release) + "\n")


def yum_repo(rpms: list[Path], dest: Path, epoch: int) -> None:
    dest.mkdir(parents=True)
    for rpm in sorted(rpms):
        shutil.copyfile(rpm, dest / rpm.name)
    try:
        run([which("createrepo_c", "createrepo-c"), "--quiet", "--no-database", "--simple-md-filenames",
             "--revision", str(epoch), "--set-timestamp-to-revision", dest])
    except ToolFailed as exc:
        raise StackcrateError(f"createrepo_c failed:\n{exc.stderr.strip()[-1500:]}") from None


def publish(src: Path, dest: Path) -> dict:
    """Write dest/apt, dest/yum and dest/oci from the .deb, .rpm and OCI artifacts listed in src/artifacts.json."""
    index = ArtifactIndex.load(src)
    by_fmt: dict[str, list[Path]] = {}
    for a in index.artifacts:
        by_fmt.setdefault(a.format, []).append(index.path(a))
    missing = [p for ps in by_fmt.values() for p in ps if not p.is_file()]
    if missing:
        raise StackcrateError(f"{missing[0]} is listed in artifacts.json but missing",
                              hint="run `stackcrate build` again")
    epoch = max((a.source_date_epoch for a in index.artifacts), default=0)
    done = {}
    dest.mkdir(parents=True, exist_ok=True)
    for name, fmt, fn in (("apt", "deb", apt_repo), ("yum", "rpm", yum_repo), ("oci", "oci", gather)):
        if fmt not in by_fmt:
            continue
        tmp = dest / f".{name}.tmp"
        remove_tree(tmp)
        try:
            fn(by_fmt[fmt], tmp, *([epoch] if fmt != "oci" else []))
        except BaseException:
            remove_tree(tmp)
            raise
        remove_tree(dest / name)
        tmp.rename(dest / name)
        done[name] = {"path": str(dest / name), "artifacts": len(by_fmt[fmt])}
    if not done:
        raise StackcrateError(f"{src} holds no .deb, .rpm or OCI image",
                              hint="build with --format deb/rpm/oci (or list them in the manifest's formats)")
    return done
