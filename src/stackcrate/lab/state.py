"""The lab's folder and the record `lab up` writes (lab.json): which nodes run, with which PIDs and addresses."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

SUBNET = "10.99.0"            # a /24 inside the lab's own namespace: two labs never see each other's
CONTROLLER_IP = f"{SUBNET}.1"  # the bridge's address: where the controller's connections come from
MAX_NODES = 50


def node_ip(index: int) -> str:
    """node1 is .11, node2 .12 ..."""
    return f"{SUBNET}.{10 + index}"


@dataclass
class Node:
    name: str
    ip: str
    pid: int = 0              # PID 1 of the node's PID namespace, as the host sees it
    unshare_pid: int = 0      # its parent, the `unshare` that made the namespaces


@dataclass
class LabState:
    netns: str
    nodes: list[Node] = field(default_factory=list)
    base: str = ""            # the root filesystem every node's overlay sits on
    seconds_up: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "LabState":
        raw = json.loads(text)
        return cls(raw["netns"], [Node(**n) for n in raw.get("nodes", [])], raw.get("base", ""),
                   raw.get("seconds_up", 0.0))


class LabDir:
    """Where one lab keeps everything it makes on disk (default ./lab)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()

    @property
    def id(self) -> str:
        """6 hex digits naming the lab's namespace and veths on the machine (a veth name has ≤ 15 characters)."""
        return hashlib.sha256(str(self.path).encode()).hexdigest()[:6]

    @property
    def netns(self) -> str:
        return f"stackcrate-lab-{self.id}"

    def veth(self, index: int) -> str:
        return f"scl{self.id}n{index}"

    @property
    def state_file(self) -> Path:
        return self.path / "lab.json"

    @property
    def inventory(self) -> Path:
        return self.path / "hosts.yml"

    @property
    def key(self) -> Path:
        return self.path / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.path / "known_hosts"

    def node_dir(self, name: str) -> Path:
        return self.path / "nodes" / name

    def load(self) -> LabState | None:
        try:
            return LabState.from_json(self.state_file.read_text())
        except FileNotFoundError:
            return None

    def save(self, state: LabState) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        tmp.replace(self.state_file)
