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

from stackcrate.deploy.backing import HOST_PACKAGES
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.multinode import cloud_of, host_configuration, host_vars, read_inventory
from stackcrate.errors import StackcrateError
from stackcrate.lab.lab import BASE_PACKAGES, DEPLOY_PACKAGES
from tests.conftest import REPO

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


def test_stackcrate_address_wins_over_ansible_host():
    data = _listed({"a": "192.0.2.1"}, ["a"], ["a"])
    data["_meta"]["hostvars"]["a"]["stackcrate_address"] = "198.51.100.1"
    assert cloud_of(Path("hosts.yml"), data).hosts[0].address == "198.51.100.1"


@pytest.fixture
def d(tmp_path) -> Deployment:
    (tmp_path / "services.yaml").write_text((EXAMPLE / "services.yaml").read_text())
    conf = yaml.safe_load((EXAMPLE / "configuration.yaml").read_text())
    conf.update(artifacts=str(tmp_path / "dist"))
    (tmp_path / "configuration.yaml").write_text(yaml.safe_dump(conf))
    dist = tmp_path / "dist"
    dist.mkdir()
    comps = ["keystone", "glance", "openstack-placement", "neutron", "nova", "python-openstackclient"]
    arts = []
    for c in comps:
        (dist / f"{c}-1.0.tar.zst").write_bytes(b"x")
        arts.append({"component": c, "file": f"{c}-1.0.tar.zst", "format": "tar", "version": "1.0",
                     "install_path": f"/opt/openstack/{c}-1.0", "sha256": "0" * 64, "size": 1, "series": "2026.1",
                     "target": "debian-bookworm", "build_key": "k", "source": {"type": "pypi", "revision": "1.0"},
                     "source_date_epoch": 0})
    (dist / "artifacts.json").write_text(json.dumps({"stackcrate": "0.1.0", "artifacts": arts}))
    return Deployment(tmp_path / "services.yaml", tmp_path / "configuration.yaml")


def test_each_host_gets_its_address_roles_the_control_address_and_the_same_secrets(d):
    cloud = cloud_of(Path("hosts.yml"), THREE)
    values = {"admin_password": "a"}
    node2 = host_configuration(d, cloud, cloud.hosts[1], values)
    assert node2["listen"] == "10.99.0.12" and node2["secrets"] == values
    assert node2["node"] == {"name": "node2", "roles": ["compute"], "control_address": "10.99.0.11",
                             "compute_hosts": ["node2", "node3"]}
    assert node2["state_dir"].startswith("/var/lib/stackcrate/") and "manifest" not in node2
    assert node2["overrides"] == d.config.model_dump()["overrides"]  # the deploy host's settings carry over


def test_a_compute_host_gets_novas_artifact_and_its_packages_the_control_host_every_artifact(d):
    cloud = cloud_of(Path("hosts.yml"), THREE)
    per_host = host_vars(d, cloud, {})
    assert [Path(f).name for f in per_host["node2"]["artifacts"]] == ["nova-1.0.tar.zst"]
    assert len(per_host["node1"]["artifacts"]) == 6
    assert per_host["node2"]["packages"] == list(HOST_PACKAGES["compute"])
    assert "mariadb-server" in per_host["node1"]["packages"] and "ovn-host" not in per_host["node1"]["packages"]


def test_the_lab_nodes_come_with_every_package_a_deployment_installs():
    wanted = {p for packages in HOST_PACKAGES.values() for p in packages}
    assert wanted <= set(BASE_PACKAGES + DEPLOY_PACKAGES)


def test_an_inventory_ansible_cannot_read_is_refused_with_ansibles_words(d, tmp_path):
    bad = tmp_path / "hosts.yml"
    bad.write_text("all:\n  hosts: [unclosed\n")
    with pytest.raises(StackcrateError, match="Ansible cannot read the inventory"):
        read_inventory(d, bad)
    with pytest.raises(StackcrateError, match="does not exist"):
        read_inventory(d, tmp_path / "missing.yml")


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
