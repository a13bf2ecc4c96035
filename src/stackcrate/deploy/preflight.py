"""Before a deployment starts, refuse what would fail halfway: artifacts, programs or images missing, a port in
use or in the ephemeral range, secrets changed but not applied."""

from __future__ import annotations

import socket
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from . import backing, podman_api, secrets
from .config import Deployment
from .install import artifacts
from .manager import STOPPED, manager_for
from .processes import proc_name, process_names
from .supervisor import orphans
from .timer import Timer


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def ports(d: Deployment) -> dict[str, list[int]]:
    """The ports each process listens on, from the services file alone (checked free before it starts)."""
    b = d.services.backing
    out = {"mariadb": [b.mariadb.port], "epmd": [b.rabbitmq.epmd_port],
           "rabbitmq": [b.rabbitmq.port, b.rabbitmq.dist_port], "memcached": [b.memcached.port],
           "haproxy": [s.port for s in d.services.enabled().values()],
           "ovn-nb-db": [b.ovn.nb_port], "ovn-sb-db": [b.ovn.sb_port]}
    for name, s in d.services.enabled().items():
        out[proc_name(name)] = [s.backend_port]
    return {n: out.get(n, []) for n in process_names(d)}


def preflight(d: Deployment, t: Timer) -> None:
    """Refuse before changing anything: artifacts and programs present (a container backend: the images loaded
    and the engine can run a container), every port of a stopped process free."""
    if d.config.tls:
        tools.which("openssl")
    sup = manager_for(d)
    if d.backend == "local":
        artifacts(d)
        backing.check_programs(d)
    else:
        podman_api.check(d)
        with t.step(f"Images in {d.backend}'s store; a test container") as info:
            copied = sup.preflight()  # type: ignore[union-attr]
            info["note"] = f"{len(copied)} image(s) copied in" if copied else "all there"
    # The ephemeral range first: a port there may be in use right now only because an outgoing connection
    # took it, and "in use" would send the operator looking for a program that is not there.
    wanted = ports(d)
    lo, hi = _ephemeral_range()
    risky = [f"{port} ({name})" for name, plist in wanted.items() for port in plist if lo <= port <= hi]
    if risky:
        # Seen: an outgoing connection took 38774 as its source port and HAProxy could not bind it on restart.
        raise StackcrateError(f"port(s) in this machine's ephemeral range {lo}-{hi}: {', '.join(risky)}",
                              hint="outgoing connections may take them at any time; pick ports below "
                              f"{lo} in the services file")
    states = sup.states() if sup.running() else {}
    leftover = {} if states or d.backend != "local" else orphans(d.state)
    busy = []
    for name, plist in wanted.items():
        st = states.get(name)
        if (st and st.state not in STOPPED) or name in leftover:
            continue  # ours: start leaves it running (or replaces it)
        busy += [f"{port} ({name})" for port in plist if not port_free(d.listen, port)]
    if busy:
        raise StackcrateError(f"port(s) already in use on {d.listen}: {', '.join(busy)}",
                              hint="stop what uses them, or change the ports in the services file")


def refuse_pending_secrets(d: Deployment) -> None:
    changed = secrets.pending(d.state, d.config.secrets, secrets.needed(d.config.node.roles))
    if changed:
        raise StackcrateError(f"secret(s) changed in {d.config_path.name} and not applied yet: {', '.join(changed)}"
                              " (or set half-way by an init that did not finish)",
                              hint="`stackcrate deploy init` applies them to every service that uses them "
                              "(start does not: the services would run with old and new values mixed)")
