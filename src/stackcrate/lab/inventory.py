"""The lab's SSH key and its Ansible inventory (hosts.yml, Ansible's own YAML format).

Groups follow Kolla-Ansible's: `control` (databases, message queue, APIs, conductor, scheduler), `network`
(neutron's control plane, with control for now) and `compute` (nova-compute). node1 is the control node, every
other node a compute node; a one-node lab is both. The only things lab-specific are how SSH gets in (the relay
ProxyCommand into the lab's namespace) and where the deploy host serves its apt repository (on the lab's bridge,
inside that namespace): an inventory of real hosts is the same without them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from .. import tools
from .state import CONTROLLER_IP, LabDir, Node


def ensure_key(lab: LabDir) -> str:
    """The key the controller logs in with (made once per lab folder); returns the public half."""
    if not lab.key.exists():
        tools.run([tools.which("ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "", "-C",
                   f"stackcrate-lab-{lab.id}", "-f", str(lab.key)], timeout=30)
    return lab.key.with_suffix(".pub").read_text()


def groups(names: list[str]) -> dict[str, list[str]]:
    control = names[:1]
    return {"control": control, "network": control, "compute": names[1:] or control}


def inventory(lab: LabDir, nodes: list[Node]) -> dict:
    proxy = f"{sys.executable} -m stackcrate.lab.relay {lab.netns} %h %p"
    ssh_args = (f'-o ProxyCommand="{proxy}" -o UserKnownHostsFile={lab.known_hosts} '
                "-o StrictHostKeyChecking=accept-new")
    return {"all": {
        "vars": {"ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3",
                 "ansible_ssh_private_key_file": str(lab.key), "ansible_ssh_common_args": ssh_args,
                 # the deploy host serves its apt repository on the bridge, inside the lab's namespace
                 "stackcrate_repo_address": CONTROLLER_IP, "stackcrate_repo_netns": lab.netns},
        "hosts": {n.name: {"ansible_host": n.ip} for n in nodes},
        "children": {g: {"hosts": dict.fromkeys(members)}
                     for g, members in groups([n.name for n in nodes]).items()},
    }}


def write_inventory(lab: LabDir, nodes: list[Node]) -> Path:
    header = (f"# The lab's nodes, made by `stackcrate lab up` ({len(nodes)} nodes); `stackcrate lab down` removes "
              "it.\n# Ansible reaches them through the lab's namespace (ProxyCommand); for real hosts, drop that "
              "and\n# give each host its own address: see examples/multinode/hosts.yml.\n")
    lab.inventory.write_text(header + yaml.safe_dump(inventory(lab, nodes), sort_keys=False, width=200))
    return lab.inventory
