"""The OCI image: umoci (checks diff_ids) and skopeo accept it, labels are set, and it runs keystone."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import yaml

from stackcrate.package.oci import archive_ref_name
from tests.conftest import REPO
from tests.fixtures import pbr_project
from tests.integration.conftest import chroot


def run(*argv):
    res = subprocess.run([*map(str, argv)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (argv, res.stdout, res.stderr)
    return res


def test_image_unpacks_copies_inspects_and_runs(native, tmp_path):
    archive = native["files"]["oci"]
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(archive) as tf:
        tf.extractall(layout, filter="tar")
    ref = "keystone-29.1.0"
    assert archive_ref_name(archive) == ref  # the source `deploy run --backend podman` copies the image from
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{layout}:{ref}", bundle)
    run("skopeo", "copy", f"oci-archive:{archive}:{ref}", f"docker-archive:{tmp_path / 'k.tar'}:keystone:29.1.0")
    assert (tmp_path / "k.tar").stat().st_size > 100_000_000
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{archive}:{ref}").stdout)
    labels = info["Labels"]
    assert labels["org.opencontainers.image.version"] == "29.1.0"
    assert labels["org.opencontainers.image.source"].startswith("https://pypi.org/project/keystone/")
    assert labels["org.opencontainers.image.revision"]
    assert labels["org.opencontainers.image.created"].startswith("20")
    config = json.loads(run("skopeo", "inspect", "--config", f"oci-archive:{archive}:{ref}").stdout)["config"]
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


def test_container_backend_loads_and_runs_the_built_image(stackcrate, native, tmp_path, request):
    """`deploy run --backend podman --dry-run`: its skopeo command stores the built keystone image under the name
    its `podman run` uses, and podman runs that image (a throwaway store, the runc runtime these hosts need)."""
    services = yaml.safe_load((REPO / "examples" / "deploy" / "services.yaml").read_text())
    services["services"] = {"keystone": services["services"]["keystone"]}   # the one service built here
    services["client"] = "keystone"
    (tmp_path / "services.yaml").write_text(json.dumps(services))
    (tmp_path / "configuration.yaml").write_text(json.dumps({"state_dir": "state", "artifacts": str(native["dir"]),
                                                             "backend": "podman"}))
    res = stackcrate("--json", "deploy", "run", "--dry-run", "-s", tmp_path / "services.yaml",
                     "-c", tmp_path / "configuration.yaml")
    assert res.returncode == 0, res.stderr
    cmds = [shlex.split(c) for c in json.loads(res.stdout)["commands"]]
    (load,) = [c for c in cmds if c[0] == "skopeo"]
    (keystone,) = [c for c in cmds if c[:2] == ["podman", "run"] and "stackcrate-keystone" in c]
    short = Path(tempfile.mkdtemp(prefix="sc-"))  # podman refuses a runroot path of over 50 characters
    request.addfinalizer(lambda: shutil.rmtree(short, ignore_errors=True))
    storage = ["--root", str(short / "root"), "--runroot", str(short / "run"), "--storage-driver", "vfs"]
    store = f"containers-storage:[vfs@{short / 'root'}+{short / 'run'}]"
    run(*load[:-1], load[-1].replace("containers-storage:", store, 1))
    image = load[-1].removeprefix("containers-storage:")
    assert image in keystone
    assert keystone[keystone.index("--entrypoint") + 1] == "/opt/openstack/keystone-29.1.0/bin/gunicorn"
    stored = json.loads(run("skopeo", "inspect", "--raw", store + image).stdout)
    built = json.loads(run("skopeo", "inspect", "--raw", f"oci-archive:{native['files']['oci']}").stdout)
    assert stored["config"]["digest"] == built["config"]["digest"]  # the very image the build made
    assert [d["digest"] for d in stored["layers"]] == [d["digest"] for d in built["layers"]]
    # and it runs: the image's own entrypoint (keystone-manage), and another program of its venv given as the
    # entrypoint, as the backend does for every process
    podman = ["podman", *storage, "--runtime", "/usr/sbin/runc", "--cgroup-manager", "cgroupfs", "--events-backend",
              "file", "run", "--rm", "--network", "host", "--ulimit", "nofile=20000:20000",
              "--ulimit", "nproc=32768:32768"]
    assert run(*podman, image, "--version").stdout.strip() == "29.1.0"   # the image's own entrypoint
    out = run(*podman, "--entrypoint", "/opt/openstack/keystone-29.1.0/bin/python", image, "-c",
              "import keystone, sys; print(sys.executable, keystone.__file__)")
    assert out.stdout.split() == ["/opt/openstack/keystone-29.1.0/bin/python",
                                  "/opt/openstack/keystone-29.1.0/lib/python3.11/site-packages/keystone/__init__.py"]
