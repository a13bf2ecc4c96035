"""One keystone build in every format (from the shared keystone lock), published once, for all native tests."""

from __future__ import annotations

import json

import pytest

ALL = ("tar", "deb", "rpm", "oci")


@pytest.fixture(scope="session")
def native(stackcrate, keystone_build, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("native") / "dist"
    args = [a for f in ALL for a in ("--format", f)]
    res = stackcrate("build", "-m", keystone_build["manifest"], "--locked", *args, "--out", out)
    assert res.returncode == 0, res.stderr
    arts = json.loads((out / "artifacts.json").read_text())["artifacts"]
    files = {a["format"]: out / a["file"] for a in arts if a["format"] != "sbom"}
    sboms = [out / a["file"] for a in arts if a["format"] == "sbom"]
    assert set(files) == set(ALL) and len(sboms) == 3, arts
    return {"dir": out, "artifacts": arts, "files": files, "sboms": sboms, "manifest": keystone_build["manifest"]}


@pytest.fixture(scope="session")
def published(stackcrate, native, tmp_path_factory) -> dict:
    repo = tmp_path_factory.mktemp("published") / "repo"
    res = stackcrate("--json", "publish", "--from", native["dir"], "--out", repo)
    assert res.returncode == 0, res.stderr
    return {"repo": repo, "report": json.loads(res.stdout)}
