"""Both backends take every OpenStack process from the one table (openstack.py via processes.py): the container
commands run the same program with the same arguments, environment and config files as the local backend."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from stackcrate.deploy import containers
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.configs import configs
from stackcrate.deploy.install import artifacts
from stackcrate.deploy.layout import Layout
from stackcrate.deploy.openstack import SERVICES, Command
from stackcrate.deploy.processes import openstack_processes, process_names
from stackcrate.errors import StackcrateError


def local_layout(d: Deployment) -> Layout:
    # the venvs where the local backend installs them: the paths the artifacts were built for
    return Layout(d, {c: a.install_path for c, a in artifacts(d).items()}, secrets={})


FLAGS = {"--detach", "--rm", "--read-only", "--init", "--interactive"}  # options without a value


def parse_run(cmd: list[str]) -> dict:
    """An `<engine> run` command taken apart: its options and what follows the image."""
    opts: dict[str, list[str]] = {}
    i = 2
    while cmd[i].startswith("--"):
        if cmd[i] in FLAGS:
            opts[cmd[i]] = []
            i += 1
            continue
        opts.setdefault(cmd[i], []).append(cmd[i + 1])
        i += 2
    return {"opts": opts, "image": cmd[i], "args": cmd[i + 1:]}


def test_container_processes_are_the_local_ones(dep):
    d = Deployment(dep["services"], dep["config"])
    local = {p.name: p for p in openstack_processes(local_layout(d))}
    runs = {}
    d.backend = "podman"
    for line in containers.dry_run(d, openstack_processes(local_layout(d))):
        cmd = shlex.split(line)
        if cmd[0] == "podman":
            run = parse_run(cmd[cmd.index("run") - 1:])  # after podman's own options (the runtime)
            runs[run["opts"]["--name"][0].split("-", 2)[2]] = run
    assert set(local) <= set(runs)
    assert list(local) == [n for n in process_names(d) if n in local]  # the table's start order
    images = containers.images(d)
    for name, p in local.items():
        run = runs[name]
        assert run["opts"]["--entrypoint"] == [p.program], name
        assert run["args"] == list(p.args), name
        assert dict(e.split("=", 1) for e in run["opts"].get("--env", [])) == p.env, name
        mounts = {v.split(":")[0]: v.split(":")[2] for v in run["opts"]["--volume"]}
        assert all(v.split(":")[0] == v.split(":")[1] for v in run["opts"]["--volume"])  # same paths inside
        image = images[p.component]
        assert run["image"] == image.name
        venv = artifacts(d, "oci")[p.component].install_path
        for f in p.config_files:  # each config file is in the image's venv or in a mounted folder
            assert f.startswith(venv + "/") or any(f.startswith(m + "/") for m in mounts), (name, f)
        assert {mounts[r] for r in p.reads} == {"ro"} and {mounts[w] for w in p.writes} == {"rw"}


def test_every_service_in_the_table_is_deployable_and_complete(dep):
    d = Deployment(dep["services"], dep["config"])
    assert list(d.services.enabled()) == list(SERVICES)
    lay = local_layout(d)
    procs = openstack_processes(lay)
    for name, spec in SERVICES.items():
        api = next(p for p in procs if p.name == spec.processes[0].name)
        assert api.program.endswith("/bin/gunicorn") and api.health.url and api.ports
        assert api.config_files[-1] == str(lay.conf_file(name))
        assert api.env[spec.config_dir_env] == str(lay.etc(name))
        commands = [c for c in spec.sync if isinstance(c, Command)]
        if spec.config_format == "ini":  # oslo.config's programs are told the file; Django's read the env
            assert commands and all(c.args[:2] == ("--config-file", "{config_file}") for c in commands), name
        else:
            assert commands and all(dict(c.env)["PYTHONPATH"] == "{config_dir}" for c in commands), name
    nova_api = next(p for p in procs if p.name == "nova-api")
    # nova's paste pipeline comes first: it is read from the first config file
    assert nova_api.env["OS_NOVA_CONFIG_FILES"].split(";")[0].endswith("/etc/nova/api-paste.ini")
    # neutron's is found by its default name beside a config file: the venv's, not one the deprecated
    # [DEFAULT] api_paste_config names
    neutron = next(p for p in procs if p.name == "neutron")
    assert neutron.env["OS_NEUTRON_CONFIG_FILES"].split(";") == [
        str(lay.venv("neutron") / "etc" / "neutron" / "api-paste.ini"), "neutron.conf"]
    written = Layout(d, lay.venvs, dict.fromkeys(SECRETS, "x"))
    assert "api_paste_config" not in configs(written)["neutron"]["DEFAULT"]
    compute = next(p for p in procs if p.name == "nova-compute")
    # run through the launcher that puts stackcrate's driver module into nova.virt
    assert compute.program.endswith("/bin/python3") and not compute.ports
    assert compute.args == (str(lay.launcher("nova-compute")), "--config-file",
                            str(lay.etc("nova") / "nova-compute.conf"))
    assert str(lay.launcher("nova-compute").parent / "stackcrate_fake.py") in compute.config_files
    for spec in SERVICES.values():  # a process some sections are withheld from reads a file of its own
        for p in (p for p in spec.processes if p.withheld):
            assert not p.wsgi and lay.process_conf_file(spec.name, p) != lay.conf_file(spec.name), p.name


def test_nova_runs_only_the_processes_the_services_file_names(dep):
    services = yaml.safe_load(dep["services"].read_text())
    services["services"]["nova"]["processes"] = ["api", "conductor", "scheduler"]  # compute hosts come later
    dep["services"].write_text(yaml.safe_dump(services))
    d = Deployment(dep["services"], dep["config"])
    names = [p.name for p in openstack_processes(local_layout(d))]
    assert names == ["keystone", "glance", "placement", "neutron", "neutron-ovn-maintenance-worker", "nova-api",
                     "nova-conductor", "nova-scheduler", "horizon"]
    assert process_names(d)[-4:] == ["nova-api", "nova-conductor", "nova-scheduler", "horizon"]


def test_a_one_shot_containers_environment_goes_on_stdin_not_on_its_command_line(dep):
    """keystone's bootstrap password: not in the `run` command (so not in ps or `inspect`), yet the command sees
    it in its environment and still gets its own standard input after it (run here by the host's /bin/sh, as the
    image's /bin/sh runs it)."""
    import subprocess

    from stackcrate.deploy.processes import Call

    d = Deployment(dep["services"], dep["config"])
    d.backend = "podman"
    secret = "s3cret-" + "x" * 20
    call = Call("keystone", "/bin/sh", ("-c", 'printf "%s|%s|" "$OS_BOOTSTRAP_PASSWORD" "$OTHER"; cat'),
                {"OS_BOOTSTRAP_PASSWORD": secret, "OTHER": "a b=c"}, "own input\n")
    cmd = containers.call_command(d, call, "localhost/stackcrate/keystone:1")
    assert not any(secret in a for a in cmd)
    run = parse_run(["podman", *cmd])
    assert run["opts"]["--entrypoint"] == ["/bin/sh"] and "--env" not in run["opts"]
    out = subprocess.run(["/bin/sh", *run["args"]], input=containers.call_input(call), capture_output=True,
                         text=True, timeout=10)
    assert out.stdout == f"{secret}|a b=c|own input\n", out.stderr
    bad = Call("keystone", "/bin/true", (), {"PASSWORD": "two\nlines"})
    with pytest.raises(StackcrateError, match="PASSWORD"):
        containers.call_input(bad)


SECRETS = ("db_keystone", "db_glance", "db_placement", "db_neutron", "db_nova", "rabbitmq_password",
           "service_password", "admin_password", "horizon_secret_key")


def test_nova_compute_reads_novas_config_without_the_databases_and_a_compute_host_has_no_nova_conf(dep):
    """nova-compute reaches the databases through the conductor only: nova logs an ERROR at its every start
    when it is given [api_database], and a compute host should hold no database URL."""
    import configparser

    from stackcrate.deploy import configs

    def written(d: Deployment) -> tuple[Layout, dict[str, configparser.ConfigParser]]:
        from stackcrate.deploy.secrets import needed

        lay = Layout(d, {c: a.install_path for c, a in artifacts(d).items()},
                     {n: f"pw-{n}" for n in needed(d.config.node.roles)})
        configs.write_configs(lay)
        out = {}
        for f in sorted(lay.etc("nova").glob("*.conf")):
            out[f.name] = configparser.ConfigParser(interpolation=None)
            out[f.name].read(f)
        return lay, out

    lay, files = written(Deployment(dep["services"], dep["config"]))
    assert set(files) == {"nova.conf", "nova-compute.conf"}
    nova, compute = files["nova.conf"], files["nova-compute.conf"]
    assert nova["api_database"]["connection"].endswith("/nova_api") and nova["database"]["connection"]
    assert set(nova.sections()) - set(compute.sections()) == {"database", "api_database"}
    assert all(dict(compute[s]) == dict(nova[s]) for s in compute.sections())
    assert (lay.etc("nova") / "nova-compute.conf").stat().st_mode & 0o077 == 0
    procs = {p.name: p for p in openstack_processes(lay)}
    assert procs["nova-compute"].args[-2:] == ("--config-file", str(lay.etc("nova") / "nova-compute.conf"))
    assert all(p.args[-1] == str(lay.conf_file("nova")) for n, p in procs.items() if n in ("nova-conductor",
                                                                                             "nova-scheduler"))

    def as_node(roles: list[str]) -> Deployment:
        conf = yaml.safe_load(dep["config"].read_text())
        conf["node"] = {"name": "node2", "roles": roles, "control_address": "10.99.0.11"}
        dep["config"].write_text(yaml.safe_dump(conf))
        return Deployment(dep["services"], dep["config"])

    # the same deployment turned into a compute host of several: nova.conf (written above) goes
    lay, files = written(as_node(["compute"]))
    assert list(files) == ["nova-compute.conf"]
    text = (lay.etc("nova") / "nova-compute.conf").read_text()
    assert "mysql" not in text and "[DEFAULT]" in text and "transport_url = rabbit://" in text
    assert "pw-service_password" in text and "pw-rabbitmq_password" in text
    # ... into a control host: nova-compute.conf goes
    assert list(written(as_node(["control"]))[1]) == ["nova.conf"]
    # ... into a compute host that runs no nova-compute: no file of nova's is left
    services = yaml.safe_load(dep["services"].read_text())
    services["services"]["nova"]["processes"] = ["api", "conductor", "scheduler"]
    dep["services"].write_text(yaml.safe_dump(services))
    written(as_node(["compute", "control"]))
    assert list(written(as_node(["compute"]))[1]) == []


@pytest.mark.parametrize("override,limit", [({}, "72"), ({"password_hash_algorithm": "bcrypt"}, "72"),
                                            ({"max_password_length": 100}, "100"),
                                            ({"password_hash_algorithm": "scrypt"}, None)])
def test_keystones_password_limit_is_what_bcrypt_reads_unless_told_otherwise(dep, override, limit):
    """bcrypt reads 72 bytes; above that limit keystone warns at every password login. Another hash reads more:
    then keystone's own limit stays, as does a limit the configuration sets."""
    from stackcrate.deploy import configs

    conf = yaml.safe_load(dep["config"].read_text())
    conf["overrides"] = {"keystone": {"identity": override}} if override else {}
    dep["config"].write_text(yaml.safe_dump(conf))
    d = Deployment(dep["services"], dep["config"])
    lay = Layout(d, {c: a.install_path for c, a in artifacts(d).items()}, dict.fromkeys(SECRETS, "pw-x"))
    identity = configs.configs(lay)["keystone"].get("identity", {})
    assert (str(identity["max_password_length"]) if "max_password_length" in identity else None) == limit


@pytest.mark.parametrize("stop_timeout,manager", [(None, 4), (180, 160), (30, 14), (3, 0), (0.5, 0)])
def test_novas_graceful_shutdown_sleeps_inside_the_stop_timeout_and_oslo_never_cuts_it_first(dep, stop_timeout,
                                                                                              manager):
    """On SIGTERM nova 2026.1's managers sleep manager_shutdown_timeout (160 s by default) before the rest of their
    shutdown: that sleep is inside the deployment's stop_timeout (10 s unless set), the rest's share left to it;
    oslo.service's limit (it exits 1) is past it; an override still wins."""
    from stackcrate.deploy import configs

    conf = yaml.safe_load(dep["config"].read_text())
    if stop_timeout is not None:
        conf["stop_timeout"] = stop_timeout
    dep["config"].write_text(yaml.safe_dump(conf))
    d = Deployment(dep["services"], dep["config"])
    lay = Layout(d, {c: a.install_path for c, a in artifacts(d).items()}, dict.fromkeys(SECRETS, "pw-x"))
    default = configs.configs(lay)["nova"]["DEFAULT"]
    assert default["manager_shutdown_timeout"] == manager
    assert default["graceful_shutdown_timeout"] > d.config.stop_timeout

    conf["overrides"] = {"nova": {"DEFAULT": {"manager_shutdown_timeout": 0}}}
    dep["config"].write_text(yaml.safe_dump(conf))
    d = Deployment(dep["services"], dep["config"])
    lay = Layout(d, {c: a.install_path for c, a in artifacts(d).items()}, dict.fromkeys(SECRETS, "pw-x"))
    assert configs.configs(lay)["nova"]["DEFAULT"]["manager_shutdown_timeout"] == 0


def test_neutron_nova_and_the_chassis_agree_on_ovn(dep):
    """What neutron, nova-compute's driver and ovn-controller are told is what the OVN processes serve."""
    from stackcrate.deploy import configs, ovn
    from stackcrate.deploy.backing import backing_processes

    d = Deployment(dep["services"], dep["config"])
    lay = Layout(d, {c: a.install_path for c, a in artifacts(d).items()}, secrets=dict.fromkeys(SECRETS, "x"))
    conf = configs.configs(lay)
    procs = {p.name: p for p in backing_processes(d)}
    b = yaml.safe_load(dep["services"].read_text())["backing"]["ovn"]
    ml2 = conf["neutron"]["ml2"]
    assert (ml2["mechanism_drivers"], ml2["tenant_network_types"]) == ("ovn", "geneve")
    assert conf["neutron"]["ovn"]["ovn_nb_connection"] == f"tcp:127.0.0.1:{b['nb_port']}"
    assert f"--remote=ptcp:{b['nb_port']}:127.0.0.1" in procs["ovn-nb-db"].args
    assert f"--remote=ptcp:{b['sb_port']}:127.0.0.1" in procs["ovn-sb-db"].args
    # nova-compute's driver plugs ports into the Open vSwitch that ovs-vswitchd and ovn-controller use
    sock = conf["nova"]["os_vif_ovs"]["ovsdb_connection"]
    assert f"--remote=p{sock}" in procs["openvswitch-db"].args
    assert procs["ovs-vswitchd"].args[0] == sock and procs["ovn-controller"].args[0] == sock
    compute = next(p for p in openstack_processes(lay) if p.name == "nova-compute")
    assert str(Path(sock.removeprefix("unix:")).parent) in compute.writes  # mounted into its container
    assert conf["nova"]["DEFAULT"]["compute_driver"] == "stackcrate_fake.FakeOVSDriver"
    # the chassis registers as nova's compute host (neutron binds ports to it) and points at the southbound db
    settings = " ".join(procs["ovs-vswitchd"].before_start[0].args)
    assert "external_ids:hostname=stackcrate" in settings
    assert f"external_ids:ovn-remote=tcp:127.0.0.1:{b['sb_port']}" in settings
    assert f"external_ids:ovn-bridge={ovn.bridge(d)}" in settings and len(ovn.bridge(d)) <= 15
    assert procs["ovs-vswitchd"].netns == ovn.netns(d) and "/dev/net/tun" in procs["ovs-vswitchd"].devices
    assert f"external_ids:ovn-bridge-datapath-type={ovn.datapath(d)}" in settings


def _launched(launcher: Path, stand_ins: Path, config: str) -> str:
    """What a generated launcher prints, run by Python with `--config-file config` against stand-in packages."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(launcher), "--config-file", config], capture_output=True, text=True,
                         env={"PYTHONPATH": str(stand_ins)}, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_nova_compute_launcher_puts_stackcrates_driver_into_nova_virt(dep, tmp_path):
    """The generated launcher, run by Python against a stand-in nova package: nova.virt.stackcrate_fake is
    importable and main() runs (the real driver is exercised by the integration tests)."""

    from stackcrate.deploy import configs

    d = Deployment(dep["services"], dep["config"])
    lay = local_layout(d)
    launcher = configs.launchers(lay, "nova")[0]
    driver = launcher.parent / "stackcrate_fake.py"
    assert driver.read_text() == (configs.LAUNCHED_DIR / "stackcrate_fake.py").read_text()
    # a stand-in nova: its main() imports the driver the way nova does (nova.virt.<compute_driver's module>)
    (launcher.parent / "stackcrate_fake.py").write_text("LOADED = 'stackcrate_fake'\n")
    fake = tmp_path / "fake-nova"
    (fake / "nova" / "virt").mkdir(parents=True)
    (fake / "nova" / "cmd").mkdir()
    for init in ("nova", "nova/virt", "nova/cmd"):
        (fake / init / "__init__.py").write_text("")
    (fake / "nova" / "cmd" / "compute.py").write_text(
        "import importlib, sys\n"
        "def main():\n"
        "    print(importlib.import_module('nova.virt.stackcrate_fake').LOADED, sys.argv[1:])\n"
        "    return 0\n")
    assert _launched(launcher, fake, "nova.conf") == "stackcrate_fake ['--config-file', 'nova.conf']"


def test_the_ovn_maintenance_worker_imports_stackcrates_lock_fix_before_neutron(dep, tmp_path):
    """The generated launcher, run by Python against stand-in ovs and neutron packages: the fix replaces the IDL's
    lock request before neutron's main() runs (the fix itself is checked against the real ovs by the
    integration tests)."""

    from stackcrate.deploy import configs

    d = Deployment(dep["services"], dep["config"])
    lay = local_layout(d)
    worker = next(p for p in SERVICES["neutron"].processes if p.name == "neutron-ovn-maintenance-worker")
    assert worker.launcher is not None and worker.launcher.imports == ("stackcrate_ovs_lock",)
    launcher = next(path for path in configs.launchers(lay, "neutron") if path == lay.launcher(worker.name))
    assert (launcher.parent / "stackcrate_ovs_lock.py").read_text() == \
        (configs.LAUNCHED_DIR / "stackcrate_ovs_lock.py").read_text()
    fake = tmp_path / "stand-ins"
    for pkg in ("ovs", "ovs/db", "neutron", "neutron/cmd", "neutron/cmd/server"):
        (fake / pkg).mkdir(parents=True)
        (fake / pkg / "__init__.py").write_text("")
    (fake / "ovs" / "jsonrpc.py").write_text("class Message: pass\n")
    (fake / "ovs" / "db" / "idl.py").write_text(
        "class Idl:\n"
        "    def __send_lock_request(self): return 'as shipped'\n"
        "    def __update_has_lock(self, has): pass\n")
    (fake / "neutron" / "cmd" / "server" / "__init__.py").write_text(
        "import sys\n"
        "from ovs.db.idl import Idl\n"
        "def main_ovn_maintenance():\n"
        "    print(Idl._Idl__send_lock_request.__module__, sys.argv[1:])\n"
        "    return 0\n")
    assert _launched(launcher, fake, "neutron.conf") == "ovs.db.stackcrate_ovs_lock ['--config-file', 'neutron.conf']"


def _fake_venv(venv: Path, gunicorn: str | None) -> None:
    site = venv / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    if gunicorn:
        info = site / f"gunicorn-{gunicorn}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: gunicorn\nVersion: {gunicorn}\n")


@pytest.mark.parametrize("gunicorn, control", [("25.2.0", True), ("23.0.0", False), (None, False)],
                         ids=["2026.1-gunicorn-25", "2025.2-gunicorn-23", "venv-in-an-image"])
def test_the_control_socket_option_is_given_only_to_a_gunicorn_that_has_it(dep, tmp_path, gunicorn, control):
    d = Deployment(dep["services"], dep["config"])
    venvs = {c: str(tmp_path / "venvs" / c) for c in artifacts(d)}
    for v in venvs.values():
        _fake_venv(Path(v), gunicorn)
    keystone = next(p for p in openstack_processes(Layout(d, venvs, secrets={})) if p.name == "keystone")
    assert ("--control-socket" in keystone.args) is control
    if control:
        assert keystone.args[keystone.args.index("--control-socket") + 1] == str(d.state / "run" / "keystone.ctl")


def test_novas_api_runs_without_eventlets_monkey_patching(dep):
    procs = openstack_processes(local_layout(Deployment(dep["services"], dep["config"])))
    assert next(p for p in procs if p.name == "nova-api").env["OS_NOVA_DISABLE_EVENTLET_PATCHING"] == "true"
    assert "OS_NOVA_DISABLE_EVENTLET_PATCHING" not in next(p for p in procs if p.name == "keystone").env


def test_backing_services_then_keystone_then_the_other_services_start_together_as_their_needs_allow(dep):
    from stackcrate.deploy.processes import all_processes
    from stackcrate.deploy.startstop import waves

    d = Deployment(dep["services"], dep["config"])
    groups = [[p.name for p in wave] for wave in waves(all_processes(local_layout(d)))]
    assert groups == [
        ["mariadb", "epmd", "memcached", "haproxy", "ovn-nb-db", "ovn-sb-db", "openvswitch-db"],
        ["rabbitmq", "ovn-northd", "ovs-vswitchd"],   # after their port mapper, databases, switch database
        ["ovn-controller"],                            # after the switch and the southbound database
        ["keystone"],                                  # after every backing process
        ["glance", "placement", "neutron", "nova-api", "nova-conductor", "nova-scheduler", "horizon"],
        ["neutron-ovn-maintenance-worker", "nova-compute"]]
    # a compute host of several: what nova-compute waits for runs elsewhere (the chassis here comes first)
    compute_only = [p for p in all_processes(local_layout(d)) if p.name in ("ovn-controller", "nova-compute")]
    assert [[p.name for p in w] for w in waves(compute_only)] == [["ovn-controller"], ["nova-compute"]]
