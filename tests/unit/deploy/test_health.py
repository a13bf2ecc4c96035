"""Health checks in each service's own protocol, against small servers on loopback that speak it (or not)."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from stackcrate.deploy import health, keystone_api
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.processes import Health, ProcessDef

# A MariaDB 10.11 greeting (protocol 10, "5.5.5-" prefix, as MariaDB sends it), up to the version string.
MARIADB_GREETING = b"\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00" + b"\x08\x00\x00\x00" + b"abcdefgh\x00" + b"\x00" * 20


def packet(body: bytes, seq: int = 0) -> bytes:
    return len(body).to_bytes(3, "little") + bytes([seq]) + body


def serve_once(reply: bytes | None, read_first: bool = False) -> int:
    """A one-connection TCP server on loopback answering `reply` (None: close at once); returns its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def run():
        conn, _ = srv.accept()
        with conn:
            if read_first:
                conn.recv(1024)
            if reply:
                conn.sendall(reply)
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


def test_mariadb_greeting_gives_its_version():
    v = health.mysql_greeting("127.0.0.1", serve_once(packet(MARIADB_GREETING)))
    assert (v.ok, v.version) == (True, "10.11.6")


def test_a_fresh_mariadb_that_lets_no_user_in_from_here_yet_still_answers():
    body = b"\xff" + (1130).to_bytes(2, "little") + b"Host '127.0.0.1' is not allowed to connect to this MariaDB server"
    v = health.mysql_greeting("127.0.0.1", serve_once(packet(body)))
    assert v.ok and "is not allowed" in v.detail


