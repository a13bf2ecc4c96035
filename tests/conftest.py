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
