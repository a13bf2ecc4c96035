"""Shared, expensive fixtures: built once per test run (one cache, one base rootfs, one keystone build).

Set STACKCRATE_TEST_CACHE to keep the cache between runs while developing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REQS = REPO.parent / "shared" / "data" / "openstack-requirements"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = Path(os.environ.get("STACKCRATE_TEST_CACHE") or tmp_path_factory.mktemp("cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


@pytest.fixture(scope="session")
def constraints_dir() -> Path | None:
    """The snapshot of openstack/requirements beside the project (None: use the official URLs)."""
    return SHARED_REQS if SHARED_REQS.is_dir() else None


@pytest.fixture(scope="session")
def sc_env(cache_dir, constraints_dir) -> dict[str, str]:
    env = dict(os.environ)
    env["STACKCRATE_CACHE_DIR"] = str(cache_dir)
    if constraints_dir:
        env["STACKCRATE_CONSTRAINTS_DIR"] = str(constraints_dir)
    env["PIP_CONFIG_FILE"] = "/dev/null"
    env.pop("SOURCE_DATE_EPOCH", None)
    return env


class CLI:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                 input: str | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
        full = dict(self.env)
        full.update(env or {})
        return subprocess.run([sys.executable, "-m", "stackcrate", *map(str, args)], cwd=cwd, env=full,
                              capture_output=True, text=True, input=input, timeout=timeout)


@pytest.fixture(scope="session")
def stackcrate(sc_env) -> CLI:
    """Run the real `stackcrate` command; returns the CompletedProcess."""
    return CLI(sc_env)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """An output folder holding one file of the user's, which a failed run must leave alone."""
    out = tmp_path / "dist"
    out.mkdir()
    (out / "sentinel.txt").write_text("keep me")
    return out


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
    subprocess.run(["tar", "-C", root, "--numeric-owner", "-xpf", base_rootfs_tar], check=True)
    return root


def chroot(root: Path, *argv: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command inside an unpacked rootfs (unshare + chroot), as the tests run the built artifacts."""
    e = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
    e += [f"{k}={v}" for k, v in (env or {}).items()]
    proc = subprocess.run(["unshare", "--mount", "--pid", "--fork", f"--mount-proc={root}/proc", "chroot",
                           str(root), *e, *argv], capture_output=True, text=True)
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
