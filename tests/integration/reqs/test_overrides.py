"""Security overrides: a version some requirement rejects is refused, naming the component and the
requirement; a version every requirement accepts is locked and built into the venv."""

from __future__ import annotations

import re
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def manifest(tmp_path) -> Path:
    m = tmp_path / "keystone.yaml"
    shutil.copy(REPO / "examples" / "keystone.yaml", m)
    return m


def test_rejected_override_names_component_and_requirement(stackcrate, manifest):
    res = stackcrate("lock", "-m", manifest, "--override", "WebOb==1.7.0")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    # keystone 29.1.0 itself asks WebOb>=1.7.1; oslo.middleware (in keystone's venv) asks >=1.8.0
    assert ("component keystone: keystone 29.1.0 requires WebOb>=1.7.1, which rejects the override "
            "WebOb==1.7.0") in res.stderr
    assert re.search(r"component keystone: oslo-middleware \S+ requires WebOb>=1\.8\.0, which rejects",
                     res.stderr)
    assert not manifest.with_suffix(".lock").exists()


def test_accepted_override_is_locked_and_built(stackcrate, manifest, constraints_dir, tmp_path):
    uc = (constraints_dir / "2026.1" / "upper-constraints.txt").read_text()
    assert "WebOb===1.8.9" in uc  # the override below really differs from the series' pin
    manifest.write_text(manifest.read_text().replace("components:", 'overrides: ["WebOb==1.8.8"]\ncomponents:'))
    res = stackcrate("lock", "-m", manifest)
    assert res.returncode == 0, res.stderr
    assert "override WebOb==1.8.8 is accepted by all" in res.stderr and "keystone (WebOb>=1.7.1)" in res.stderr
    lock = tomllib.loads(manifest.with_suffix(".lock").read_text())
    assert {p["name"].lower(): p["version"] for p in lock["packages"]}["webob"] == "1.8.8"
    res = stackcrate("build", "-m", manifest, "--locked", "--out", tmp_path / "dist")
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "dist" / "keystone-29.1.0.tar.zst", "rb") as fh, \
            tarfile.open(fileobj=zstandard.ZstdDecompressor().stream_reader(fh), mode="r|") as tf:
        infos = [m.name for m in tf if m.name.endswith(".dist-info/METADATA")]
    assert any(n.endswith("/WebOb-1.8.8.dist-info/METADATA") for n in infos), infos
    assert not any("WebOb-1.8.9" in n for n in infos)
