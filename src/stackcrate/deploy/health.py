"""Health checks that mean it: each exercises what the process depends on, in the process's own protocol.

- MariaDB: its handshake (protocol 10 and the server version), so a port held by something else fails;
- RabbitMQ: an AMQP login as the OpenStack user (py-amqp, the library oslo.messaging uses);
- epmd: a NAMES request listing the RabbitMQ node; Memcached: `version`; HAProxy: every frontend accepts;
- OVN's and Open vSwitch's databases: ovsdb-server lists the database (JSON-RPC `list_dbs`) where its clients
  connect; ovn-northd, ovs-vswitchd and ovn-controller: their control socket answers (ovn-northd "active",
  ovn-controller "connected" to the southbound database, ovs-vswitchd the datapath it forwards with);
- keystone: a token issued (database, fernet keys, cache);
- the other APIs: an authenticated call that reads their database, sent to the process itself (not HAProxy);
- the dashboard: its login page, rendered (templates and compressed static files in place);
- nova's conductor, scheduler and compute: "up" in nova's service list *and* consuming their RPC queue (a
  killed nova-compute stays "up" in the list for a minute; its queue consumer is gone at once), and, given the
  process, its record written since that process started (`since_start`).

Each check has a time limit and says what it saw; `Checker` shares one token and one nova service list among
the checks of one round.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .. import tools
from .config import Deployment
from .processes import Health, ProcessDef

TIMEOUT = 5.0  # seconds for any one probe
# seconds a record's age may be off by: nova's times and the HTTP Date header are whole seconds (MariaDB's DATETIME
# drops the fraction, or rounds it), and the two can be off by one each way
CLOCK_GRAIN = 2.0
HOST_NOT_PRIVILEGED = 1130  # MariaDB's answer before any user may connect from the address (a fresh datadir)


@dataclass(frozen=True)
class NovaServices:
    """nova's service list as nova-api answered it, and when: the records' times are read against nova-api's
    clock (its Date header: the conductor, which writes them, runs beside it), a process's age against this
    host's, taken at the moment the list was asked for. So clocks set apart between hosts do not count."""

    services: list[dict]
    answered_at: datetime | None  # nova-api's Date header (None: it sent none, and this host's clock stands in)
    asked: float                  # time.monotonic() when the list was asked for


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str                  # what the check saw, for people
    version: str | None = None   # the server's version, when its protocol tells it


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def mysql_greeting(host: str, port: int) -> Verdict:
    """The server's first packet: protocol version 10, then the version string."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        header = _recv(s, 4)
        if len(header) < 4:
            return Verdict(False, "closed the connection without a greeting")
        body = _recv(s, int.from_bytes(header[:3], "little"))
    if not body:
        return Verdict(False, "closed the connection without a greeting")
    if body[0] == 0xFF:
        code, message = int.from_bytes(body[1:3], "little"), body[3:].decode(errors="replace")
        if code == HOST_NOT_PRIVILEGED:  # the server answers in its protocol; no user may log in from here yet
            return Verdict(True, f"answers ({message})")
        return Verdict(False, f"refused: {message}")
    if body[0] != 10:
        return Verdict(False, f"not a MySQL/MariaDB greeting (protocol {body[0]})")
    version = body[1:body.index(b"\0", 1)].decode(errors="replace")
    return Verdict(True, "handshake", version.removeprefix("5.5.5-").split("-")[0])


def memcached_version(host: str, port: int) -> Verdict:
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.sendall(b"version\r\n")
        line = s.recv(256).decode(errors="replace").strip()
    if line.startswith("VERSION "):
        return Verdict(True, "answers", line.split()[1])
    return Verdict(False, f"unexpected answer {line[:60]!r}")


def epmd_names(host: str, port: int) -> Verdict:
    """EPMD's NAMES request: the Erlang nodes registered (RabbitMQ's among them once it runs)."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.sendall(b"\x00\x01n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    if len(data) < 4:
        return Verdict(False, "no answer to NAMES")
    names = [ln.split()[1] for ln in data[4:].decode(errors="replace").splitlines() if ln.startswith("name ")]
    return Verdict(True, "nodes: " + (", ".join(names) or "none"))


def tcp_accepts(host: str, ports: tuple[int, ...]) -> Verdict:
    closed = []
    for port in ports:
        try:
            with socket.create_connection((host, port), timeout=TIMEOUT):
                pass
        except OSError:
            closed.append(port)
    if closed:
        return Verdict(False, f"port(s) {', '.join(map(str, closed))} refuse connections")
    return Verdict(True, f"{len(ports)} port(s) accept")


