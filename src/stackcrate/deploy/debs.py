"""Venvs that dpkg installs from the deployment's .deb artifacts (configuration `venvs_from: debs`; what
`stackcrate deploy -i` gives every host: apt installs the packages, pinned, from the deploy host's repository and
keeps the .deb files it fetched in the host's artifacts folder).

dpkg owns those files, not stackcrate, so stackcrate never unpacks them or removes them (`rm --purge` keeps
them: `apt-get purge` does that). What it does is check, before anything runs from them, that what dpkg
installed is what artifacts.json lists:
- the .deb has the sha256 artifacts.json gives (install.py checks every artifact file so);
- dpkg has the package installed at that version with the file list and checksums that very .deb carries (its
  md5sums control file, which dpkg keeps as it is): a package of the same name and version built otherwise is
  told apart;
- `dpkg --verify` finds no file of the package changed since (init only: it reads every file).
A package missing is installed (`dpkg -i`, its Debian dependencies being there); one that differs is replaced
only when asked (`init --reinstall`), as with the venv archives.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from ..model.artifacts import Artifact

DPKG_INFO = Path("/var/lib/dpkg/info")
INSTALL_TIMEOUT = 600.0


def package(a: Artifact) -> str:
    """The Debian package of a .deb artifact (its file is <package>_<version>_<arch>.deb)."""
    return a.file.split("_", 1)[0]


def installed_versions(packages: list[str]) -> dict[str, str]:
    """package -> version, for those of packages dpkg has installed (wholly: status `ii`)."""
    r = tools.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", *packages],
                  check=False, timeout=60)
    out = {}
    for line in r.stdout.splitlines():
        name, version, status = (line.split("\t") + ["", ""])[:3]
        if status.strip() == "ii":
            out[name] = version
    return out


def contents_digest(deb: Path) -> str:
    """A digest of what the .deb holds: its md5sums (every file, with its checksum)."""
    return hashlib.sha256(tools.dpkg_deb(["--info", deb, "md5sums"]).stdout.encode()).hexdigest()


def installed_digest(pkg: str) -> str | None:
    """The same digest of the package as dpkg installed it; None when dpkg has no md5sums for it."""
    for name in (f"{pkg}.md5sums", f"{pkg}:amd64.md5sums"):
        try:
            return hashlib.sha256((DPKG_INFO / name).read_bytes()).hexdigest()
        except FileNotFoundError:
            continue
    return None


def changed_files(pkg: str) -> list[str]:
    """The package's files that differ from what dpkg installed (`dpkg --verify`: checksum changed or missing)."""
    r = tools.run(["dpkg", "--verify", pkg], check=False, timeout=300)
    return [line.split(None, 2)[-1] for line in r.stdout.splitlines() if line.strip()]


def depends(deb: Path) -> list[str]:
    """The Debian packages a .deb depends on, as names apt installs (the first of alternatives, no versions)."""
    field = tools.dpkg_deb(["--field", deb, "Depends"]).stdout
    return [p.split("|")[0].split("(")[0].strip() for p in field.split(",") if p.strip()]


def install(debs: list[Path]) -> None:
    """dpkg -i the files (a missing package, or one replaced when asked); a clear error when their Debian
    dependencies are not there."""
    r = tools.run(["dpkg", "--install", *debs], check=False, timeout=INSTALL_TIMEOUT)
    if r.returncode != 0:
        needed = {name for deb in debs for name in depends(deb)}
        raise StackcrateError(f"dpkg could not install {', '.join(p.name for p in debs)}: "
                              f"{(r.stderr or r.stdout).strip()[-1500:]}",
                              hint="install their Debian dependencies first (apt-get install "
                                   f"{' '.join(sorted(needed))}); `stackcrate deploy -i` does it on every host")
