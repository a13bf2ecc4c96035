"""Every process of a deployment, defined once whatever runs it: program, arguments, environment, the files
and folders it reads and writes, the ports it listens on and how to tell it is healthy.

The local backend runs `program *args` with `env`; the container backend runs the same program as the image's
entrypoint with the same arguments and environment, mounting `reads` read-only and `writes` read-write at the
same paths. Both take these definitions from `all_processes`, which takes the OpenStack ones from the table
in openstack.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from packaging.version import Version

from .. import tools
from .config import Deployment
from .layout import Layout
from .openstack import SERVICES, Process, ServiceSpec


@dataclass(frozen=True)
class Health:
    """How health.py tells the process serves. kind: mysql | amqp | epmd | memcached (port, by protocol),
    tcp (every port of the process accepts), token (keystone issues a token), api (an authenticated GET of
    `url`), rpc (nova's `binary` on `host` is up and consumes `queue`), ovsdb (the ovsdb-server at `url`,
    tcp:HOST:PORT or unix:PATH, serves the database `command`), unixctl (the OVS/OVN daemon whose control socket
    is `url`, or named by the pid file `url`, answers `command`), podman (podman's API at the unix socket `url`
    answers), none (alive is all there is)."""

    kind: str = "none"
    url: str | None = None
    port: int | None = None
    queue: str | None = None
    binary: str | None = None
    host: str | None = None
    command: str | None = None


@dataclass(frozen=True)
class ProcessDef:
    name: str
    kind: str                                 # "backing" or "service"
    program: str                              # absolute path (in the venv, or a distribution's program)
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    component: str | None = None              # the artifact (venv, image) providing it; None: a distro package
    service: str | None = None                # the OpenStack service it belongs to
    config_files: tuple[str, ...] = ()        # every config file it reads
    reads: tuple[str, ...] = ()               # folders it reads (read-only in a container)
    writes: tuple[str, ...] = ()              # folders it writes
    ports: tuple[int, ...] = ()               # ports it listens on (checked free before it starts)
    health: Health = field(default_factory=Health)
    start_timeout: float = 90
    settle: int = 3                           # seconds it must stay up to count as started (else: retried)
    netns: str | None = None                  # runs in this network namespace (made before it starts)
    devices: tuple[str, ...] = ()             # host devices it opens (passed into its container)
    capabilities: tuple[str, ...] = ()        # capabilities beyond a container's default set
    before_start: tuple["Call", ...] = ()     # run to their end before each start (settings it reads)
    # the processes that must serve before it starts; None: every process before it in the start order (the
    # backing services, one after the other)
    after: tuple[str, ...] | None = None

    @property
    def argv(self) -> list[str]:
        return [self.program, *self.args]

    def command(self, ip: str) -> list[str]:
        """What a local process manager runs: argv, entered into the process's network namespace if it has one
        (`ip netns exec` execs the program: the process is still the program itself)."""
        return [ip, "netns", "exec", self.netns, *self.argv] if self.netns else self.argv


@dataclass(frozen=True)
class Call:
    """A management command (migrations, the database client, rabbitmqctl, the `openstack` client): a program of
    a component (a venv's, or a backing image's), run to its end by the deployment's backend, on the host or in a
    one-shot container of that component's image."""

    component: str
    program: str                              # absolute path (in the venv, or a distribution's program)
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    input: str | None = None                  # standard input (what must not go on a command line)
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    @property
    def argv(self) -> list[str]:
        return [self.program, *self.args]


def make_written_folders(p: ProcessDef | Call) -> None:
    """The folders a process or command writes exist before it runs (`rm` removes run/; a container engine
    refuses a missing mount source). Processes started side by side may share one (ovn's run folder): a folder
    another made meanwhile is fine."""
    for path in map(Path, p.writes):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


class Runner(Protocol):
    """What runs a management command: the local backend's supervisor (on the host) or the container engine."""

    def run(self, call: Call, timeout: float = 600, check: bool = True) -> tools.CompletedProcess: ...


