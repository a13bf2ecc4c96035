"""A deployment described by files in tmp_path, with a fake artifacts folder (no real artifact is extracted)."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

import pytest
import yaml

from stackcrate.model.artifacts import Artifact, ArtifactIndex, ArtifactSource
from tests.fixtures import services_with_free_ports

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "deploy"
COMPONENTS = {"keystone": "29.1.0", "glance": "32.0.0", "openstack-placement": "15.0.0", "nova": "33.0.2",
              "neutron": "28.0.2", "horizon": "25.7.3", "python-openstackclient": "9.0.0"}
# the backing services' images (Debian packages' versions)
IMAGES = {"mariadb": "1:10.11.6-0+deb12u1", "rabbitmq": "3.10.8-1.1+deb12u1", "memcached": "1.6.18-1",
          "haproxy": "2.6.12-1+deb12u1", "ovn": "23.03.1-1~deb12u2"}


def fake_image(out: Path, ref_name: str) -> Path:
    """An image in out's OCI layout (images/) with only its manifest (the part the container backend reads): its
    manifest blob, named by its sha256 as artifacts.json names an image."""
    layout = out / "images"
    (layout / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    config = hashlib.sha256(ref_name.encode()).hexdigest()  # the image ID: one per image
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": f"sha256:{config}", "size": 1},
                           "layers": [{"digest": "sha256:" + "1" * 64, "size": 1000}]}).encode()
    digest = hashlib.sha256(manifest).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(manifest)
    index = json.loads((layout / "index.json").read_text()) if (layout / "index.json").exists() else {
        "schemaVersion": 2, "manifests": []}
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "digest": f"sha256:{digest}", "size": len(manifest),
                               "annotations": {"org.opencontainers.image.ref.name": ref_name}})
    (layout / "index.json").write_text(json.dumps(index))
    return layout / "blobs/sha256" / digest


def _entry(name: str, version: str, fmt: str, path: Path) -> Artifact:
    file = path.relative_to(path.parents[3]).as_posix() if fmt == "oci" else path.name  # images/blobs/sha256/...
    return Artifact(component=name, version=version, format=fmt, file=file, sha256="0" * 64,
                    size=path.stat().st_size, install_path=f"/opt/openstack/{name}-{version}",
                    source=ArtifactSource(type="pypi", revision=version), series="2026.1", target="debian-bookworm",
                    source_date_epoch=1700000000, build_key="k" * 64)


def fake_artifacts(out: Path, skip: tuple[str, ...] = ()) -> Path:
    """artifacts.json listing a tarball and an OCI image per component (neither a real one)."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, version in COMPONENTS.items():
        if name in skip:
            continue
        tar = out / f"{name}-{version}.tar.zst"
        tar.write_bytes(b"not a real artifact")
        oci = fake_image(out, f"{name}-{version}")
        entries += [_entry(name, version, "tar", tar), _entry(name, version, "oci", oci)]
    for name, version in IMAGES.items():
        if name in skip:
            continue
        safe = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in version)  # an OCI tag: no : or +
        oci = fake_image(out, f"{name}-{safe}")
        entries.append(_entry(name, version, "oci", oci).model_copy(update={"install_path": "/"}))
    ArtifactIndex(stackcrate="test", artifacts=entries).write(out)
    return out


@pytest.fixture
def dep(tmp_path) -> dict[str, Path]:
    """services.yaml + configuration.yaml copied from examples/deploy, state and artifacts under tmp_path."""
    # free ports, not the example's: a deployment running on this machine must not change what the tests see
    (tmp_path / "services.yaml").write_text(yaml.safe_dump(services_with_free_ports(), sort_keys=False))
    conf = yaml.safe_load((EXAMPLE / "configuration.yaml").read_text())
    conf.update(state_dir="state", artifacts="dist")
    (tmp_path / "configuration.yaml").write_text(yaml.safe_dump(conf))
    fake_artifacts(tmp_path / "dist")
    return {"dir": tmp_path, "services": tmp_path / "services.yaml", "config": tmp_path / "configuration.yaml",
            "state": tmp_path / "state", "dist": tmp_path / "dist"}


TOOL = '''
import os, sys, time
print("imported", os.getpid(), flush=True)
SEEN = []  # global state, as oslo.config's CONF: a command must not find what an earlier one left


def main():
    SEEN.append(sys.argv[1])
    print("run", os.getpid(), sys.argv[1], SEEN, os.environ.get("TOOL_PASSWORD"), flush=True)
    if sys.argv[1] == "raise":
        raise RuntimeError("boom")
    if sys.argv[1] == "sleep":
        time.sleep(float(sys.argv[2]))
        return 0
    if sys.argv[1] == "stdin":
        print("read", sys.stdin.read(), flush=True)
    if sys.argv[1] == "plugin":
        import toolplugin  # noqa: F401
    return int(sys.argv[2]) if len(sys.argv) > 2 else 0
'''


WRAPPER = """#!{python}
import sys
from tool import main
if __name__ == "__main__":
    sys.exit(main())
"""


@pytest.fixture
def tool_venv(tmp_path: Path) -> Path:
    """bin/python (this interpreter), site/ with a distribution offering two console scripts, and those scripts
    in bin/ as an installer writes them, listed in the distribution's RECORD with their sha256."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    site = tmp_path / "site"
    info = site / "tool-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tool\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[console_scripts]\ntool-manage = tool:main\ntool-status = tool:main\n"
                                           "[tool.commands]\nfirst = toolplugin:main\n")  # a plugin group to preload
    (site / "tool.py").write_text(TOOL)
    (site / "toolplugin.py").write_text("print('plugin imported')\n")  # buffered: a fork must not carry it
    record = []
    for name in ("tool-manage", "tool-status"):
        script = tmp_path / "bin" / name
        script.write_text(WRAPPER.format(python=tmp_path / "bin" / "python"))
        script.chmod(0o755)
        digest = base64.urlsafe_b64encode(hashlib.sha256(script.read_bytes()).digest()).rstrip(b"=").decode()
        record.append(f"../bin/{name},sha256={digest},{script.stat().st_size}")
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return tmp_path
