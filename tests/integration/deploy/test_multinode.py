"""examples/deploy on three hosts through Ansible: a lab of three namespace nodes (`stackcrate lab up`), node1 the
control host and node2, node3 compute hosts, driven by `stackcrate deploy -i lab/hosts.yml`. node1 and node2 run
their processes from the .deb packages apt fetched from the deploy host's repository; node3
(`stackcrate_backend: podman` in the inventory) in containers of the images it pulled from the deploy host's
registry.

One cloud for the module (lab up, build, run), checked by several tests; the last one removes it (rm --purge,
lab down) and checks that nothing is left. nova's report interval is shortened (3 s, down after 15 s) so a stopped
compute host is reported down within the test's time, and stop_timeout (3 s) to keep the stops short.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.deploy.conftest import EXAMPLE, STOP_TIMEOUT, copy_manifest, wait_for

pytestmark = pytest.mark.timeout(1800)


class Cloud:
    def __init__(self, root: Path, stackcrate):
        self.root, self.stackcrate = root, stackcrate
        self.lab = root / "lab"
        self.artifacts = root  # set by the fixture: the deploy host's artifacts folder
        self.timings: dict[str, float] = {}
        self.removed = False

    def sc(self, *args: str, timeout: float = 1800, limit: str | None = None) -> subprocess.CompletedProcess:
        return self.stackcrate("deploy", "-i", self.lab / "hosts.yml", *(["--limit", limit] if limit else []),
                               args[0], "-s", self.root / "services.yaml", "-c", self.root / "configuration.yaml",
                               *args[1:], timeout=timeout)

    def ok(self, *args: str, timeout: float = 1800, limit: str | None = None) -> str:
        t0 = time.monotonic()
        r = self.sc(*args, timeout=timeout, limit=limit)
        assert r.returncode == 0, f"deploy -i {' '.join(args)} failed:\n{r.stderr[-5000:]}"
        self.timings[" ".join(args) + (f" --limit {limit}" if limit else "")] = round(time.monotonic() - t0, 1)
        return r.stdout

    def json(self, *args: str, **kw) -> dict:
        r = self.stackcrate("--json", "deploy", "-i", self.lab / "hosts.yml", args[0], "-s",
                            self.root / "services.yaml", "-c", self.root / "configuration.yaml", *args[1:], **kw)
        assert r.returncode in (0, 1, 3), r.stderr[-5000:]
        return json.loads(r.stdout)

    def openstack(self, *args: str):
        """The `openstack` client on the control host (deploy -i ... openstack); its JSON output."""
        return json.loads(self.ok("openstack", "--", *args, "-f", "json"))

    def node(self, name: str, *argv: str) -> str:
        r = self.stackcrate("lab", "exec", "--dir", self.lab, name, "--", *argv, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout


@pytest.fixture(scope="module")
def cloud(stackcrate, deploy_dist, tmp_path_factory):
    root = tmp_path_factory.mktemp("multinode")
    c = Cloud(root, stackcrate)
    t0 = time.monotonic()
    up = stackcrate("lab", "up", "--nodes", "3", "--dir", c.lab, timeout=1200)
    assert up.returncode == 0, up.stderr
    c.timings["lab up"] = round(time.monotonic() - t0, 1)
    try:
        _run_in_containers(c.lab / "hosts.yml", "node3")
        (root / "services.yaml").write_text((EXAMPLE / "services.yaml").read_text())  # the hosts' own ports
        conf = yaml.safe_load((EXAMPLE / "configuration.yaml").read_text())
        conf.update(state_dir=str(root / "state"), artifacts=str(deploy_dist), manifest=str(copy_manifest(root)))
        c.artifacts = deploy_dist
        conf["overrides"]["nova"]["DEFAULT"].update(report_interval=3, service_down_time=15)
        conf["stop_timeout"] = STOP_TIMEOUT  # short stops (conftest)
        (root / "configuration.yaml").write_text(yaml.safe_dump(conf))
        c.ok("build", timeout=3600)
        try:
            c.ok("run")
        except AssertionError as exc:  # what the hosts' logs say goes into the report (the lab is gone after)
            raise AssertionError(f"{exc}\n{_host_logs(c)}") from None
        yield c
    finally:
        if not c.removed:
            c.sc("rm", "--purge", "--yes", timeout=600)
            stackcrate("lab", "down", "--dir", c.lab, timeout=300)
        print("\nmulti-node timings (s): " + ", ".join(f"{k} {v}" for k, v in c.timings.items()))


def _run_in_containers(inventory: Path, host: str) -> None:
    """What an operator writes in the inventory for a host that runs its processes in containers."""
    text = inventory.read_text()
    data = yaml.safe_load(text)
    data["all"]["hosts"][host]["stackcrate_backend"] = "podman"
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    inventory.write_text(header + yaml.safe_dump(data, sort_keys=False, width=200))


def _host_logs(c: Cloud) -> str:
    """The end of every host's process logs whose process is not running (for a failed run)."""
    script = ("for f in /var/lib/stackcrate/*/state/log/*.log; do echo \"== $f\"; tail -n 40 \"$f\"; done "
              "2>/dev/null | tail -c 20000")
    out = []
    for node in ("node1", "node2", "node3"):
        r = c.stackcrate("lab", "exec", "--dir", c.lab, node, "--", "sh", "-c", script, timeout=60)
        out.append(f"======== {node}\n{r.stdout[-8000:]}")
    return "\n".join(out)