CONTROL_SOCKET_SINCE = Version("25")  # gunicorn's control socket (and its --control-socket option) came in 25


def venv_version(venv: Path, distribution: str) -> Version | None:
    """The version of a distribution installed in a venv on this host, from its .dist-info folder's name; None
    when it is not (or the venv is in an image, not here)."""
    import re

    name = re.sub(r"[-_.]+", "_", distribution).lower()
    for info in venv.glob("lib/python3*/site-packages/*.dist-info"):
        dist, _, version = info.name.removesuffix(".dist-info").partition("-")
        if re.sub(r"[-_.]+", "_", dist).lower() == name:
            return Version(version)
    return None


def running_version(pid: int, distribution: str) -> str | None:
    """The version of `distribution` in the venv a process of this host runs from (the first venv its command
    line names: the interpreter or the script); None when it names none or the process is gone."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for arg in argv:
        venv = Path(arg.split("/bin/")[0]) if arg.startswith("/") and "/bin/" in arg else None
        if venv is not None and (venv / "pyvenv.cfg").is_file():
            found = venv_version(venv, distribution)
            return str(found) if found else None
    return None


def gunicorn_args(lay: Layout, spec: ServiceSpec) -> tuple[str, ...]:
    d, svc = lay.d, lay.d.services.enabled()[spec.name]
    gunicorn = venv_version(lay.venv(spec.name), "gunicorn")
    # gunicorn 25's control socket would default to ~/.gunicorn/gunicorn.ctl, shared by every master on the host
    # (in a container, HOME is the container's own); older gunicorn (2025.2 pins 23) has no such option
    control = ("--control-socket", str(lay.d.state / "run" / f"{proc_name(spec.name)}.ctl")) \
        if gunicorn is not None and gunicorn >= CONTROL_SOCKET_SINCE else ()
    return ("--pythonpath", str(lay.wsgi_dir()), "--bind", f"{d.listen}:{svc.backend_port}",
            "--workers", str(svc.workers), "--threads", "4", "--worker-class", "gthread", "--timeout", "300",
            "--graceful-timeout", "5", "--name", f"stackcrate-{proc_name(spec.name)}", *control,
            f"{wsgi_module(spec.name)}:application")


def wsgi_module(service: str) -> str:
    return f"sc_wsgi_{service}"


def proc_name(service: str) -> str:
    """The name of a service's API process."""
    return SERVICES[service].processes[0].name


def config_env(lay: Layout, spec: ServiceSpec) -> dict[str, str]:
    """The environment telling a WSGI loader where the config is (the venv's own files first)."""
    env = {spec.config_dir_env: str(lay.etc(spec.name))}
    if spec.config_files_env:
        files = [str(lay.venv(spec.name) / f) for f in spec.venv_config_files] + [spec.config_file]
        env[spec.config_files_env] = ";".join(files)
    env.update(spec.wsgi_env)
    return env


def health_of(lay: Layout, p: Process) -> Health:
    d = lay.d
    if p.probe.kind == "rpc":
        return Health("rpc", queue=p.probe.queue.format(host=d.host), binary=p.program, host=d.host)
    svc = next(s for n, s in d.services.enabled().items() if p in SERVICES[n].processes)
    return Health(p.probe.kind, url=f"http://{d.listen}:{svc.backend_port}{p.probe.path}", port=svc.backend_port)


