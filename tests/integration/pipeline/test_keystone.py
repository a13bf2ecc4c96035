"""Keystone 2026.1 from PyPI, the README's main job: lock, build, run in a fresh Debian 12 rootfs."""

import json
import shutil
import subprocess

import pytest

from stackcrate.model.lock import Lock
from tests.integration.conftest import chroot, private_cache


def test_lock_pins_everything_with_hashes(keystone_build):
    lock = Lock.load(keystone_build["lock"])
    ks = lock.component("keystone")
    assert ks.version == "29.1.0" and len(ks.closure) >= 80
    for name in ks.closure:
        pkg = lock.packages[name]
        files = pkg.wheels + ([pkg.sdist] if pkg.sdist else [])
        assert files and all(len(f["hashes"]["sha256"]) == 64 for f in files), name
    text = keystone_build["lock"].read_text()
    assert text.count("[[packages]]") == len(lock.packages)   # PEP 751 layout
    assert 'lock-version = "1.0"' in text


def test_keystone_runs_in_fresh_debian_rootfs(keystone_build, fresh_rootfs):
    (art,) = [a for a in keystone_build["artifacts"] if a["component"] == "keystone"]
    assert art["file"] == "keystone-29.1.0.tar.zst" and art["install_path"] == "/opt/openstack/keystone-29.1.0"
    tarball = keystone_build["dir"] / art["file"]
    subprocess.run(["tar", "-C", fresh_rootfs, "-I", "zstd", "-xf", tarball], check=True)
    res = chroot(fresh_rootfs, "/opt/openstack/keystone-29.1.0/bin/keystone-manage", "--version")
    assert res.stdout.strip() == Lock.load(keystone_build["lock"]).component("keystone").version


def test_rebuild_from_same_lock_is_byte_identical(keystone_build, stackcrate, tmp_path, cache_dir):
    res = stackcrate("--json", "build", "--locked", "-m", keystone_build["manifest"], "--out", tmp_path / "again",
                     env=private_cache(tmp_path, cache_dir))
    assert res.returncode == 0, res.stderr
    (again,) = json.loads(res.stdout)["artifacts"]
    (first,) = keystone_build["artifacts"]
    assert again["rebuilt"]
    assert again["sha256"] == first["sha256"]


# real releases older than the newest, of the two packages in keystone's closure that upper-constraints does not pin
OLD = {"certifi": "2024.12.14", "setuptools": "75.8.0"}


@pytest.mark.timeout(900)
def test_locking_again_keeps_the_locks_versions_upgrade_moves_them_and_each_relock_tells_what_moved(
        keystone_build, stackcrate, tmp_path):
    manifest, lock_path = tmp_path / "keystone.yaml", tmp_path / "keystone.lock"
    shutil.copy(keystone_build["manifest"], manifest)
    lock = Lock.load(keystone_build["lock"])
    newest = {name: lock.packages[name].version for name in OLD}
    for name, old in OLD.items():
        assert newest[name] != old and name in lock.component("keystone").closure
        lock.packages[name].version = old  # as if locked when that was its newest release
    lock.write(lock_path)

    said = []

    def locked(*args: str) -> dict[str, str]:
        res = stackcrate("lock", *args, "-m", manifest)
        assert res.returncode == 0, res.stderr
        said.append(res.stdout)
        packages = Lock.load(lock_path).packages
        for name in OLD:  # each version with its own files, hashed
            assert all(f"{name}-{packages[name].version}-" in w["url"] for w in packages[name].wheels) \
                and packages[name].wheels, name
        return {name: packages[name].version for name in OLD}

    assert locked("--refresh") == OLD
    assert "no version changed" in said[-1]
    assert locked("--upgrade-package", "certifi") == {**OLD, "certifi": newest["certifi"]}
    assert f"certifi: {OLD['certifi']} → {newest['certifi']}" in said[-1] and "setuptools" not in said[-1]
    assert locked("--upgrade") == newest
    assert f"setuptools: {OLD['setuptools']} → {newest['setuptools']} (major)" in said[-1]

    res = stackcrate("lock", "--upgrade-package", "no-such-package", "-m", manifest)
    assert res.returncode == 2 and "has no package no-such-package" in res.stderr, res.stderr
    res = stackcrate("lock", "--upgrade-package", "keystone", "-m", manifest)
    assert res.returncode == 2 and "a component's version is the manifest's" in res.stderr, res.stderr
    res = stackcrate("lock", "--upgrade-package", "pbr", "-m", manifest)  # upper-constraints pins it
    assert res.returncode == 0 and "pbr stays at its pin: pbr===" in res.stdout + res.stderr, res.stderr

    # a build that re-locks (its manifest changed) says what moved, as `lock` does
    manifest.write_text(manifest.read_text() + f"overrides: [\"certifi=={OLD['certifi']}\"]\n")
    res = stackcrate("build", "--format", "tar", "-m", manifest, "--out", tmp_path / "dist")
    assert res.returncode == 0, res.stderr
    assert f"certifi: {newest['certifi']} → {OLD['certifi']} (downgraded)" in res.stderr, res.stderr
    res = stackcrate("--json", "build", "--format", "tar", "-m", manifest, "--out", tmp_path / "dist")
    assert res.returncode == 0, res.stderr
    assert "lock_changes" not in json.loads(res.stdout)  # the lock was up to date: nothing moved
