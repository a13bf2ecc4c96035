"""compute_driver: podman on the local backend: nova's servers are podman containers (drivers/nova-podman, built
into nova's venv from the deploy manifest). One deployment for the module; each test starts from it running and
healthy and removes what it made. The steps are the README's, with the real `openstack` client and podman."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

from stackcrate.deploy.config import Deployment
from stackcrate.deploy.verify import Client
from tests.integration.deploy.conftest import ALL, started, wait_for

OWNER_LABEL = "org.openstack.nova.owner"
UUID_LABEL = "org.openstack.nova.instance-uuid"
GREETING = "stackcrate instance"


@pytest.fixture(scope="module")
def cloud(sc_env, deploy_dist, tmp_path_factory):
    deployment = started(sc_env, deploy_dist, tmp_path_factory.mktemp("podman-driver"), compute_driver="podman")
    d = next(deployment)
    yield d
    with contextlib.suppress(StopIteration):
        next(deployment)  # rm --purge: the instances' containers and the images the driver loaded go too
    assert podman_ps(d) == [] and loaded_images(d) == []


@pytest.fixture
def running(cloud):
    st = cloud.status()
    assert list(st) == [*ALL[:11], "podman-api", *ALL[11:]]
    if any((r["state"], r["health"]) != ("running", "ok") for r in st.values()):
        cloud.ok("start")
        st = cloud.status()
    assert all((r["state"], r["health"]) == ("running", "ok") for r in st.values()), \
        {n: r["detail"] for n, r in st.items() if r["health"] != "ok"}
    return cloud


def client(d):
    return Client(Deployment(d.root / "services.yaml", d.root / "configuration.yaml"))


def owner(d) -> str:
    return f"stackcrate-{Deployment(d.root / 'services.yaml', d.root / 'configuration.yaml').id}"


def podman_ps(d, *filters: str) -> list[dict]:
    """The deployment's instance containers as `podman ps --all` shows them."""
    args = [a for f in (f"label={OWNER_LABEL}={owner(d)}", *filters) for a in ("--filter", f)]
    out = subprocess.run(["podman", "ps", "--all", "--format", "json", *args], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return json.loads(out or "[]")


def loaded_images(d) -> list[str]:
    """The Glance images the deployment's driver loaded into podman."""
    out = subprocess.run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    return [ref for ref in out if ref.startswith(f"localhost/nova-glance/{owner(d)}/")]


def container_of(d, server_id: str) -> dict:
    found = podman_ps(d, f"label={UUID_LABEL}={server_id}")
    assert len(found) == 1, found
    return found[0]


def inspect(container_id: str) -> dict:
    out = subprocess.run(["podman", "inspect", container_id], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)[0]


def interfaces(container_id: str) -> list[str]:
    out = subprocess.run(["podman", "exec", container_id, "cat", "/proc/net/dev"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return [line.split(":")[0].strip() for line in out.splitlines()[2:]]


def status_is(os_, sid: str, status: str, timeout: float = 60) -> dict:
    def shown():
        s = os_("server", "show", sid)
        assert s["status"] != "ERROR", s.get("fault")
        return s if s["status"] == status else None

    return wait_for(shown, timeout, f"server {sid} {status}", 1)


def greetings(os_, sid: str) -> int:
    return str(os_("console", "log", "show", sid, fmt=False)).count(GREETING)


@pytest.fixture
def busybox(running):
    """The README's steps: stackcrate's busybox image written by `deploy instance-image`, uploaded to Glance as a
    container image; a small flavor."""
    os_ = client(running)
    archive = running.state / "data" / "verify" / "demo-image.tar"  # the client's container may read it there
    made = running.ok("instance-image", "-o", str(archive))
    assert made["image"] == str(archive) and archive.stat().st_size == made["bytes"] > 1_000_000
    assert not (archive.parent / "busybox.tar").exists()  # written where asked, nowhere else
    image = os_("image", "create", "--container-format", "docker", "--disk-format", "raw", "--file", str(archive),
                "busybox")
    flavor = os_("flavor", "create", "--ram", "128", "--vcpus", "1", "--disk", "1", "small")
    yield os_, image["id"], flavor["id"]
    try:  # what a failed test left; a server listed may be on its way out already, so no delete may fail
        for s in os_("server", "list"):
            os_.run(["server", "delete", s["ID"]])
        wait_for(lambda: os_("server", "list") == [], 90, "every server deleted", 1)
    finally:  # the next test makes its own image and flavor of the same names
        os_("image", "delete", image["id"], fmt=False)
        os_("flavor", "delete", flavor["id"], fmt=False)


def test_run_starts_podmans_api_and_verify_boots_a_container_server(running):
    st = running.status()
    assert st["podman-api"]["detail"].startswith("podman 4.") and "nova-compute" in st
    data = running.ok("verify")
    assert data["server_status"] == "ACTIVE" and data["deleted"] and "port" not in data
    assert data["console"].startswith(f"{GREETING} {data['name']} up: Linux")
    assert podman_ps(running, f"label={UUID_LABEL}={data['server_id']}") == []  # deleted with the server


def test_a_server_is_a_container_through_its_whole_lifecycle(running, busybox):
    os_, image, flavor = busybox
    t0 = time.monotonic()
    server = os_("server", "create", "--flavor", flavor, "--image", image, "--nic", "none", "demo")
    sid = server["id"]
    status_is(os_, sid, "ACTIVE", timeout=60)
    running.timings["server ACTIVE"] = [{"step": "boot", "seconds": round(time.monotonic() - t0, 1)}]
    c = container_of(running, sid)
    assert c["State"] == "running" and c["Names"] == [f"nova-{sid}"]
    assert f"localhost/nova-glance/{owner(running)}/{image}:latest" in loaded_images(running)
    shown = os_("server", "show", sid)
    assert c["Labels"]["org.openstack.nova.instance-name"] == shown["OS-EXT-SRV-ATTR:instance_name"]
    host = inspect(c["Id"])["HostConfig"]
    assert (host["Memory"], host["NanoCpus"]) == (128 * 2**20, 10**9)  # the flavor's RAM and vCPUs as limits
    # --nic none: no network at all, only its own loopback
    assert host["NetworkMode"] == "none" and interfaces(c["Id"]) == ["lo"]
    wait_for(lambda: greetings(os_, sid) == 1, 30, "the container's output in the console log", 1)

    # each action: the server's status, its container's state, how often the container has started (its greeting)
    for verb, status, state, starts in (("stop", "SHUTOFF", "exited", 1), ("start", "ACTIVE", "running", 2),
                                        ("reboot", "ACTIVE", "running", 3), ("pause", "PAUSED", "paused", 3),
                                        ("unpause", "ACTIVE", "running", 3)):
        os_("server", verb, sid, fmt=False)
        status_is(os_, sid, status)
        assert container_of(running, sid)["State"] == state, verb
        wait_for(lambda n=starts: greetings(os_, sid) == n, 30, f"{starts} start(s) in the console log", 1)
    assert container_of(running, sid)["Id"] == c["Id"]  # the same container all along

    os_("server", "delete", "--wait", sid, fmt=False)
    assert podman_ps(running, f"label={UUID_LABEL}={sid}") == []


def test_instances_keep_their_state_when_nova_compute_restarts(running, busybox):
    os_, image, flavor = busybox
    up = os_("server", "create", "--flavor", flavor, "--image", image, "--nic", "none", "--wait", "up")["id"]
    down = os_("server", "create", "--flavor", flavor, "--image", image, "--nic", "none", "--wait", "down")["id"]
    os_("server", "stop", down, fmt=False)
    status_is(os_, down, "SHUTOFF")
    before = {sid: container_of(running, sid)["Id"] for sid in (up, down)}
    pid = running.pid("nova-compute")
    # killed, then started again by the supervisor (nova-compute takes minutes to act on SIGTERM; stop sends
    # SIGKILL after stop_timeout anyway): a restart that gives the driver no chance to save anything
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (s := running.status()["nova-compute"])["pid"] not in (None, pid) and s["health"] == "ok",
             120, "nova-compute back and healthy", 1)
    # a power-state sync after the restart must agree with podman: nothing changes
    assert os_("server", "show", up)["status"] == "ACTIVE" and os_("server", "show", down)["status"] == "SHUTOFF"
    assert {sid: container_of(running, sid)["Id"] for sid in (up, down)} == before
    assert container_of(running, up)["State"] == "running" and container_of(running, down)["State"] == "exited"
    os_("server", "start", down, fmt=False)  # the restarted nova-compute still drives its instances
    status_is(os_, down, "ACTIVE")


def test_a_server_that_needs_a_network_fails_with_a_fault_that_says_why(running, busybox):
    os_, image, flavor = busybox
    os_("network", "create", "net")
    os_("subnet", "create", "--network", "net", "--subnet-range", "192.0.2.0/24", "net")
    try:
        sid = os_("server", "create", "--flavor", flavor, "--image", image, "--network", "net", "wired")["id"]
        shown = wait_for(lambda: (s := os_("server", "show", sid))["status"] == "ERROR" and s, 60,
                         "server wired in ERROR", 1)
        assert "boot with --nic none" in str(shown["fault"]), shown["fault"]
        assert podman_ps(running, f"label={UUID_LABEL}={sid}") == []
        os_("server", "delete", "--wait", sid, fmt=False)
    finally:
        os_("network", "delete", "net", fmt=False)


def test_placement_offers_the_hosts_real_cpus_memory_and_disk(running):
    os_ = client(running)
    providers = os_("resource", "provider", "list")
    assert len(providers) == 1, providers
    inventory = {i["resource_class"]: i for i in os_("resource", "provider", "inventory", "list",
                                                       providers[0]["uuid"])}
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    storage = subprocess.run(["podman", "info", "--format", "{{.Store.GraphRoot}}"], capture_output=True, text=True,
                             timeout=60, check=True).stdout.strip()
    st = os.statvfs(storage)
    assert inventory["VCPU"]["total"] == os.cpu_count()
    assert inventory["MEMORY_MB"]["total"] == mem_kib // 1024
    assert inventory["DISK_GB"]["total"] == st.f_blocks * st.f_frsize // 2**30
