"""System dependencies: bindep.txt evaluated per platform (runtime only) and the ELF scan of shipped objects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stackcrate.archive import write_tar_zst
from stackcrate.errors import StackcrateError
from stackcrate.package import sysdeps

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


def test_the_manifests_bindep_lines_are_evaluated_with_the_components_own():
    lines = ("openvswitch-common [platform:dpkg]",)
    text, origin = sysdeps.with_manifest_lines(BINDEP, "neutron-28.0.2.tar.gz:bindep.txt", lines)
    kept, _ = sysdeps.evaluate_bindep(text, "debian-bookworm", origin)
    assert [k for k, _ in kept] == ["gettext", "mariadb-client", "libpq5", "libffi8", "openvswitch-common"]
    assert origin == "neutron-28.0.2.tar.gz:bindep.txt and the manifest's bindep"
    # a component without a bindep.txt of its own gets the manifest's lines alone, for its platforms only
    text, origin = sysdeps.with_manifest_lines(None, "no bindep.txt", lines)
    assert [k for k, _ in sysdeps.evaluate_bindep(text, "debian-bookworm", origin)[0]] == ["openvswitch-common"]
    assert sysdeps.evaluate_bindep(text, "rpm", origin)[0] == []
    assert sysdeps.with_manifest_lines(None, "no bindep.txt", ()) == (None, "no bindep.txt")


def _gcc(*args: str, cwd: Path) -> None:
    subprocess.run(["gcc", "-shared", "-fPIC", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def test_elf_reader_lists_the_libraries_an_extension_needs(tmp_path):
    (tmp_path / "stub.c").write_text("int stub(void) { return 0; }\n")
    _gcc("-o", "libfoo.so.3", "-Wl,-soname,libfoo.so.3", "stub.c", cwd=tmp_path)
    _gcc("-o", "_ext.so", "stub.c", "-Wl,--no-as-needed", "-L.", "-l:libfoo.so.3", cwd=tmp_path)
    assert "libfoo.so.3" in sysdeps.elf_needed((tmp_path / "_ext.so").read_bytes())
    assert "libfoo.so.3" not in sysdeps.elf_needed((tmp_path / "libfoo.so.3").read_bytes())


def test_elf_reader_ignores_non_elf_and_truncated_objects():
    assert sysdeps.elf_needed(b"#!/bin/sh\n") == []
    assert sysdeps.elf_needed(b"\x7fELF\x02\x01\x01" + b"\0" * 20) == []


def test_the_tarball_scan_lists_what_each_object_needs_and_every_name_shipped(tmp_path):
    # a built venv's archive (as write_tar_zst packs it) with an extension that needs a library it ships beside it
    venv = tmp_path / "tree" / "opt" / "openstack" / "demo-1.0"
    (venv / "lib").mkdir(parents=True)
    (venv / "stub.c").write_text("int stub(void) { return 0; }\n")
    _gcc("-o", "lib/libfoo.so.3", "-Wl,-soname,libfoo.so.3", "stub.c", cwd=venv)
    _gcc("-o", "lib/_ext.so", "stub.c", "-Wl,--no-as-needed", "-Llib", "-l:libfoo.so.3", cwd=venv)
    (venv / "notes.txt").write_bytes(b"\x7fELF but too short")
    write_tar_zst(tmp_path / "tree", tmp_path / "demo.tar.zst", 1_700_000_000)
    needed, shipped = sysdeps.scan_tarball(tmp_path / "demo.tar.zst")
    assert needed["libfoo.so.3"] == ["/opt/openstack/demo-1.0/lib/_ext.so"]
    assert "/opt/openstack/demo-1.0/lib/_ext.so" in needed["libc.so.6"]
    assert {"libfoo.so.3", "_ext.so", "notes.txt", "stub.c", "demo-1.0", "opt"} <= shipped
    (tmp_path / "cut.tar.zst").write_bytes((tmp_path / "demo.tar.zst").read_bytes()[:200])
    with pytest.raises(StackcrateError, match="cannot read the build's archive"):
        sysdeps.scan_tarball(tmp_path / "cut.tar.zst")
