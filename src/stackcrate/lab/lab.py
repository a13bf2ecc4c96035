"""`stackcrate lab up | down | status | exec`: the nodes, their network and their inventory, made and removed as
one. `up` leaves nothing half-made: a failure takes down what it started."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from .. import tools
from ..buildroot import base_rootfs
from ..cache import Cache
from ..errors import StackcrateError
from ..targets import get_target
from . import inventory, network, nodes
from .state import MAX_NODES, LabDir, LabState, Node, node_ip

# What every node has besides minbase: sshd, the Python Ansible's modules run with (python3-apt for its apt
# module, which would otherwise try to install it), ip and ping to look at the network ...
BASE_PACKAGES = ("openssh-server", "python3", "python3-apt", "iproute2", "iputils-ping", "procps")
# ... and, since a lab's nodes reach no Debian mirror, every package `stackcrate deploy -i` installs on a host
# (deploy/backing.py: HOST_PACKAGES and CONTAINER_HOST_PACKAGES; a unit test keeps them in step), installed once
# in the cached base.
DEPLOY_PACKAGES = ("python3-venv", "supervisor", "mariadb-server", "mariadb-client", "rabbitmq-server", "memcached",
                   "haproxy", "ovn-central", "ovn-host", "openvswitch-switch",
                   # a host running its processes in containers (CONTAINER_HOST_PACKAGES)
                   "podman", "runc", "skopeo", "catatonit")
# ... and the Debian packages that examples/deploy's own packages depend on (their Depends: apt must find them
# installed when it installs openstack-nova-33.0.2 and the rest from the deploy host's repository).
EXAMPLE_DEPENDS = ("gettext", "locales", "libmariadb-dev-compat", "lsscsi", "python3-all", "openssl",
                   "openssh-client", "openvswitch-common")
SSH_WAIT = 60.0  # seconds for every node's sshd to answer


def _require_root() -> None:
    if os.geteuid() != 0:
        raise StackcrateError("the lab needs root: it makes namespaces, mounts and network devices",
                              hint="run `stackcrate lab` as root (e.g. with sudo)")


def up(lab: LabDir, count: int, cache: Cache, target: str = "debian-bookworm", progress=print) -> LabState:
    _require_root()
    if not 1 <= count <= MAX_NODES:
        raise StackcrateError(f"--nodes {count}: a lab has 1 to {MAX_NODES} nodes", hint="e.g. --nodes 3")
    if (old := lab.load()) is not None:
        raise StackcrateError(f"a lab with {len(old.nodes)} node(s) is already up in {lab.path}",
                              hint=f"use it, or take it down first: stackcrate lab down --dir {lab.path}")
    if network.exists(lab.netns):
        raise StackcrateError(f"the network namespace {lab.netns} exists but {lab.state_file} does not",
                              hint=f"remove it (ip netns delete {lab.netns}) or use another --dir")
    started = time.monotonic()
    progress(f"base root filesystem ({target}: {', '.join(BASE_PACKAGES)} and what a deployment installs), "
             "made once and cached")
    base = base_rootfs(get_target(target), cache, BASE_PACKAGES + DEPLOY_PACKAGES + EXAMPLE_DEPENDS)
    lab.path.mkdir(parents=True, exist_ok=True)
    public_key = inventory.ensure_key(lab)
    lab.known_hosts.unlink(missing_ok=True)  # new nodes, new host keys
    planned = [Node(f"node{i}", node_ip(i)) for i in range(1, count + 1)]
    state = LabState(lab.netns, [], str(base))
    lab.save(state)  # from here on, `down` finds whatever exists
    try:
        network.create_bridge(lab.netns)
        for i, node in enumerate(planned, 1):
            running = nodes.start(lab, node, planned, base, public_key)
            state.nodes.append(running)
            lab.save(state)
            network.plug(lab.netns, lab.veth(i), running.pid, running.ip)
        progress(f"{count} node(s) started; waiting for their sshd")
        r = tools.run([sys.executable, "-m", "stackcrate.lab.relay", "--wait-ssh", lab.netns, str(SSH_WAIT),
                       *(n.ip for n in state.nodes)], check=False, timeout=SSH_WAIT + 30)
        if r.returncode != 0:
            raise StackcrateError(f"the lab's nodes did not all start sshd: {r.stderr.strip()}",
                                  hint=f"see {lab.path}/nodes/<node>/console.log")
        inventory.write_inventory(lab, state.nodes)
    except BaseException:
        down(lab)
        raise
    state.seconds_up = round(time.monotonic() - started, 1)
    lab.save(state)
    return state


def down(lab: LabDir) -> list[str]:
    """Stop every node, delete the namespace, remove what `up` wrote; what was removed."""
    _require_root()
    state = lab.load()
    done = []
    for node in state.nodes if state else []:
        if nodes.stop(lab, node):
            done.append(f"node {node.name} stopped")
    if network.remove(lab.netns):
        done.append(f"network namespace {lab.netns} deleted")
    for path in (lab.path / "nodes", lab.inventory, lab.known_hosts, lab.key, lab.key.with_suffix(".pub"),
                 lab.state_file):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if lab.path.is_dir() and not any(lab.path.iterdir()):
        lab.path.rmdir()
    return done


def status(lab: LabDir) -> list[dict]:
    state = lab.load()
    if state is None:
        return []
    return [{"node": n.name, "ip": n.ip, "pid": n.pid, "running": nodes.is_ours(lab, n)} for n in state.nodes]


def node_command(lab: LabDir, name: str, argv: list[str]) -> list[str]:
    """The command running argv inside a node (all its namespaces, its root, a clean environment)."""
    _require_root()
    state = lab.load()
    found = next((n for n in (state.nodes if state else []) if n.name == name), None)
    if found is None or not nodes.is_ours(lab, found):
        known = ", ".join(n.name for n in state.nodes) if state else "none: the lab is down"
        raise StackcrateError(f"no running lab node {name!r} in {lab.path}", hint=f"nodes: {known}")
    env = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
           "LANG=C.UTF-8", "TERM=" + os.environ.get("TERM", "dumb")]
    return [tools.which("nsenter", "util-linux"), "-t", str(found.pid), "-a", *env, *(argv or ["/bin/bash"])]


def leftovers(lab: LabDir) -> list[str]:
    """What of this lab still exists on the machine (empty after `down`): namespace, processes, mounts."""
    found = [f"network namespace {lab.netns}"] if network.exists(lab.netns) else []
    marker = str(lab.path / "nodes").encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in proc.joinpath("cmdline").read_bytes():
                    found.append(f"process {proc.name}")
            except OSError:
                pass
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if str(lab.path) in line:
            found.append(f"mount {line.split()[4]}")
    return found
