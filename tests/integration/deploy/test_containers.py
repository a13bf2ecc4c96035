"""The podman backend end to end: the images the build made (services and backing services), every process in a
container, the same lifecycle as the local backend, checked with the real `openstack` client.

One deployment for the module, on free ports, in its own state folder; the tests run in order of the lifecycle
but each starts from a running cloud (`up`) and leaves it running, except the last, which purges it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from stackcrate.package.oci import laid_out, tag
from tests.integration.deploy.conftest import (
    ALL,
    STOP_TIMEOUT,
    Deploy,
    deployment_files,
    links,
    netns_of,
    ovn_ctl,
    remove_server_and_network,
    server_on_a_network,
    wait_for,
)

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/runc").exists(), reason="needs podman with runc")


def podman(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=300)


def containers(d: Deploy) -> dict[str, dict]:
    out = podman("ps", "--all", "--format", "json", "--filter", f"label=stackcrate.state={d.state}")
    return {c["Labels"]["stackcrate.process"]: c for c in json.loads(out.stdout or "[]")}


@pytest.fixture(scope="module")
def cdep(sc_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("podman")
    d = deployment_files(root, root / "dist", sc_env)
    d.set_config(backend="podman", stop_timeout=STOP_TIMEOUT)
    built = d.ok("build", timeout=3600)
    d.timings["build --backend podman"] = [{"step": "images", "seconds": built.get("seconds", 0)}]
    d.images = built["images"]
    d.ok("run")
    yield d
    d.sc("rm", "--purge", "--yes", timeout=600)
    for c in containers(d).values():  # only if rm itself failed
        podman("rm", "--force", c["Names"][0])
    print(f"\nimages: {json.dumps(d.images)}")
    print("podman deploy timings (s):")
    for verb, steps in d.timings.items():
        print(f"  {verb}: " + ", ".join(f"{s['step']} {s['seconds']}" for s in steps))


@pytest.fixture
def up(cdep) -> Deploy:
    st, code = cdep.status_with_code()
    if code:
        cdep.ok("start")
        st, code = cdep.status_with_code()
    assert code == 0, {n: r["detail"] for n, r in st.items() if r["health"] != "ok"}
    return cdep


def test_every_process_runs_in_a_container_of_an_image_the_build_made(up):
    running = containers(up)
    assert sorted(running) == sorted(ALL)
    assert all(c["State"] == "running" for c in running.values())
    assert all(c["Image"].startswith("localhost/stackcrate/") for c in running.values())
    # and nothing of the deployment runs outside them: every process naming the state folder is a container's
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if str(up.state) in cmdline and "conmon" not in cmdline and "podman" not in cmdline:
            assert "libpod" in cgroup, (pid, cmdline)


def test_verify_with_the_client_in_a_container_and_the_dashboard_in_its_own(up):
    data = up.ok("verify")
    assert data["server_status"] == "ACTIVE" and data["deleted"]
    assert data["dashboard"]["instances"] == "lists the server" and data["dashboard"]["logout"] == "ok"


def test_a_killed_container_process_is_reported_and_restarted_by_the_engine(up):
    before = up.pid("glance")
    os.kill(before, signal.SIGKILL)
    st, code = up.status_with_code()
    # the engine may have restarted it already: then status says so; else it is not running and healthy
    assert code == 1 or "restarted 1× by podman" in st["glance"]["detail"], st["glance"]
    st = wait_for(lambda: (s := up.status_with_code())[1] == 0 and s[0], 120, "glance back", interval=1)
    assert st["glance"]["pid"] != before and st["glance"]["restarts"] >= 1  # the restart policy, not `start`
    assert "restarted" in st["glance"]["detail"]


def client(d: Deploy):
    from stackcrate.deploy.config import Deployment
    from stackcrate.deploy.verify import Client

    return Client(Deployment(d.root / "services.yaml", d.root / "configuration.yaml"))


def test_servers_ports_are_bound_by_ovn_in_containers_with_every_device_in_the_deployments_namespace(up):
    os_ = client(up)
    made = server_on_a_network(up, os_, "net1")
    port = made["port"]
    assert (port["status"], port["binding_host_id"]) == ("ACTIVE", "stackcrate")
    assert made["server"]["addresses"]["net1"][0].startswith("192.0.2.")
    # ovs-vswitchd's container joined the deployment's namespace; every other container is on the host's network
    ns = netns_of(up)
    modes = {n: json.loads(podman("inspect", c["Names"][0]).stdout)[0]["HostConfig"]["NetworkMode"]
             for n, c in containers(up).items()}
    assert modes.pop("ovs-vswitchd") == f"ns:/run/netns/{ns}" and set(modes.values()) == {"host"}
    dev = ("tap" + port["id"])[:14]
    assert dev in links(ns) and dev not in links()
    bound_to = ovn_ctl(up, "ovn-sbctl", "--bare", "--columns", "chassis", "find", "Port_Binding",
                       f"logical_port={port['id']}").strip()
    assert bound_to
    for name in ("ovn-controller", "ovs-vswitchd"):
        before = up.pid(name)
        os.kill(before, signal.SIGKILL)
        t0 = time.monotonic()
        st = wait_for(lambda n=name, b=before: (r := up.status()[n])["health"] == "ok" and r["pid"] != b and r, 60,
                      f"{name} back", 0.5)
        up.timings[f"{name} back after kill -9"] = [{"step": "healthy again",
                                                     "seconds": round(time.monotonic() - t0, 1)}]
        assert "restarted" in st["detail"]  # by the engine's restart policy
        assert os_("port", "show", port["id"])["status"] == "ACTIVE"
        assert ovn_ctl(up, "ovn-sbctl", "--bare", "--columns", "chassis", "find", "Port_Binding",
                       f"logical_port={port['id']}").strip() == bound_to
    remove_server_and_network(os_, made, "net1")
    assert dev not in links(ns)


def test_images_are_built_here_share_their_layers_and_carry_an_sbom(up):
    sizes = up.images
    assert set(sizes["images"]) >= {"mariadb", "rabbitmq", "memcached", "haproxy", "ovn", "keystone", "nova"}
    assert sizes["unique_bytes"] <= 0.4 * sizes["summed_bytes"], sizes
    index = json.loads((up.dist / "artifacts.json").read_text())["artifacts"]
    mariadb = next(a for a in index if a["component"] == "mariadb" and a["format"] == "oci")
    assert mariadb["source"]["type"] == "debian" and mariadb["version"] == mariadb["source"]["revision"]
    # its SBOM beside the image layout, named by the image's ref
    sbom_file = next(a["file"] for a in index if a["component"] == "mariadb" and a["format"] == "sbom")
    assert sbom_file == f"mariadb-{tag(mariadb['version'])}.oci.cdx.json"
    sbom = json.loads((up.dist / sbom_file).read_text())
    listed = {c["name"]: c["version"] for c in sbom["components"]}
    assert listed["mariadb-server"] == mariadb["version"] and "libc6" in listed
    # what runs is what was built: each container's image in the engine's store has the config and the layers of
    # the image in dist's OCI layout, with no registry in between
    info = json.loads(podman("image", "inspect", containers(up)["mariadb"]["Image"]).stdout)[0]
    assert info["Labels"]["org.opencontainers.image.version"] == mariadb["version"]
    sources = {a["component"]: laid_out(up.dist / a["file"]).source for a in index if a["format"] == "oci"}
    for name, c in containers(up).items():
        stored = json.loads(subprocess.run(["skopeo", "inspect", "--raw", f"containers-storage:{c['Image']}"],
                                           capture_output=True, text=True, timeout=120, check=True).stdout)
        component = c["Labels"].get("org.opencontainers.image.title")
        built = json.loads(subprocess.run(["skopeo", "inspect", "--raw", sources[component]],
                                          capture_output=True, text=True, timeout=120, check=True).stdout)
        assert stored["config"]["digest"] == built["config"]["digest"], name
        assert [d["digest"] for d in stored["layers"]] == [d["digest"] for d in built["layers"]], name


def test_secrets_are_in_no_command_line_environment_or_inspect(up):
    secrets = [v for v in yaml.safe_load((up.state / "secrets.yaml").read_text()).values() if len(str(v)) >= 8]
    names = [c["Names"][0] for c in containers(up).values()]
    inspected = podman("inspect", *names).stdout
    assert inspected.count('"Name": "stackcrate-') >= len(names)
    assert not [s for s in secrets if str(s) in inspected]
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            seen = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        assert not [s for s in secrets if str(s).encode() in seen], pid
    mode = (up.state / "secrets.yaml").stat().st_mode & 0o777
    assert mode == 0o600


def test_logs_come_from_the_engine(up):
    res = up.sc("logs", "keystone", "--lines", "5", json_out=False)
    assert res.returncode == 0, res.stderr
    assert "(podman logs)" in res.stdout and len(res.stdout.splitlines()) >= 2


def test_stop_start_keeps_the_data_and_the_network_and_the_cloud_builds_servers(up):
    os_ = client(up)
    made = server_on_a_network(up, os_, "kept-across-stop")
    up.ok("stop")
    assert {c["State"] for c in containers(up).values()} <= {"exited", "stopped"}
    assert up.status_with_code()[1] == 3
    res = up.sc("verify")  # told at once, before it makes anything (the engine has no daemon of ours to ask)
    assert res.returncode == 2 and f"the deployment in {up.state} is not running" in res.stderr, res.stderr
    up.ok("start")
    assert os_("image", "show", made["image"])["status"] == "active"
    assert os_("server", "show", made["server"]["id"])["status"] == "ACTIVE"
    wait_for(lambda: os_("port", "show", made["port"]["id"])["status"] == "ACTIVE", 60, "the kept port ACTIVE", 1)
    assert up.ok("verify")["server_status"] == "ACTIVE"
    remove_server_and_network(os_, made, "kept-across-stop")


def test_rm_removes_the_containers_keeps_the_data_and_run_brings_it_back(up):
    up.ok("rm")
    assert containers(up) == {}
    assert (up.state / "data" / "mariadb").is_dir()
    assert netns_of(up) not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                              timeout=30).stdout  # the namespace went with them
    up.ok("run")
    assert sorted(containers(up)) == sorted(ALL)
    assert up.ok("verify")["server_status"] == "ACTIVE"


def test_nova_compute_in_a_container_runs_servers_as_containers_through_the_hosts_podman_socket(up, tmp_path):
    """compute_driver podman on a container backend: the host runs podman's API (here started by the test, as
    systemd's podman.socket would be); nova-compute's container mounts its socket's folder and nothing else's."""
    sock = tmp_path / "podman" / "podman.sock"
    sock.parent.mkdir()
    api = subprocess.Popen(["podman", "--runtime", "/usr/sbin/runc", "system", "service", "--time=0",
                            f"unix://{sock}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os_ = client(up)
    try:
        wait_for(sock.exists, 30, "podman's API socket")
        up.set_config(compute_driver="podman", podman_api_socket=str(sock))
        started = up.ok("run")["started"]
        assert "nova-compute" in started and all(n.startswith("nova-") for n in started)  # what reads nova's config
        mounted = {m["Destination"]: m["RW"] for c in json.loads(podman("inspect", containers(up)[
            "nova-compute"]["Id"]).stdout) for m in c["Mounts"]}
        assert mounted[str(sock.parent)] is True
        assert all(str(sock.parent) not in json.dumps(c["Mounts"]) for name, c in containers(up).items()
                   if name != "nova-compute")
        archive = up.state / "data" / "verify" / "busybox.tar"
        up.ok("instance-image", "-o", str(archive))
        image = os_("image", "create", "--container-format", "docker", "--disk-format", "raw", "--file",
                    str(archive), "busybox")["id"]
        flavor = os_("flavor", "create", "--ram", "64", "--vcpus", "1", "--disk", "1", "tiny")["id"]
        sid = os_("server", "create", "--flavor", flavor, "--image", image, "--nic", "none", "--wait", "boxed")["id"]
        assert os_("server", "show", sid)["status"] == "ACTIVE"
        found = json.loads(podman("ps", "--format", "json", "--filter",
                                  f"label=org.openstack.nova.instance-uuid={sid}").stdout or "[]")
        assert [c["State"] for c in found] == ["running"]
        wait_for(lambda: "stackcrate instance" in str(os_("console", "log", "show", sid, fmt=False)), 30,
                 "the container's output in the console log", 1)
        os_("server", "delete", "--wait", sid, fmt=False)
        assert podman("ps", "--all", "--quiet", "--filter", f"label=org.openstack.nova.instance-uuid={sid}"
                      ).stdout.strip() == ""
        os_("image", "delete", image, fmt=False)
        os_("flavor", "delete", flavor, fmt=False)
    finally:
        conf = yaml.safe_load((up.root / "configuration.yaml").read_text())
        conf.pop("compute_driver", None), conf.pop("podman_api_socket", None)
        (up.root / "configuration.yaml").write_text(yaml.safe_dump(conf))
        up.ok("run")
        api.terminate()
        api.wait(30)


@pytest.mark.parametrize("runtime", ["crun", "/no/such/runtime"])
def test_an_engine_that_cannot_run_containers_is_refused_before_anything_changes(up, tmp_path, runtime):
    """crun is podman's default runtime; it refuses these hosts' hybrid cgroup layout."""
    from stackcrate.deploy.containers import hybrid_cgroups

    if runtime == "crun" and not (shutil.which("crun") and hybrid_cgroups()):
        pytest.skip("crun runs containers on this host")
    other = deployment_files(tmp_path / "other", up.dist, up.env)
    other.set_config(backend="podman", engine={"runtime": shutil.which(runtime) or runtime})
    res = other.sc("run")
    assert res.returncode == 2 and "cannot start a container on this host" in res.stderr, res.stderr
    assert "engine:" in res.stderr and "Traceback" not in res.stderr
    assert not other.state.exists()
    assert set(containers(up)) == set(ALL)  # the running deployment was not touched


def test_rm_purge_leaves_no_container_no_image_and_no_data(up):
    """Images another deployment's containers use (one on the same machine) stay; every other is removed."""
    mine = {c["Image"] for c in containers(up).values()}
    listed_all = json.loads(podman("ps", "--all", "--format", "json").stdout or "[]")
    others = {c["Image"] for c in listed_all if (c.get("Labels") or {}).get("stackcrate.state") != str(up.state)}
    up.ok("rm", "--purge", "--yes")
    assert containers(up) == {} and not up.state.exists()
    listed = set(podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split())
    assert not (mine - others) & listed
    assert mine & others <= listed