def _services(c: Cloud) -> dict[str, set[str]]:
    hosts = c.json("status")
    return {h: {p["name"] for p in a["processes"] if p["health"] == "ok"} for h, a in hosts.items()}


def test_run_puts_the_control_plane_on_node1_and_nova_compute_on_node2_and_node3(cloud):
    healthy = _services(cloud)
    assert {"mariadb", "rabbitmq", "keystone", "nova-api", "nova-scheduler", "ovn-northd"} <= healthy["node1"]
    assert "nova-compute" not in healthy["node1"]
    for node in ("node2", "node3"):
        assert healthy[node] == {"openvswitch-db", "ovs-vswitchd", "ovn-controller", "nova-compute"}


def test_a_compute_host_holds_no_database_password_and_nova_compute_no_database_url(cloud):
    """nova-compute reaches the databases through the conductor: its config has no [database] or [api_database]
    and its host no nova.conf; the host's secrets are those nova-compute and its checks use (node1: all)."""
    from stackcrate.deploy.secrets import COMPUTE_HOST, NAMES

    def names(node: str, where: str) -> set[str]:
        text = cloud.node(node, "sh", "-c", f"cat {where}")
        return set(yaml.safe_load(text) if where.endswith("secrets.yaml") else yaml.safe_load(text)["secrets"])

    assert names("node1", "/var/lib/stackcrate/*/state/secrets.yaml") == set(NAMES)
    for node in ("node2", "node3"):  # (node3 runs nova-compute in a container, from the same folders)
        assert names(node, "/var/lib/stackcrate/*/state/secrets.yaml") == set(COMPUTE_HOST)
        assert names(node, "/etc/stackcrate/*/configuration.yaml") == set(COMPUTE_HOST)
        listing = cloud.node(node, "sh", "-c", "ls /var/lib/stackcrate/*/state/etc/nova; "
                             "grep -rl -e mysql -e '^\\[database\\]' /var/lib/stackcrate/*/state/etc || true")
        assert listing.split() == ["nova-compute.conf"], (node, listing)


def test_each_host_runs_its_services_from_the_packages_apt_fetched_from_the_deploy_hosts_repository(cloud):
    index = json.loads((cloud.artifacts / "artifacts.json").read_text())
    debs = {a["component"]: a for a in index["artifacts"] if a["format"] == "deb"}
    for node, components in (("node1", sorted(debs)), ("node2", ["nova"])):
        listed = cloud.node(node, "dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n",
                            "openstack-*")
        wanted = {f"{debs[c]['file'].split('_')[0]} {debs[c]['version']} ii" for c in components}
        # (the virtual packages they provide, openstack-<name>, are listed too, as not installed: "un")
        assert {line.strip() for line in listed.splitlines() if line.strip().endswith(" ii")} == wanted, node
        # the .debs apt fetched, kept where the host's stackcrate checked them, and apt's only source for them
        kept = cloud.node(node, "sh", "-c", "cd /var/lib/stackcrate/*/dist && sha256sum *.deb")
        assert {line.split()[1]: line.split()[0] for line in kept.splitlines()} == {
            debs[c]["file"]: debs[c]["sha256"] for c in components}
        sources = cloud.node(node, "sh", "-c", "cat /var/lib/stackcrate/*/apt/sources.list; echo ==; "
                             "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true")
        ours, theirs = sources.split("==")
        assert ours.startswith("deb [trusted=yes] http://10.99.0.1:") and "10.99.0.1" not in theirs