def _json_rpc(sock: socket.socket, method: str, params: list) -> object:
    """One JSON-RPC 1.0 request on an OVSDB or unixctl connection: its result, or ValueError with its error."""
    sock.sendall(json.dumps({"method": method, "params": params, "id": 0}).encode())
    decoder, data = json.JSONDecoder(), b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed the connection without an answer")
        data += chunk
        try:
            reply, _ = decoder.raw_decode(data.decode())
        except ValueError:
            continue  # not all of it yet
        if reply.get("error"):
            raise ValueError(f"{method}: {reply['error']}")
        return reply.get("result")


def _connect(where: str) -> socket.socket:
    """tcp:HOST:PORT or unix:PATH (OVS's way of naming a remote)."""
    kind, _, rest = where.partition(":")
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(TIMEOUT)
        try:
            s.connect(rest)
        except OSError:
            s.close()
            raise
        return s
    host, _, port = rest.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=TIMEOUT)


def ovsdb_serves(where: str, db: str) -> Verdict:
    with _connect(where) as s:
        dbs = _json_rpc(s, "list_dbs", [])
        if db not in (dbs or []):
            return Verdict(False, f"serves {', '.join(dbs or []) or 'no database'}, not {db}")  # type: ignore
        schema = _json_rpc(s, "get_schema", [db])
    return Verdict(True, f"serves {db} (schema {schema.get('version', '?')}) on {where.split(':')[0]}")  # type: ignore


def control_socket(path: str) -> str:
    """A daemon's control socket: the path itself, or <program>.<pid>.ctl beside the pid file it names."""
    if not path.endswith(".pid"):
        return path
    with open(path) as f:
        pid = f.read().strip()
    base = path.removesuffix(".pid")
    return f"{base}.{pid}.ctl"


def unixctl(path: str, command: str) -> Verdict:
    """Ask an OVS/OVN daemon over its control socket (what ovs-appctl does)."""
    try:
        where = control_socket(path)
    except OSError:
        return Verdict(False, f"no pid file {path}")
    with _connect(f"unix:{where}") as s:
        answer = str(_json_rpc(s, command, []) or "").strip()
        said = answer if command == "version" else str(_json_rpc(s, "version", []) or "")
    # "ovn-controller 23.03.1\nOpen vSwitch Library 3.1.0": the last word of the first line
    version = said.splitlines()[0].split()[-1] if said.strip() else None
    first = answer.splitlines()[0] if answer else ""
    if command == "connection-status" and first != "connected":
        return Verdict(False, f"not connected to the southbound database ({first or 'no answer'})", version)
    if command == "status" and "active" not in first:
        return Verdict(False, f"not active ({first or 'no answer'})", version)
    if command == "dpif/show":  # ovs-vswitchd: which datapath forwards (netdev@ovs-netdev: userspace)
        return Verdict(True, f"datapath {first.split(':')[0] or 'none yet'}", version)
    return Verdict(True, first, version)


def html_page(url: str) -> Verdict:
    """A GET answered 200 with an HTML page holding a form (the dashboard's login page: Django's templates and
    the compressed static files it names are all there)."""
    r = tools.http(url, headers={"Accept": "text/html"}, timeout=TIMEOUT, retries=0, quiet=True)
    if b"<form" not in r.body:
        return Verdict(False, f"HTTP {r.status} on {url.split('/', 3)[-1]} but no form in the page")
    return Verdict(True, f"HTTP {r.status} on {url.split('/', 3)[-1]}")


