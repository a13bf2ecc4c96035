"""The build's .tar.zst: the same bytes from the same tree, however it was made on disk."""

from __future__ import annotations

import io
import os
import tarfile

import zstandard

from stackcrate.archive import write_tar_zst

EPOCH = 1700000000


def members(path):
    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as z, \
            tarfile.open(fileobj=io.BytesIO(z.read()), mode="r:") as tf:
        return [(m.name, m.type, oct(m.mode), m.uid, m.gid, m.uname, m.mtime) for m in tf.getmembers()]


def make_tree(root, order):
    for name in order:
        p = root / "opt/app" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"content of {name}\n")
    os.chmod(root / "opt/app/run.sh", 0o775)
    os.chmod(root / "opt/app/private.txt", 0o600)
    os.chmod(root / "opt/app/sub", 0o700)
    os.symlink("/usr/bin/python3.11", root / "opt/app/python")


def test_the_same_tree_packs_to_the_same_bytes_whatever_the_order_it_was_written_in(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, ["run.sh", "sub/z.py", "private.txt", "sub/a.py", "b-c.txt"])
    make_tree(b, ["b-c.txt", "sub/a.py", "private.txt", "sub/z.py", "run.sh"])
    os.utime(a / "opt/app/run.sh", (1, 1))  # mtimes and owners never reach the archive
    write_tar_zst(a, tmp_path / "a.tar.zst", EPOCH)
    write_tar_zst(b, tmp_path / "b.tar.zst", EPOCH)
    assert (tmp_path / "a.tar.zst").read_bytes() == (tmp_path / "b.tar.zst").read_bytes()
    got = {m[0].rstrip("/"): m for m in members(tmp_path / "a.tar.zst")}
    assert {m[3:] for m in got.values()} == {(0, 0, "root", EPOCH)}
    assert got["opt/app/run.sh"][2] == "0o755" and got["opt/app/private.txt"][2] == "0o644"
    assert got["opt/app/sub"][2] == "0o755" and got["opt/app/sub/a.py"][2] == "0o644"
    assert got["opt/app/python"][1] == tarfile.SYMTYPE
    assert list(got)[:2] == ["opt", "opt/app"]
