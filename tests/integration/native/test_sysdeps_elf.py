"""The ELF scan of a built venv maps each library it needs (and does not ship) to the Debian package that ships
it, through the suite's Contents index (fetched from Debian once, then cached)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from stackcrate.archive import write_tar_zst
from stackcrate.cache import Cache
from stackcrate.model.built import BuiltComponent
from stackcrate.model.lock import LockedComponent
from stackcrate.model.source import LockedPath
from stackcrate.package import sysdeps
from stackcrate.targets import get_target


def _gcc(*args: str, cwd: Path) -> None:
    subprocess.run(["gcc", "-shared", "-fPIC", *args], cwd=cwd, check=True, capture_output=True)


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
        locked=LockedComponent("planted", "1.0", LockedPath(path="planted", digest="none"), ["planted"], 1700000000),
        packages=())
    deb = sysdeps.system_deps(built, Cache(cache_dir), "deb")
    assert deb.names[0] == "python3.11"
    assert "libxml2" in deb.packages and "libc6" in deb.packages
    ext = "/opt/openstack/planted-1.0/lib/python3.11/site-packages/planted/_ext.cpython-311-x86_64-linux-gnu.so"
    assert deb.packages["libxml2"] == [f"ELF: {ext} needs libxml2.so.2"]
    assert not any("bundled" in w for why in deb.packages.values() for w in why)  # shipped inside the venv
    rpm = sysdeps.system_deps(built, Cache(cache_dir), "rpm")
    assert "libxml2.so.2()(64bit)" in rpm.packages and "python3.11" in rpm.packages