def podman_ping(path: str) -> Verdict:
    """podman's API (its Docker-compatible /version) over its unix socket."""
    with _connect(f"unix:{path}") as s:
        s.sendall(b"GET /v1.41/version HTTP/1.0\r\nHost: podman\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in f"{status} ":
        return Verdict(False, f"answers {status or 'nothing'}")
    version = str(json.loads(body).get("Version", "?"))
    return Verdict(True, f"podman {version} API on {path}", version)


class Tokens:
    """One admin token for the many rounds of checks of one wait (polls of several processes, in threads) or of
    a whole `init`: keystone hashes the password of each token it issues (bcrypt, ~0.25-0.5 s of CPU), which a
    token per poll would pay every 0.2 s for each API starting. Issued again only once an issue failed
    (keystone not up yet) or keystone refused the token (401)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None

    def get(self, issue) -> str:
        with self._lock:
            if self._token is None:
                self._token = issue()[0]
            return self._token

    def offer(self, token: str) -> None:
        """A token issued anyway (keystone's own health check): kept when there is none."""
        with self._lock:
            self._token = self._token or token

    def forget(self, token: str) -> None:
        """Keystone refused it: the next get issues another."""
        with self._lock:
            if self._token == token:
                self._token = None


class Checker:
    """One round of checks against a deployment (share it between the checks of one `status` or one wait)."""

    def __init__(self, d: Deployment, secrets: dict[str, str], login_optional: bool = False,
                 tokens: Tokens | None = None):
        """login_optional: a broker that answers but refuses the OpenStack user's password counts as up (init
        starts it before setting a changed password). tokens: the token of the rounds of one wait."""
        self.d, self.secrets, self.login_optional = d, secrets, login_optional
        self._tokens = tokens or Tokens()
        self._lock = threading.Lock()
        self._token_error: str | None = None  # this round's: the next round asks keystone again
        self._nova_services: NovaServices | None = None
        self._amqp_error: str | None = None

    # ---------------------------------------------------------------- OpenStack APIs

    def _keystone_url(self) -> str:
        ks = self.d.services.enabled()["keystone"]
        return f"http://{self.d.control}:{ks.backend_port}/v3"

    def issue_token(self) -> tuple[str, float]:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": self.secrets["admin_password"]}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        t0 = time.monotonic()
        for attempt in range(2):  # a busy machine may miss one time limit; a second miss is an answer
            try:
                r = tools.http(self._keystone_url() + "/auth/tokens", method="POST", body=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"}, timeout=TIMEOUT, quiet=True)
                return r.headers["X-Subject-Token"], time.monotonic() - t0
            except tools.FetchFailed as exc:
                if exc.status is not None or attempt:
                    raise
        raise AssertionError("unreachable")

    def token(self) -> str | None:
        with self._lock:
            if self._token_error is None:
                try:
                    return self._tokens.get(self.issue_token)  # issued once, kept there
                except (tools.FetchFailed, KeyError) as exc:
                    self._token_error = f"keystone issues no token ({_why(exc)})"
            return None

    def api_get(self, url: str) -> tools.Response:
        token = self.token()
        if token is None:
            raise tools.FetchFailed(url, self._token_error or "no token", None, None)
        # one more try when no answer came in time (a busy machine), none on an answer
        try:
            return tools.http(url, headers={"X-Auth-Token": token, "Accept": "application/json",
                                            "OpenStack-API-Version": "compute 2.1"}, timeout=TIMEOUT, retries=1,
                              quiet=True)
        except tools.FetchFailed as exc:
            if exc.status == 401:  # expired or revoked (a changed password): the next round issues another
                self._tokens.forget(token)
            raise

    def nova_services(self) -> NovaServices | None:
        with self._lock:
            cached = self._nova_services
        if cached is not None:
            return cached
        nova = self.d.services.enabled().get("nova")
        if nova is None:
            return None
        asked = time.monotonic()
        try:
            r = self.api_get(f"http://{self.d.control}:{nova.backend_port}/v2.1/os-services")
        except tools.FetchFailed:
            return None
        try:
            answered_at = parsedate_to_datetime(r.headers["Date"])
        except (KeyError, TypeError, ValueError):
            answered_at = None
        with self._lock:
            self._nova_services = NovaServices(r.json().get("services", []), answered_at, asked)
            return self._nova_services

    # ---------------------------------------------------------------- RabbitMQ

    def amqp(self, port: int, queue: str | None = None) -> Verdict:
        """A login as the OpenStack user; with a queue, how many consumers it has (passive declare)."""
        import amqp  # py-amqp: oslo.messaging's own transport library

        conn = amqp.Connection(host=f"{self.d.control}:{port}", userid="openstack",
                               password=self.secrets.get("rabbitmq_password", ""), virtual_host="/",
                               connect_timeout=TIMEOUT, read_timeout=TIMEOUT, write_timeout=TIMEOUT)
        try:
            try:
                conn.connect()
            except amqp.exceptions.AccessRefused:
                if self.login_optional and queue is None:
                    return Verdict(True, "AMQP answers (the OpenStack user's password is about to be set)")
                raise
            version = (conn.server_properties or {}).get("version")
            if queue is None:
                return Verdict(True, "AMQP login", version if isinstance(version, str) else None)
            channel = conn.channel()
            try:
                _, _, consumers = channel.queue_declare(queue, passive=True)
            except amqp.exceptions.NotFound:
                return Verdict(False, f"no RPC queue {queue}")
            if not consumers:
                return Verdict(False, f"nothing consumes its RPC queue {queue}")
            return Verdict(True, f"consumes {queue}")
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection cannot be closed politely; it is gone anyway
                pass

    # ---------------------------------------------------------------- one process

    def check(self, p: ProcessDef, pid: int | None = None) -> Verdict:
        """pid: the process's, when the caller knows it (nova's workers: their record must be written since it
        started)."""
        h: Health = p.health
        host = self.d.listen
        try:
            if h.kind == "mysql":
                return mysql_greeting(host, h.port)  # type: ignore[arg-type]
            if h.kind == "amqp":
                return self.amqp(h.port)  # type: ignore[arg-type]
            if h.kind == "epmd":
                return epmd_names(host, h.port)  # type: ignore[arg-type]
            if h.kind == "memcached":
                return memcached_version(host, h.port)  # type: ignore[arg-type]
            if h.kind == "tcp":
                return tcp_accepts(host, p.ports)
            if h.kind == "ovsdb":
                return ovsdb_serves(h.url, h.command)  # type: ignore[arg-type]
            if h.kind == "unixctl":
                return unixctl(h.url, h.command)  # type: ignore[arg-type]
            if h.kind == "podman":
                return podman_ping(h.url)  # type: ignore[arg-type]
            if h.kind == "token":
                token, took = self.issue_token()
                self._tokens.offer(token)  # what the checks and the catalog after it use
                return Verdict(True, f"token issued in {took:.2f}s")
            if h.kind == "page":
                return html_page(h.url)  # type: ignore[arg-type]
            if h.kind == "api":
                r = self.api_get(h.url)  # type: ignore[arg-type]
                return Verdict(True, f"HTTP {r.status} on {h.url.split('/', 3)[-1]}")  # type: ignore[union-attr]
            if h.kind == "rpc":
                return self.nova_worker(h, pid)
        except tools.FetchFailed as exc:
            return Verdict(False, _why(exc))
        except (OSError, EOFError) as exc:
            return Verdict(False, str(exc) or type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - a probe must report, not crash status (e.g. amqp's errors)
            return Verdict(False, f"{type(exc).__name__}: {exc}")
        return Verdict(True, "running")

    def nova_worker(self, h: Health, pid: int | None = None) -> Verdict:
        listed = self.nova_services()
        if listed is None:
            return Verdict(False, "cannot tell: nova-api does not answer")
        mine = [s for s in listed.services if s.get("binary") == h.binary and s.get("host") == h.host]
        if not mine:
            return Verdict(False, f"{h.binary} on {h.host} is not in nova's service list")
        if mine[0].get("state") != "up" or mine[0].get("status") != "enabled":
            return Verdict(False, f"{h.binary} is {mine[0].get('state')}/{mine[0].get('status')} in nova")
        if pid is not None and (why := since_start(mine[0], listed, pid)):
            return Verdict(False, why)
        rabbit = self.d.services.backing.rabbitmq.port
        rpc = self.amqp(rabbit, h.queue)
        return Verdict(rpc.ok, f"up, {rpc.detail}" if rpc.ok else rpc.detail)


def since_start(record: dict, listed: NovaServices, pid: int) -> str | None:
    """Why nova's record of a worker says nothing yet of the process `pid` (None: it does). nova counts a worker
    up for service_down_time (60 s) after its last report, which may be the previous process's: after a stop and
    a start within that minute, the new one consumes its queue at once, but reports first 5 s after it joined,
    and through the conductor. Counted healthy meanwhile, it read "down" once that minute was over (a `status`
    right after `start`) whenever its own report came late. A record never written since it was made (no
    updated_at) and up was made within that minute: by this process, but for one that died within 5 s of
    making it."""
    updated = record.get("updated_at")
    if not updated:
        return None
    age = tools.process_age(pid)
    if age is None:
        return f"process {pid} is gone"
    age_then = age - (time.monotonic() - listed.asked)  # when nova-api was asked
    try:
        written = datetime.fromisoformat(updated)
    except (TypeError, ValueError):
        return f"nova's record of {record.get('binary')} has an unreadable updated_at: {updated!r}"
    written = written if written.tzinfo else written.replace(tzinfo=UTC)  # nova's times are UTC
    record_age = ((listed.answered_at or datetime.now(UTC)) - written).total_seconds()
    if record_age + CLOCK_GRAIN <= age_then:
        return None
    return (f"{record.get('binary')} has not reported to nova since it started {age:.0f}s ago (nova's record of it "
            f"is {max(0.0, record_age):.0f}s old)")


def _why(exc: tools.FetchFailed) -> str:
    return f"HTTP {exc.status}" if exc.status else exc.reason
