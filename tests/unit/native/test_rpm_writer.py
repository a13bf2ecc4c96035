"""stackcrate's own .rpm writer on a small tree (rpm's checks pass, every file reads back with its attributes), the
archive reader it streams from, and its bad input. The keystone package is checked against rpmbuild's in
tests/integration/native/test_rpm.py."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from stackcrate.archive import BadArchive, Member, members_of, read_tar_zst, write_tar_zst
from stackcrate.errors import StackcrateError
from stackcrate.package import rpm
from stackcrate.package.sysdeps import SysDeps

EPOCH = 1_700_000_000
ROOT = "opt/openstack/demo-1.0"
ELF64_SO = b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little") + bytes(46)
needs_rpm = pytest.mark.skipif(not shutil.which("rpm"), reason="needs rpm (Debian's rpm package)")


def demo_tree(tmp_path: Path, extra: str = "") -> Path:
    """A small venv-like tree packed as write_tar_zst packs a build: a script, an ELF object, an empty file, a
    symbolic link, a path and a link target longer than ustar's 100 bytes (PAX records)."""
    tree = tmp_path / "tree"
    venv = tree / ROOT
    deep = venv / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (venv / "bin" / "tool").chmod(0o755)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3.11")
    (venv / "long-link").symlink_to("t" * 150)
    (deep / "f.txt").write_bytes(b"x" * 1000)
    (venv / "empty").write_bytes(b"")
    (venv / "lib.so").write_bytes(ELF64_SO)
    if extra:
        (tree / extra).parent.mkdir(parents=True, exist_ok=True)
        (tree / extra).write_text("stray\n")
    out = tmp_path / "demo.tar.zst"
    write_tar_zst(tree, out, EPOCH)
    return out


def built(tarball: Path) -> SimpleNamespace:
    return SimpleNamespace(name="demo", version="1.0", series="2026.1", install_path="/" + ROOT, tarball=tarball,
                           epoch=EPOCH, describe=lambda: "A demo venv.")


def write(tmp_path: Path, tarball: Path, requires: tuple[str, ...] = ("python3.11",)) -> Path:
    out = tmp_path / "work" / "out" / "openstack-demo-1.0-1.0-1.x86_64.rpm"
    out.parent.mkdir(parents=True)
    rpm.write_rpm(built(tarball), SysDeps("rpm", {r: ["test"] for r in requires}), "openstack-demo-1.0", out,
                  scratch=out.parent.parent)
    return out


def archive_members(archive: Path) -> list[Member]:
    """What Python's own tarfile reads from the archive."""
    out = []

    def visit(tf: tarfile.TarFile) -> None:
        for m in tf:
            data = tf.extractfile(m).read() if m.isreg() else b""
            kind = "dir" if m.isdir() else "symlink" if m.issym() else "file"
            out.append(Member(m.name, kind, m.mode, int(m.mtime), m.linkname, data))

    read_tar_zst(archive, visit)
    return out


def test_the_archive_reader_gives_what_tarfile_reads_from_the_same_archive(tmp_path):
    archive = demo_tree(tmp_path)
    got = list(members_of(archive))
    assert got == archive_members(archive)
    assert any(len(name) > 100 for name, *_ in got) and any(len(m[4]) == 150 for m in got)


def test_the_archive_reader_refuses_a_truncated_archive(tmp_path):
    archive = demo_tree(tmp_path)
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BadArchive):
        list(members_of(cut))


@pytest.mark.parametrize(("head", "expected"), [
    (ELF64_SO, (2, "ELF 64-bit LSB shared object")),
    (b"\x7fELF\x01\x01\x01" + bytes(9) + (2).to_bytes(2, "little"), (1, "ELF 32-bit LSB executable")),
    (b"\x7fELF\x02\x02\x01" + bytes(9) + (1).to_bytes(2, "big"), (2, "ELF 64-bit MSB relocatable")),
    (b"#!/bin/sh\n" + bytes(20), (0, "")),
    (b"\x7fELF", (0, "")),
])
def test_elf_objects_get_rpms_colour_and_class_and_nothing_else_does(head, expected):
    assert rpm.elf_class(head) == expected


@needs_rpm
def test_an_rpm_of_a_small_tree_passes_rpms_checks_and_lists_every_file_as_the_tree_has_it(tmp_path):
    pkg = write(tmp_path, demo_tree(tmp_path), ("python3.11", "libfoo (>= 1.0, < 2.0)"))
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["out"]  # the payload's scratch file is gone
    check = subprocess.run(["rpm", "-Kv", pkg], capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 4, check.stdout
    dump = subprocess.run(["rpm", "-qp", "--dump", pkg], capture_output=True, text=True, check=True).stdout
    rows = {line.split()[0]: line.split()[1:] for line in dump.splitlines()}
    archived = {"/" + m.name: m for m in archive_members(tmp_path / "demo.tar.zst")}
    assert set(rows) == {p for p in archived if p.startswith("/" + ROOT)}
    for path, (size, mtime, digest, mode, owner, group, _cfg, _doc, _rdev, link) in rows.items():
        m = archived[path]
        assert (int(mtime), owner, group) == (EPOCH, "root", "root"), path
        assert int(mode, 8) & 0o170000 == {"dir": 0o040000, "file": 0o100000, "symlink": 0o120000}[m.kind], path
        if m.kind == "symlink":  # a link's own mode: 777 on Linux, as rpmbuild records it (tar keeps it masked)
            assert (link, int(size), int(mode, 8) & 0o7777) == (m.linkname, len(m.linkname), 0o777), path
        else:
            assert int(mode, 8) & 0o7777 == m.mode, path
        if m.kind == "file":
            assert (int(size), digest) == (len(m.data), hashlib.sha256(m.data).hexdigest()), path
    colours = subprocess.run(["rpm", "-qp", "--qf", "[%{FILECOLORS} %{FILENAMES}\n]", pkg], capture_output=True,
                             text=True, check=True).stdout.splitlines()
    assert [c for c in colours if not c.startswith("0 ")] == [f"2 /{ROOT}/lib.so"]
    requires = subprocess.run(["rpm", "-qpR", pkg], capture_output=True, text=True, check=True).stdout.splitlines()
    assert {"python3.11", "libfoo >= 1.0", "libfoo < 2.0", "rpmlib(PayloadIsZstd) <= 5.4.18-1"} <= set(requires)


def test_a_tarball_holding_more_than_the_venv_is_refused_with_the_path_named(tmp_path):
    with pytest.raises(StackcrateError, match="holds /etc, outside /opt/openstack/demo-1.0"):
        write(tmp_path, demo_tree(tmp_path, extra="etc/stray.conf"))
    assert [p.name for p in (tmp_path / "work").rglob("*")] == ["out"]  # no package, no payload left


def test_a_requirement_rpm_cannot_express_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(StackcrateError, match="rpm cannot express the system requirement 'libfoo \\(!= 1.0\\)'"):
        write(tmp_path, demo_tree(tmp_path), ("libfoo (!= 1.0)",))
