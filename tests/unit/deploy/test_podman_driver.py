"""compute_driver: podman in the deployment's definitions: podman's API service as a backing process (local
backend), the host's API socket mounted into nova-compute (container backends), nova.conf's driver settings, the
busybox image verify boots, and the API's health probe."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading

import pytest
import yaml

from stackcrate.deploy import containers, podman_api, secrets
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.configs import configs
from stackcrate.deploy.health import podman_ping
from stackcrate.deploy.install import artifacts
from stackcrate.deploy.instance_image import GREETING, REF, archive_bytes
from stackcrate.deploy.layout import Layout
from stackcrate.deploy.processes import all_processes, process_names
from stackcrate.errors import StackcrateError
from tests.unit.deploy.test_process_table import parse_run


def local_layout(d: Deployment) -> Layout:
    return Layout(d, {c: a.install_path for c, a in artifacts(d).items()}, secrets=dict.fromkeys(secrets.NAMES, "x"))


def deployment(dep, **config) -> Deployment:
    conf = yaml.safe_load(dep["config"].read_text())
    conf.update(config)
    dep["config"].write_text(yaml.safe_dump(conf))
    return Deployment(dep["services"], dep["config"])


def test_the_fake_driver_stays_the_default(dep):
    d = Deployment(dep["services"], dep["config"])
    assert d.config.compute_driver == "fake" and "podman-api" not in process_names(d)
    nova = configs(local_layout(d))["nova"]
    assert nova["DEFAULT"]["compute_driver"] == "stackcrate_fake.FakeOVSDriver" and "podman" not in nova


def test_the_local_backend_runs_podmans_api_and_points_nova_at_it(dep):
    d = deployment(dep, compute_driver="podman")
    names = process_names(d)
    assert names.index("podman-api") == names.index("ovn-controller") + 1 < names.index("nova-compute")
    api = next(p for p in all_processes(local_layout(d)) if p.name == "podman-api")
    sock = d.state / "run" / "podman" / "podman.sock"
    assert api.args[-4:] == ("system", "service", "--time=0", f"unix://{sock}")
    assert api.health.kind == "podman" and api.writes == (str(sock.parent),)
    runtime = containers.oci_runtime(d)
    assert (api.args[:2] == ("--runtime", runtime)) if runtime else api.args[0] == "system"
    nova = configs(local_layout(d))["nova"]
    assert nova["DEFAULT"]["compute_driver"] == "stackcrate_podman.driver.PodmanDriver"
    assert nova["podman"] == {"api_uri": f"unix://{sock}", "owner": f"stackcrate-{d.id}",
                              "image_repository": f"localhost/nova-glance/stackcrate-{d.id}",
                              "ulimits": ",".join(f"{k}:{v}" for k, v in sorted(containers.ulimits(d).items()))}


@pytest.mark.parametrize("given", [None, "/srv/podman/api.sock"])
def test_a_container_backend_mounts_the_hosts_socket_into_nova_compute_only(dep, given):
    d = deployment(dep, compute_driver="podman", backend="podman", podman_api_socket=given)
    sock = given or "/run/podman/podman.sock"
    assert "podman-api" not in process_names(d)
    lay = local_layout(d)
    imgs = containers.images(d)
    mounted = {}
    for p in all_processes(lay):
        if p.component in imgs:
            opts = parse_run([d.backend, *containers.run_command(d, p, imgs[p.component].name)])["opts"]
            mounted[p.name] = [v for v in opts.get("--volume", []) if v.startswith(str(sock).rsplit("/", 1)[0] + ":")]
    assert mounted.pop("nova-compute") == [f"{sock.rsplit('/', 1)[0]}:{sock.rsplit('/', 1)[0]}:rw"]
    assert not any(mounted.values())
    assert configs(lay)["nova"]["podman"]["api_uri"] == f"unix://{sock}"


def test_a_relative_podman_socket_is_refused_with_the_field_named(dep):
    with pytest.raises(StackcrateError) as exc:
        deployment(dep, compute_driver="podman", podman_api_socket="run/podman.sock")
    assert "podman_api_socket" in exc.value.render() and "absolute" in exc.value.render()


def test_a_container_backend_without_the_hosts_api_stops_before_anything_starts(dep, tmp_path):
    d = deployment(dep, compute_driver="podman", backend="podman", podman_api_socket=str(tmp_path / "none.sock"))
    with pytest.raises(StackcrateError) as exc:
        podman_api.check(d)
    text = exc.value.render()
    assert "podman's API does not answer" in text and "system service" in text and "podman.socket" in text


def serve_once(path, reply: bytes) -> threading.Thread:
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)

    def one():
        with srv:
            conn, _ = srv.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(reply)

    th = threading.Thread(target=one, daemon=True)
    th.start()
    return th


def test_the_podman_probe_reads_the_apis_version(tmp_path):
    body = json.dumps({"Version": "4.3.1", "ApiVersion": "1.41"}).encode()
    serve_once(tmp_path / "ok.sock", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
    v = podman_ping(str(tmp_path / "ok.sock"))
    assert v.ok and v.version == "4.3.1" and v.detail == f"podman 4.3.1 API on {tmp_path / 'ok.sock'}"
    serve_once(tmp_path / "bad.sock", b"HTTP/1.1 500 Internal Server Error\r\n\r\n{}")
    v = podman_ping(str(tmp_path / "bad.sock"))
    assert not v.ok and "500" in v.detail


def test_the_instance_image_is_a_docker_archive_of_busybox_built_the_same_every_time():
    busybox = b"\x7fELF fake busybox"
    data = archive_bytes(busybox)
    assert data == archive_bytes(busybox) and data != archive_bytes(busybox + b"!")
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())
        assert manifest[0]["RepoTags"] == [REF]
        config_raw = tf.extractfile(manifest[0]["Config"]).read()
        layer = tf.extractfile(manifest[0]["Layers"][0]).read()
    config = json.loads(config_raw)
    assert manifest[0]["Config"] == hashlib.sha256(config_raw).hexdigest() + ".json"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert GREETING in config["config"]["Cmd"][-1] and "trap" in config["config"]["Cmd"][-1]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tf:
        files = {m.name: m for m in tf.getmembers()}
        assert tf.extractfile("bin/busybox").read() == busybox and files["bin/busybox"].mode == 0o755
        assert {n for n, m in files.items() if m.issym() and m.linkname == "busybox"} >= {"bin/sh", "bin/sleep"}
        assert {m.mtime for m in files.values()} == {315532800}
