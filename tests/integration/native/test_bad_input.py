"""Bad input for the native formats found while building: one clear message, exit 2, nothing written into --out."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcrate.buildroot import base_rootfs
from stackcrate.cache import Cache
from stackcrate.errors import StackcrateError
from stackcrate.targets import get_target
from tests.fixtures import assert_clean_failure, git, pbr_project


def svc_with_bindep(root: Path, text: str) -> Path:
    repo = pbr_project(root, "fixture-svc")
    (repo / "bindep.txt").write_text(text)
    git(repo, "add", "bindep.txt")
    git(repo, "commit", "-q", "-m", "bindep")
    git(repo, "tag", "-f", "-a", "1.2.0", "-m", "1.2.0")
    return repo


def test_unparsable_bindep(stackcrate, tmp_path, out_dir):
    repo = svc_with_bindep(tmp_path, "gettext [platform:dpkg\n")
    m = tmp_path / "stackcrate.yaml"
    m.write_text(f'series: "2026.1"\ncomponents:\n  - name: fixture-svc\n    path: "{repo}"\n')
    res = stackcrate("build", "-m", m, "--format", "tar", "--format", "deb", "--out", out_dir)
    assert_clean_failure(res, out_dir, "fixture-svc source tree: cannot parse bindep.txt")


def test_base_rootfs_that_cannot_be_built(stackcrate, tmp_path, out_dir, cache_dir):
    with pytest.raises(StackcrateError) as exc:
        base_rootfs(get_target("debian-bookworm"), Cache(cache_dir), extra_packages=["no-such-package-stackcrate"])
    assert "could not be built by mmdebstrap" in exc.value.render()
    # the same through the CLI: a declared system package Debian does not have breaks the OCI base layer
    repo = svc_with_bindep(tmp_path, "no-such-package-stackcrate [platform:dpkg]\n")
    m = tmp_path / "stackcrate.yaml"
    m.write_text(f'series: "2026.1"\ncomponents:\n  - name: fixture-svc\n    path: "{repo}"\n')
    res = stackcrate("build", "-m", m, "--format", "deb", "--format", "oci", "--out", out_dir)
    assert_clean_failure(res, out_dir, "could not be built by mmdebstrap", "no-such-package-stackcrate")
    assert not list((cache_dir / "rootfs").glob("*-tmp*"))

