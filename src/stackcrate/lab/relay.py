"""An SSH ProxyCommand for the lab: `python -m stackcrate.lab.relay NETNS HOST PORT` connects to HOST:PORT from
inside the lab's network namespace and relays the connection over its standard input and output.

This is how the controller, which runs in the host's namespace, reaches the nodes without a route, a veth or a
NAT rule on the host. It needs root (setns) like the lab itself. Kept small (the standard library and tools'
setns): it is started once per SSH connection."""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time

from stackcrate.tools import enter_netns

CONNECT_TIMEOUT = 10.0


def relay(sock: socket.socket, fd_in: int, fd_out: int) -> None:
    """Copy both ways until either side closes."""
    sel = selectors.DefaultSelector()
    sel.register(fd_in, selectors.EVENT_READ, "in")
    sel.register(sock, selectors.EVENT_READ, "sock")
    while True:
        for key, _ in sel.select():
            if key.data == "in":
                data = os.read(fd_in, 65536)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    sel.unregister(fd_in)
                    continue
                sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    return
                while data:  # a pipe may take less than all of it
                    data = data[os.write(fd_out, data):]


def wait_ssh(hosts: list[str], timeout: float) -> list[str]:
    """Wait until every host's sshd sends its banner (from inside the namespace); the hosts still silent."""
    left, deadline = set(hosts), time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for host in sorted(left):
            try:
                with socket.create_connection((host, 22), timeout=0.5) as s:
                    s.settimeout(2)
                    if s.recv(4) == b"SSH-":
                        left.discard(host)
            except OSError:
                pass
        time.sleep(0.05)
    return sorted(left)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--wait-ssh"] and len(argv) >= 4:   # --wait-ssh NETNS TIMEOUT HOST...
        enter_netns(argv[1])
        silent = wait_ssh(argv[3:], float(argv[2]))
        if silent:
            print(f"no SSH banner from {', '.join(silent)} within {argv[2]} s", file=sys.stderr)
        return 1 if silent else 0
    if len(argv) != 3:
        print("usage: python -m stackcrate.lab.relay NETNS HOST PORT", file=sys.stderr)
        return 2
    netns, host, port = argv
    try:
        enter_netns(netns)
        sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        print(f"stackcrate lab relay: cannot reach {host}:{port} in {netns}: {exc}", file=sys.stderr)
        return 1
    sock.settimeout(None)
    relay(sock, sys.stdin.fileno(), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
