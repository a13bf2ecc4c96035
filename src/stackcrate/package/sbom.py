"""CycloneDX 1.6 JSON SBOM of one artifact: the component (with its source revision), every Python distribution
in its venv (with the hashes of the exact file the lock pinned) and the system packages it needs; for a system
image, every Debian package in it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from .. import __version__
from ..cache import digest_of
from ..model.built import BuiltComponent
from ..model.lock import LockedPackage
from ..model.source import LockedGit
from .sysdeps import SysDeps


def _locked_file(built: BuiltComponent, pkg: LockedPackage) -> dict | None:
    """The wheel (or sdist) of pkg the build installed, as the lock records it."""
    return pkg.best_wheel(built.target.wheel_ranks) or pkg.sdist


def document(built: BuiltComponent, deps: SysDeps, artifact: str) -> dict:
    distro = "debian-" + {"bookworm": "12", "trixie": "13"}.get(built.target.suite, built.target.suite)
    src = built.locked.source
    root_ref = f"pkg:pypi/{built.name.lower()}@{quote(built.version)}"
    components = []
    for pkg in sorted(built.packages, key=lambda p: p.key):
        purl = f"pkg:pypi/{pkg.key}@{quote(pkg.version)}"
        if purl == root_ref:
            continue
        c: dict = {"type": "library", "bom-ref": purl, "name": pkg.name, "version": pkg.version, "purl": purl}
        f = _locked_file(built, pkg)
        if f and f.get("hashes", {}).get("sha256"):
            c["hashes"] = [{"alg": "SHA-256", "content": f["hashes"]["sha256"]}]
            if f.get("url"):
                c["externalReferences"] = [{"type": "distribution", "url": f["url"]}]
        components.append(c)
    for spec, why in deps.packages.items():
        name = spec.split(" ", 1)[0]
        if deps.kind == "deb":
            purl = f"pkg:deb/debian/{name}?arch=amd64&distro={distro}"
        else:
            purl = f"pkg:generic/{quote(name)}?type=rpm-capability"
        components.append({"type": "library", "bom-ref": purl, "name": name,
                           "purl": purl, "scope": "required",
                           "properties": [{"name": "stackcrate:sysdep-reason", "value": w} for w in why]})
    main: dict = {"type": "application", "bom-ref": root_ref, "name": built.name, "version": built.version,
                  "purl": root_ref,
                  "properties": [{"name": "stackcrate:source-type", "value": src.type},
                                 {"name": "stackcrate:source-revision", "value": built.locked.revision},
                                 {"name": "stackcrate:series", "value": built.series},
                                 {"name": "stackcrate:target", "value": built.target.name},
                                 {"name": "stackcrate:install-path", "value": built.install_path},
                                 {"name": "stackcrate:build-key", "value": built.key}]}
    own = built.own_package
    f = _locked_file(built, own) if own else None
    if f and f.get("hashes", {}).get("sha256"):
        main["hashes"] = [{"alg": "SHA-256", "content": f["hashes"]["sha256"]}]
    if isinstance(src, LockedGit):
        main["externalReferences"] = [{"type": "vcs", "url": src.url, "comment": f"commit {src.commit}"}]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        # deterministic: the same build gives the same document
        "serialNumber": uuid.UUID(digest_of({"build": built.key, "artifact": artifact})[:32]).urn,
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(built.epoch)),
            "tools": {"components": [{"type": "application", "name": "stackcrate", "version": __version__}]},
            "component": main,
            "properties": [{"name": "stackcrate:artifact", "value": artifact}],
        },
        "components": components,
        "dependencies": [{"ref": root_ref, "dependsOn": [c["bom-ref"] for c in components]}]
        + [{"ref": c["bom-ref"]} for c in components],
    }


def write(built: BuiltComponent, deps: SysDeps, out: Path, artifact: str) -> None:
    out.write_text(json.dumps(document(built, deps, artifact), indent=2, sort_keys=True) + "\n")


def debian_document(name: str, version: str, packages: dict[str, tuple[str, str]], target, epoch: int,
                    artifact: str) -> dict:
    """The SBOM of a system image: every Debian package installed in it, at its exact version."""
    distro = "debian-" + {"bookworm": "12", "trixie": "13"}.get(target.suite, target.suite)

    def purl(pkg: str, ver: str, arch: str) -> str:
        return f"pkg:deb/debian/{pkg}@{quote(ver)}?arch={arch}&distro={distro}"

    root_ref = f"stackcrate-image:{name}@{quote(version)}"
    components = [{"type": "library", "bom-ref": purl(p, v, a), "name": p, "version": v, "purl": purl(p, v, a)}
                  for p, (v, a) in sorted(packages.items())]
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.6",
        "serialNumber": uuid.UUID(digest_of({"image": name, "packages": sorted(packages.items()),
                                             "artifact": artifact})[:32]).urn,
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
            "tools": {"components": [{"type": "application", "name": "stackcrate", "version": __version__}]},
            "component": {"type": "container", "bom-ref": root_ref, "name": name, "version": version,
                          "properties": [{"name": "stackcrate:target", "value": target.name}]},
            "properties": [{"name": "stackcrate:artifact", "value": artifact}],
        },
        "components": components,
        "dependencies": [{"ref": root_ref, "dependsOn": [c["bom-ref"] for c in components]}]
        + [{"ref": c["bom-ref"]} for c in components],
    }


def write_debian(name: str, version: str, packages: dict[str, tuple[str, str]], target, epoch: int, out: Path,
                 artifact: str) -> None:
    out.write_text(json.dumps(debian_document(name, version, packages, target, epoch, artifact), indent=2,
                              sort_keys=True) + "\n")