@pytest.mark.parametrize("reply, why", [
    (None, "without a greeting"),
    (packet(b"\xff\x10\x04Too many connections"), "refused: Too many connections"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not a MySQL/MariaDB greeting"),
])
def test_a_port_that_does_not_speak_mariadb_is_not_healthy(reply, why):
    v = health.mysql_greeting("127.0.0.1", serve_once(reply))
    assert not v.ok and why in v.detail


def test_memcached_answers_its_version_command():
    assert health.memcached_version("127.0.0.1", serve_once(b"VERSION 1.6.18\r\n", read_first=True)).version == \
        "1.6.18"
    assert not health.memcached_version("127.0.0.1", serve_once(b"ERROR\r\n", read_first=True)).ok


def test_epmd_lists_the_rabbitmq_node():
    reply = (24369).to_bytes(4, "big") + b"name stackcrate at port 25673\n"
    v = health.epmd_names("127.0.0.1", serve_once(reply, read_first=True))
    assert v.ok and v.detail == "nodes: stackcrate"


def test_tcp_names_the_ports_that_refuse():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        v = health.tcp_accepts("127.0.0.1", (s.getsockname()[1], 9))
    assert not v.ok and v.detail == "port(s) 9 refuse connections"


class FakeCloud:
    """keystone (tokens for the right password) and one API that wants a token, on loopback."""

    def __init__(self, password: str):
        import http.server

        cloud = self
        self.tokens_issued = 0
        self.valid: set[str] = set()  # the tokens the API takes (clear it: keystone revoked them)

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ok = body["auth"]["identity"]["password"]["user"]["password"] == password
                self.send_response(201 if ok else 401)
                if ok:
                    cloud.tokens_issued += 1
                    cloud.valid.add(f"tok{cloud.tokens_issued}")
                    self.send_header("X-Subject-Token", f"tok{cloud.tokens_issued}")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_GET(self):  # noqa: N802
                ok = self.headers.get("X-Auth-Token") in cloud.valid
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def deployment_with_keystone_on(dep, port: int) -> Deployment:
    services = yaml.safe_load(dep["services"].read_text())
    services["services"]["keystone"]["backend_port"] = port
    dep["services"].write_text(yaml.safe_dump(services))
    return Deployment(dep["services"], dep["config"])


def test_api_checks_share_one_token_and_fail_saying_keystone_is_why(dep):
    cloud = FakeCloud("right")
    d = deployment_with_keystone_on(dep, cloud.port)
    api = ProcessDef("glance", "service", "/x", (), health=Health("api", url=f"http://127.0.0.1:{cloud.port}/v2/x"))
    checker = health.Checker(d, {"admin_password": "right"})
    assert checker.check(api).ok and checker.check(api).ok
    assert cloud.tokens_issued == 1  # one token for the round
    token = ProcessDef("keystone", "service", "/x", (), health=Health("token"))
    assert checker.check(token).detail.startswith("token issued in")
    wrong = health.Checker(d, {"admin_password": "wrong"})
    v = wrong.check(api)
    assert not v.ok and v.detail == "keystone issues no token (HTTP 401)"
    assert wrong.check(token).detail == "HTTP 401"
    cloud.srv.shutdown()


def test_the_rounds_of_one_wait_share_one_token_issued_again_only_after_a_failure(dep):
    """A start polls each starting API every 0.2 s, each poll a round of its own: one token for them all (keystone
    hashes the password of every token it issues); an issue that failed (keystone not up) is tried again."""
    cloud = FakeCloud("right")
    d = deployment_with_keystone_on(dep, cloud.port)
    api = ProcessDef("glance", "service", "/x", (), health=Health("api", url=f"http://127.0.0.1:{cloud.port}/v2/x"))
    tokens = health.Tokens()
    rounds = [health.Checker(d, {"admin_password": "right"}, tokens=tokens) for _ in range(6)]
    threads = [threading.Thread(target=c.check, args=(api,)) for c in rounds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(c.check(api).ok for c in rounds) and cloud.tokens_issued == 1
    assert health.Checker(d, {"admin_password": "right"}).check(api).ok and cloud.tokens_issued == 2  # a round alone
    calls = []

    def issue():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("keystone not up yet")
        return "tok", 0.1

    later = health.Tokens()
    with pytest.raises(RuntimeError):
        later.get(issue)
    assert later.get(issue) == "tok" and later.get(issue) == "tok" and len(calls) == 2
    cloud.srv.shutdown()


def test_keystones_own_check_gives_its_token_to_the_checks_after_it_and_a_refused_one_is_issued_again(dep):
    """init shares one admin token: the one keystone's check issues (a bcrypt hash for keystone) serves every
    check after it; one keystone refuses (401: expired, or revoked by a changed password) is issued again."""
    cloud = FakeCloud("right")
    d = deployment_with_keystone_on(dep, cloud.port)
    api = ProcessDef("glance", "service", "/x", (), health=Health("api", url=f"http://127.0.0.1:{cloud.port}/v2/x"))
    keystone = ProcessDef("keystone", "service", "/x", (), health=Health("token"))
    tokens = health.Tokens()
    assert health.Checker(d, {"admin_password": "right"}, tokens=tokens).check(keystone).ok
    assert health.Checker(d, {"admin_password": "right"}, tokens=tokens).check(api).ok
    assert cloud.tokens_issued == 1
    cloud.valid.clear()
    refused = health.Checker(d, {"admin_password": "right"}, tokens=tokens).check(api)
    assert not refused.ok and refused.detail == "HTTP 401"
    assert health.Checker(d, {"admin_password": "right"}, tokens=tokens).check(api).ok
    assert cloud.tokens_issued == 2
    cloud.srv.shutdown()


def test_the_catalog_is_registered_with_another_token_a_second_later_when_keystone_refuses_the_shared_one(
        dep, monkeypatch):
    """keystone revokes the admin's tokens when its bootstrap sets a changed password, and one issued within that
    same second as well: register_with forgets the refused token and registers with another, issued a second
    later; refused again, it stops with keystone's answer."""
    cloud = FakeCloud("right")
    d = deployment_with_keystone_on(dep, cloud.port)
    tokens = health.Tokens()
    issue = health.Checker(d, {"admin_password": "right"}, tokens=tokens).issue_token
    tokens.get(issue)  # keystone's own check issued it (and offered it)...
    cloud.valid.clear()  # ... in the second keystone revoked the admin's tokens
    slept: list[float] = []
    monkeypatch.setattr(keystone_api.time, "sleep", slept.append)

    def register(lay, token):  # what the real one does first: a GET with the token
        keystone_api.Keystone(f"http://127.0.0.1:{cloud.port}", token)._call("GET", "/v3/services")
        return 7

    monkeypatch.setattr(keystone_api, "register", register)
    assert keystone_api.register_with(None, tokens, issue) == 7
    assert slept == [keystone_api.REISSUE_AFTER] and cloud.tokens_issued == 2
    cloud.valid.clear()
    with pytest.raises(keystone_api.TokenRefused, match="GET /v3/services failed: HTTP 401"):
        keystone_api.register_with(None, tokens, lambda: ("never-valid", 0.0))
    cloud.srv.shutdown()


def test_a_nova_worker_missing_or_down_in_the_service_list_is_not_healthy(dep, monkeypatch):
    d = Deployment(dep["services"], dep["config"])
    checker = health.Checker(d, {})
    compute = Health("rpc", queue="compute.stackcrate", binary="nova-compute", host="stackcrate")
    p = ProcessDef("nova-compute", "service", "/x", (), health=compute)
    monkeypatch.setattr(checker, "nova_services", lambda: None)
    assert checker.check(p).detail == "cannot tell: nova-api does not answer"
    monkeypatch.setattr(checker, "nova_services", lambda: listed({"binary": "nova-conductor", "host": "stackcrate"}))
    assert checker.check(p).detail == "nova-compute on stackcrate is not in nova's service list"
    monkeypatch.setattr(checker, "nova_services", lambda: listed(
        {"binary": "nova-compute", "host": "stackcrate", "state": "down", "status": "enabled"}))
    assert checker.check(p).detail == "nova-compute is down/enabled in nova"


def listed(*records: dict, answered_at: datetime | None = None) -> health.NovaServices:
    """nova-api's service list, answered now (by its Date header: answered_at)."""
    return health.NovaServices(list(records), answered_at, time.monotonic())


def compute_record(written: datetime | None) -> dict:
    return {"binary": "nova-compute", "host": "stackcrate", "state": "up", "status": "enabled",
            "updated_at": written.replace(tzinfo=None).isoformat(timespec="microseconds") if written else None}


def test_a_nova_worker_up_on_the_report_of_the_process_before_it_is_not_healthy(dep, monkeypatch):
    """After a stop and a start within nova's down time, the record is "up" on the last report of the process
    before: the new one (30 s old here) is not counted until a report of its own is written."""
    d = Deployment(dep["services"], dep["config"])
    checker = health.Checker(d, {})
    p = ProcessDef("nova-compute", "service", "/x", (),
                   health=Health("rpc", queue="compute.stackcrate", binary="nova-compute", host="stackcrate"))
    monkeypatch.setattr(health.tools, "process_age", lambda pid: 30.0)
    now = datetime.now(UTC)
    monkeypatch.setattr(checker, "nova_services", lambda: listed(compute_record(now - timedelta(seconds=45)),
                                                                  answered_at=now))
    assert checker.check(p, 4242).detail == ("nova-compute has not reported to nova since it started 30s ago "
                                            "(nova's record of it is 45s old)")
    assert not checker.check(p, 4242).ok


@pytest.mark.parametrize(("record_age", "own"), [(45, False), (28.5, False), (27, True), (0, True), (None, True)])
def test_a_record_counts_as_the_process_own_only_when_written_whole_seconds_after_it_started(
        monkeypatch, record_age, own):
    """30 s after the process started: a record 28.5 s old may be a report from just before it (nova's times and
    the Date header are whole seconds); one never written since it was made (no updated_at) is its own."""
    monkeypatch.setattr(health.tools, "process_age", lambda pid: 30.0)
    now = datetime.now(UTC)
    record = compute_record(None if record_age is None else now - timedelta(seconds=record_age))
    assert (health.since_start(record, listed(record, answered_at=now), 4242) is None) is own


def test_a_records_age_is_read_by_nova_apis_clock_not_this_hosts(monkeypatch):
    """A control host whose clock is an hour ahead of this one: its Date header and the record's time are on its
    clock, the process's age on this host's."""
    monkeypatch.setattr(health.tools, "process_age", lambda pid: 30.0)
    there = datetime.now(UTC) + timedelta(hours=1)
    fresh, stale = compute_record(there - timedelta(seconds=10)), compute_record(there - timedelta(seconds=40))
    assert health.since_start(fresh, listed(fresh, answered_at=there), 4242) is None
    assert "has not reported" in health.since_start(stale, listed(stale, answered_at=there), 4242)


def test_a_record_of_a_process_that_is_gone_is_not_its_own(monkeypatch):
    monkeypatch.setattr(health.tools, "process_age", lambda pid: None)
    record = compute_record(datetime.now(UTC))
    assert health.since_start(record, listed(record), 4242) == "process 4242 is gone"
