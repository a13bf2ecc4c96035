"""The lab's network: a bridge in a network namespace of its own, and one veth per node whose ends are created
straight in their namespaces (the bridge's and the node's), so nothing ever appears among the host's
interfaces and no route or NAT leads out of the lab."""

from __future__ import annotations

from pathlib import Path

from .. import tools
from .state import CONTROLLER_IP


def _ip(*args: str) -> None:
    tools.run([tools.which("ip", "iproute2"), *args], timeout=30)


def exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


def create_bridge(netns: str) -> None:
    """The namespace, its loopback and the bridge br0 with the controller's address."""
    _ip("netns", "add", netns)
    _ip("-n", netns, "link", "set", "lo", "up")
    _ip("-n", netns, "link", "add", "br0", "type", "bridge")
    _ip("-n", netns, "addr", "add", f"{CONTROLLER_IP}/24", "dev", "br0")
    _ip("-n", netns, "link", "set", "br0", "up")


def plug(netns: str, veth: str, node_pid: int, ip: str) -> None:
    """A veth between the bridge and the node (eth0 there, with its address and the bridge as gateway)."""
    _ip("link", "add", veth, "netns", netns, "type", "veth", "peer", "name", "eth0", "netns", str(node_pid))
    _ip("-n", netns, "link", "set", veth, "master", "br0", "up")
    nsenter = [tools.which("nsenter", "util-linux"), "-t", str(node_pid), "-n", tools.which("ip", "iproute2")]
    for args in (("link", "set", "lo", "up"), ("addr", "add", f"{ip}/24", "dev", "eth0"),
                 ("link", "set", "eth0", "up"), ("route", "add", "default", "via", CONTROLLER_IP)):
        tools.run([*nsenter, *args], timeout=30)


def remove(netns: str) -> bool:
    """Delete the namespace (the bridge and the veths' bridge ends go with it); False when there was none."""
    if not exists(netns):
        return False
    _ip("netns", "delete", netns)
    return True
