"""OVN's and Open vSwitch's health checks: JSON-RPC to ovsdb-server and to a daemon's control socket, against
small servers that answer as those do (the integration tests run the real ones)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from stackcrate.deploy import health


def json_rpc_server(sock: socket.socket, answers: dict[str, object], split: bool = False) -> None:
    """Answer each request on one connection with answers[method] (an Exception: a JSON-RPC error); with split,
    each answer goes out in two pieces (a reader must wait for the whole object)."""
    def run():
        conn, _ = sock.accept()
        with conn:
            buf = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                try:
                    req = json.loads(buf)
                except ValueError:
                    continue
                buf = b""
                got = answers[req["method"]]
                reply = {"id": req["id"], "result": None, "error": str(got)} if isinstance(got, Exception) \
                    else {"id": req["id"], "result": got, "error": None}
                out = json.dumps(reply).encode()
                if split:
                    conn.sendall(out[:7])
                    conn.sendall(out[7:])
                else:
                    conn.sendall(out)
        sock.close()

    threading.Thread(target=run, daemon=True).start()


def tcp(answers: dict[str, object], split: bool = False) -> str:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    json_rpc_server(srv, answers, split)
    return f"tcp:127.0.0.1:{srv.getsockname()[1]}"


def unix(path: Path, answers: dict[str, object], split: bool = False) -> Path:
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen()
    json_rpc_server(srv, answers, split)
    return path


def test_an_ovsdb_server_serving_the_database_is_healthy_and_gives_its_schema():
    where = tcp({"list_dbs": ["_Server", "OVN_Northbound"], "get_schema": {"version": "7.0.0"}}, split=True)
    v = health.ovsdb_serves(where, "OVN_Northbound")
    assert v.ok and v.detail == "serves OVN_Northbound (schema 7.0.0) on tcp"


def test_an_ovsdb_server_without_the_database_is_not_healthy():
    v = health.ovsdb_serves(tcp({"list_dbs": ["_Server", "OVN_Southbound"]}), "OVN_Northbound")
    assert not v.ok and v.detail == "serves _Server, OVN_Southbound, not OVN_Northbound"


def test_ovsdb_on_a_unix_socket(tmp_path):
    sock = unix(tmp_path / "db.sock", {"list_dbs": ["Open_vSwitch"], "get_schema": {"version": "8.3.1"}})
    assert health.ovsdb_serves(f"unix:{sock}", "Open_vSwitch").ok


def test_a_missing_control_socket_refuses(tmp_path):
    with pytest.raises(OSError):
        health.unixctl(str(tmp_path / "none.ctl"), "version")


VERSION = "ovn-controller 23.03.1\nOpen vSwitch Library 3.1.0\nOpenFlow versions 0x6:0x6\n"


@pytest.mark.parametrize("status, ok", [("connected\n", True), ("not connected\n", False)])
def test_ovn_controller_is_found_by_its_pid_file_and_must_be_connected(tmp_path, status, ok):
    (tmp_path / "ovn-controller.pid").write_text("4242\n")
    unix(tmp_path / "ovn-controller.4242.ctl", {"connection-status": status, "version": VERSION}, split=True)
    v = health.unixctl(str(tmp_path / "ovn-controller.pid"), "connection-status")
    assert v.ok is ok and v.version == "23.03.1"
    assert v.detail == ("connected" if ok else "not connected to the southbound database (not connected)")


def test_without_a_pid_file_the_controller_is_not_healthy(tmp_path):
    v = health.unixctl(str(tmp_path / "ovn-controller.pid"), "connection-status")
    assert not v.ok and "no pid file" in v.detail


def test_ovs_vswitchd_says_which_datapath_forwards(tmp_path):
    shown = "netdev@ovs-netdev: hit:0 missed:0\n  sc1-int:\n    sc1-int 65534/1: (tap)\n"
    sock = unix(tmp_path / "ovs-vswitchd.ctl", {"dpif/show": shown, "version": "ovs-vswitchd (Open vSwitch) 3.1.0\n"})
    v = health.unixctl(str(sock), "dpif/show")
    assert (v.ok, v.detail, v.version) == (True, "datapath netdev@ovs-netdev", "3.1.0")


def test_ovn_northd_on_standby_is_not_healthy(tmp_path):
    sock = unix(tmp_path / "ovn-northd.ctl", {"status": "Status: standby\n", "version": "ovn-northd 23.03.1\n"})
    v = health.unixctl(str(sock), "status")
    assert not v.ok and "Status: standby" in v.detail


def test_an_error_answer_is_an_error(tmp_path):
    sock = unix(tmp_path / "d.ctl", {"dpif/show": ValueError('"dpif/show" is not a valid command')})
    with pytest.raises(ValueError, match="not a valid command"):
        health.unixctl(str(sock), "dpif/show")