def test_node3_runs_its_processes_in_containers_of_the_images_the_deploy_host_built(cloud):
    from stackcrate.package.oci import laid_out

    index = json.loads((cloud.artifacts / "artifacts.json").read_text())
    built = {a["component"]: (lambda i: (i.digest, i.image_id))(laid_out(cloud.artifacts / a["file"]))
             for a in index["artifacts"] if a["format"] == "oci" and a["component"] in ("nova", "ovn")}
    running = json.loads(cloud.node("node3", "podman", "ps", "--format", "json"))
    by_process = {c["Labels"]["stackcrate.process"]: c for c in running}
    assert set(by_process) == {"openvswitch-db", "ovs-vswitchd", "ovn-controller", "nova-compute"}
    assert by_process["nova-compute"]["Image"].startswith("localhost/stackcrate/nova:")
    for component, (digest, image_id) in built.items():
        name = next(c["Image"] for c in running if c["Image"].startswith(f"localhost/stackcrate/{component}:"))
        held = json.loads(cloud.node("node3", "podman", "image", "inspect", name))[0]
        # pulled by the digest of the manifest the build wrote, and run as the image ID the build gave it
        assert (held["Digest"], held["Id"]) == (digest, image_id), component
    # no service package on node3, and nothing of the control plane
    listed = cloud.node("node3", "sh", "-c", "dpkg-query -W 'openstack-*' 2>/dev/null; podman images --format "
                        "'{{.Repository}}'")
    assert sorted(listed.split()) == ["localhost/stackcrate/nova", "localhost/stackcrate/ovn"]


def test_compute_service_list_shows_nova_compute_up_on_node2_and_node3(cloud):
    services = cloud.openstack("compute", "service", "list", "--service", "nova-compute")
    assert sorted((s["Host"], s["State"]) for s in services) == [("node2", "up"), ("node3", "up")]


def test_verify_passes_with_its_server_on_a_compute_host(cloud):
    out = cloud.ok("verify")
    assert "verified on node1" in out
    assert "port on node2" in out or "port on node3" in out


def test_two_servers_of_an_anti_affinity_group_land_on_node2_and_node3(cloud):
    cloud.node("node1", "sh", "-c", "head -c 4096 /dev/urandom > /tmp/spread.img")  # the client runs on node1
    image = cloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                            "--file", "/tmp/spread.img", "spread")
    flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", "spread")
    cloud.openstack("network", "create", "spread")
    cloud.openstack("subnet", "create", "--network", "spread", "--subnet-range", "192.0.2.0/24", "spread")
    group = cloud.openstack("server", "group", "create", "--policy", "anti-affinity", "spread")
    cloud.openstack("server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network", "spread",
                    "--hint", f"group={group['id']}", "--min", "2", "--max", "2", "spread")

    def both_active() -> list | None:
        servers = cloud.openstack("server", "list", "--name", "^spread", "--long")
        assert not [s for s in servers if s["Status"] == "ERROR"], servers
        return servers if [s["Status"] for s in servers] == ["ACTIVE", "ACTIVE"] else None

    servers = wait_for(both_active, 180, "both servers ACTIVE", 2)
    assert sorted(s["Host"] for s in servers) == ["node2", "node3"]
    cloud.ok("openstack", "--", "server", "delete", "--wait", *(s["ID"] for s in servers))


def test_stopping_node3_reports_its_compute_down_and_starting_it_brings_it_up(cloud):
    def state_of_node3() -> str:
        services = cloud.openstack("compute", "service", "list", "--service", "nova-compute")
        return next(s["State"] for s in services if s["Host"] == "node3")

    cloud.ok("stop", limit="node3")
    assert "nova-compute" not in _services(cloud)["node3"]
    wait_for(lambda: state_of_node3() == "down", 90, "node3's nova-compute reported down", 3)
    assert "nova-compute" in _services(cloud)["node2"]  # only node3 stopped
    cloud.ok("start", limit="node3")
    wait_for(lambda: state_of_node3() == "up", 60, "node3's nova-compute reported up", 3)


def test_rm_purge_then_lab_down_leave_nothing_behind(cloud, stackcrate):
    lab_json = json.loads((cloud.lab / "lab.json").read_text())
    cloud.ok("rm", "--purge", "--yes", timeout=600)
    for node in ("node1", "node2", "node3"):
        # what stays: the empty folders, and the record folder of installed venvs with its lock file
        left = cloud.node(node, "sh", "-c", "find /var/lib/stackcrate /etc/stackcrate /opt/openstack -mindepth 1 "
                          "! -path /opt/openstack/.stackcrate-installed ! -name .lock; "
                          "dpkg-query -W 'openstack-*' 2>/dev/null; "
                          "podman ps --all --quiet; podman images --quiet; "
                          "ps -eo comm= | grep -c -e supervisord -e mariadbd -e beam -e nova- -e ovs -e conmon "
                          "|| true")
        assert left.split() == ["0"], (node, left)
    r = stackcrate("lab", "down", "--dir", cloud.lab, timeout=300)
    assert r.returncode == 0, r.stderr
    cloud.removed = True
    assert lab_json["netns"] not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(Path(f"/proc/{n['pid']}").exists() for n in lab_json["nodes"])
    assert str(cloud.lab) not in Path("/proc/self/mountinfo").read_text()
    assert not cloud.lab.exists()
    # the deploy host's registry ran only while `run` did, and its store went with the deployment's state
    assert str(cloud.root) not in subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    assert not (cloud.root / "state" / "ansible").exists()
