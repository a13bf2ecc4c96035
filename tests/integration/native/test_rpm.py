"""The .rpm passes rpm's own checks, declares the interpreter and the bindep rpm entries, and verifies clean."""

from __future__ import annotations

import subprocess

import pytest


def rpm(*args, check=True):
    return subprocess.run(["rpm", *map(str, args)], capture_output=True, text=True, check=check)


@pytest.mark.slow
def test_rpm_signature_requires_install_verify(native, tmp_path):
    pkg = native["files"]["rpm"]
    assert "digests OK" in rpm("-K", pkg).stdout
    requires = set(rpm("-qpR", pkg).stdout.split("\n"))
    # interpreter + keystone's bindep.txt for an rpm platform (headers and excluded servers left out) + ELF scan
    assert {"python3.11", "gettext", "mariadb", "libstdc++.so.6()(64bit)", "libc.so.6()(64bit)"} <= requires
    assert not any(r.endswith("-devel") or r in ("mariadb-server", "postgresql-server") for r in requires)
    assert rpm("-qp", "--qf", "%{NAME} %{VERSION}", pkg).stdout == "openstack-keystone-29.1.0 29.1.0"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    rpm("--root", scratch, "-i", "--nodeps", pkg)
    assert (scratch / "opt/openstack/keystone-29.1.0/bin/keystone-manage").is_file()
    # --nodeps: the scratch root has no other package, so only the files are verified (as installed above)
    res = rpm("--root", scratch, "-V", "--nodeps", "openstack-keystone-29.1.0", check=False)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
