"""Components from local git repositories: ref + patch, versions from tags, caching, reproducibility."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures import git, make_patch, pbr_project
from tests.integration.conftest import chroot, private_cache


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repos")
    svc = pbr_project(root, "fixture-svc", tags=("1.2.0", "1.3.0"))
    pbr_project(root, "fixture-agent", tags=("0.4.0",), requires="oslo.i18n>=6.0.0\nsix>=1.10.0")
    # A Gerrit-style change ref on top of 1.3.0.
    (svc / "fixture_svc" / "extra.py").write_text("CHANGE = 'under review'\n")
    git(svc, "add", "-A")
    git(svc, "commit", "-q", "-m", "a change under review")
    git(svc, "update-ref", "refs/changes/45/12345/2", "HEAD")
    git(svc, "reset", "-q", "--hard", "1.3.0")
    make_patch(svc, "1.2.0", 'MESSAGE = "hello from"', 'MESSAGE = "patched hello from"', root / "fix.patch")
    return root


def write_manifest(dir_: Path, repos: Path, svc_ref: str = "1.2.0", patch: bool = True) -> Path:
    patches = f"    patches: [{repos / 'fix.patch'}]\n" if patch else ""
    text = (f'series: "2026.1"\ncomponents:\n'
            f'  - name: fixture-svc\n    git: {{url: "file://{repos / "fixture-svc"}", ref: "{svc_ref}"}}\n'
            f'{patches}'
            f'  - name: fixture-agent\n    git: {{url: "{repos / "fixture-agent"}", ref: "0.4.0"}}\n')
    dir_.mkdir(parents=True, exist_ok=True)
    path = dir_ / "stackcrate.yaml"
    path.write_text(text)
    return path


def build_json(stackcrate, manifest: Path, out: Path, **kw) -> dict:
    res = stackcrate("--json", "build", "-m", manifest, "--out", out, **kw)
    assert res.returncode == 0, res.stderr
    return {a["component"]: a for a in json.loads(res.stdout)["artifacts"]}


def extract(tarball: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-C", dest, "-I", "zstd", "-xf", tarball], check=True)


def test_git_ref_with_patch_runs_with_tag_version(stackcrate, repos, tmp_path, fresh_rootfs):
    manifest = write_manifest(tmp_path / "w", repos)
    assert stackcrate("lock", "-m", manifest).returncode == 0
    lock_text = manifest.with_suffix(".lock").read_text()
    commit = git(repos / "fixture-svc", "rev-parse", "1.2.0^{commit}")
    assert f'commit-id = "{commit}"' in lock_text          # the resolved SHA of the git component
    assert 'requested-revision = "1.2.0"' in lock_text
    arts = build_json(stackcrate, manifest, tmp_path / "dist")
    art = arts["fixture-svc"]
    assert (art["version"], art["file"]) == ("1.2.0", "fixture-svc-1.2.0.tar.zst")
    assert art["source"]["revision"] == commit
    extract(tmp_path / "dist" / art["file"], fresh_rootfs)
    res = chroot(fresh_rootfs, "/opt/openstack/fixture-svc-1.2.0/bin/fixture-svc")
    assert res.stdout.strip() == "patched hello from fixture-svc 1.2.0"
    # The venv runs with the target's interpreter, not the build host's.
    assert os.readlink(fresh_rootfs / "opt/openstack/fixture-svc-1.2.0/bin/python") == "/usr/bin/python3.11"


def test_gerrit_change_ref_and_sha(stackcrate, repos, tmp_path):
    manifest = write_manifest(tmp_path / "g", repos, svc_ref="refs/changes/45/12345/2", patch=False)
    arts = build_json(stackcrate, manifest, tmp_path / "dist")
    change = git(repos / "fixture-svc", "rev-parse", "refs/changes/45/12345/2")
    assert arts["fixture-svc"]["source"]["revision"] == change
    assert arts["fixture-svc"]["version"].startswith("1.3.1.dev1")  # pbr: one commit past the 1.3.0 tag
    sha = git(repos / "fixture-svc", "rev-parse", "1.3.0^{commit}")
    manifest = write_manifest(tmp_path / "s", repos, svc_ref=sha, patch=False)
    arts = build_json(stackcrate, manifest, tmp_path / "dist2")
    assert (arts["fixture-svc"]["version"], arts["fixture-svc"]["source"]["revision"]) == ("1.3.0", sha)


def test_nothing_changed_rebuilds_nothing_and_ref_change_rebuilds_one(stackcrate, repos, tmp_path, cache_dir):
    env = private_cache(tmp_path, cache_dir)
    manifest = write_manifest(tmp_path / "c", repos)
    first = build_json(stackcrate, manifest, tmp_path / "dist", env=env)
    assert all(a["rebuilt"] for a in first.values())
    res = stackcrate("build", "-m", manifest, "--out", tmp_path / "dist", env=env)
    assert res.returncode == 0
    assert "0 rebuilt, 2 up to date" in res.stdout
    assert "fixture-svc 1.2.0: up to date" in res.stderr
    again = build_json(stackcrate, manifest, tmp_path / "dist", env=env)
    assert not any(a["rebuilt"] for a in again.values())
    assert {k: a["sha256"] for k, a in again.items()} == {k: a["sha256"] for k, a in first.items()}

    write_manifest(tmp_path / "c", repos, svc_ref="1.3.0", patch=False)
    changed = build_json(stackcrate, manifest, tmp_path / "dist", env=env)  # re-locks (not --locked), then builds
    assert changed["fixture-svc"]["rebuilt"] and changed["fixture-svc"]["version"] == "1.3.0"
    assert not changed["fixture-agent"]["rebuilt"]
    assert changed["fixture-agent"]["sha256"] == first["fixture-agent"]["sha256"]
    # The output folder holds exactly the current artifacts.
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == [
        "artifacts.json", "fixture-agent-0.4.0.tar.zst", "fixture-svc-1.3.0.tar.zst"]


def test_two_builds_from_one_lock_are_byte_identical(stackcrate, repos, tmp_path, cache_dir):
    manifest = write_manifest(tmp_path / "r", repos)
    assert stackcrate("lock", "-m", manifest).returncode == 0
    a = build_json(stackcrate, manifest, tmp_path / "a")
    b = build_json(stackcrate, manifest, tmp_path / "b", env=private_cache(tmp_path, cache_dir))
    assert all(x["rebuilt"] for x in b.values())
    assert {k: x["sha256"] for k, x in a.items()} == {k: x["sha256"] for k, x in b.items()}


def test_concurrent_builds_share_one_cache(stackcrate, repos, tmp_path, sc_env):
    import subprocess as sp
    import sys

    manifest = write_manifest(tmp_path / "p", repos)
    assert stackcrate("lock", "-m", manifest).returncode == 0
    cache = tmp_path / "shared-cache"
    env = dict(sc_env, STACKCRATE_CACHE_DIR=str(cache))
    procs = [sp.Popen([sys.executable, "-m", "stackcrate", "--json", "build", "--locked", "-m", str(manifest),
                       "--out", str(tmp_path / f"o{i}")], env=env, stdout=sp.PIPE, stderr=sp.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    sums = [{a["file"]: a["sha256"] for a in json.loads(o[0])["artifacts"]} for o in outs]
    assert sums[0] == sums[1]
    assert not list((cache / "tmp").iterdir())  # no half-finished work left behind
    shutil.rmtree(cache)


def test_lock_is_a_no_op_when_up_to_date(stackcrate, repos, tmp_path):
    manifest = write_manifest(tmp_path / "n", repos)
    first = stackcrate("--json", "lock", "-m", manifest)
    assert first.returncode == 0 and json.loads(first.stdout)["up_to_date"] is False
    before = manifest.with_suffix(".lock").read_text()
    again = stackcrate("--json", "lock", "-m", manifest)
    assert json.loads(again.stdout)["up_to_date"] is True
    refreshed = stackcrate("--json", "lock", "--refresh", "-m", manifest)
    assert json.loads(refreshed.stdout)["up_to_date"] is False
    assert manifest.with_suffix(".lock").read_text() == before   # same inputs, same lock
    # An --override not in the lock makes it stale.
    pinned = stackcrate("--json", "lock", "-m", manifest, "--override", "six==1.16.0")
    assert json.loads(pinned.stdout)["up_to_date"] is False


def test_build_never_writes_to_the_hosts_install_prefix(stackcrate, repos, tmp_path):
    import uuid

    prefix = Path(f"/opt/stackcrate-test-{uuid.uuid4().hex[:12]}")
    manifest = write_manifest(tmp_path / "h", repos, patch=False)
    manifest.write_text(manifest.read_text() + f"install_prefix: {prefix}/{{name}}-{{version}}\n")
    arts = build_json(stackcrate, manifest, tmp_path / "dist")
    assert arts["fixture-svc"]["install_path"] == f"{prefix}/fixture-svc-1.2.0"
    assert not prefix.exists()
    names = subprocess.run(["tar", "-I", "zstd", "-tf", tmp_path / "dist" / arts["fixture-svc"]["file"]],
                           capture_output=True, text=True, check=True).stdout.split()
    assert f"{prefix.relative_to('/')}/fixture-svc-1.2.0/bin/fixture-svc" in names
