"""Keystone 2026.1 from PyPI, the README's main job: lock, build, run in a fresh Debian 12 rootfs."""

import json
import subprocess

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
