"""The .deb, as an operator uses it: apt installs it from a published repo into a fresh Debian 12, it runs,
verifies clean and purges without a trace; lintian finds nothing beyond the documented overrides."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from stackcrate.package.deb import LINTIAN_OVERRIDES
from tests.integration.conftest import chroot

PKG = "openstack-keystone-29.1.0"
VENV = "/opt/openstack/keystone-29.1.0"


def deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "--field", deb, field], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_control_names_version_and_declared_depends(native):
    deb = native["files"]["deb"]
    assert deb_field(deb, "Package") == PKG
    assert deb_field(deb, "Version") == "29.1.0"
    depends = [d.strip() for d in deb_field(deb, "Depends").split(",")]
    assert depends[0] == "python3.11"
    # bindep.txt (runtime, for debian-12) and the ELF scan both contribute; headers and excluded servers do not
    assert {"gettext", "mariadb-client", "postgresql-client", "libstdc++6", "libgcc-s1", "libc6"} <= set(depends)
    assert not any(d.endswith("-dev") or d in ("mariadb-server", "postgresql") for d in depends)
    listing = subprocess.run(["dpkg-deb", "--ctrl-tarfile", deb], capture_output=True, check=True).stdout
    assert b"./md5sums" in listing


def test_apt_install_run_verify_purge(published, fresh_rootfs):
    root = fresh_rootfs
    shutil.copytree(published["repo"] / "apt", root / "srv/repo")
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    (root / "etc/apt/sources.list.d/stackcrate.list").write_text("deb [trusted=yes] file:/srv/repo ./\n")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    chroot(root, "apt-get", "update", "-q", env=env)
    res = chroot(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", PKG, env=env)
    # apt pulled the declared system packages from Debian's archive
    for dep in ("gettext", "mariadb-client", "postgresql-client"):
        assert chroot(root, "dpkg-query", "-W", "-f=${Status}", dep).stdout == "install ok installed", res.stdout
    ver = chroot(root, f"{VENV}/bin/keystone-manage", "--version")
    assert ver.stdout.strip() == "29.1.0", ver
    verify = chroot(root, "dpkg", "--verify", PKG, check=False)
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, "", "")
    files = chroot(root, "dpkg", "-L", PKG).stdout.split()
    assert f"{VENV}/bin/keystone-manage" in files
    chroot(root, "apt-get", "purge", "-y", "-q", PKG, env=env)
    left = [f for f in files if (root / f.lstrip("/")).exists() and not (root / f.lstrip("/")).is_dir()]
    assert left == []
    assert not (root / VENV.lstrip("/")).exists()


def test_lintian_clean_beyond_documented_overrides(native):
    res = subprocess.run(["lintian", "--tag-display-limit", "0", native["files"]["deb"]], capture_output=True,
                         text=True)
    problems = [ln for ln in (res.stdout + res.stderr).splitlines() if ln[:2] in ("E:", "W:")]
    assert problems == [], "\n".join(problems[:50])
    # every override is documented by a comment and names the venv path or /opt/openstack only
    rules = [ln for ln in LINTIAN_OVERRIDES.splitlines() if ln and not ln.startswith("#")]
    assert rules and all("opt/openstack" in r or "{path}" in r for r in rules)