def service_process(lay: Layout, spec: ServiceSpec, p: Process) -> ProcessDef:
    svc = lay.d.services.enabled()[spec.name]
    venv_files = tuple(str(lay.venv(spec.name) / f) for f in spec.venv_config_files)
    conf = lay.process_conf_file(spec.name, p)
    config_files = (*venv_files, str(conf))
    if p.wsgi:
        return ProcessDef(
            p.name, "service", lay.bin(spec.name, "gunicorn"), gunicorn_args(lay, spec), config_env(lay, spec),
            component=svc.component, service=spec.name, config_files=config_files,
            # run/ for gunicorn's control socket; its WSGI module below it is only read
            reads=(str(lay.etc(spec.name)), str(lay.wsgi_dir())),
            writes=(str(lay.data(spec.name)), str(lay.d.state / "run")),
            ports=(svc.backend_port,), health=health_of(lay, p), start_timeout=180, after=p.after)
    from . import podman_api  # it defines processes of its own

    program, args, reads = lay.bin(spec.name, p.program), (), (str(lay.etc(spec.name)),)
    if p.launcher:
        launcher = lay.launcher(p.name)
        program, args, reads = lay.bin(spec.name, "python3"), (str(launcher),), (*reads, str(launcher.parent))
        config_files = (*config_files, str(launcher), *(str(launcher.parent / m) for m in p.launcher.modules))
    return ProcessDef(
        p.name, "service", program, (*args, "--config-file", str(conf)),
        component=svc.component, service=spec.name, config_files=config_files,
        reads=reads, writes=(str(lay.data(spec.name)), *(str(lay.d.state / f) for f in p.sockets),
                             *(podman_api.mounts(lay.d) if p.role == "compute" else ())),
        health=health_of(lay, p), start_timeout=180, after=p.after)


def host_role(name: str) -> str:
    """Which hosts of a cloud run the process `name`: "compute" (nova-compute and the chassis it plugs ports
    into) or "control" (everything else). A one-node cloud is both."""
    from .backing import COMPUTE_BACKING

    if name in COMPUTE_BACKING:
        return "compute"
    roles = {p.name: p.role for spec in SERVICES.values() for p in spec.processes}
    return "compute" if roles.get(name) == "compute" else "control"


def _enabled_processes(d: Deployment) -> list[tuple[ServiceSpec, Process]]:
    """Every OpenStack process the services file enables and this host runs, in start order."""
    out = []
    for name, svc in d.services.enabled().items():
        roles = getattr(svc, "processes", None)
        out += [(SERVICES[name], p) for p in SERVICES[name].processes
                if (roles is None or p.role in roles) and d.has(host_role(p.name))]
    return out


def services_here(d: Deployment) -> list[str]:
    """The OpenStack services with a process on this host (all of them on a control host)."""
    return list(dict.fromkeys(spec.name for spec, _ in _enabled_processes(d)))


def processes_here(d: Deployment, service: str) -> list[Process]:
    """The processes of the service that run on this host."""
    return [p for spec, p in _enabled_processes(d) if spec.name == service]


def openstack_processes(lay: Layout) -> list[ProcessDef]:
    """Every OpenStack process the services file enables and this host runs, in start order."""
    return [service_process(lay, spec, p) for spec, p in _enabled_processes(lay.d)]


def process_names(d: Deployment) -> list[str]:
    """Every process this host runs, in start order, from the services file alone."""
    from .backing import backing_names

    return [n for n in backing_names(d) if d.has(host_role(n))] + [p.name for _, p in _enabled_processes(d)]


def all_processes(lay: Layout) -> list[ProcessDef]:
    """Backing services first, then OpenStack's: the start order (the stop order is its reverse)."""
    from .backing import backing_processes

    return [p for p in backing_processes(lay.d) if lay.d.has(host_role(p.name))] + openstack_processes(lay)


def definitions_for_status(d: Deployment) -> dict[str, ProcessDef]:
    """Every process's definition for its health check alone: works before anything is installed (the venv
    paths come from artifacts.json when it is there; a program that is not installed keeps its usual path)."""
    from ..errors import StackcrateError
    from .install import artifacts, backend_format

    try:
        venvs = {c: a.install_path for c, a in artifacts(d, backend_format(d)).items()}
    except StackcrateError:
        venvs = {s.component: f"/opt/openstack/{s.component}" for s in d.services.enabled().values()}
    return {p.name: p for p in all_processes(Layout(d, venvs, secrets={}))}
