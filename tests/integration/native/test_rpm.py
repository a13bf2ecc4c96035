"""The .rpm passes rpm's own checks, declares the interpreter and the bindep rpm entries, and verifies clean."""

from __future__ import annotations

import re
import subprocess

from tests.rpm_reference import FILE_ATTRS, differences, query, rpmbuild_of


def rpm(*args, check=True):
    return subprocess.run(["rpm", *map(str, args)], capture_output=True, text=True, check=check)


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
    # Plain -V: not one file differs; what it prints is only that the scratch root (installed --nodeps, with no
    # other package in it) lacks the platform the package declares, each declared requirement exactly once.
    res = rpm("--root", scratch, "-V", "openstack-keystone-29.1.0", check=False)
    lines = res.stdout.splitlines()
    assert lines[0] == "Unsatisfied dependencies for openstack-keystone-29.1.0-29.1.0-1.x86_64:", res.stdout
    needed = [line.strip().removesuffix(" is needed by (installed) openstack-keystone-29.1.0-29.1.0-1.x86_64")
              for line in lines[1:]]
    assert sorted(needed) == sorted(r for r in requires if r and not r.startswith("rpmlib(")), res.stdout
    assert res.stderr == ""
    # and with the dependency check left out, as at install time, -V reports nothing at all
    res = rpm("--root", scratch, "-V", "--nodeps", "openstack-keystone-29.1.0", check=False)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    # a changed file is reported (the check can fail)
    (scratch / "opt/openstack/keystone-29.1.0/bin/keystone-manage").write_text("#!/bin/sh\n")
    res = rpm("--root", scratch, "-V", "--nodeps", "openstack-keystone-29.1.0", check=False)
    assert res.returncode != 0 and "/opt/openstack/keystone-29.1.0/bin/keystone-manage" in res.stdout


def test_rpm_elf_objects_keep_their_64_bit_colour(native):
    # the class stackcrate gives each file (rpm.elf_class) must name every ELF object of the venv as 64-bit, and
    # nothing else: rpm tells 32- from 64-bit objects by it
    pkg = native["files"]["rpm"]
    rows = rpm("-qp", "--qf", "[%{FILECOLORS} %{FILECLASS}|%{FILENAMES}\n]", pkg).stdout.splitlines()
    elf = [r for r in rows if re.search(r"\.so(\.\d+)*$", r) and "symbolic link" not in r]
    assert elf, "the venv has shared objects"
    for row in elf:
        assert row.startswith("2 ELF 64-bit LSB shared object"), row
    assert all(r.startswith("0 ") for r in rows if "ELF" not in r), "only ELF objects are coloured"


def test_rpm_records_every_file_and_dependency_as_rpmbuild_does_from_the_same_tree(native, tmp_path):
    # rpmbuild is the reference writer: from the same tree, with the settings stackcrate used when it ran it, it
    # must record every file exactly as stackcrate's own writer does (what rpm -V and the installer read)
    pkg = native["files"]["rpm"]
    ref = rpmbuild_of(pkg, native["files"]["tar"], tmp_path)
    assert query(pkg, FILE_ATTRS).count("\n") > 10_000
    assert differences(pkg, ref) == {}
