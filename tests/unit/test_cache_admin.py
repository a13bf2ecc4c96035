"""`stackcrate cache`: info, clean and prune on a cache of made-up entries, through the real command line; the
cache held shared by every other command, and entries marked when found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from stackcrate.cache import Cache
from stackcrate.sources import download

DAY = 86400
OLD, RECENT = time.time() - 40 * DAY, time.time() - 2 * DAY


def _file(path: Path, size: int = 4096, when: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if when is not None:
        os.utime(path, (when, when))
    return path


def _entry(path: Path, when: float, size: int = 4096) -> Path:
    """A folder entry holding one file, last used at `when`."""
    _file(path / "f", size)
    os.utime(path, (when, when))
    return path


def _made_up_cache(root: Path) -> dict[str, Path]:
    e = {
        "old_wheel": _entry(root / "wheels" / ("a" * 64), OLD),
        "recent_wheel": _entry(root / "wheels" / ("b" * 64), RECENT),
        "old_component": _entry(root / "components" / "k1", OLD),
        "old_rootfs": _entry(root / "rootfs" / "debian-bookworm-123", 0),  # as mmdebstrap dates it: 1970
        "recent_deb": _entry(root / "packages" / "deb" / "k2", RECENT),
        "old_venv": _entry(root / "venvs" / "slot" / ("c" * 64), OLD),
        "memo": _file(root / "metadata" / "m.METADATA", when=OLD),
        "leftover": _file(root / "tmp" / "build-x" / "f"),
    }
    e["old_rootfs_tar"] = _file(root / "rootfs" / "debian-bookworm-123.tar", when=time.time())
    blobs = root / "packages" / "oci-blobs"
    for key, digest, when in (("old-shared", "d1", OLD), ("recent-shared", "d1", RECENT), ("old-alone", "d2", OLD)):
        _file(blobs / f"{key}.json").write_text(json.dumps({"digest": f"sha256:{digest}", "size": 1}))
        os.utime(blobs / f"{key}.json", (when, when))
    e["shared_blob"], e["alone_blob"] = _file(blobs / "d1", 8192), _file(blobs / "d2", 8192)
    return e


def test_info_lists_each_part_with_its_size_entries_and_last_use_counting_hard_links_once(stackcrate, tmp_path):
    root = tmp_path / "cache"
    e = _made_up_cache(root)
    os.link(e["old_venv"] / "f", root / "venvs" / "slot" / "linked")  # the same inode twice: counted once
    res = stackcrate("--cache-dir", root, "--json", "cache", "info")
    assert res.returncode == 0, res.stderr
    parts = {p["name"]: p for p in json.loads(res.stdout)["parts"]}
    assert parts["wheels"]["entries"] == 2
    assert parts["wheels"]["oldest_use"] < RECENT < parts["wheels"]["newest_use"] + 1
    assert parts["packages"]["entries"] == 4  # the deb and three layer records; the blobs go with the records
    assert parts["rootfs"]["entries"] == 1    # its .tar goes with it
    assert parts["metadata"]["entries"] is None and parts["metadata"]["bytes"] >= 4096
    venvs = parts["venvs"]["bytes"]
    assert 4096 <= venvs < 2 * 4096 + 4 * 4096  # the file once, plus its folders
    text = stackcrate("--cache-dir", root, "cache", "info")
    assert text.returncode == 0 and "wheels" in text.stdout and "40.0 d" in text.stdout


def test_prune_removes_what_went_unused_for_longer_and_keeps_the_rest(stackcrate, tmp_path):
    root = tmp_path / "cache"
    e = _made_up_cache(root)
    (root / ".removing-abc").mkdir()  # what a prune cut short left
    res = stackcrate("--cache-dir", root, "--json", "cache", "prune", "--unused-for", "30")
    assert res.returncode == 0, res.stderr
    gone = {k for k, p in e.items() if not os.path.lexists(p)}
    assert gone == {"old_wheel", "old_component", "old_rootfs", "old_rootfs_tar", "old_venv", "leftover",
                    "alone_blob"}
    blobs = root / "packages" / "oci-blobs"
    assert sorted(p.name for p in blobs.iterdir()) == ["d1", "recent-shared.json"]  # a kept record keeps its blob
    assert json.loads(res.stdout)["entries"] == 6  # wheel, component, rootfs, venv, two layer records
    assert not list(root.glob(".removing-*")) and (root / "tmp").is_dir()
    again = stackcrate("--cache-dir", root, "--json", "cache", "prune", "--unused-for", "1")
    assert json.loads(again.stdout)["entries"] == 3  # the recent wheel, deb and layer (2 days unused)
    assert not (blobs / "d1").exists()


def test_clean_removes_the_named_parts_or_all_but_the_lock(stackcrate, tmp_path):
    root = tmp_path / "cache"
    _made_up_cache(root)
    res = stackcrate("--cache-dir", root, "cache", "clean", "wheels", "rootfs")
    assert res.returncode == 0, res.stderr
    assert "removed 2 part(s)" in res.stdout
    assert not (root / "wheels").exists() and not (root / "rootfs").exists() and (root / "venvs").is_dir()
    assert stackcrate("--cache-dir", root, "cache", "clean").returncode == 0
    assert [p.name for p in root.iterdir()] == [".in-use.lock"]


def test_clean_of_a_part_that_does_not_exist_is_refused_naming_the_parts(stackcrate, tmp_path):
    root = tmp_path / "cache"
    _made_up_cache(root)
    res = stackcrate("--cache-dir", root, "cache", "clean", "wheels", "wheel")
    assert res.returncode == 2
    assert "no part of the cache is called wheel" in res.stderr and "built-wheels" in res.stderr
    assert "Traceback" not in res.stderr and (root / "wheels").is_dir()


def test_clean_and_prune_wait_for_a_command_using_the_cache_then_fail_leaving_it_whole(stackcrate, tmp_path):
    root = tmp_path / "cache"
    e = _made_up_cache(root)
    with Cache(root).in_use():  # as any other command running
        for verb in (["clean"], ["prune", "--unused-for", "0"]):
            start = time.monotonic()
            res = stackcrate("--cache-dir", root, "cache", *verb, "--wait", "0.5")
            assert res.returncode == 2, res.stderr
            assert time.monotonic() - start >= 0.5
            assert f"the cache {root} has been locked by another stackcrate process" in res.stderr
    assert all(os.path.lexists(p) for p in e.values())


def test_every_other_command_waits_while_the_cache_is_held_alone(tmp_path, sc_env):
    root = tmp_path / "cache"
    root.mkdir()
    with Cache(root).in_use(alone=True):  # as `cache clean` while it removes
        proc = subprocess.Popen([sys.executable, "-m", "stackcrate", "--cache-dir", str(root), "sysdeps", "-m",
                                 str(tmp_path / "missing.yaml")], env=sc_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            proc.wait(timeout=3)
            raise AssertionError(f"it ran while the cache was held: {proc.stderr.read()}")
        except subprocess.TimeoutExpired:
            pass
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "missing.yaml" in err  # it ran once the cache was free


def test_an_entry_found_in_the_cache_is_marked_used(tmp_path):
    cache = Cache(tmp_path / "cache")
    wheel = _file(cache.root / "wheels" / ("e" * 64) / "x-1.0-py3-none-any.whl")
    os.utime(wheel.parent, (OLD, OLD))
    assert download("http://127.0.0.1:9/x-1.0-py3-none-any.whl", "e" * 64, wheel.name, cache) == wheel
    assert wheel.parent.stat().st_mtime > time.time() - 60


def test_a_new_entry_is_dated_when_it_was_made_not_as_what_made_it_dated_it(tmp_path):
    cache = Cache(tmp_path / "cache")
    made = _entry(cache.tempdir() / "tree", 0)  # mmdebstrap dates its root SOURCE_DATE_EPOCH (0)
    final = Cache.commit(made, cache.root / "rootfs" / "debian-bookworm-1")
    assert final.stat().st_mtime > time.time() - 60
