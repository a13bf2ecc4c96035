"""One deployment of examples/deploy (five services on the local backend, real MariaDB/RabbitMQ/Memcached/HAProxy
from Debian's packages), built and started once per module and shared by its tests.

Every test starts from a running, healthy deployment (`running`) and leaves it that way, so each runs alone
or in any order. Ports are picked free at random below the ephemeral range (the deployment refuses ports inside
it: an outgoing connection may take one at any time), so a deployment already running on the machine does not
collide. Set STACKCRATE_TEST_DEPLOY_DIST=DIR to reuse artifacts already built from examples/deploy/stackcrate.yaml.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from stackcrate.deploy.supervisor import orphans
from tests.conftest import REPO
from tests.fixtures import services_with_free_ports

EXAMPLE = REPO / "examples" / "deploy"


def wait_for(cond, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


@dataclass
class Deploy:
    root: Path
    dist: Path
    timings: dict[str, list] = field(default_factory=dict)
    images: dict = field(default_factory=dict)   # `deploy build`'s image sizes (a container backend)
    first_run: dict = field(default_factory=dict)  # what the `run` that made the deployment answered

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def services(self) -> dict:
        return yaml.safe_load((self.root / "services.yaml").read_text())

    def sc(self, verb: str, *args: str, json_out: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        from tests.conftest import CLI

        cli = CLI(self.env)
        pre = ["--json"] if json_out else []
        return cli(*pre, "deploy", verb, "-s", self.root / "services.yaml", "-c", self.root / "configuration.yaml",
                   *args, timeout=timeout)

    def ok(self, verb: str, *args: str, timeout: float = 900) -> dict:
        res = self.sc(verb, *args, timeout=timeout)
        assert res.returncode == 0, f"{verb} failed:\n{res.stderr[-4000:]}"
        data = json.loads(res.stdout)
        if "steps" in data:
            self.timings[" ".join((verb, *args))] = data["steps"] + [{"step": "total", "seconds": data["seconds"]}]
        return data

    def status_with_code(self) -> tuple[dict[str, dict], int]:
        res = self.sc("status")
        assert res.returncode in (0, 1, 3), f"status failed:\n{res.stderr[-4000:]}"
        return {r["name"]: r for r in json.loads(res.stdout)["processes"]}, res.returncode

    def status(self) -> dict[str, dict]:
        return self.status_with_code()[0]

    def pid(self, name: str) -> int | None:
        return self.status()[name]["pid"]

    def set_config(self, **changes) -> None:
        conf = yaml.safe_load((self.root / "configuration.yaml").read_text())
        conf.update(changes)
        (self.root / "configuration.yaml").write_text(yaml.safe_dump(conf))

    env: dict = field(default_factory=dict)


def copy_manifest(root: Path, source: Path = EXAMPLE / "stackcrate.yaml") -> Path:
    """examples/deploy/stackcrate.yaml (or another example manifest) in root (its lock goes beside it), its local
    sources (the nova driver) and patches (oslo.messaging's) where the example names them."""
    manifest = yaml.safe_load(source.read_text())
    for comp in manifest["components"]:
        if "path" in comp:
            comp["path"] = str((source.parent / comp["path"]).resolve())
        comp["patches"] = [str((source.parent / p).resolve()) for p in comp.get("patches", [])] or None
        if comp["patches"] is None:
            del comp["patches"]
    (root / "stackcrate.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root / "stackcrate.yaml"


def deployment_files(root: Path, dist: Path, env: dict) -> Deploy:
    """examples/deploy in root: services on free ports, its state in root/state, its artifacts in dist (built
    from the manifest copied beside it by `deploy build`)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "services.yaml").write_text(yaml.safe_dump(services_with_free_ports(), sort_keys=False))
    copy_manifest(root)
    conf = yaml.safe_load((EXAMPLE / "configuration.yaml").read_text())
    conf.update(state_dir=str(root / "state"), artifacts=str(dist), manifest=str(root / "stackcrate.yaml"))
    (root / "configuration.yaml").write_text(yaml.safe_dump(conf))
    return Deploy(root, dist, env=dict(env))


ALL = ["mariadb", "epmd", "rabbitmq", "memcached", "haproxy", "ovn-nb-db", "ovn-sb-db", "ovn-northd",
       "openvswitch-db", "ovs-vswitchd", "ovn-controller", "keystone", "glance", "placement", "neutron",
       "neutron-ovn-maintenance-worker", "nova-api", "nova-conductor", "nova-scheduler", "nova-compute", "horizon"]


def ovn_ctl(d: "Deploy", program: str, *args: str) -> str:
    """ovn-nbctl / ovn-sbctl (Debian's, on the host) against the deployment's northbound / southbound database."""
    port = d.services["backing"]["ovn"]["nb_port" if program == "ovn-nbctl" else "sb_port"]
    out = subprocess.run([program, f"--db=tcp:127.0.0.1:{port}", "--timeout=30", *args], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def netns_of(d: "Deploy") -> str:
    from stackcrate.deploy.config import Deployment
    from stackcrate.deploy.ovn import netns

    return netns(Deployment(d.root / "services.yaml", d.root / "configuration.yaml"))


def links(netns: str | None = None) -> set[str]:
    """The network interfaces of the host, or of a network namespace."""
    cmd = ["ip", *(["-n", netns] if netns else []), "-o", "link", "show"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def server_on_a_network(d: "Deploy", os_, name: str) -> dict:
    """The issue's own steps: a network, a /24 subnet of TEST-NET-1, a server on it; the server and its port
    (ACTIVE both)."""
    os_("network", "create", name)
    os_("subnet", "create", "--network", name, "--subnet-range", "192.0.2.0/24", name)
    src = d.state / "data" / "verify" / f"{name}.img"  # where the client may read (mounted into its container)
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(os.urandom(4096))
    image = os_("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(src), name)
    flavor = os_("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", name)
    server = os_("server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network", name, name)
    wait_for(lambda: os_("server", "show", server["id"])["status"] == "ACTIVE", 120, f"server {name} ACTIVE", 1)
    port = wait_for(lambda: [p for p in os_("port", "list", "--server", server["id"]) if p["Status"] == "ACTIVE"],
                    60, f"the port of {name} ACTIVE", 1)[0]
    return {"server": os_("server", "show", server["id"]), "port": os_("port", "show", port["ID"]),
            "image": image["id"], "flavor": flavor["id"]}


def remove_server_and_network(os_, made: dict, name: str) -> None:
    os_("server", "delete", "--wait", made["server"]["id"], fmt=False)
    os_("network", "delete", name, fmt=False)
    os_("image", "delete", made["image"], fmt=False)
    os_("flavor", "delete", made["flavor"], fmt=False)


@pytest.fixture(scope="session")
def deploy_dist(stackcrate, tmp_path_factory) -> Path:
    """The artifacts of examples/deploy/stackcrate.yaml, built once per run by `stackcrate deploy build`."""
    given = os.environ.get("STACKCRATE_TEST_DEPLOY_DIST")
    return Path(given) if given else tmp_path_factory.mktemp("deploy-dist") / "dist"


# nova's conductor, scheduler and compute sleep part of stop_timeout on SIGTERM (configs.nova_shutdown: 4 s of
# the example's 10) and neutron's gunicorn waits 5 s for its worker: 3 s in the tests, where nova sleeps none
# (about 15 stops and restarts in a run of the suite); what outlasts it is killed
STOP_TIMEOUT = 3


def started(sc_env, dist: Path, root: Path, **config):
    """A deployment of examples/deploy (with `config` changed, and stop_timeout STOP_TIMEOUT) that `run` started;
    whatever happens, every process is stopped and the state removed at the end, and the time of each step is
    printed."""
    d = deployment_files(root, dist, sc_env)
    d.set_config(**{"stop_timeout": STOP_TIMEOUT, **config})
    built = d.ok("build", timeout=3600)
    d.timings["build"] = [{"step": "built" if built["built"] else "all present", "seconds": built.get("seconds", 0)}]
    try:
        d.first_run = d.ok("run")
        yield d
    finally:
        d.sc("rm", "--purge", "--yes", timeout=300)
        for pids in orphans(d.state).values():  # only if rm itself failed
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        print("\ndeploy timings (s):")
        for verb, steps in d.timings.items():
            print(f"  {verb}: " + ", ".join(f"{s['step']} {s['seconds']}" for s in steps))


@pytest.fixture(scope="module")
def deployment(sc_env, deploy_dist, tmp_path_factory):
    """The module's deployment of examples/deploy as it is (but for stop_timeout: see started)."""
    yield from started(sc_env, deploy_dist, tmp_path_factory.mktemp("deploy"))


@pytest.fixture
def running(deployment) -> Deploy:
    """The shared deployment, every process running and healthy (started again if a test left one down)."""
    st = deployment.status()
    if any((r["state"], r["health"]) != ("running", "ok") for r in st.values()):
        deployment.ok("start")
        st = deployment.status()
    assert {n: (r["state"], r["health"]) for n, r in st.items()} == dict.fromkeys(ALL, ("running", "ok")), \
        {n: r["detail"] for n, r in st.items() if r["health"] != "ok"}
    return deployment
