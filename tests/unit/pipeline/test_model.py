"""The typed data between stages: component sources as the lock records them, the lock file round trip, the
wheel a target installs, and artifacts.json."""

from __future__ import annotations

import json

import pytest

from stackcrate.errors import StackcrateError
from stackcrate.model.artifacts import Artifact, ArtifactIndex, ArtifactSource
from stackcrate.model.lock import Lock, LockedComponent, LockedPackage
from stackcrate.model.source import LockedGit, LockedPath, LockedPypi, Patch, source_from_dict
from stackcrate.targets import get_target


def test_each_source_kind_round_trips_with_its_revision():
    git = LockedGit(url="https://opendev.org/openstack/nova", ref="refs/changes/45/12345/2", commit="a" * 40,
                    digest="d" * 64, patches=[Patch(path="p/1.patch", sha256="e" * 64)])
    path = LockedPath(path="../svc", digest="f" * 64)
    pypi = LockedPypi(version="29.1.0")
    patched = LockedPypi(version="29.1.0", sdist="keystone-29.1.0.tar.gz", sdist_sha256="b" * 64, digest="c" * 64,
                         patches=[Patch(path="fix.patch", sha256="e" * 64)])
    for src, revision, built_here in ((git, "a" * 40, True), (path, "f" * 64, True), (pypi, "29.1.0", False),
                                      (patched, "c" * 64, True)):
        again = source_from_dict(json.loads(json.dumps(src.to_dict())))
        assert again == src and type(again) is type(src)
        assert (again.revision, again.built_here) == (revision, built_here)
    assert pypi.to_dict() == {"type": "pypi", "version": "29.1.0", "patches": []}  # as older locks hold it


def test_lock_round_trip_and_a_bad_source_is_a_clear_error(tmp_path):
    lock = Lock(series="2026.1", target="debian-bookworm", python_version="3.11.2",
                python_platform="x86_64-manylinux_2_36", inputs={"manifest": "m", "constraints": "c"},
                constraints_source="uc.txt", overrides=[],
                packages={"svc": LockedPackage("svc", "1.0", vcs={"type": "git", "url": "u", "commit-id": "a" * 40})},
                components=[LockedComponent("svc", "1.0", LockedGit(url="u", ref="main", commit="a" * 40,
                                                                    digest="d" * 64), ["svc"], 1700000000)])
    path = tmp_path / "x.lock"
    lock.write(path)
    again = Lock.load(path)
    assert again.components == lock.components and again.packages["svc"].vcs == lock.packages["svc"].vcs
    path.write_text(path.read_text().replace('type = "git"\nurl = "u"\nref = "main"', 'type = "svn"'))
    with pytest.raises(StackcrateError, match="component entry of \\[tool.stackcrate\\] is not valid"):
        Lock.load(path)


def wheel(name: str) -> dict:
    return {"url": f"https://files/{name}", "hashes": {"sha256": "0" * 64}}


def test_best_wheel_prefers_the_most_specific_tag_the_target_installs():
    ranks = get_target("debian-bookworm").wheel_ranks  # CPython 3.11, glibc 2.36, x86_64
    pkg = LockedPackage("lxml", "6.0.0", wheels=[
        wheel("lxml-6.0.0-cp312-cp312-manylinux_2_28_x86_64.whl"),       # another Python
        wheel("lxml-6.0.0-cp311-cp311-musllinux_1_2_x86_64.whl"),        # another libc
        wheel("lxml-6.0.0-cp311-cp311-manylinux_2_38_x86_64.whl"),       # a newer glibc than the target's
        wheel("lxml-6.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        wheel("lxml-6.0.0-cp311-cp311-manylinux_2_31_x86_64.whl"),
        wheel("lxml-6.0.0-py3-none-any.whl")])
    assert pkg.best_wheel(ranks)["filename"] == "lxml-6.0.0-cp311-cp311-manylinux_2_31_x86_64.whl"
    pure = LockedPackage("six", "1.17.0", wheels=[wheel("six-1.17.0-py2.py3-none-any.whl")])
    assert pure.best_wheel(ranks)["filename"] == "six-1.17.0-py2.py3-none-any.whl"
    none = LockedPackage("x", "1", wheels=[wheel("x-1-cp312-cp312-manylinux_2_17_x86_64.whl")])
    assert none.best_wheel(ranks) is None
    trixie = get_target("debian-trixie").wheel_ranks
    assert pkg.best_wheel(trixie)["filename"] == "lxml-6.0.0-py3-none-any.whl"  # no cp313 wheel here


def artifact(**kw) -> Artifact:
    base = dict(component="keystone", version="29.1.0", format="tar", file="keystone-29.1.0.tar.zst",
                sha256="0" * 64, size=3, install_path="/opt/openstack/keystone-29.1.0",
                source=ArtifactSource(type="pypi", revision="29.1.0"), series="2026.1", target="debian-bookworm",
                source_date_epoch=1700000000, build_key="k" * 64)
    return Artifact(**{**base, **kw})


def test_artifact_index_round_trip(tmp_path):
    index = ArtifactIndex(stackcrate="0.1.0", artifacts=[artifact(), artifact(format="deb", file="k.deb")])
    index.write(tmp_path)
    again = ArtifactIndex.load(tmp_path)
    assert again.artifacts == index.artifacts
    assert again.find("keystone", "deb").file == "k.deb" and again.find("nova", "tar") is None
    assert again.path(again.artifacts[0]) == tmp_path / "keystone-29.1.0.tar.zst"
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("content, needle", [
    (None, "does not exist"),
    ("{not json", "is not valid JSON"),
    ('{"stackcrate": "x", "artifacts": [{"component": "k"}]}', "artifacts.0.version: Field required"),
])
def test_artifact_index_that_cannot_be_read_says_why(tmp_path, content, needle):
    if content is not None:
        (tmp_path / "artifacts.json").write_text(content)
    with pytest.raises(StackcrateError, match=needle):
        ArtifactIndex.load(tmp_path)
