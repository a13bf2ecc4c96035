"""Bad input through the real CLI: a clear message, exit 2, and the deployment left as it was."""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path

import pytest
import yaml

from stackcrate.deploy.config import Deployment

from .conftest import fake_artifacts


def deploy(stackcrate, dep, *args):
    return stackcrate("deploy", args[0], "-s", dep["services"], "-c", dep["config"], *args[1:])


def test_port_in_use_changes_nothing(stackcrate, dep):
    # The port the fixture gave memcached: free, below the ephemeral range (refused for that before anything
    # else), and no other entry's. A port picked anew here could be one the file gives another service, and the
    # file would then be refused for that instead.
    port = yaml.safe_load(dep["services"].read_text())["backing"]["memcached"]["port"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        res = deploy(stackcrate, dep, "init")
    assert res.returncode == 2, res.stderr
    assert f"port(s) already in use on 127.0.0.1: {port} (memcached)" in res.stderr
    assert "Traceback" not in res.stderr
    assert not dep["state"].exists()


def test_port_in_ephemeral_range_is_refused_as_such_even_while_in_use(stackcrate, dep):
    # A port the kernel hands out for port 0 lies in the ephemeral range; held open, it is also in use, as a
    # port taken by an outgoing connection would be: the error must name the range, not a program to stop.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        conf = yaml.safe_load(dep["services"].read_text())
        conf["services"]["glance"]["backend_port"] = port
        dep["services"].write_text(yaml.safe_dump(conf))
        res = deploy(stackcrate, dep, "init")
    assert res.returncode == 2, res.stderr
    assert f"{port} (glance)" in res.stderr and "ephemeral range" in res.stderr
    assert not dep["state"].exists()


def test_missing_artifact(stackcrate, dep):
    fake_artifacts(dep["dist"], skip=("neutron",))
    res = deploy(stackcrate, dep, "init")
    assert res.returncode == 2
    assert "missing artifact(s)" in res.stderr and "neutron" in res.stderr
    assert not dep["state"].exists()


def test_missing_backing_program(stackcrate, dep, tmp_path):
    # A PATH without memcached: only the programs other than memcached are linked in.
    from stackcrate.deploy import backing

    bindir = tmp_path / "bin"
    bindir.mkdir()
    import shutil
    for name in backing.PACKAGES:
        if name != "memcached" and shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin"):
            (bindir / name).symlink_to(shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin"))
    res = stackcrate("deploy", "init", "-s", dep["services"], "-c", dep["config"],
                     env={"PATH": f"{bindir}:/nonexistent"})
    # the CLI itself runs with sys.executable, so PATH only decides where programs are found
    assert res.returncode == 2, res.stderr
    assert "'memcached' is not installed" in res.stderr and "apt-get install memcached" in res.stderr
    assert not dep["state"].exists()


def test_bad_config_value(stackcrate, dep):
    conf = yaml.safe_load(dep["config"].read_text())
    conf["stop_timeout"] = -1
    dep["config"].write_text(yaml.safe_dump(conf))
    res = deploy(stackcrate, dep, "run")
    assert res.returncode == 2
    assert "configuration.yaml:" in res.stderr and "stop_timeout" in res.stderr
    assert not dep["state"].exists()


@pytest.mark.parametrize("which", ["services", "config"])
def test_a_deployment_file_that_is_not_utf8_is_named_with_its_line(stackcrate, dep, which):
    dep[which].write_bytes(dep[which].read_bytes() + b"# caf\xe9 (latin-1)\n")
    lineno = dep[which].read_bytes().count(b"\n")
    res = deploy(stackcrate, dep, "run")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{dep[which]}:{lineno}: not UTF-8 text (byte 0xe9" in res.stderr and "save the file as UTF-8" in res.stderr
    assert not dep["state"].exists()


def test_verify_of_a_deployment_never_run_says_so_and_makes_nothing(stackcrate, dep):
    res = deploy(stackcrate, dep, "verify")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"the deployment in {dep['state']} is not initialised" in res.stderr and "deploy run" in res.stderr
    assert not dep["state"].exists()


def test_status_of_a_new_deployment_says_stopped_with_exit_3(stackcrate, dep):
    res = stackcrate("--json", "deploy", "status", "-s", dep["services"], "-c", dep["config"])
    assert res.returncode == 3, res.stderr  # nothing runs
    data = json.loads(res.stdout)
    rows = data["processes"]
    assert [r["name"] for r in rows][:5] == ["mariadb", "epmd", "rabbitmq", "memcached", "haproxy"]
    assert {r["state"] for r in rows} == {"stopped"} and data["code"] == 3
    assert {r["version"] for r in rows if r["kind"] == "service"} >= {"29.1.0", "33.0.2"}
    assert not dep["state"].exists()


def test_container_dry_run_loads_the_built_images_and_runs_every_process_from_them(stackcrate, dep):
    res = stackcrate("--json", "deploy", "run", "-s", dep["services"], "-c", dep["config"], "--backend", "podman",
                     "--dry-run")
    assert res.returncode == 0, res.stderr
    cmds = [shlex.split(c) for c in json.loads(res.stdout)["commands"]]
    d = yaml.safe_load(dep["services"].read_text())
    state = str(dep["state"].resolve())
    # first, every built image the deployment runs (as listed in artifacts.json) is copied into podman's store, from
    # the artifacts' OCI layout
    ocis = {a["component"]: a for a in json.loads((dep["dist"] / "artifacts.json").read_text())["artifacts"]
            if a["format"] == "oci"}
    loads = [c for c in cmds if c[0] == "skopeo"]
    assert cmds[:len(loads)] == loads
    loaded = {}
    layout = (dep["dist"] / "images").resolve()
    index = json.loads((layout / "index.json").read_text())
    refs = {m["digest"].split(":")[1]: m["annotations"]["org.opencontainers.image.ref.name"]
            for m in index["manifests"]}
    for c in loads:
        assert c[:2] == ["skopeo", "copy"] and c[2].startswith(f"oci:{layout}:") and c[3].startswith("containers-")
        loaded[c[2].rsplit(":", 1)[1]] = c[3].removeprefix("containers-storage:")
    # each by the ref name its manifest (the artifact) has in the layout; the backing images too
    assert set(loaded) == {refs[Path(a["file"]).name] for a in ocis.values()}
    assert not any("docker.io" in " ".join(c) for c in cmds)  # nothing from a registry
    runs = cmds[len(loads):]
    by_name = {c[c.index("--name") + 1].split("-", 2)[2]: c for c in runs}
    assert set(by_name) == {"mariadb", "epmd", "rabbitmq", "memcached", "haproxy", "ovn-nb-db", "ovn-sb-db",
                            "ovn-northd", "openvswitch-db", "ovs-vswitchd", "ovn-controller", "keystone", "glance",
                            "placement", "neutron", "neutron-ovn-maintenance-worker", "nova-api", "nova-conductor",
                            "nova-scheduler", "nova-compute", "horizon"}
    for name, svc in d["services"].items():
        oci = ocis[svc["component"]]
        image = loaded[refs[Path(oci["file"]).name]]
        assert image.endswith(f"/{svc['component']}:{oci['version']}")
        procs = [f"nova-{p}" for p in svc["processes"]] if name == "nova" else [name]
        procs += ["neutron-ovn-maintenance-worker"] if name == "neutron" else []
        for proc in procs:
            cmd = by_name[proc]
            assert cmd[:4] == ["podman", "--runtime", cmd[2], "run"] or cmd[:2] == ["podman", "run"]
            assert cmd[cmd.index("--entrypoint") + 1].startswith(oci["install_path"] + "/bin/")
            assert image in cmd and "--restart" in cmd, (image, cmd)
            assert f"{state}/etc/{name}:{state}/etc/{name}:ro" in cmd  # config mounted read-only
            assert f"{state}/data/{name}:{state}/data/{name}:rw" in cmd
            assert f"path={state}/log/{proc}.log" in cmd  # the engine's log is the state folder's
        api = by_name["nova-api" if name == "nova" else name]
        assert api[api.index("--entrypoint") + 1] == oci["install_path"] + "/bin/gunicorn"
        assert f"127.0.0.1:{svc['backend_port']}" in api  # the port as configured
    mariadb = by_name["mariadb"]
    assert mariadb[mariadb.index("--entrypoint") + 1] == "/usr/sbin/mariadbd"
    assert loaded[refs[Path(ocis["mariadb"]["file"]).name]] in mariadb
    assert f"--port={d['backing']['mariadb']['port']}" in mariadb
    assert f"{state}/data/mariadb:{state}/data/mariadb:rw" in mariadb
    epmd = by_name["epmd"]
    assert loaded[refs[Path(ocis["rabbitmq"]["file"]).name]] in epmd  # epmd comes with RabbitMQ
    # OVN from its own image; ovs-vswitchd in the deployment's network namespace, with the tun device it opens
    ovn_image = loaded[refs[Path(ocis["ovn"]["file"]).name]]
    assert all(ovn_image in by_name[n] for n in ("ovn-nb-db", "ovn-sb-db", "ovn-northd", "openvswitch-db",
                                                  "ovs-vswitchd", "ovn-controller"))
    vswitchd = by_name.pop("ovs-vswitchd")
    netns = vswitchd[vswitchd.index("--network") + 1]
    assert netns.startswith("ns:/run/netns/stackcrate-") and "--device" in vswitchd and "NET_ADMIN" in vswitchd
    assert f"--remote=ptcp:{d['backing']['ovn']['nb_port']}:127.0.0.1" in by_name["ovn-nb-db"]
    assert all(c[c.index("--network") + 1] == "host" for c in by_name.values())
    assert not any("--device" in c or "--cap-add" in c for c in by_name.values())
    assert all(f"nofile={v}:{v}" in " ".join(c) for c in runs for v in [c[c.index("--ulimit") + 1].split("=")[1]
                                                                             .split(":")[0]])
    assert not dep["state"].exists()  # a dry run changes nothing


def test_container_backend_needs_the_oci_images(stackcrate, dep):
    arts = json.loads((dep["dist"] / "artifacts.json").read_text())
    arts["artifacts"] = [a for a in arts["artifacts"] if not (a["format"] == "oci" and a["component"] == "glance")]
    (dep["dist"] / "artifacts.json").write_text(json.dumps(arts))
    res = stackcrate("deploy", "run", "-s", dep["services"], "-c", dep["config"], "--backend", "docker",
                     "--dry-run")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "missing artifact(s) (oci)" in res.stderr and "glance" in res.stderr and "deploy build" in res.stderr
    assert not dep["state"].exists()


def test_rm_purge_asks_first_and_no_removes_nothing(stackcrate, dep):
    from stackcrate.deploy import secrets

    secrets.ensure(dep["state"])
    res = stackcrate("deploy", "rm", "--purge", "-s", dep["services"], "-c", dep["config"], input="n\n")
    assert res.returncode == 1 and "Remove" in res.stderr and "nothing removed" in res.stderr
    assert (dep["state"] / "secrets.yaml").exists()
    res = stackcrate("deploy", "rm", "--purge", "--yes", "-s", dep["services"], "-c", dep["config"])
    assert res.returncode == 0, res.stderr
    assert not dep["state"].exists()


def test_logs(stackcrate, dep):
    (dep["state"] / "log").mkdir(parents=True)
    (dep["state"] / "log" / "nova-api.log").write_text("".join(f"line {i}\n" for i in range(100)))
    (dep["state"] / "log" / "keystone.log").write_text("ks\n")
    res = stackcrate("deploy", "logs", "nova", "-n", "3", "-s", dep["services"], "-c", dep["config"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == "==> nova-api.log <==\nline 97\nline 98\nline 99\n"
    res = stackcrate("deploy", "logs", "cinder", "-s", dep["services"], "-c", dep["config"])
    assert res.returncode == 2 and "keystone, nova-api" in res.stderr


def test_docker_gets_the_same_containers_through_its_own_cli(stackcrate, dep):
    def commands(backend: str) -> list[list[str]]:
        res = stackcrate("--json", "deploy", "run", "-s", dep["services"], "-c", dep["config"], "--backend", backend,
                         "--dry-run")
        assert res.returncode == 0, res.stderr
        return [shlex.split(c) for c in json.loads(res.stdout)["commands"]]

    podman, docker = commands("podman"), commands("docker")
    assert [c[0] for c in docker if c[0] != "skopeo"] == ["docker"] * 21
    assert {c[3].split(":", 1)[0] for c in docker if c[0] == "skopeo"} == {"docker-daemon"}

    def run_part(c: list[str]) -> list[str]:
        i = c.index("run")
        podman_only = {"--umask", "--log-driver", "--log-opt"}  # podman's umask and its log file options
        out, skip = [], False
        for a in c[i:]:
            if skip:
                skip = False
                continue
            if a in podman_only:
                skip = True
                continue
            out.append(a)
        return out

    # the same, but for the network namespace of ovs-vswitchd: docker joins only containers' namespaces
    same = [run_part(c) for c in docker if c[0] == "docker"]
    assert same == [[a.replace("ns:/run/netns/stackcrate-" + dep_id(dep), "host") for a in run_part(c)]
                    for c in podman if c[0] == "podman"]
    assert sum("ns:/run/netns/stackcrate-" + dep_id(dep) in c for c in podman) == 1
    assert not dep["state"].exists()


def dep_id(dep) -> str:
    return Deployment(dep["services"], dep["config"]).id
