""".deb of a built component, written by Debian's own dpkg-deb.

Naming: the package is `openstack-<name>-<version>` (Version: <version>). The venv lives at a versioned path,
so with the version in the package name two releases of a component are two packages that install side by
side (as Debian does with python3.11/python3.12), and upgrading is an explicit, reversible choice. Every package
also `Provides: openstack-<name>`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import textwrap
import time
from pathlib import Path

from ..cache import Cache
from ..errors import StackcrateError
from ..model.built import BuiltComponent
from ..tools import ToolFailed, dpkg_deb
from ..ui import UI
from . import Made, cached, sbom, sysdeps, unpacked

DEB_FORMAT = 4
GZ_LEVEL = 6   # data.tar.gz: gzip reads everywhere (dpkg before 1.21.18 knows no zstd); 6 is gzip's own default

# What lintian flags that is inherent to shipping a self-contained venv under /opt, and nothing else. Each
# names the venv path, so anything else the package holds is still checked.
LINTIAN_OVERRIDES = """\
# A stackcrate package is a self-contained Python venv under /opt/openstack (FHS: add-on software), by design.
dir-or-file-in-opt [opt/openstack/*]
# `uv venv` writes a .gitignore into every venv.
package-contains-vcs-control-file [{path}/.gitignore]
# Byte-code is shipped on purpose: compiled at build time with unchecked-hash, so it is never rewritten at run
# time (dpkg --verify stays clean) and the first start is not slowed by compiling.
package-installs-python-pycache-dir [{path}/*]
# Console scripts point at the venv's own interpreter, by design of a venv.
unusual-interpreter *[{path}/*]
# The venv keeps each wheel's files exactly as published (their RECORD hashes must still match), so these
# come from the bundled distributions, not from us: modes and shebangs of modules, unstripped extension
# modules, libraries vendored into extensions (PyYAML's libyaml), HTML pages linking to CDNs, netaddr's copy
# of the IEEE OUI registry, templates that look like shell scripts (oslo.config's bash-completion.template).
script-not-executable [{path}/*]
executable-not-elf-or-script [{path}/*]
unstripped-binary-or-object [{path}/*]
embedded-library *[{path}/*]
privacy-breach-generic *[{path}/*]
privacy-breach-uses-embedded-file *[{path}/*]
package-installs-ieee-data [{path}/*]
shell-script-fails-syntax-check [{path}/*]
"""


def maintainer() -> str:
    return os.environ.get("STACKCRATE_MAINTAINER") or "stackcrate <stackcrate@example.com>"


def package_name(built: BuiltComponent) -> str:
    return f"openstack-{built.name}-{built.version}".lower().replace("_", "-")


def make(built: BuiltComponent, cache: Cache, ui: UI) -> list[Made]:
    deps = sysdeps.system_deps(built, cache, "deb")
    name = package_name(built)
    fname = f"{name}_{built.version}_amd64.deb"

    def build(out: Path) -> None:
        with ui.step(f"Writing {fname}"), unpacked(built, cache) as root:
            write_deb(built, deps, root, out / fname)
            sbom.write(built, deps, out / f"{fname}.cdx.json", fname)

    inputs = {"v": DEB_FORMAT, "build": built.key, "deps": deps.to_json(), "order": deps.names}
    entry, made = cached(cache, "deb", inputs, build)
    return [Made("deb", entry / fname, made), Made("sbom", entry / f"{fname}.cdx.json", made)]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def write_deb(built: BuiltComponent, deps: sysdeps.SysDeps, root: Path, out: Path) -> None:
    name = package_name(built)
    doc = root / "usr/share/doc" / name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_text(built, root))
    (doc / "changelog.gz").write_bytes(_gzip(
        f"{name} ({built.version}) unstable; urgency=medium\n\n  * Built by stackcrate from the "
        f"{built.series} lock (build {built.key[:12]}).\n\n -- {maintainer()}  "
        f"{_rfc2822(built.epoch)}\n".encode()))
    overrides = root / "usr/share/lintian/overrides"
    overrides.mkdir(parents=True)
    (overrides / name).write_text(LINTIAN_OVERRIDES.format(path=built.install_path.lstrip("/")))
    for p in (doc / "copyright", doc / "changelog.gz", overrides / name):
        p.chmod(0o644)
    for d in (root / "usr", root / "usr/share", root / "usr/share/doc", doc, root / "usr/share/lintian",
              overrides):
        d.chmod(0o755)

    ctl = root / "DEBIAN"
    ctl.mkdir()
    sums, size = [], 0
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if Path(dirpath, d) != ctl)
        size += 1
        for f in sorted(files):
            p = Path(dirpath) / f
            if p.is_symlink():
                continue
            size += (p.stat().st_size + 1023) // 1024
            sums.append(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}\n")
    (ctl / "md5sums").write_text("".join(sorted(sums, key=lambda s: s[34:])))
    desc = built.describe()
    control = {
        "Package": name,
        "Version": built.version,
        "Architecture": "amd64",
        "Maintainer": maintainer(),
        "Installed-Size": str(size),
        "Depends": ", ".join(deps.names),
        "Provides": f"openstack-{built.name}".lower().replace("_", "-"),
        "Section": "net",
        "Priority": "optional",
        "Homepage": f"https://pypi.org/project/{built.name}/",
        "Description": f"OpenStack {built.name} {built.version} ({built.series}), self-contained venv\n"
                       + "".join(f" {line}\n" for line in textwrap.wrap(desc, 72)).rstrip("\n"),
    }
    (ctl / "control").write_text("".join(f"{k}: {v}\n" for k, v in control.items()))
    for p in ctl.iterdir():
        p.chmod(0o644)
    ctl.chmod(0o755)
    try:
        dpkg_deb(["--root-owner-group", "-Zgzip", f"-z{GZ_LEVEL}", "--build", root, out],
                 env={"SOURCE_DATE_EPOCH": str(built.epoch)})
    except ToolFailed as exc:
        raise StackcrateError(f"dpkg-deb could not build {out.name}:\n{exc.stderr.strip()[-1500:]}") from None


def copyright_text(built: BuiltComponent, root: Path) -> str:
    """Which distributions the venv bundles, with the license each declares."""
    lines = [f"{built.name} {built.version} and the Python distributions bundled in {built.install_path}.",
             f"Copyright (c) {time.gmtime(built.epoch).tm_year} and earlier years, the authors of each",
             "distribution listed below; each distribution's own copyright",
             "notice and license text are in its *.dist-info folder there. Apache-2.0 licensed ones: see",
             "/usr/share/common-licenses/Apache-2.0.", ""]
    for meta in sorted(root.glob(built.install_path.lstrip("/") + "/lib/python*/site-packages/*.dist-info/METADATA")):
        fields: dict[str, str] = {}
        classifiers = []
        for line in meta.read_text(errors="replace").split("\n\n", 1)[0].splitlines():
            k, _, v = line.partition(": ")
            if k == "Classifier" and v.startswith("License ::"):
                classifiers.append(v.rsplit(" :: ", 1)[-1])
            elif k in ("Name", "Version", "License-Expression", "License") and k not in fields:
                fields[k] = v.strip()
        lic = fields.get("License-Expression") or (fields.get("License") or "")[:80] or ", ".join(classifiers)
        lines.append(f"{fields.get('Name', meta.parent.name)} {fields.get('Version', '')}: {lic or 'unknown'}")
    return "\n".join(lines) + "\n"


def _rfc2822(epoch: int) -> str:
    from email.utils import formatdate

    return formatdate(epoch, usegmt=False, localtime=False).replace("-0000", "+0000")
