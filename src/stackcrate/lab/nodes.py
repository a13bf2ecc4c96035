"""Starting and stopping one lab node: its overlay, the files it gets, the namespaces `unshare` makes for it."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from .state import CONTROLLER_IP, LabDir, Node

HERE = Path(__file__).parent
START_WAIT = 10.0   # seconds for unshare to fork the node's PID 1
STOP_WAIT = 15.0    # seconds for a node to end after SIGTERM (its init gives its processes 5) before SIGKILL
# No DNS server is reachable from a node: a lookup that misses /etc/hosts must fail at once (connection refused)
# rather than wait 2 × 5 s for a nameserver (getent, Erlang and nova look up names).
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
SSHD_CONF = "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
# Keep each node's overlay small: apt's 39 MB binary caches and translations would be copied up per node.
APT_CONF = ('Acquire::Languages "none";\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
            'APT::Keep-Downloaded-Packages "false";\n')


def hosts_file(nodes: list[Node]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{CONTROLLER_IP}\tcontroller"]
    return "\n".join([*lines, *(f"{n.ip}\t{n.name}" for n in nodes)]) + "\n"


def _put(inject: Path, base: Path, inside: str, text: str, mode: int = 0o644, owner: int = 0) -> None:
    """A file for the node at `inside`; the folders on its way keep the base's modes and owners (cp -a copies
    them onto the node's root)."""
    target = inject / inside.lstrip("/")
    parts = Path(inside).parent.parts[1:]
    for i in range(len(parts)):
        rel = Path(*parts[: i + 1])
        folder, original = inject / rel, base / rel
        folder.mkdir(exist_ok=True)
        if original.is_dir():
            st = original.stat()
            os.chmod(folder, st.st_mode & 0o7777)
            os.chown(folder, st.st_uid, st.st_gid)
        else:
            os.chmod(folder, 0o700)
            os.chown(folder, owner, owner)
    target.write_text(text)
    os.chmod(target, mode)
    os.chown(target, owner, owner)


def inject_files(lab: LabDir, node: Node, nodes: list[Node], base: Path, public_key: str) -> Path:
    inject = lab.node_dir(node.name) / "inject"
    shutil.rmtree(inject, ignore_errors=True)
    inject.mkdir(parents=True)
    _put(inject, base, "/etc/hostname", node.name + "\n")
    _put(inject, base, "/etc/hosts", hosts_file(nodes))
    _put(inject, base, "/etc/resolv.conf", RESOLV_CONF)
    _put(inject, base, "/etc/ssh/sshd_config.d/stackcrate-lab.conf", SSHD_CONF)
    _put(inject, base, "/etc/apt/apt.conf.d/90stackcrate-lab", APT_CONF)
    _put(inject, base, "/root/.ssh/authorized_keys", public_key, 0o600)
    _put(inject, base, "/usr/local/sbin/stackcrate-node-init", (HERE / "node-init").read_text(), 0o755)
    return inject


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start(lab: LabDir, node: Node, nodes: list[Node], base: Path, public_key: str) -> Node:
    """Start the node (its PID 1 runs sshd); returns it with its PIDs. Its network comes after (network.plug)."""
    d = lab.node_dir(node.name)
    for sub in ("upper", "work", "merged"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    inject_files(lab, node, nodes, base, public_key)
    argv = [tools.which("unshare", "util-linux"), "--mount", "--uts", "--ipc", "--net", "--pid", "--fork",
            "--propagation", "private", "/bin/sh", str(HERE / "node-setup.sh"), str(d), str(base), node.name]
    parent = tools.spawn(argv, log_file=d / "console.log", umask=0o022)
    deadline = time.monotonic() + START_WAIT
    while not (kids := _children(parent)):
        if time.monotonic() > deadline or not tools.alive(parent):
            raise StackcrateError(f"lab node {node.name} did not start: {tools.log_end(d / 'console.log')}",
                                  hint="run as root on a kernel with overlayfs and unprivileged namespaces off "
                                  "the table (stackcrate lab needs root)")
        time.sleep(0.01)
    return Node(node.name, node.ip, kids[0], parent)


def is_ours(lab: LabDir, node: Node) -> bool:
    """The recorded `unshare` still runs this node (not a PID the kernel has since given to another process)."""
    try:
        cmdline = Path(f"/proc/{node.unshare_pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(lab.node_dir(node.name)).encode() in cmdline


def stop(lab: LabDir, node: Node) -> bool:
    """SIGTERM to the node's PID 1 (its init stops everything in it), SIGKILL after STOP_WAIT; when PID 1 ends
    the kernel drops the node's mounts and network namespace. False when it was not running."""
    if not is_ours(lab, node):
        return False
    for sig, wait in ((signal.SIGTERM, STOP_WAIT), (signal.SIGKILL, 5.0)):
        try:
            os.kill(node.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while (tools.alive(node.pid) or tools.alive(node.unshare_pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not (tools.alive(node.pid) or tools.alive(node.unshare_pid)):
            return True
    raise StackcrateError(f"lab node {node.name} (pid {node.pid}) did not end after SIGKILL",
                          hint=f"look at it with `ps -o pid,stat,cmd --ppid {node.pid}`")
