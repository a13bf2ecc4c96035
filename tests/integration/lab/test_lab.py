"""`stackcrate lab`: three namespace nodes reached by Ansible over real SSH, and nothing left after `down`.

One lab for the module (up ~2 s once the base root filesystem is cached); the last test takes it down.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)


def _ansible(lab_dir: Path, home: Path, *args: str, timeout: float = 120) -> dict[str, dict]:
    """Run an ad-hoc Ansible command on the lab's inventory; each host's result (ansible-core's tree output)."""
    program = Path(sys.executable).parent / "ansible"
    tree = home / "tree"
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    env = dict(os.environ, ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / "tmp"))
    r = subprocess.run([str(program), "-i", str(lab_dir / "hosts.yml"), "--tree", str(tree), *args],
                       capture_output=True, text=True, env=env, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {f.name: json.loads(f.read_text()) for f in tree.iterdir()}


@pytest.fixture(scope="module")
def lab(stackcrate, tmp_path_factory):
    top = tmp_path_factory.mktemp("lab")
    r = stackcrate("--json", "lab", "up", "--nodes", "3", "--dir", top / "lab", timeout=900)
    assert r.returncode == 0, r.stderr
    yield top / "lab", json.loads(r.stdout), top / "ansible-home"
    stackcrate("lab", "down", "--dir", top / "lab", timeout=120)


def test_lab_up_starts_three_nodes_ansible_reaches_over_ssh_by_their_hostnames(lab):
    lab_dir, up, home = lab
    assert [n["name"] for n in up["nodes"]] == ["node1", "node2", "node3"]
    hosts = _ansible(lab_dir, home, "all", "-m", "ansible.builtin.setup", "-a", "filter=ansible_hostname")
    assert {h: v["ansible_facts"]["ansible_hostname"] for h, v in hosts.items()} == \
        {"node1": "node1", "node2": "node2", "node3": "node3"}


def test_nodes_resolve_and_reach_each_other_but_nothing_outside_the_lab(lab):
    lab_dir, _, home = lab
    probe = ("import socket\n"
             "print(socket.gethostbyname('node3'))\n"
             "socket.create_connection(('node3', 22), 5).close()\n"
             "try:\n"
             "    socket.create_connection(('1.1.1.1', 80), 3)\n"
             "    print('outside reached')\n"
             "except OSError as e:\n"
             "    print('outside unreachable')\n")
    hosts = _ansible(lab_dir, home, "node1", "-m", "ansible.builtin.shell",
                     "-a", f"/usr/bin/python3 -c {shlex.quote(probe)}")
    assert hosts["node1"]["stdout_lines"] == ["10.99.0.13", "outside unreachable"]


def test_the_inventory_puts_node1_in_control_and_the_others_in_compute(lab):
    lab_dir, _, home = lab
    hosts = _ansible(lab_dir, home, "compute", "-m", "ansible.builtin.command", "-a", "hostname")
    assert sorted(hosts) == ["node2", "node3"]


def test_a_second_lab_up_in_the_same_folder_is_refused(lab, stackcrate):
    lab_dir, _, _ = lab
    r = stackcrate("lab", "up", "--dir", lab_dir)
    assert r.returncode == 2
    assert f"a lab with 3 node(s) is already up in {lab_dir}" in r.stderr


def test_lab_exec_runs_a_command_inside_a_node(lab, stackcrate):
    lab_dir, up, _ = lab
    r = stackcrate("lab", "exec", "--dir", lab_dir, "node2", "--", "sh", "-c", "hostname; cat /proc/1/cmdline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("node2\n") and "stackcrate-node-init" in r.stdout


def test_lab_down_leaves_no_namespace_process_mount_or_file(lab, stackcrate):
    lab_dir, up, _ = lab
    pids = [n["pid"] for n in up["nodes"]]
    r = stackcrate("lab", "down", "--dir", lab_dir, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "network namespace stackcrate-lab-" in r.stdout
    assert up["netns"] not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(lab_dir) not in mounts
    assert not lab_dir.exists()
