"""The lab's inventory, hosts file and record: what Ansible and the nodes get, checked without starting any."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from stackcrate.lab import inventory
from stackcrate.lab.nodes import hosts_file
from stackcrate.lab.state import LabDir, LabState, Node, node_ip


def _nodes(n: int) -> list[Node]:
    return [Node(f"node{i}", node_ip(i), 100 + i, 200 + i) for i in range(1, n + 1)]


def test_three_nodes_make_node1_control_and_network_and_the_others_compute():
    assert inventory.groups(["node1", "node2", "node3"]) == {
        "control": ["node1"], "network": ["node1"], "compute": ["node2", "node3"]}


def test_a_one_node_lab_is_control_and_compute_at_once():
    assert inventory.groups(["node1"]) == {"control": ["node1"], "network": ["node1"], "compute": ["node1"]}


def test_ansible_reads_the_inventory_with_each_host_in_its_groups(tmp_path):
    lab = LabDir(tmp_path / "lab")
    lab.path.mkdir()
    path = inventory.write_inventory(lab, _nodes(3))
    program = shutil.which("ansible-inventory", path=os.path.dirname(sys.executable))
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    out = json.loads(subprocess.run([program, "-i", str(path), "--list"], capture_output=True, text=True,
                                    check=True, env=env, timeout=60).stdout)
    assert out["control"]["hosts"] == ["node1"]
    assert out["compute"]["hosts"] == ["node2", "node3"]
    node2 = out["_meta"]["hostvars"]["node2"]
    assert node2["ansible_host"] == "10.99.0.12"
    assert node2["ansible_ssh_private_key_file"] == str(lab.key)
    # the lab-specific parts: SSH connects from inside the lab's namespace, where the deploy host also serves
    # its apt repository (on the bridge)
    assert f"stackcrate.lab.relay {lab.netns} %h %p" in node2["ansible_ssh_common_args"]
    assert (node2["stackcrate_repo_address"], node2["stackcrate_repo_netns"]) == ("10.99.0.1", lab.netns)


def test_every_node_resolves_every_other_by_name_and_the_controller():
    text = hosts_file(_nodes(3))
    entries = dict(reversed(line.split("\t")) for line in text.splitlines())
    assert entries["node1"] == "10.99.0.11" and entries["node3"] == "10.99.0.13"
    assert entries["controller"] == "10.99.0.1"


def test_the_lab_record_survives_a_round_trip(tmp_path):
    lab = LabDir(tmp_path)
    state = LabState(lab.netns, _nodes(2), "/base", 1.5)
    lab.save(state)
    assert lab.load() == state


def test_two_lab_folders_get_different_namespaces_and_veths_short_enough_for_linux(tmp_path):
    a, b = LabDir(tmp_path / "a"), LabDir(tmp_path / "b")
    assert a.netns != b.netns
    assert len(a.veth(50)) <= 15  # IFNAMSIZ - 1


@pytest.mark.parametrize("count", ["0", "51"])
def test_a_node_count_out_of_range_is_refused_before_anything_is_made(stackcrate, tmp_path, monkeypatch, count):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    r = stackcrate("lab", "up", "--nodes", count, "--dir", tmp_path / "lab")
    assert r.returncode == 2, r.stderr
    assert "a lab has 1 to 50 nodes" in r.stderr
    assert not (tmp_path / "lab").exists()


def test_the_lab_refuses_to_start_without_root(stackcrate, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    r = stackcrate("lab", "up", "--dir", tmp_path / "lab")
    assert r.returncode == 2
    assert "the lab needs root" in r.stderr and "Traceback" not in r.stderr


def test_exec_in_a_lab_that_is_not_up_names_the_folder(stackcrate, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    r = stackcrate("lab", "exec", "--dir", tmp_path / "lab", "node1", "--", "true")
    assert r.returncode == 2
    assert f"no running lab node 'node1' in {tmp_path / 'lab'}" in r.stderr
    assert "the lab is down" in r.stderr
