"""Backing services (MariaDB, RabbitMQ, Memcached, OVN, HAProxy) as processes from the distribution's packages.

Each keeps its data under the state folder and listens on the configured loopback address and its own
(non-default) ports, so nothing collides with services the machine already runs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from ..model.system_image import SystemImage
from . import ovn, podman_api
from .config import Deployment
from .processes import Call, Health, ProcessDef, Runner
from .secrets import private_file

# Debian package of each program: named in the error when it is missing.
PACKAGES = {"mariadbd": "mariadb-server", "mariadb-install-db": "mariadb-server", "mariadb": "mariadb-client",
            "mariadb-dump": "mariadb-client",
            "epmd": "erlang-base", "rabbitmq-server": "rabbitmq-server", "rabbitmqctl": "rabbitmq-server",
            "memcached": "memcached", "haproxy": "haproxy", "supervisord": "supervisor"}
# not /usr/sbin's wrappers, which switch to the rabbitmq user and its home (another Erlang cookie)
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
# Where each program is in Debian (and so in the images a container backend runs them from).
DEBIAN_PATHS = {"mariadbd": "/usr/sbin/mariadbd", "mariadb-install-db": "/usr/bin/mariadb-install-db",
                "mariadb": "/usr/bin/mariadb", "mariadb-dump": "/usr/bin/mariadb-dump", "epmd": "/usr/bin/epmd",
                "rabbitmq-server": RABBITMQ_SERVER,
                "rabbitmqctl": RABBITMQCTL, "memcached": "/usr/bin/memcached", "haproxy": "/usr/sbin/haproxy"}
# The image each backing program runs from (epmd and rabbitmqctl come with RabbitMQ, the client with MariaDB).
IMAGE_OF = {"mariadbd": "mariadb", "mariadb-install-db": "mariadb", "mariadb": "mariadb", "mariadb-dump": "mariadb",
            "epmd": "rabbitmq",
            "rabbitmq-server": "rabbitmq", "rabbitmqctl": "rabbitmq", "memcached": "memcached", "haproxy": "haproxy"}


# The image each backing service runs from on a container backend, built by `deploy build` from the target's own
# packages (never pulled from a registry); keys are IMAGE_OF's values.
SYSTEM_IMAGES = (
    SystemImage("mariadb", ("mariadb-server", "mariadb-client"), DEBIAN_PATHS["mariadbd"]),
    SystemImage("rabbitmq", ("rabbitmq-server",), RABBITMQ_SERVER),
    SystemImage("memcached", ("memcached",), DEBIAN_PATHS["memcached"]),
    SystemImage("haproxy", ("haproxy",), DEBIAN_PATHS["haproxy"]),
    SystemImage(ovn.IMAGE, ("ovn-central", "ovn-host", "openvswitch-switch"), ovn.PATHS["ovn-northd"]),
)


# The Debian packages each kind of host of a cloud needs (`deploy -i` installs them): python3-venv for stackcrate's
# own venv, supervisor for the processes, the backing services' and OVN's packages on the control host, Open
# vSwitch and ovn-controller on a compute host.
HOST_PACKAGES = {
    "control": ("python3-venv", "supervisor", *(p for i in SYSTEM_IMAGES if i.name != ovn.IMAGE for p in i.packages),
                "ovn-central"),
    "compute": ("python3-venv", "supervisor", "ovn-host", "openvswitch-switch"),
}
# ... and a host that runs its processes in containers (`stackcrate_backend: podman`) instead of each role's: the
# engine, the runtime (runc: crun refuses a hybrid cgroup layout), skopeo (the images come from the deploy host's
# registry) and catatonit (each container's --init).
CONTAINER_HOST_PACKAGES = ("python3-venv", "podman", "runc", "skopeo", "catatonit")
# The backing processes of a compute host (see processes.host_role): the chassis nova-compute plugs ports into,
# and podman's API for the podman driver. Every other one runs on the control host.
COMPUTE_BACKING = frozenset({*ovn.CHASSIS, podman_api.NAME})


def backing_names(d: Deployment) -> tuple[str, ...]:
    """Every backing process of the deployment, in start order (the stop order is the reverse); OVN's where
    neutron runs (before neutron, which programs it)."""
    return ("mariadb", "epmd", "rabbitmq", "memcached", "haproxy", *(ovn.NAMES if ovn.enabled(d) else ()),
            *podman_api.names(d))


def images_needed(d: Deployment) -> list[str]:
    """The backing images a container backend runs on this host: the databases', broker's, cache's and proxy's on
    a control host, OVN's wherever neutron's OVN runs (its databases on control, the chassis on compute)."""
    return sorted((set(IMAGE_OF.values()) if d.has("control") else set()) | ({ovn.IMAGE} if ovn.enabled(d) else set()))


def path_of(d: Deployment, name: str, required: bool = True) -> str:
    """Where a backing program is for this deployment: in its image (Debian's path) on a container backend, on
    the host otherwise."""
    return DEBIAN_PATHS[name] if d.backend != "local" else program(name, required)


def program(name: str, required: bool = True) -> str:
    """Where a backing program is on the host; when not required (a definition for `status`), its usual path."""
    if name in ("rabbitmq-server", "rabbitmqctl"):
        path = RABBITMQ_SERVER if name == "rabbitmq-server" else RABBITMQCTL
        if required and not os.access(path, os.X_OK):
            raise StackcrateError(f"the program {name!r} is not installed",
                                  hint="install it (apt-get install rabbitmq-server)")
        return path
    try:
        return tools.which(name, PACKAGES.get(name, name))
    except StackcrateError:
        if required:
            raise
        return f"/usr/sbin/{name}"


def check_programs(d: Deployment) -> None:
    """Every program the local backend runs is installed (before anything changes)."""
    for name in PACKAGES:
        program(name)
    if ovn.enabled(d):
        for name, path in ovn.PATHS.items():
            if not os.access(path, os.X_OK):
                raise StackcrateError(f"the program {name!r} is not installed ({path})",
                                      hint=f"install it (apt-get install {ovn.PACKAGES[name]}); neutron's "
                                      "ML2/OVN driver needs OVN and Open vSwitch")
    podman_api.check(d)


def call(d: Deployment, name: str, args: list[str], *, input: str | None = None, env: dict | None = None,
         reads: tuple = (), writes: tuple = ()) -> Call:
    """A backing program run to its end (on the host, or in a one-shot container of its image)."""
    return Call(IMAGE_OF[name], path_of(d, name), tuple(args), dict(env or {}), input,
                tuple(str(r) for r in reads), tuple(str(w) for w in writes))


def _as_root() -> list[str]:
    # mariadbd and memcached refuse to run as root unless told to; we run them as whoever runs us.
    return ["--user=root"] if os.geteuid() == 0 else []


def socket_path(d: Deployment) -> Path:
    return d.state / "run" / "mariadb.sock"


def _backing(name: str, probe: str, argv: list[str], port: int, *, env: dict | None = None, writes: tuple = (),
             reads: tuple = (), config_files: tuple = (), start_timeout: float = 90,
             more_ports: tuple[int, ...] = ()) -> ProcessDef:
    """A backing process; `port` is the one its health check (`probe`, see processes.Health) talks to."""
    image = IMAGE_OF[next(n for n, path in DEBIAN_PATHS.items() if Path(path).name == Path(argv[0]).name)]
    return ProcessDef(name, "backing", argv[0], tuple(argv[1:]), dict(env or {}), component=image,
                      ports=(port, *more_ports),
                      health=Health(probe, port=port), writes=tuple(str(w) for w in writes),
                      reads=tuple(str(r) for r in reads), config_files=tuple(str(c) for c in config_files),
                      start_timeout=start_timeout)


def mariadb_procs(d: Deployment) -> list[ProcessDef]:
    port = d.services.backing.mariadb.port
    data = d.state / "data" / "mariadb"
    argv = [path_of(d, "mariadbd", False), "--no-defaults", f"--datadir={data}", f"--socket={socket_path(d)}",
            f"--port={port}", f"--bind-address={d.listen}", f"--pid-file={d.state / 'run' / 'mariadbd.pidfile'}",
            "--skip-name-resolve", "--max-connections=1000", "--character-set-server=utf8mb4",
            "--innodb-buffer-pool-size=128M", "--skip-log-bin", *_as_root()]
    return [_backing("mariadb", "mysql", argv, port, writes=(data, d.state / "run"), start_timeout=60)]


def mariadb_install(d: Deployment, runner: Runner) -> bool:
    """Create the data directory once (mariadb-install-db); False when it already exists."""
    data = d.state / "data" / "mariadb"
    if (data / "mysql").is_dir():
        return False
    data.mkdir(parents=True, exist_ok=True)
    runner.run(call(d, "mariadb-install-db", ["--no-defaults", f"--datadir={data}", "--skip-test-db",
                                              "--auth-root-authentication-method=socket", *_as_root()],
                    writes=(data,)), timeout=300)
    return True


def sql(d: Deployment, statements: str, runner: Runner) -> str:
    """Run SQL as the database root over the unix socket; statements go on stdin (they hold passwords)."""
    return runner.run(call(d, "mariadb", ["--no-defaults", f"--socket={socket_path(d)}", "-uroot", "-N", "-B"],
                           input=statements, writes=(d.state / "run",)), timeout=120).stdout


def create_database(db: str) -> str:
    """The SQL making a service's database (idempotent)."""
    return f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4;\n"


def _dump(d: Deployment, args: list[str], runner: Runner, timeout: float) -> str:
    # tables, their rows (binary columns in hex), triggers, routines and events; no date: the same databases
    # dump to the same text
    return runner.run(call(d, "mariadb-dump", [
        "--no-defaults", f"--socket={socket_path(d)}", "-uroot", "--single-transaction", "--routines", "--triggers",
        "--events", "--hex-blob", "--skip-dump-date", *args], writes=(d.state / "run",)), timeout=timeout).stdout


def dump(d: Deployment, databases: list[str], runner: Runner, timeout: float = 1800) -> str:
    """One consistent dump of databases as SQL, each with its CREATE DATABASE and USE: load() puts them back
    under their names."""
    return _dump(d, ["--databases", *databases], runner, timeout)


def dump_inside(d: Deployment, database: str, runner: Runner, timeout: float = 1800) -> str:
    """What is inside one database, as SQL naming no database: loaded after a `USE` of any database."""
    return _dump(d, [database], runner, timeout)


def load(d: Deployment, text: str, runner: Runner, timeout: float = 1800) -> None:
    """Run a dump (dump()'s SQL, or dump_inside()'s after a `USE`) as the database root."""
    runner.run(call(d, "mariadb", ["--no-defaults", f"--socket={socket_path(d)}", "-uroot"],
                    input=text, writes=(d.state / "run",)), timeout=timeout)


def _rabbitmq_paths(d: Deployment) -> tuple[Path, Path]:
    return d.state / "etc" / "rabbitmq", d.state / "data" / "rabbitmq"


def rabbitmq_env(d: Deployment) -> dict[str, str]:
    """What rabbitmq-server and rabbitmqctl both need to find this deployment's node."""
    r = d.services.backing.rabbitmq
    etc, data = _rabbitmq_paths(d)
    return {"ERL_EPMD_PORT": str(r.epmd_port), "ERL_EPMD_ADDRESS": d.listen, "HOME": str(data),
            "RABBITMQ_CONF_ENV_FILE": str(etc / "rabbitmq-env.conf"), "RABBITMQ_NODENAME": "stackcrate@localhost"}


def rabbitmq_set_password(d: Deployment, password: str, runner: Runner) -> None:
    """Set the OpenStack user's password in the running broker (rabbitmq.conf's default_pass only counts on the
    first boot). The password goes on stdin, never on the command line."""
    _, data = _rabbitmq_paths(d)
    runner.run(call(d, "rabbitmqctl", ["--quiet", "change_password", "openstack"], input=password + "\n",
                    env=rabbitmq_env(d), writes=(data,)), timeout=120)


def write_configs(d: Deployment, secrets: dict[str, str]) -> None:
    """The backing services' files: the control host's (a compute host's OVS/OVN need none)."""
    if not d.has("control"):
        return
    if d.config.tls:
        from .tls import ensure

        ensure(d)
    r = d.services.backing.rabbitmq
    etc, data = _rabbitmq_paths(d)
    data.mkdir(parents=True, exist_ok=True)
    # default_user/default_pass create the user on the first boot only; the password never changes afterwards.
    private_file(etc / "rabbitmq.conf", "\n".join([
        f"listeners.tcp.default = {d.listen}:{r.port}",
        "default_vhost = /",
        "default_user = openstack",
        f"default_pass = {secrets['rabbitmq_password']}",
        "loopback_users = none",
        f"distribution.listener.interface = {d.listen}",
        f"distribution.listener.port_range.min = {r.dist_port}",
        f"distribution.listener.port_range.max = {r.dist_port}",
        "log.console = true", "log.file = false", ""]))
    private_file(etc / "enabled_plugins", "[].\n")
    private_file(etc / "rabbitmq-env.conf", "")
    cfg = d.state / "etc" / "haproxy" / "haproxy.cfg"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    private_file(cfg, haproxy_config(d))


def rabbitmq_procs(d: Deployment) -> list[ProcessDef]:
    r = d.services.backing.rabbitmq
    etc, data = _rabbitmq_paths(d)
    epmd = {"ERL_EPMD_PORT": str(r.epmd_port), "ERL_EPMD_ADDRESS": d.listen}
    # RUNNING_UNDER_SYSTEMD: the start script execs the Erlang VM instead of staying as a /bin/sh parent, so the
    # process supervisord watches (and kills) is the broker itself. The Erlang schedulers do not spin while they
    # wait for work (+sbwt none ...; RabbitMQ's advice where the broker shares its cores, as it does with the
    # OpenStack services here; Kolla sets the same): the spinning took ~15 % of the broker's CPU as it booted
    env = dict(rabbitmq_env(d), RABBITMQ_CONFIG_FILE=str(etc / "rabbitmq.conf"), RUNNING_UNDER_SYSTEMD="1",
               RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none",
               RABBITMQ_ENABLED_PLUGINS_FILE=str(etc / "enabled_plugins"),
               RABBITMQ_ADVANCED_CONFIG_FILE=str(etc / "advanced.config"),
               RABBITMQ_MNESIA_BASE=str(data / "mnesia"), RABBITMQ_LOG_BASE=str(d.state / "log" / "rabbitmq"),
               RABBITMQ_LOGS="-", RABBITMQ_NODENAME="stackcrate@localhost", RABBITMQ_NODE_IP_ADDRESS=d.listen,
               RABBITMQ_NODE_PORT=str(r.port), RABBITMQ_DIST_PORT=str(r.dist_port),
               RABBITMQ_PID_FILE=str(d.state / "run" / "rabbitmq.pidfile"))
    epmd_argv = [path_of(d, "epmd", False), "-address", d.listen, "-port", str(r.epmd_port)]
    return [_backing("epmd", "epmd", epmd_argv, r.epmd_port, env=epmd),
            _backing("rabbitmq", "amqp", [path_of(d, "rabbitmq-server", False)], r.port, env=env, start_timeout=120,
                     more_ports=(r.dist_port,),
                     writes=(data, d.state / "log" / "rabbitmq", d.state / "run"), reads=(etc,),
                     config_files=(etc / "rabbitmq.conf",))]


def memcached_procs(d: Deployment) -> list[ProcessDef]:
    port = d.services.backing.memcached.port
    argv = [path_of(d, "memcached", False), "-l", d.listen, "-p", str(port), "-U", "0", "-m", "64"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    return [_backing("memcached", "memcached", argv, port)]


def haproxy_config(d: Deployment) -> str:
    lines = ["global", "    maxconn 4000",
             # the access log goes to stdout, so to haproxy.log under log/ (rotated by supervisord)
             "    log stdout format raw local0 info", "",
             "defaults", "    mode http", "    log global", "    option httplog", "    timeout connect 5s",
             "    timeout client 600s", "    timeout server 600s", "    option forwardfor",
             # gunicorn closes idle keep-alive connections after 2 s; reusing one then fails a POST (seen:
             # "Remote end closed connection"), so HAProxy opens a new server connection per request.
             "    option http-server-close", "    retries 3", ""]
    for name, s in d.services.enabled().items():
        tls = f" ssl crt {d.state / 'data' / 'tls' / 'server.pem'}" if d.config.tls else ""
        # with TLS ended here, the backend is told so (the dashboard then checks a login form's https Origin)
        proto = ["    http-request set-header X-Forwarded-Proto https"] if d.config.tls else []
        lines += [f"frontend {name}", f"    bind {d.listen}:{s.port}{tls}", *proto, f"    default_backend {name}",
                  "", f"backend {name}", f"    server {name} {d.listen}:{s.backend_port}", ""]
    return "\n".join(lines)


def haproxy_procs(d: Deployment) -> list[ProcessDef]:
    cfg = d.state / "etc" / "haproxy" / "haproxy.cfg"
    first = next(iter(d.services.enabled().values()))
    others = tuple(s.port for s in d.services.enabled().values())[1:]
    tls = d.state / "data" / "tls"
    return [_backing("haproxy", "tcp", [path_of(d, "haproxy", False), "-db", "-f", str(cfg)], first.port,
                     reads=(cfg.parent, *((tls,) if d.config.tls else ())),
                     config_files=(cfg, *((tls / "server.pem",) if d.config.tls else ())), more_ports=others)]


# What each backing process needs serving before it starts (startstop.needs; the others start at once): the
# broker its port mapper, OVN's northd both databases, Open vSwitch's switch its database, the chassis its switch
# and the southbound database. None of the others needs another.
STARTS_AFTER = {"rabbitmq": ("epmd",), "ovn-northd": ("ovn-nb-db", "ovn-sb-db"), "ovs-vswitchd": ("openvswitch-db",),
                "ovn-controller": ("ovs-vswitchd", "ovn-sb-db")}


def backing_processes(d: Deployment) -> list[ProcessDef]:
    """Every backing process, in start order (backing_names)."""
    return [dataclasses.replace(p, after=STARTS_AFTER.get(p.name, ())) for p in
            mariadb_procs(d) + rabbitmq_procs(d) + memcached_procs(d) + haproxy_procs(d) + ovn.processes(d)
            + podman_api.processes(d)]
