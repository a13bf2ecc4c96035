"""What `deploy -i INVENTORY` decides on the deploy host, before Ansible runs: the hosts and their roles from the
inventory, each host's configuration, packages and artifacts; and the lab that the nodes' packages come with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackcrate.deploy import secrets
from stackcrate.deploy.backing import CONTAINER_HOST_PACKAGES, HOST_PACKAGES
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.multinode import cloud_of, host_configuration, host_vars, read_inventory, repository
from stackcrate.errors import StackcrateError
from stackcrate.lab.lab import BASE_PACKAGES, DEPLOY_PACKAGES
from stackcrate.tools import serve_folder
from tests.conftest import REPO
from tests.unit.deploy.conftest import fake_image

EXAMPLE = REPO / "examples" / "deploy"


def _listed(hosts: dict[str, str], control: list[str], compute: list[str]) -> dict:
    """What `ansible-inventory --list` prints for such an inventory."""
    return {"_meta": {"hostvars": {h: {"ansible_host": ip} for h, ip in hosts.items()}},
            "all": {"children": ["ungrouped", "control", "compute"]},
            "control": {"hosts": control}, "compute": {"hosts": compute}}


THREE = _listed({"node1": "10.99.0.11", "node2": "10.99.0.12", "node3": "10.99.0.13"}, ["node1"], ["node2", "node3"])


def test_inventory_groups_become_roles_with_each_hosts_address():
    cloud = cloud_of(Path("hosts.yml"), THREE)
    assert [(h.name, h.address, h.roles) for h in cloud.hosts] == [
        ("node1", "10.99.0.11", ("control",)), ("node2", "10.99.0.12", ("compute",)),
        ("node3", "10.99.0.13", ("compute",))]
    assert cloud.control.name == "node1" and [h.name for h in cloud.compute] == ["node2", "node3"]


def test_a_host_in_both_groups_is_control_and_compute():
    cloud = cloud_of(Path("hosts.yml"), _listed({"a": "10.0.0.1"}, ["a"], ["a"]))
    assert cloud.hosts[0].roles == ("control", "compute")


@pytest.mark.parametrize("data, message", [
    (_listed({"a": "10.0.0.1", "b": "10.0.0.2"}, ["a", "b"], ["b"]), "the group `control` has 2 host(s): a, b"),
    (_listed({"a": "10.0.0.1"}, [], ["a"]), "the group `control` has 0 host(s): none"),
    (_listed({"a": "10.0.0.1"}, ["a"], []), "the group `compute` has no host"),
    (_listed({"a": "ctl.example.org"}, ["a"], ["a"]), "host a: 'ctl.example.org' is not an IP address"),
    (_listed({"a_1": "10.0.0.1"}, ["a_1"], ["a_1"]), "host 'a_1': a name of letters, digits, dots and dashes"),
], ids=["two-controls", "no-control", "no-compute", "name-not-ip", "bad-name"])
def test_an_inventory_stackcrate_cannot_deploy_is_refused_naming_it(data, message):
    with pytest.raises(StackcrateError) as exc:
        cloud_of(Path("/x/hosts.yml"), data)
    assert message in exc.value.message and exc.value.where == "/x/hosts.yml"


def test_the_repository_address_and_namespace_come_from_the_inventory_and_a_bad_address_is_refused():
    data = _listed({"a": "192.0.2.1"}, ["a"], ["a"])
    data["_meta"]["hostvars"]["a"].update(stackcrate_repo_address="10.99.0.1", stackcrate_repo_netns="lab-x")
    cloud = cloud_of(Path("hosts.yml"), data)
    assert (cloud.repo_address, cloud.repo_netns) == ("10.99.0.1", "lab-x")
    data["_meta"]["hostvars"]["a"]["stackcrate_repo_address"] = "deploy.example.org"
    with pytest.raises(StackcrateError, match="stackcrate_repo_address: 'deploy.example.org' is not an IP"):
        cloud_of(Path("hosts.yml"), data)


def test_stackcrate_address_wins_over_ansible_host():
    data = _listed({"a": "192.0.2.1"}, ["a"], ["a"])
    data["_meta"]["hostvars"]["a"]["stackcrate_address"] = "198.51.100.1"
    assert cloud_of(Path("hosts.yml"), data).hosts[0].address == "198.51.100.1"


def _deb(root: Path, out: Path, name: str, depends: str) -> None:
    """A small real .deb (dpkg-deb, no root needed)."""
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\n"
                                             f"Maintainer: t <t@example.com>\nDepends: {depends}\nDescription: t\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)], check=True,
                   capture_output=True, timeout=60)


@pytest.fixture
def d(tmp_path) -> Deployment:
    (tmp_path / "services.yaml").write_text((EXAMPLE / "services.yaml").read_text())
    conf = yaml.safe_load((EXAMPLE / "configuration.yaml").read_text())
    conf.update(artifacts=str(tmp_path / "dist"))
    (tmp_path / "configuration.yaml").write_text(yaml.safe_dump(conf))
    dist = tmp_path / "dist"
    dist.mkdir()
    comps = ["keystone", "glance", "openstack-placement", "neutron", "nova", "horizon", "python-openstackclient"]
    arts = []
    for c in comps:
        (dist / f"{c}-1.0.tar.zst").write_bytes(b"x")
        deb = dist / f"openstack-{c}-1.0_1.0_amd64.deb"
        _deb(tmp_path / "debs" / c, deb, f"openstack-{c}-1.0", f"python3.11, {c}-needs (>= 2) | other")
        for fmt, f in (("tar", f"{c}-1.0.tar.zst"), ("deb", deb.name)):
            arts.append({"component": c, "file": f, "format": fmt, "version": "1.0",
                         "install_path": f"/opt/openstack/{c}-1.0", "sha256": "0" * 64, "size": 1,
                         "series": "2026.1", "target": "debian-bookworm", "build_key": "k",
                         "source": {"type": "pypi", "revision": "1.0"}, "source_date_epoch": 0})
    (dist / "artifacts.json").write_text(json.dumps({"stackcrate": "0.1.0", "artifacts": arts}))
    return Deployment(tmp_path / "services.yaml", tmp_path / "configuration.yaml")


def test_each_host_gets_its_address_roles_the_control_address_and_the_secrets_it_uses(d):
    cloud = cloud_of(Path("hosts.yml"), THREE)
    values = {n: f"value-of-{n}" for n in secrets.NAMES}
    node1, node2 = (host_configuration(d, cloud, host, values) for host in cloud.hosts[:2])
    assert node1["secrets"] == values  # the control host
    # a compute host: nova-compute's broker and service users, the admin's (its checks); no database's
    assert node2["listen"] == "10.99.0.12" and node2["secrets"] == {
        n: values[n] for n in ("admin_password", "service_password", "rabbitmq_password")}
    assert node2["node"] == {"name": "node2", "roles": ["compute"], "control_address": "10.99.0.11",
                             "compute_hosts": ["node2", "node3"]}
    assert node2["state_dir"].startswith("/var/lib/stackcrate/") and "manifest" not in node2
    assert node2["overrides"] == d.config.model_dump()["overrides"]  # the deploy host's settings carry over


def test_a_compute_host_gets_novas_package_and_what_it_depends_on_the_control_host_every_package(d):
    cloud = cloud_of(Path("hosts.yml"), THREE)
    per_host = host_vars(d, cloud, {})
    assert per_host["node2"]["debs"] == [{"package": "openstack-nova-1.0", "version": "1.0",
                                          "file": "openstack-nova-1.0_1.0_amd64.deb", "sha256": "0" * 64}]
    assert len(per_host["node1"]["debs"]) == 7
    # the Debian packages first (from the host's own sources), then those the .deb depends on (names only)
    assert per_host["node2"]["packages"] == [*HOST_PACKAGES["compute"], "python3.11", "nova-needs"]
    assert "mariadb-server" in per_host["node1"]["packages"] and "ovn-host" not in per_host["node1"]["packages"]
    assert "keystone-needs" in per_host["node1"]["packages"]
    assert per_host["node2"]["configuration"]["venvs_from"] == "debs"


def test_the_repository_lists_every_deb_links_them_and_is_made_again_only_when_they_change(d):
    repo = repository(d)
    packages = (repo / "Packages").read_text()
    assert packages.count("Package: openstack-") == 7 and "Filename: ./openstack-nova-1.0_1.0_amd64.deb" in packages
    deb = repo / "openstack-nova-1.0_1.0_amd64.deb"
    assert deb.stat().st_ino == (d.artifacts_dir / deb.name).stat().st_ino  # a link, not a copy
    made = (repo / "Release").stat().st_mtime_ns
    assert repository(d) == repo and (repo / "Release").stat().st_mtime_ns == made
    index = json.loads((d.artifacts_dir / "artifacts.json").read_text())
    index["artifacts"] = [a for a in index["artifacts"] if "nova" not in a["file"]]
    (d.artifacts_dir / "artifacts.json").write_text(json.dumps(index))
    assert "openstack-nova" not in (repository(d) / "Packages").read_text()


def test_serve_folder_serves_its_files_while_the_block_runs_and_stops_after(tmp_path):
    import urllib.request

    (tmp_path / "Packages").write_text("Package: x\n")
    with serve_folder(tmp_path, "127.0.0.1") as url:
        with urllib.request.urlopen(f"{url}/Packages", timeout=10) as r:
            assert r.read() == b"Package: x\n"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/Packages", timeout=5)


def test_the_lab_nodes_come_with_every_package_a_deployment_installs():
    wanted = {p for packages in [*HOST_PACKAGES.values(), CONTAINER_HOST_PACKAGES] for p in packages}
    assert wanted <= set(BASE_PACKAGES + DEPLOY_PACKAGES)


def test_an_inventory_ansible_cannot_read_is_refused_with_ansibles_words_leaving_no_state(d, tmp_path):
    bad = tmp_path / "hosts.yml"
    bad.write_text("all:\n  hosts: [unclosed\n")
    with pytest.raises(StackcrateError, match="Ansible cannot read the inventory"):
        read_inventory(d, bad)
    with pytest.raises(StackcrateError, match="does not exist"):
        read_inventory(d, tmp_path / "missing.yml")
    assert not d.state.exists()  # Ansible's own files of that reading went with it


def test_the_example_inventory_of_real_hosts_reads_as_one_control_and_two_compute_hosts(d):
    cloud = read_inventory(d, REPO / "examples" / "multinode" / "hosts.yml")
    assert [(h.name, h.roles) for h in cloud.hosts] == [("ctl1", ("control",)), ("cmp1", ("compute",)),
                                                        ("cmp2", ("compute",))]


def test_playbooks_are_valid_for_ansible(d):
    """ansible-playbook --syntax-check on each shipped playbook (roles resolved, YAML and keywords valid)."""
    from stackcrate.deploy.multinode import PLAYBOOKS, ansible_env

    inventory = REPO / "examples" / "multinode" / "hosts.yml"
    program = Path(sys.executable).parent / "ansible-playbook"
    for book in sorted(PLAYBOOKS.glob("*.yml")):
        extra = '{"stackcrate_args": ["status"], "stackcrate_target": "all"}'
        r = subprocess.run([str(program), "--syntax-check", "-i", str(inventory), "-e", extra, str(book)],
                           capture_output=True, text=True, env={**os.environ, **ansible_env(d)}, timeout=60)
        assert r.returncode == 0, (book.name, r.stdout + r.stderr)


def _with_podman_node3(data: dict, backend: str = "podman") -> dict:
    data = json.loads(json.dumps(data))
    data["_meta"]["hostvars"]["node3"]["stackcrate_backend"] = backend
    return data


def test_a_host_with_stackcrate_backend_podman_runs_containers_and_the_cloud_needs_debs_and_images():
    cloud = cloud_of(Path("hosts.yml"), _with_podman_node3(THREE))
    assert [h.backend for h in cloud.hosts] == ["local", "local", "podman"]
    assert cloud.formats == ["deb", "oci"]
    assert cloud_of(Path("hosts.yml"), THREE, "podman").formats == ["oci"]  # configuration.yaml's backend
    with pytest.raises(StackcrateError, match="host node3: backend 'docker'"):
        cloud_of(Path("hosts.yml"), _with_podman_node3(THREE, "docker"))


def test_a_podman_compute_host_pulls_novas_and_ovns_images_and_gets_no_debs(d):
    from stackcrate.deploy.registry import Pushed

    index = json.loads((d.artifacts_dir / "artifacts.json").read_text())
    for c in ("nova", "keystone", "ovn", "mariadb"):
        manifest = fake_image(d.artifacts_dir, f"{c}-1.0_x")
        index["artifacts"].append({**index["artifacts"][0], "component": c, "format": "oci",
                                   "file": manifest.relative_to(d.artifacts_dir).as_posix(), "version": "1.0+x"})
    (d.artifacts_dir / "artifacts.json").write_text(json.dumps(index))
    cloud = cloud_of(Path("hosts.yml"), _with_podman_node3(THREE))
    pushed = {c: Pushed(c, f"localhost/stackcrate/{c}:1.0_x", f"10.99.0.1:5000/stackcrate/{c}@sha256:{c}", c * 3)
              for c in ("nova", "ovn")}
    per_host = host_vars(d, cloud, {}, pushed)
    node3 = per_host["node3"]
    assert node3["debs"] == [] and node3["packages"] == list(CONTAINER_HOST_PACKAGES)
    assert [i["name"] for i in node3["images"]] == ["localhost/stackcrate/nova:1.0_x", "localhost/stackcrate/ovn:1.0_x"]
    assert node3["images"][0] == {"component": "nova", "name": "localhost/stackcrate/nova:1.0_x",
                                  "pull": "10.99.0.1:5000/stackcrate/nova@sha256:nova", "id": "novanovanova"}
    conf = node3["configuration"]
    assert (conf["backend"], conf["images_from"]) == ("podman", "engine") and "venvs_from" not in conf
    assert per_host["node2"]["images"] == [] and per_host["node2"]["configuration"]["venvs_from"] == "debs"


def test_a_host_running_images_the_engine_holds_checks_them_against_images_json(d):
    from stackcrate.deploy.containers import HELD_IMAGES, images

    index = json.loads((d.artifacts_dir / "artifacts.json").read_text())
    for c in ("nova", "ovn"):  # the images stay on the deploy host: not in this artifacts folder
        index["artifacts"].append({**index["artifacts"][0], "component": c, "format": "oci",
                                   "file": f"images/blobs/sha256/{c}", "version": "1.0"})
    (d.artifacts_dir / "artifacts.json").write_text(json.dumps(index))
    conf = yaml.safe_load(d.config_path.read_text())
    conf.update(backend="podman", images_from="engine",
                node={"name": "node3", "roles": ["compute"], "control_address": "10.99.0.11"})
    d.config_path.write_text(yaml.safe_dump(conf))
    host = Deployment(d.services_path, d.config_path)
    with pytest.raises(StackcrateError, match="images.json cannot be read"):
        images(host)
    held = d.artifacts_dir / HELD_IMAGES
    listed = {c: {"name": f"localhost/stackcrate/{c}:1.0", "id": c} for c in ("nova", "ovn")}
    held.write_text(json.dumps({**listed, "nova": {"name": "localhost/stackcrate/nova:0.9", "id": "x"}}))
    with pytest.raises(StackcrateError, match="does not list the images artifacts.json names for: nova"):
        images(host)
    held.write_text(json.dumps(listed))
    assert {c: (i.laid_out, i.name, i.image_id) for c, i in images(host).items()} == {
        "nova": (None, "localhost/stackcrate/nova:1.0", "nova"), "ovn": (None, "localhost/stackcrate/ovn:1.0", "ovn")}


def test_the_registry_serves_plain_http_from_the_state_folder_at_the_given_address(tmp_path):
    from stackcrate.deploy.registry import config

    conf = config(tmp_path, "10.99.0.1", 5123)
    assert conf["http"]["addr"] == "10.99.0.1:5123" and "tls" not in conf["http"]
    assert conf["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "data")
    assert config(tmp_path, "fd00::1", 5123)["http"]["addr"] == "[fd00::1]:5123"
