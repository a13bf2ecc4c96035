"""stackcrate's own .rpm writer on a small tree: what rpmbuild writes from the same tree, rpm's checks, the files
rpm unpacks from it; the archive reader it streams from; its bad input. (Keystone's package is held to
rpmbuild's in tests/integration/native/test_rpm.py.)"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from stackcrate.archive import BadArchive, Member, members_of, read_tar_zst, write_tar_zst
from stackcrate.errors import StackcrateError
from stackcrate.package import rpm, rpmfile
from stackcrate.package.sysdeps import SysDeps
from tests.rpm_reference import differences, rpmbuild_of

EPOCH = 1_700_000_000
ROOT = "opt/openstack/demo-1.0"
ELF64_SO = b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little") + bytes(46)
needs_rpm = pytest.mark.skipif(not (shutil.which("rpmbuild") and shutil.which("rpm2archive")),
                               reason="needs rpm and rpm2cpio (Debian's rpm package)")


def demo_tree(tmp_path: Path, extra: str = "") -> Path:
    """A small venv-like tree packed as write_tar_zst packs a build: a script, an ELF program, an empty file, an
    empty folder, symbolic links, names that tar and rpm order differently (b/x, b-c, b.c), UTF-8 and spaces, a
    path of exactly 100 bytes, a path and a link target longer than that (PAX records)."""
    tree = tmp_path / "tree"
    venv = tree / ROOT
    deep = venv / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / "f.txt").write_bytes(b"x" * 100_000)
    (venv / "bin").mkdir()
    (venv / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (venv / "bin" / "tool").chmod(0o755)
    shutil.copy("/bin/true", venv / "bin" / "true")
    (venv / "bin" / "python").symlink_to("/usr/bin/python3.11")
    (venv / "long-link").symlink_to("t" * 150)
    (venv / "empty").write_bytes(b"")
    (venv / "nothing").mkdir()
    for name in ("b/x", "b-c", "b.c", "ünï cödé.txt"):
        (venv / name).parent.mkdir(exist_ok=True)
        (venv / name).write_text(name)
    exact = venv / ("n" * (100 - len(ROOT) - 1))
    exact.write_text("100 bytes of path")
    assert len(str(exact.relative_to(tree))) == 100
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


def tarfile_members(archive: Path, compressed: bool = True) -> list[Member]:
    """What Python's own tarfile reads from an archive."""
    out = []

    def visit(tf: tarfile.TarFile) -> None:
        for m in tf:
            data = tf.extractfile(m).read() if m.isreg() else b""
            kind = "dir" if m.isdir() else "symlink" if m.issym() else "file"
            out.append(Member(m.name.removeprefix("./").rstrip("/"), kind, m.mode, int(m.mtime), m.linkname, data))

    if compressed:
        read_tar_zst(archive, visit)
    else:
        with tarfile.open(archive) as tf:
            visit(tf)
    return out


def test_the_archive_reader_gives_what_tarfile_reads_from_the_same_archive(tmp_path):
    archive = demo_tree(tmp_path)
    got = list(members_of(archive))
    assert got == tarfile_members(archive)
    assert any(len(m.name) > 100 for m in got) and any(len(m.linkname) == 150 for m in got)


def test_the_archive_reader_refuses_a_truncated_archive_and_a_damaged_header(tmp_path):
    archive = demo_tree(tmp_path)
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BadArchive, match="stops"):
        list(members_of(cut))
    raw = bytearray(subprocess.run(["zstd", "-dcq", archive], capture_output=True, check=True).stdout)
    raw[100:107] = b"0004777"  # the first member's mode, setuid, with its checksum left as it was
    damaged = tmp_path / "damaged.tar.zst"
    damaged.write_bytes(subprocess.run(["zstd", "-q"], input=bytes(raw), capture_output=True, check=True).stdout)
    with pytest.raises(BadArchive, match="checksum"):
        list(members_of(damaged))


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
@pytest.mark.timeout(60)
def test_an_rpm_of_a_small_tree_is_what_rpmbuild_writes_from_it_and_unpacks_to_the_tree(tmp_path):
    tarball = demo_tree(tmp_path)
    pkg = write(tmp_path, tarball, ("python3.11", "libfoo (>= 1.0, < 2.0)", "libbar (== 2)"))
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["out"]  # the payload's scratch file is gone
    check = subprocess.run(["rpm", "-Kv", pkg], capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.split(":\n")[1].split("\n") == [
        "    Header SHA256 digest: OK", "    Payload SHA256 digest: OK", ""], check.stdout
    assert differences(pkg, rpmbuild_of(pkg, tarball, tmp_path / "ref")) == {}
    # the payload, as rpm itself unpacks it (rpm2archive reads it through rpm's own file iterator), holds each
    # file of the tree with its bytes, mode and link target
    subprocess.run(f"rpm2archive -n - < {pkg} > {tmp_path / 'unpacked.tar'}", shell=True, check=True)
    unpacked = {m.name: m for m in tarfile_members(tmp_path / "unpacked.tar", compressed=False)}
    archived = {m.name: m for m in tarfile_members(tarball) if m.name == ROOT or m.name.startswith(ROOT + "/")}
    assert unpacked.keys() == archived.keys() and len(archived) > 15
    for name, m in archived.items():
        got = unpacked[name]
        assert (got.kind, got.data, got.linkname, got.mtime) == (m.kind, m.data, m.linkname, EPOCH), name
        assert got.mode == (0o777 if m.kind == "symlink" else m.mode), name  # a link's own mode, as rpmbuild's


def test_a_size_rpms_32_bit_fields_cannot_hold_is_refused_and_the_package_says_which_formats_can(tmp_path,
                                                                                                  monkeypatch):
    with pytest.raises(ValueError, match="4294967296 does not fit rpm's 32-bit fields"):
        rpmfile.header([(1009, rpmfile.INT32, [1, 1 << 32])], rpmfile.REGION_IMMUTABLE)
    tarball = demo_tree(tmp_path)
    real = rpm._payload
    monkeypatch.setattr(rpm, "_payload", lambda *a: (lambda f, s, d: (f, 1 << 32, d))(*real(*a)))
    with pytest.raises(StackcrateError, match="4294967296 does not fit rpm's 32-bit fields, too large") as err:
        write(tmp_path, tarball)
    assert ".tar.zst, .deb or OCI image" in str(err.value)
    assert [p.name for p in (tmp_path / "work").rglob("*")] == ["out"]  # no package, no payload left


def test_a_tarball_holding_more_than_the_venv_is_refused_with_the_path_named(tmp_path):
    with pytest.raises(StackcrateError, match="holds /etc, outside /opt/openstack/demo-1.0"):
        write(tmp_path, demo_tree(tmp_path, extra="etc/stray.conf"))
    assert [p.name for p in (tmp_path / "work").rglob("*")] == ["out"]  # no package, no payload left


def test_a_requirement_rpm_cannot_express_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(StackcrateError, match="rpm cannot express the system requirement 'libfoo \\(!= 1.0\\)'"):
        write(tmp_path, demo_tree(tmp_path), ("libfoo (!= 1.0)",))
    assert [p.name for p in (tmp_path / "work").rglob("*")] == ["out"]
