"""System dependencies: bindep.txt evaluated per platform (runtime only) and the ELF scan of shipped objects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stackcrate.build import BuiltComponent
from stackcrate.cache import Cache
from stackcrate.errors import StackcrateError
from stackcrate.lockfile import LockedComponent
from stackcrate.package import sysdeps
from stackcrate.package.tarball import write_tar_zst
from stackcrate.targets import get_target

BINDEP = """\
gettext
libxml2-dev [platform:dpkg]
libxml2-devel [platform:rpm]
mysql-client [platform:dpkg !platform:debian]
mariadb-client [platform:debian]
mariadb [platform:rpm]
libpq5 [platform:dpkg runtime]
graphviz [test doc]
libffi8 [platform:debian-bookworm]
libffi7 [platform:debian-bullseye]
ca-certificates [compile]
"""


def test_bindep_runtime_entries_for_debian_12():
    kept, dropped = sysdeps.evaluate_bindep(BINDEP, "debian-bookworm", "t")
    assert [k for k, _ in kept] == ["gettext", "mariadb-client", "libpq5", "libffi8"]
    assert list(dropped) == ["libxml2-dev"]


def test_bindep_runtime_entries_for_rpm():
    kept, dropped = sysdeps.evaluate_bindep(BINDEP, "rpm", "t")
    assert [k for k, _ in kept] == ["gettext", "mariadb"]
    assert list(dropped) == ["libxml2-devel"]


def test_bindep_version_constraints_are_kept():
    kept, _ = sysdeps.evaluate_bindep("libfoo1 [platform:dpkg] >=1.2\n", "debian-bookworm", "t")
    assert kept == [("libfoo1 (>= 1.2)", "libfoo1")]


def test_unparsable_bindep_is_a_clear_error():
    with pytest.raises(StackcrateError) as exc:
        sysdeps.evaluate_bindep("gettext [platform:dpkg\n", "debian-bookworm", "svc: bindep.txt")
    assert "cannot parse bindep.txt" in exc.value.render() and "svc: bindep.txt" in exc.value.render()


def _gcc(*args: str, cwd: Path) -> None:
    subprocess.run(["gcc", "-shared", "-fPIC", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.slow  # fetches Debian's Contents index once (then cached)
def test_elf_scan_maps_a_planted_libxml2_extension_to_its_debian_package(cache_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "stub.c").write_text("int stub(void) { return 0; }\n")
    # a stand-in libxml2.so.2 (only its soname matters for linking) and a library bundled in the wheel
    _gcc("-o", "libxml2.so.2", "-Wl,-soname,libxml2.so.2", "stub.c", cwd=src)
    _gcc("-o", "libbundled-1a2b3c.so.1", "-Wl,-soname,libbundled-1a2b3c.so.1", "stub.c", cwd=src)
    _gcc("-o", "_ext.so", "stub.c", "-Wl,--no-as-needed", "-L.", "-l:libxml2.so.2", "-l:libbundled-1a2b3c.so.1",
         cwd=src)
    needed = sysdeps.elf_needed((src / "_ext.so").read_bytes())
    assert {"libxml2.so.2", "libbundled-1a2b3c.so.1", "libc.so.6"} <= set(needed)

    root = tmp_path / "root"
    site = root / "opt/openstack/planted-1.0/lib/python3.11/site-packages"
    (site / "planted").mkdir(parents=True)
    (site / "planted.libs").mkdir()
    (src / "_ext.so").rename(site / "planted" / "_ext.cpython-311-x86_64-linux-gnu.so")
    (src / "libbundled-1a2b3c.so.1").rename(site / "planted.libs" / "libbundled-1a2b3c.so.1")
    (site / "planted" / "__init__.py").write_text("")
    tarball = tmp_path / "planted-1.0.tar.zst"
    write_tar_zst(root, tarball, 1700000000)
    built = BuiltComponent(
        name="planted", version="1.0", install_path="/opt/openstack/planted-1.0", tarball=tarball, key="k" * 64,
        epoch=1700000000, target=get_target("debian-bookworm"), series="2026.1",
        locked=LockedComponent("planted", "1.0", {"type": "path", "digest": "none"}, ["planted"], 1700000000),
        packages=[])
    deb = sysdeps.resolve(built, Cache(cache_dir), "deb")
    assert deb.names[0] == "python3.11"
    assert "libxml2" in deb.packages and "libc6" in deb.packages
    ext = "/opt/openstack/planted-1.0/lib/python3.11/site-packages/planted/_ext.cpython-311-x86_64-linux-gnu.so"
    assert deb.packages["libxml2"] == [f"ELF: {ext} needs libxml2.so.2"]
    assert not any("bundled" in w for why in deb.packages.values() for w in why)  # shipped inside the venv
    rpm = sysdeps.resolve(built, Cache(cache_dir), "rpm")
    assert "libxml2.so.2()(64bit)" in rpm.packages and "python3.11" in rpm.packages


def test_elf_reader_ignores_non_elf_and_truncated_objects():
    assert sysdeps.elf_needed(b"#!/bin/sh\n") == []
    assert sysdeps.elf_needed(b"\x7fELF\x02\x01\x01" + b"\0" * 20) == []
