"""`deploy verify`: exercise the cloud with the real `openstack` client from the built artifacts.

Every run makes its own resources, with a name of its own, and removes them: a token, an image uploaded and
downloaded byte for byte, a network with a subnet and a router, a flavor and a server on that network that must
go ACTIVE, listed, shown, its port ACTIVE, bound to the compute host with an address of the subnet (with the
dashboard: a login that finds the server on its Instances page), then all deleted. With compute_driver podman
the server is a container instead: stackcrate's busybox image (container_format docker) booted with --nic none
(the driver runs instances without a network), ACTIVE, its container's output in `openstack console log show`.
Nothing of an earlier run is reused, so a verify that passes says the cloud works now.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from ..tools import ToolFailed
from . import dashboard, podman_api
from .config import Deployment
from .configs import cloud_name
from .install import artifacts, backend_format
from .layout import Layout
from .processes import Call
from .secrets import applied as applied_secrets
from .secrets import private_file
from .timer import Timer
from .warm_program import WarmProgram

COMPUTE_MICROVERSION = "2.37"  # the first that accepts `--nic none`
ACTIVE_TIMEOUT = 120.0
DELETE_TIMEOUT = 60.0
PORT_TIMEOUT = 60.0       # for the server's port to go ACTIVE once the server is (OVN claims it on the chassis)
CONSOLE_TIMEOUT = 60.0    # for a container server's first output to reach its console log once it is ACTIVE
# the client's plugin groups whose commands verify calls (their modules loaded once when the client is warm)
CLIENT_COMMANDS = ("openstack.cli", "openstack.common", "openstack.compute.v2", "openstack.identity.v3",
                   "openstack.image.v2", "openstack.network.v2")
SUBNET = "192.0.2.0/24"   # TEST-NET-1: exists only inside the deployment's own networks
POLL_INTERVAL = 0.25      # seconds between two looks at a status (a GET of the API: ~10 ms)


class Client:
    """The `openstack` command of the client component, pointed at the deployment's clouds.yaml: on the host, or
    in a one-shot container of the client's image (a container backend). warm (on the host): the client is
    loaded once and each call forked from it (warm_program); close() ends it."""

    def __init__(self, d: Deployment, warm: bool = False):
        from .manager import manager_for

        fmt = backend_format(d)
        self.component = d.services.client
        self.bin = str(Path(artifacts(d, fmt)[self.component].install_path) / "bin" / "openstack")
        clouds = d.state / "clouds.yaml"
        if not clouds.exists():
            raise StackcrateError(f"{clouds} does not exist", hint="run `stackcrate deploy init` (or `run`) first")
        self.env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "OS_CLOUD": cloud_name(d),
                    "OS_COMPUTE_API_VERSION": COMPUTE_MICROVERSION}
        # what it reads: clouds.yaml (and the CA) in the state folder; what it writes: verify's image files
        self.reads = (str(clouds), *((str(d.state / "data" / "tls"),) if d.config.tls else ()))
        self.writes = (str(d.state / "data" / "verify"),)
        self.runner = manager_for(d)
        self.layout = Layout(d, {}, {})
        self._token: str | None = None
        # verify's own (two verifies at once each have theirs)
        self._clouds = clouds
        self._token_clouds = d.state / "data" / "verify" / f"token-{secrets.token_hex(4)}.clouds.yaml"
        self._warm = WarmProgram(self.bin, self.env, preload=CLIENT_COMMANDS) \
            if warm and d.backend == "local" else None

    def close(self) -> None:
        if self._warm:
            self._warm.close()

    def use_token(self, issued: dict) -> None:
        """The calls after this one authenticate with the token the client issued (`openstack token issue`'s
        answer): keystone hashes the password of every password login (~0.25 s of its CPU, each of verify's ~20
        calls otherwise). A clouds.yaml of verify's own (0600) holds it, the cloud's other settings kept."""
        import yaml

        cloud = dict(yaml.safe_load(self._clouds.read_text())["clouds"][self.env["OS_CLOUD"]])
        cloud["auth"] = {"auth_url": cloud["auth"]["auth_url"], "token": str(issued["id"]),
                         "project_id": str(issued["project_id"])}
        cloud["auth_type"] = "v3token"
        private_file(self._token_clouds, yaml.safe_dump({"clouds": {self.env["OS_CLOUD"]: cloud}}, sort_keys=False))
        self._token = str(issued["id"])  # the one the status polls use too
        self.env = {**self.env, "OS_CLIENT_CONFIG_FILE": str(self._token_clouds)}

    def forget_token(self) -> None:
        """Back to the password (the token's file removed)."""
        self._token_clouds.unlink(missing_ok=True)
        self.env = {**self.env, "OS_CLIENT_CONFIG_FILE": str(self._clouds)}

    def __call__(self, *args: str, fmt: bool = True) -> object:
        proc = self.run([*args, *(["-f", "json"] if fmt else [])], check=True)
        return json.loads(proc.stdout) if fmt and proc.stdout.strip() else proc.stdout

    def run(self, args: list[str], timeout: float = 300, check: bool = False):
        """The client with these arguments, as it is (its output, its exit status; ToolFailed on a failure when
        check)."""
        if self._warm:
            return self._warm.run([self.bin, *args], self.env, timeout=timeout, check=check)
        call = Call(self.component, self.bin, tuple(args), self.env, reads=self.reads, writes=self.writes)
        return self.runner.run(call, timeout=timeout, check=check)

    def poll(self, service: str, path: str) -> dict | None:
        """GET path of a service's API process itself (plain HTTP behind HAProxy) with a token the client issued;
        None when it answers 404. For waiting on a status: the client takes ~1.2 s to start, a GET ~10 ms, so a
        wait ends when the status changes rather than a client start or two later."""
        if self._token is None:
            self._token = str(self("token", "issue")["id"])  # type: ignore[index]
        url = self.layout.backend_url(service).rstrip("/") + path
        try:
            return tools.http(url, headers={"X-Auth-Token": self._token, "Accept": "application/json"},
                              timeout=30, quiet=True).json()
        except tools.FetchFailed as exc:
            if exc.status == 404:
                return None
            raise StackcrateError(f"{service}: GET {path} failed: {exc.reason}",
                                  hint=f"see `stackcrate deploy logs {service}`") from None

    def gone(self, kind: str, name: str) -> bool:
        try:
            self(kind, "show", name)
        except ToolFailed as exc:
            text = (exc.stderr or exc.stdout).lower()
            if "no " in text or "could not find" in text or "not found" in text:
                return True
            raise
        return False


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait(what: str, timeout: float, probe, interval: float = 1.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise StackcrateError(f"{what} not within {timeout:.0f}s",
                                  hint="see `stackcrate deploy status` and `stackcrate deploy logs nova-compute`")
        time.sleep(interval)


def instance_image(d: Deployment, out: Path) -> Path:
    """stackcrate's busybox image archive for the podman driver, for the target the artifacts were built for,
    written to `out`."""
    from ..targets import get_target
    from . import instance_image as ii

    nova = d.services.enabled()["nova"].component
    return ii.build(get_target(artifacts(d, backend_format(d))[nova].target), d.cache, out)


def together(*jobs):
    """Run the jobs (callables) beside each other (the client's calls are processes: two cores serve two); their
    results in order. Every job runs to its end; then the first failure, if any, is raised."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        wait(futures)
    for f in futures:
        f.result()
    return [f.result() for f in futures]


def verify(d: Deployment, t: Timer) -> dict:
    name = f"stackcrate-verify-{secrets.token_hex(4)}"
    res: dict = {"name": name}
    work = d.state / "data" / "verify"
    work.mkdir(parents=True, exist_ok=True)
    made: dict[str, object] = {}  # what exists, for the cleanup (jobs beside each other add to it)
    # the fake driver's server: the dashboard is checked from the start, beside the other steps (its login and
    # overview take 3-6 s); its Instances page once the server exists
    look = dashboard.enabled(d) and not podman_api.enabled(d)
    # (the cleanup ends before the side thread is waited for: it lets the dashboard's check end)
    with ThreadPoolExecutor(max_workers=1) as side, ExitStack() as cleanup:
        os_ = Client(d, warm=True)
        cleanup.callback(os_.close)
        cleanup.callback(os_.forget_token)  # (after the deletions below: they use the token)
        created = threading.Event()
        cleanup.callback(created.set)  # on a failure before the server exists, the dashboard's check ends too
        cleanup.callback(_remove, os_, made)
        dashboard_seen = side.submit(dashboard.check, d, applied_secrets(d.state)["admin_password"], name,
                                     created) if look else None
        with t.step("Token issue"):
            tok = os_("token", "issue")
            if not tok.get("id"):  # type: ignore[union-attr]
                raise StackcrateError("keystone issued no token")
            os_.use_token(tok)  # type: ignore[arg-type]
            res["token"] = "ok"
        with t.step("Image upload and download byte for byte; network, subnet, router; flavor (together)"
                    + ("; the dashboard's login meanwhile" if look else "")) as info:
            image, network, flavor = together(lambda: _image_round_trip(os_, name, work, made, res),
                                              lambda: _network(os_, name, made),
                                              lambda: _flavor(os_, name, made))
            res["network"] = network
            info["note"] = f"{SUBNET}, routed"
        if podman_api.enabled(d):
            container_server(d, os_, t, name, work, flavor, cleanup, res)
        else:
            fake_server(d, os_, t, name, image, network["network"], flavor, cleanup, res, created, dashboard_seen)
        with t.step("Server deleted, then its network and router; its image and flavor meanwhile"):
            def server_gone() -> None:
                _delete_server(os_, res["server_id"])
                res["deleted"] = True

            _remove(os_, made, first=server_gone)
    return res


def _image_round_trip(os_: Client, name: str, work: Path, made: dict, res: dict) -> str:
    """An image of 1 MiB of random bytes uploaded, then downloaded: the same bytes. Its ID."""
    src, back = work / f"{name}.bin", work / f"{name}.download"
    try:
        src.write_bytes(os.urandom(1 << 20))
        image = os_("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(src),
                    name)
        made["image"] = image["id"]  # type: ignore[index]
        os_("image", "save", "--file", str(back), image["id"], fmt=False)  # type: ignore[index]
        if _sha(back) != _sha(src):
            raise StackcrateError(f"image {name} downloaded differs from what was uploaded")
        res["image_sha256"] = _sha(back)
    finally:
        src.unlink(missing_ok=True)
        back.unlink(missing_ok=True)
    return image["id"]  # type: ignore[index]


def _network(os_: Client, name: str, made: dict) -> dict:
    """A network and a subnet of SUBNET on it, a router beside them; then the subnet added to the router."""
    def network_and_subnet() -> tuple[dict, dict]:
        net = os_("network", "create", name)
        made["network"] = net["id"]  # type: ignore[index]
        return net, os_("subnet", "create", "--network", net["id"], "--subnet-range", SUBNET, name)  # type: ignore

    def new_router() -> dict:
        router = os_("router", "create", name)
        made["router"] = router["id"]  # type: ignore[index]
        return router  # type: ignore[return-value]

    (net, subnet), router = together(network_and_subnet, new_router)
    os_("router", "add", "subnet", router["id"], subnet["id"], fmt=False)  # type: ignore[index]
    made["router_subnet"] = subnet["id"]  # type: ignore[index]
    return {"network": net["id"], "subnet": SUBNET, "router": router["id"]}  # type: ignore[index]


def _flavor(os_: Client, name: str, made: dict) -> str:
    flavor = os_("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", name)
    made["flavor"] = flavor["id"]  # type: ignore[index]
    return flavor["id"]  # type: ignore[index]


def _remove(os_: Client, made: dict, first=None) -> None:
    """Delete what verify made besides the server, each kind beside the others: `first` (the server's deletion:
    its port holds the subnet) and the router's interface, then the router and the network; the image; the flavor
    (nova and glance let both go while a server uses them). Whatever was not made is skipped; each is taken from
    `made` as it goes (a second call does nothing)."""
    def interface() -> None:
        if "router_subnet" in made:
            os_("router", "remove", "subnet", str(made["router"]), str(made.pop("router_subnet")), fmt=False)

    def network() -> None:
        together(first or (lambda: None), interface)  # the server's port and the router's: both off the subnet
        # the router without its interface and the network without ports: each goes on its own
        together(lambda: one("router"), lambda: one("network"))

    def one(kind: str) -> None:
        if kind in made:
            os_(kind, "delete", str(made.pop(kind)), fmt=False)

    together(network, lambda: one("image"), lambda: one("flavor"))


def _boot(os_: Client, name: str, image: str, flavor: str, nic: list[str], cleanup: ExitStack, res: dict,
          meanwhile=None, created: threading.Event | None = None, once_active=None) -> dict:
    """A server of `image` ACTIVE, listed and shown (deleted on failure, before the network); `meanwhile` (a
    callable) runs while it boots, its result in res["meanwhile"]; `created` is set once the server exists;
    `once_active` (a callable) runs beside the list and the show, its result in res["once_active"]."""
    server = os_("server", "create", "--flavor", flavor, "--image", image, *nic, name)
    sid = server["id"]  # type: ignore[index]
    res["server_id"] = sid
    if created is not None:
        created.set()
    # on failure, before the network goes (its port holds the subnet)
    cleanup.callback(lambda: res.get("deleted") or _delete_server(os_, sid))
    t0 = time.monotonic()

    def active() -> bool:
        server = (os_.poll("nova", f"/servers/{sid}") or {}).get("server", {})
        if server.get("status") == "ERROR":
            raise StackcrateError(f"server {name} went to ERROR: {server.get('fault')}")
        return server.get("status") == "ACTIVE"

    def boot() -> None:
        _wait(f"server {name} ACTIVE", ACTIVE_TIMEOUT, active, POLL_INTERVAL)
        res["server_active_seconds"] = round(time.monotonic() - t0, 1)

    if meanwhile is None:
        boot()
    else:
        res["meanwhile"] = together(boot, meanwhile)[1]
    shown, listed, *after = together(lambda: os_("server", "show", sid), lambda: os_("server", "list"),
                                     *([once_active] if once_active else []))
    if once_active:
        res["once_active"] = after[0]
    if name not in [s["Name"] for s in listed]:  # type: ignore[union-attr]
        raise StackcrateError(f"server {name} missing from `openstack server list`")
    res["server_status"] = shown["status"]  # type: ignore[index]
    return shown  # type: ignore[return-value]


def fake_server(d: Deployment, os_: Client, t: Timer, name: str, image: str, net: str, flavor: str,
                cleanup: ExitStack, res: dict, created: threading.Event, dashboard_seen: Future | None) -> None:
    """A server of the fake driver on the network, ACTIVE, and its port; the dashboard's check (begun earlier)
    ends meanwhile: its Instances page lists the server from its creation."""
    what = "; the dashboard meanwhile: log in, the overview, the server on its Instances page, log out" \
        if dashboard_seen else ""
    with t.step(f"Server: create on the network, ACTIVE, list, show; its port ACTIVE, bound to the compute host, "
                f"an address of the subnet{what}") as info:
        _boot(os_, name, image, flavor, ["--network", net], cleanup, res,
              meanwhile=dashboard_seen.result if dashboard_seen else None, created=created,
              once_active=lambda: check_port(os_, res["server_id"], name, d.compute_hosts))
        res["port"] = res.pop("once_active")
        if dashboard_seen:
            res["dashboard"] = res.pop("meanwhile")
        info["note"] = f"ACTIVE after {res['server_active_seconds']}s; {res['port']['ip']} on {res['port']['host']}"


def container_server(d: Deployment, os_: Client, t: Timer, name: str, work: Path, flavor: str,
                     cleanup: ExitStack, res: dict) -> None:
    from .instance_image import GREETING

    with t.step("Container image: stackcrate's busybox, uploaded (container format docker)") as info:
        archive = instance_image(d, work / f"{name}-busybox.tar")
        cleanup.callback(archive.unlink, missing_ok=True)
        image = os_("image", "create", "--disk-format", "raw", "--container-format", "docker", "--file",
                    str(archive), f"{name}-busybox")
        cleanup.callback(os_, "image", "delete", image["id"], fmt=False)  # type: ignore[index]
        info["note"] = f"{archive.stat().st_size / 1e6:.1f} MB"
    with t.step("Server: a podman container (--nic none), ACTIVE, list, show") as info:
        _boot(os_, name, image["id"], flavor, ["--nic", "none"], cleanup, res)  # type: ignore[index]
        info["note"] = f"ACTIVE after {res['server_active_seconds']}s"
    with t.step("Server's console log: what the container printed") as info:
        def printed() -> str | None:
            text = str(os_("console", "log", "show", res["server_id"], fmt=False))
            return text if GREETING in text else None

        res["console"] = str(_wait(f"the console log of server {name} to show {GREETING!r}", CONSOLE_TIMEOUT,
                                   printed)).strip().splitlines()[0]
        info["note"] = res["console"]
    if dashboard.enabled(d):
        with t.step("Dashboard: log in, the project's overview, the server on its Instances page, log out"):
            res["dashboard"] = dashboard.check(d, applied_secrets(d.state)["admin_password"], name)


def check_port(os_: Client, sid: str, name: str, hosts: list[str]) -> dict:
    """The server's one port: ACTIVE (OVN's chassis claimed it), bound to a compute host of the cloud, with an
    address of the subnet."""
    def active() -> dict | None:
        ports = (os_.poll("neutron", f"/v2.0/ports?device_id={sid}") or {}).get("ports", [])
        if len(ports) != 1:
            raise StackcrateError(f"server {name} has {len(ports)} ports, not 1")
        return ports[0] if ports[0]["status"] == "ACTIVE" else None

    t0 = time.monotonic()
    port = _wait(f"the port of server {name} ACTIVE", PORT_TIMEOUT, active, POLL_INTERVAL)
    shown = os_("port", "show", port["id"])  # type: ignore[index]
    host = shown.get("binding_host_id")  # type: ignore[union-attr]
    if host not in hosts or shown.get("binding_vif_type") in ("unbound", "binding_failed"):  # type: ignore
        raise StackcrateError(f"the port of server {name} is bound to {host!r} "  # type: ignore[union-attr]
                              f"({shown.get('binding_vif_type')}), not to {' or '.join(hosts)}")
    ips = [f["ip_address"] for f in shown.get("fixed_ips", [])]  # type: ignore[union-attr]
    if not any(ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET) for ip in ips):
        raise StackcrateError(f"the port of server {name} has no address in {SUBNET}: {ips}")
    return {"id": port["id"], "status": "ACTIVE", "host": host, "ip": ips[0],  # type: ignore[index]
            "vif_type": shown.get("binding_vif_type"), "active_seconds": round(time.monotonic() - t0, 1)}  # type: ignore


def _delete_server(os_: Client, sid: str) -> None:
    """Delete a server and wait until it is gone (nothing when it already is)."""
    def gone() -> bool:
        return os_.poll("nova", f"/servers/{sid}") is None

    if gone():
        return
    os_("server", "delete", sid, fmt=False)
    _wait(f"server {sid} deleted", DELETE_TIMEOUT, gone, POLL_INTERVAL)
