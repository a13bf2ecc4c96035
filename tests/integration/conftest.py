"""The integration tier: root, Debian root filesystems, real OpenStack releases from PyPI, real tools.

Expensive things are made once per run and shared: the base rootfs, one keystone build (examples/keystone.yaml).
Each test has a time limit (pytest-timeout, 30 minutes unless it says less).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(1800))


@pytest.fixture(scope="session", autouse=True)
def _root():
    if os.geteuid() != 0:
        pytest.skip("the integration tier needs root (builds run unshare + chroot; deploys install under /opt)")


@pytest.fixture(scope="session")
def base_rootfs_tar(cache_dir) -> Path:
    """The tarball of a minbase Debian 12 rootfs with python3.11 (the same one stackcrate builds in)."""
    from stackcrate.buildroot import base_rootfs
    from stackcrate.cache import Cache
    from stackcrate.targets import get_target

    root = base_rootfs(get_target("debian-bookworm"), Cache(cache_dir))
    return root.with_suffix(".tar")


@pytest.fixture
def fresh_rootfs(base_rootfs_tar, tmp_path) -> Path:
    """A fresh, writable Debian 12 rootfs for one test."""
    root = tmp_path / "rootfs"
    root.mkdir()
    subprocess.run(["tar", "-C", root, "--numeric-owner", "-xpf", base_rootfs_tar], check=True, timeout=300)
    return root


def chroot(root: Path, *argv: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command inside an unpacked rootfs (unshare + chroot), as the tests run the built artifacts."""
    e = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
    e += [f"{k}={v}" for k, v in (env or {}).items()]
    proc = subprocess.run(["unshare", "--mount", "--pid", "--fork", f"--mount-proc={root}/proc", "chroot",
                           str(root), *e, *argv], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def keystone_build(stackcrate, tmp_path_factory) -> dict:
    """examples/keystone.yaml locked and built once per run: {'dir', 'manifest', 'lock', 'artifacts'}."""
    work = tmp_path_factory.mktemp("keystone")
    manifest = work / "keystone.yaml"
    shutil.copy(REPO / "examples" / "keystone.yaml", manifest)
    res = stackcrate("lock", "-m", manifest)
    assert res.returncode == 0, res.stderr
    res = stackcrate("--json", "build", "-m", manifest, "--out", work / "dist")
    assert res.returncode == 0, res.stderr
    return {"dir": work / "dist", "manifest": manifest, "lock": manifest.with_suffix(".lock"),
            "artifacts": json.loads((work / "dist" / "artifacts.json").read_text())["artifacts"]}


def private_cache(tmp_path: Path, cache_dir: Path) -> dict:
    """A separate cache sharing only downloads, uv's cache and the base rootfs: every component builds anew."""
    other = tmp_path / "other-cache"
    other.mkdir()
    for shared in ("wheels", "rootfs", "uv"):
        (cache_dir / shared).mkdir(exist_ok=True)
        (other / shared).symlink_to(cache_dir / shared)
    return {"STACKCRATE_CACHE_DIR": str(other)}
