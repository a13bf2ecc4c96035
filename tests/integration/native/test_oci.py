"""The OCI image: umoci (checks diff_ids) and skopeo accept it, labels are set, and it runs keystone. (The podman
backend running the very images the build made: tests/integration/deploy/test_containers.py.)"""

from __future__ import annotations

import json
import subprocess

from stackcrate.package.oci import laid_out
from tests.fixtures import pbr_project
from tests.integration.conftest import chroot


def run(*argv):
    res = subprocess.run([*map(str, argv)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (argv, res.stdout, res.stderr)
    return res


def test_image_unpacks_copies_inspects_and_runs(native, tmp_path):
    image = laid_out(native["files"]["oci"])  # artifacts.json names the image's manifest blob in dist/images
    layout, ref = image.layout, "keystone-29.1.0"
    assert (layout, image.ref) == (native["dir"] / "images", ref)  # what `deploy run --backend podman` copies
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{layout}:{ref}", bundle)
    run("skopeo", "copy", image.source, f"docker-archive:{tmp_path / 'k.tar'}:keystone:29.1.0")
    assert (tmp_path / "k.tar").stat().st_size > 100_000_000
    info = json.loads(run("skopeo", "inspect", image.source).stdout)
    labels = info["Labels"]
    assert labels["org.opencontainers.image.version"] == "29.1.0"
    assert labels["org.opencontainers.image.source"].startswith("https://pypi.org/project/keystone/")
    assert labels["org.opencontainers.image.revision"]
    assert labels["org.opencontainers.image.created"].startswith("20")
    config = json.loads(run("skopeo", "inspect", "--config", image.source).stdout)["config"]
    assert config["Entrypoint"] == ["/opt/openstack/keystone-29.1.0/bin/keystone-manage"]
    assert config["WorkingDir"] == "/opt/openstack/keystone-29.1.0"
    rootfs = bundle / "rootfs"
    res = chroot(rootfs, *config["Entrypoint"], "--version")
    assert res.stdout.strip() == "29.1.0"
    # the system packages layer holds what the component declared (mariadb/postgresql clients)
    assert chroot(rootfs, "dpkg-query", "-W", "-f=${Status}", "mariadb-client").stdout == "install ok installed"


def test_images_from_one_lock_share_lower_layers(stackcrate, native, tmp_path):
    """keystone and a second component built together: published once, their common layers (base rootfs, system
    packages) stored once."""
    svc = pbr_project(tmp_path, "fixture-svc")
    manifest = tmp_path / "two.yaml"
    manifest.write_text(native["manifest"].read_text()
                        + f'  - name: fixture-svc\n    git: {{url: "{svc}", ref: "1.2.0"}}\n')
    res = stackcrate("build", "-m", manifest, "--format", "oci", "--out", tmp_path / "dist")
    assert res.returncode == 0, res.stderr
    # dist/ holds the two images in one OCI layout: every blob once, the shared layers too
    dist = tmp_path / "dist"
    assert not list(dist.glob("*.tar")) and sorted(p.name for p in dist.iterdir()) == [
        "artifacts.json", "fixture-svc-1.2.0.oci.cdx.json", "images", "keystone-29.1.0.oci.cdx.json"]
    shown = [laid_out(dist / a["file"]) for a in json.loads((dist / "artifacts.json").read_text())["artifacts"]
             if a["format"] == "oci"]
    assert sorted(i.ref for i in shown) == ["fixture-svc-1.2.0", "keystone-29.1.0"]
    blobs = {d for i in shown for d in i.blobs}
    assert len(blobs) == 2 * 5 - 2  # manifest, config and the venv each; base and system-package layers shared
    assert sorted(p.name for p in (dist / "images/blobs/sha256").iterdir()) == sorted(d[7:] for d in blobs)
    res = stackcrate("publish", "--from", tmp_path / "dist", "--out", tmp_path / "repo")
    assert res.returncode == 0, res.stderr
    layout = tmp_path / "repo" / "oci"
    index = json.loads((layout / "index.json").read_text())
    assert sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]) == [
        "fixture-svc-1.2.0", "keystone-29.1.0"]
    images = []
    for m in index["manifests"]:
        man = json.loads((layout / "blobs/sha256" / m["digest"].split(":")[1]).read_text())
        images.append([(d["digest"], d["size"]) for d in man["layers"]])
    # the target's base layer and the system packages of both components (one layer): byte for byte the same;
    # only the venvs differ
    assert len(images[0]) == len(images[1]) == 3 and images[0][:2] == images[1][:2]
    assert images[0][2] != images[1][2]
    run("umoci", "unpack", "--image", f"{layout}:fixture-svc-1.2.0", tmp_path / "bundle")
    total = sum(s for image in images for _, s in image)
    stored = sum(p.stat().st_size for p in (layout / "blobs/sha256").iterdir()
                 if f"sha256:{p.name}" in {d for image in images for d, _ in image})
    assert stored == total - sum(s for _, s in images[0][:2])
    print(f"\nOCI layers: sum over 2 images {total:,} bytes, unique {stored:,} bytes")
