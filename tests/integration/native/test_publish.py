"""`stackcrate publish`: apt, yum and OCI repositories from one output folder (the apt one is used by test_deb)."""

from __future__ import annotations

import gzip
import json


def test_publish_writes_yum_and_oci_repositories(published, native):
    repo = published["repo"]
    assert set(published["report"]) == {"apt", "yum", "oci"}
    packages = (repo / "apt" / "Packages").read_text()
    assert "Package: openstack-keystone-29.1.0\n" in packages and "Filename: ./openstack-keystone" in packages
    assert "SHA256:" in (repo / "apt" / "Release").read_text()
    primary = next((repo / "yum" / "repodata").glob("*primary.xml.gz"))
    assert b"<name>openstack-keystone-29.1.0</name>" in gzip.decompress(primary.read_bytes())
    index = json.loads((repo / "oci" / "index.json").read_text())
    (m,) = index["manifests"]
    assert m["annotations"]["org.opencontainers.image.ref.name"] == "keystone-29.1.0"
    assert (repo / "oci" / "blobs/sha256" / m["digest"].split(":")[1]).is_file()


def test_publish_without_a_build_is_a_clear_error(stackcrate, tmp_path):
    res = stackcrate("publish", "--from", tmp_path / "nothing", "--out", tmp_path / "repo")
    assert res.returncode == 2 and "artifacts.json does not exist" in res.stderr, res.stderr
    assert not (tmp_path / "repo").exists()
