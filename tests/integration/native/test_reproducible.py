"""Building twice from the same lock gives byte-identical artifacts in every format (and SBOMs)."""

from __future__ import annotations

import json


def test_every_format_twice_is_byte_identical(stackcrate, native, cache_dir, tmp_path):
    # A second cache that shares only inputs: downloaded files, the mmdebstrap rootfs (our input, made by
    # mmdebstrap) and Debian's Contents index. Venvs, layers and packages are all made again.
    second = tmp_path / "cache2"
    second.mkdir()
    for shared in ("wheels", "rootfs", "sdists", "constraints"):
        if (cache_dir / shared).exists():
            (second / shared).symlink_to(cache_dir / shared)
    contents = list((cache_dir / "sysdeps").glob("contents-*.json"))
    (second / "sysdeps").mkdir()
    for p in contents:
        (second / "sysdeps" / p.name).symlink_to(p)
    env = {"STACKCRATE_CACHE_DIR": str(second)}
    tar_only = stackcrate("--json", "build", "-m", native["manifest"], "--locked", "--out", tmp_path / "tar", env=env)
    assert tar_only.returncode == 0, tar_only.stderr
    args = [a for f in ("tar", "deb", "rpm", "oci") for a in ("--format", f)]
    res = stackcrate("--json", "build", "-m", native["manifest"], "--locked", *args, "--out", tmp_path / "again",
                     env=env)
    assert res.returncode == 0, res.stderr
    again = json.loads((tmp_path / "again" / "artifacts.json").read_text())["artifacts"]
    # the venv (tar) came from the first build of this cache; every package and image was made now
    assert {a["file"]: a["rebuilt"] for a in json.loads(res.stdout)["artifacts"]} == {
        a["file"]: a["format"] != "tar" for a in again}
    first = {a["file"]: a["sha256"] for a in native["artifacts"]}
    assert {a["file"]: a["sha256"] for a in again} == first
    assert len(first) == 7  # tar, deb, rpm, oci + the three SBOMs
    # and a third build has nothing left to do
    res = stackcrate("--json", "build", "-m", native["manifest"], "--locked", *args, "--out", tmp_path / "again",
                     env=env)
    assert res.returncode == 0 and not any(a["rebuilt"] for a in json.loads(res.stdout)["artifacts"]), res.stderr
