"""The build stage's own logic, without a root filesystem: the leak scan, the fixed bytecode slices, uv's
private markers, the build key."""

from __future__ import annotations

import os
from pathlib import Path

from stackcrate.build import build_key, drop_uv_cache_markers, find_leaks
from stackcrate.bytecode import compile_chunks
from stackcrate.model.lock import LockedComponent
from stackcrate.model.source import LockedPypi
from stackcrate.targets import get_target


def test_leak_scan_finds_build_paths_in_files_and_symlinks(tmp_path):
    tree = tmp_path / "tree"
    (tree / "lib").mkdir(parents=True)
    (tree / "lib" / "clean.py").write_text("ROOT = '/opt/openstack/svc-1.0'\n")
    (tree / "lib" / "leaky.py").write_bytes(b"\x00BUILD = '/var/cache/stackcrate/tmp/build-x1/root'\n")
    (tree / "lib" / "empty.txt").write_text("")
    os.symlink("/var/cache/stackcrate/tmp/build-x1/python", tree / "lib" / "link")
    os.symlink("clean.py", tree / "lib" / "fine-link")
    hits = find_leaks(tree, ["/var/cache/stackcrate/tmp/build-x1", "/never/there", ""])
    assert sorted(hits) == [("lib/leaky.py", "/var/cache/stackcrate/tmp/build-x1"),
                            ("lib/link", "/var/cache/stackcrate/tmp/build-x1")]


def test_compile_slices_depend_only_on_the_file_names():
    files = [f"pkg/m{i:02}.py" for i in range(10)]
    chunks = compile_chunks(list(reversed(files)))
    assert chunks == compile_chunks(files)  # whatever order the folder walk gave
    assert chunks[0] == ["pkg/m00.py", "pkg/m04.py", "pkg/m08.py"]
    assert len(chunks) == 4 and sorted(f for c in chunks for f in c) == files
    assert compile_chunks([]) == [[], [], [], []]


def test_uv_cache_markers_are_dropped_from_the_venv_and_its_record(tmp_path):
    info = tmp_path / "lib/python3.11/site-packages/six-1.17.0.dist-info"
    info.mkdir(parents=True)
    (info / "uv_cache.json").write_text('{"timestamp": 1}')
    (info / "RECORD").write_text("six.py,sha256=x,1\nsix-1.17.0.dist-info/uv_cache.json,,\n")
    drop_uv_cache_markers(tmp_path)
    assert not (info / "uv_cache.json").exists()
    assert (info / "RECORD").read_text() == "six.py,sha256=x,1\n"


def test_build_key_changes_with_each_input(tmp_path):
    store = tmp_path / "wheels" / ("a" * 64)
    store.mkdir(parents=True)
    (store / "six-1.17.0-py3-none-any.whl").write_bytes(b"w")
    wheels = {"six": store / "six-1.17.0-py3-none-any.whl"}
    comp = LockedComponent("svc", "1.0", LockedPypi(version="1.0"), ["svc", "six"], 1700000000)
    target = get_target("debian-bookworm")
    key = build_key(comp, target, "/opt/openstack/svc-1.0", wheels, 1700000000)
    assert key == build_key(comp, target, "/opt/openstack/svc-1.0", dict(wheels), 1700000000)
    assert key != build_key(comp, target, "/opt/other/svc-1.0", wheels, 1700000000)
    assert key != build_key(comp, target, "/opt/openstack/svc-1.0", wheels, 1700000001)
    assert key != build_key(comp, get_target("debian-trixie"), "/opt/openstack/svc-1.0", wheels, 1700000000)
    built_here = tmp_path / "built" / "svc-1.0-py3-none-any.whl"  # a wheel we built: keyed by its bytes
    built_here.parent.mkdir()
    built_here.write_bytes(b"1")
    k1 = build_key(comp, target, "/opt/openstack/svc-1.0", {**wheels, "svc": built_here}, 1700000000)
    built_here.write_bytes(b"2")
    assert k1 != build_key(comp, target, "/opt/openstack/svc-1.0", {**wheels, "svc": built_here}, 1700000000)
    assert isinstance(key, str) and len(key) == 64 and Path(key).name == key


def test_scratch_folders_are_made_where_asked_and_fresh_each_time(tmp_path, monkeypatch):
    from stackcrate.cache import Cache

    monkeypatch.setenv("STACKCRATE_SCRATCH_DIR", str(tmp_path / "fast"))
    cache = Cache(tmp_path / "cache")
    a, b = cache.scratch("venv-"), cache.scratch("venv-")
    assert a != b and a.parent == b.parent == tmp_path / "fast" and not list(a.iterdir())
    assert a.name.startswith("stackcrate-venv-")
