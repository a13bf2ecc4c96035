"""A broken artifact through the real CLI: `deploy init` refuses it before anything under /opt/openstack is
touched, and a venv already installed there (another deployment may be running from it) stays byte for byte
as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from stackcrate.model.artifacts import ArtifactIndex
from tests.integration.deploy.conftest import deployment_files


def snapshot(venv: Path) -> dict[str, tuple]:
    """Every entry of venv (mode, inode; for files and links also mtime and content hash or target), its records
    beside it and the temporary folders of an install of it: whatever an install over it would change. Left out:
    __pycache__ folders and folders' mtimes, which a deployment running from the venv may change."""
    out: dict[str, tuple] = {}

    def add(p: Path) -> None:
        st = p.lstat()
        if p.is_symlink() or p.is_file():
            what = os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p)] = (st.st_mode, st.st_ino, st.st_mtime_ns, what)
        else:
            out[str(p)] = (st.st_mode, st.st_ino)

    if venv.exists():
        add(venv)
        for folder, dirs, files in os.walk(venv):
            dirs[:] = [n for n in dirs if n != "__pycache__"]
            for name in dirs + files:
                add(Path(folder, name))
    for p in [*(venv.parent / ".stackcrate-installed").glob(f"{venv.name}.*"), *venv.parent.glob(f".{venv.name}.*")]:
        add(p)
    return out


def broken_copy(src: Path, dst: Path, component: str, how: str) -> Path:
    """A copy of the artifacts folder src with component's tarball truncated to half, its sha256 updated in
    artifacts.json ("truncated"), or one byte changed, its sha256 left as it was ("altered")."""
    dst.mkdir()
    index = ArtifactIndex.load(src)
    for a in index.artifacts:
        if a.format == "tar":
            shutil.copy(src / a.file, dst / a.file)
    art = index.find(component, "tar")
    data = bytearray((src / art.file).read_bytes())
    if how == "truncated":
        data = data[:len(data) // 2]
        art.sha256, art.size = hashlib.sha256(data).hexdigest(), len(data)
    else:
        data[len(data) // 2] ^= 0xFF
    (dst / art.file).write_bytes(bytes(data))
    index.artifacts = [a for a in index.artifacts if a.format == "tar"]
    index.write(dst)
    return dst / art.file


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("how, says", [("truncated", "ends inside a zstd frame (truncated)"),
                                       ("altered", "artifacts.json says")])
def test_init_with_a_broken_artifact_exits_2_and_touches_nothing(sc_env, deploy_dist, tmp_path, how, says):
    if not (deploy_dist / "artifacts.json").exists():  # not given by STACKCRATE_TEST_DEPLOY_DIST: build it
        deployment_files(tmp_path / "build", deploy_dist, sc_env).ok("build", timeout=3600)
    glance = Path(ArtifactIndex.load(deploy_dist).find("glance", "tar").install_path)  # the real one, in /opt
    before = snapshot(glance)

    (tmp_path / "deploy").mkdir()
    d = deployment_files(tmp_path / "deploy", tmp_path / "dist", sc_env)
    broken = broken_copy(deploy_dist, tmp_path / "dist", "glance", how)
    res = d.sc("init", json_out=False, timeout=600)

    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert f"the artifact {broken} cannot be installed" in " ".join(res.stderr.split())
    assert says in " ".join(res.stderr.split()) and "build it again" in res.stderr
    assert snapshot(glance) == before
    assert not d.state.exists()  # refused before anything was written, the secrets included
