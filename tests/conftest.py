"""Fixtures for both tiers: the stackcrate command line, one cache per run, the series data.

tests/unit runs offline and without root in under a minute; tests/integration holds everything that needs
root, a Debian root filesystem, real OpenStack releases or the network (see each folder's conftest.py).
Set STACKCRATE_TEST_CACHE to keep the cache between runs while developing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The full openstack/requirements snapshot beside the project, when there is one ...
SHARED_REQS = REPO.parent / "shared" / "data" / "openstack-requirements"
# ... and the small one inside it (two series), which the unit tier always uses.
SNAPSHOT_REQS = REPO / "tests" / "data" / "openstack-requirements"


# The suite runs in two workers (pytest-xdist, `-n 2 --dist loadscope` in pyproject.toml) and every module is a
# unit of work: its module-scoped fixtures (e.g. a deployment) are made once, in one worker. The deployment
# modules form two lanes whose modules run one after the other: the local backend's deployments share
# /opt/openstack's venvs and check them (install safety's byte-for-byte snapshot, the upgrade removing its
# venvs), so no two of them run at once; the container engine's, the lab's and the multi-node ones keep their
# venvs in images and in the nodes' own root filesystems, so they run beside the first lane. Every other module
# fills in where a worker is free.
ENGINE_LANE = ("tests/integration/deploy/test_containers.py", "tests/integration/deploy/test_multinode.py",
               "tests/integration/lab/test_lab.py")
LANES = ("local-deployments", "engine-and-node-deployments")


def lane_of(module: str) -> str | None:
    """The lane of a module (its path from the repository's root), None for one outside both."""
    if module in ENGINE_LANE:
        return LANES[1]
    if module.startswith("tests/integration/deploy/test_"):  # any new deployment module: the safe lane
        return LANES[0]
    return None


def pytest_xdist_make_scheduler(config, log):
    """loadscope with the lanes as scopes. (xdist's own loadgroup marks groups by renaming test ids, which
    pytest 9's read-only node ids no longer allow: its groups come apart.)"""
    from xdist.scheduler import LoadScopeScheduling

    class Lanes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return lane_of(module) or module

    return Lanes(config, log)


def pytest_collection_modifyitems(items):
    # the lanes first (in LANES' order): the short modules fill the gaps after them
    rank = {lane: i for i, lane in enumerate(LANES)}
    items.sort(key=lambda it: rank.get(lane_of(it.nodeid.split("::", 1)[0]) or "", len(rank)))


def requirements_dir(*series: str) -> Path:
    """A folder holding openstack/requirements data of every given series: the shared snapshot when it has
    them, else the project's small one; the test is skipped (with the reason) when neither has them all."""
    for base in (SHARED_REQS, SNAPSHOT_REQS):
        if all((base / s / "upper-constraints.txt").is_file() for s in series):
            return base
    pytest.skip(f"no openstack/requirements data for series {', '.join(series)} here "
                f"(looked in {SHARED_REQS} and {SNAPSHOT_REQS})")


@pytest.fixture(scope="session")
def constraints_dir() -> Path:
    """Series data for 2026.1 (every example manifest's series) and kilo."""
    return requirements_dir("2026.1", "kilo")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    # one cache for every worker of a run (pytest-xdist): a build one worker made is the other's too (the cache
    # locks each entry while it is filled)
    shared = tmp_path_factory.getbasetemp().parent / "cache" if os.environ.get("PYTEST_XDIST_WORKER") else None
    path = Path(os.environ.get("STACKCRATE_TEST_CACHE") or shared or tmp_path_factory.mktemp("cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


@pytest.fixture(scope="session")
def sc_env(cache_dir, constraints_dir) -> dict[str, str]:
    env = dict(os.environ)
    env["STACKCRATE_CACHE_DIR"] = str(cache_dir)
    env["STACKCRATE_CONSTRAINTS_DIR"] = str(constraints_dir)
    env["PIP_CONFIG_FILE"] = "/dev/null"
    env.pop("SOURCE_DATE_EPOCH", None)
    return env


class CLI:
    """The real `stackcrate` command, in a new interpreter (`python -m stackcrate`)."""

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


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A pbr project, fixture-svc, in a local git repository with the tag 1.2.0."""
    from tests.fixtures import pbr_project

    return pbr_project(tmp_path_factory.mktemp("repos"), "fixture-svc")
