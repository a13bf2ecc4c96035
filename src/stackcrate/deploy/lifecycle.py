"""The lifecycle of a local deployment: init, start, stop, status, rm (the verbs of `stackcrate deploy`).

Processes run under supervisord (supervisor.py), which restarts one that dies; `start` starts them one by one
in dependency order and returns only once each is healthy (health.py) and the cloud can build a server. A
process that exits while starting fails `start` at once with the end of its log, and the deployment is left
stopped rather than half-started.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from . import backing, bootstrap, configs, options, ovn, podman_api, secrets
from .config import Deployment
from .health import Checker, Tokens, Verdict
from .install import artifacts, backend_format, install, prefixes, prepare, record_use, release, summary, venvs
from .keystone_api import register_with
from .layout import Layout
from .manager import Manager, manager_for
from .processes import (
    Call,
    ProcessDef,
    all_processes,
    make_written_folders,
    proc_name,
    process_names,
    running_version,
    services_here,
)
from .supervisor import orphans
from .timer import Timer
from .warm_program import WarmProgram

READY_TIMEOUT = 180.0   # seconds for the cloud to be able to build a server once every process is up
STOPPED = {"STOPPED", "EXITED", "FATAL", "UNKNOWN"}
DIED = {"EXITED", "FATAL", "BACKOFF", "STOPPED"}


def layout(d: Deployment, values: dict[str, str] | None = None) -> Layout:
    """The deployment with its venvs (installed on the host, or inside the images of a container backend) and its
    secrets (the applied ones unless given)."""
    where = venvs(d) if d.backend == "local" else {c: a.install_path for c, a in artifacts(d, "oci").items()}
    return Layout(d, where, values if values is not None else secrets.ensure(d.state, d.config.secrets))



def private_dirs(d: Deployment) -> None:
    """The state folder and its parts, readable by their owner only (secrets, keys, images, logs inside)."""
    for path in (d.state, d.state / "etc", d.state / "data", d.state / "run", d.state / "log"):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)


def write_configs(lay: Layout) -> int:
    """Every generated file (backing services, OpenStack services, clouds.yaml); how many changed."""
    before = _digests(lay.d.state / "etc") | _digests(lay.wsgi_dir())
    backing.write_configs(lay.d, lay.secrets)
    configs.write_configs(lay)
    configs.write_clouds_yaml(lay)
    configs.write_boot_unit(lay.d)
    after = _digests(lay.d.state / "etc") | _digests(lay.wsgi_dir())
    return len({p for p in after.keys() | before.keys() if before.get(p) != after.get(p)})


def _digests(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def config_digest(lay: Layout, p: ProcessDef) -> str:
    """What a process reads from the state folder at start (its config files, its WSGI module) and its definition
    (program, arguments, environment, mounts), as a digest: a process started with another one runs with an old
    configuration."""
    h = hashlib.sha256(repr(p).encode())
    for f in sorted({*p.config_files, *_wsgi_files(lay, p)}):
        path = Path(f)
        if lay.d.state in path.parents and path.is_file():
            h.update(f.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _started_with(d: Deployment, name: str) -> Path:
    return d.state / "run" / "started" / f"{name}.config"


# ---------------------------------------------------------------------------------------------- checks

def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def ports(d: Deployment) -> dict[str, list[int]]:
    """The ports each process listens on, from the services file alone (checked free before it starts)."""
    b = d.services.backing
    out = {"mariadb": [b.mariadb.port], "epmd": [b.rabbitmq.epmd_port],
           "rabbitmq": [b.rabbitmq.port, b.rabbitmq.dist_port], "memcached": [b.memcached.port],
           "haproxy": [s.port for s in d.services.enabled().values()],
           "ovn-nb-db": [b.ovn.nb_port], "ovn-sb-db": [b.ovn.sb_port]}
    for name, s in d.services.enabled().items():
        out[proc_name(name)] = [s.backend_port]
    return {n: out.get(n, []) for n in process_names(d)}


def preflight(d: Deployment, t: Timer) -> None:
    """Refuse before changing anything: artifacts and programs present (a container backend: the images loaded
    and the engine can run a container), every port of a stopped process free."""
    if d.config.tls:
        tools.which("openssl")
    sup = manager_for(d)
    if d.backend == "local":
        artifacts(d)
        backing.check_programs(d)
    else:
        podman_api.check(d)
        with t.step(f"Images in {d.backend}'s store; a test container") as info:
            copied = sup.preflight()  # type: ignore[union-attr]
            info["note"] = f"{len(copied)} image(s) copied in" if copied else "all there"
    # The ephemeral range first: a port there may be in use right now only because an outgoing connection
    # took it, and "in use" would send the operator looking for a program that is not there.
    wanted = ports(d)
    lo, hi = _ephemeral_range()
    risky = [f"{port} ({name})" for name, plist in wanted.items() for port in plist if lo <= port <= hi]
    if risky:
        # Seen: an outgoing connection took 38774 as its source port and HAProxy could not bind it on restart.
        raise StackcrateError(f"port(s) in this machine's ephemeral range {lo}-{hi}: {', '.join(risky)}",
                              hint="outgoing connections may take them at any time; pick ports below "
                              f"{lo} in the services file")
    states = sup.states() if sup.running() else {}
    leftover = {} if states or d.backend != "local" else orphans(d.state)
    busy = []
    for name, plist in wanted.items():
        st = states.get(name)
        if (st and st.state not in STOPPED) or name in leftover:
            continue  # ours: start leaves it running (or replaces it)
        busy += [f"{port} ({name})" for port in plist if not _port_free(d.listen, port)]
    if busy:
        raise StackcrateError(f"port(s) already in use on {d.listen}: {', '.join(busy)}",
                              hint="stop what uses them, or change the ports in the services file")


def refuse_pending_secrets(d: Deployment) -> None:
    changed = secrets.pending(d.state, d.config.secrets)
    if changed:
        raise StackcrateError(f"secret(s) changed in {d.config_path.name} and not applied yet: {', '.join(changed)}"
                              " (or set half-way by an init that did not finish)",
                              hint="`stackcrate deploy init` applies them to every service that uses them "
                              "(start does not: the services would run with old and new values mixed)")


# ---------------------------------------------------------------------------------------------- processes

def log_tail(d: Deployment, name: str, lines: int = 15) -> str:
    try:
        text = (d.state / "log" / f"{name}.log").read_text(errors="replace")
    except FileNotFoundError:
        return "    (no log)"
    return "\n".join("    " + ln for ln in text.splitlines()[-lines:])


HEALTH_POLL = 0.2  # seconds between two health checks of a starting process (most backing ones serve within 0.5 s)


def wait_healthy(d: Deployment, sup: Manager, p: ProcessDef, values: dict[str, str],
                 login_optional: bool = False, tokens: Tokens | None = None) -> Verdict:
    """Until p is RUNNING and its health check passes; at once an error when it dies while starting. tokens:
    shared by the waits of one start (one token, not one per poll)."""
    tokens = tokens or Tokens()
    deadline = time.monotonic() + p.start_timeout
    verdict = Verdict(False, "not checked yet")
    while True:
        st = sup.states().get(p.name)
        if st is None or st.state in DIED:
            why = st.description if st else "unknown to supervisord"
            raise StackcrateError(f"{p.name} exited while starting ({why})",
                                  hint=f"the end of its log ({d.state / 'log' / (p.name + '.log')}):\n"
                                  + log_tail(d, p.name))
        # STARTING too: supervisord calls it RUNNING only after `settle` seconds, but a process that already
        # passes its health check serves (and supervisord still restarts it if it dies)
        if st.state in ("RUNNING", "STARTING"):
            verdict = Checker(d, values, login_optional, tokens).check(p)
            if verdict.ok:
                return verdict
        if time.monotonic() > deadline:
            raise StackcrateError(f"{p.name} did not become healthy within {p.start_timeout:.0f}s: {verdict.detail}",
                                  hint="the end of its log:\n" + log_tail(d, p.name))
        time.sleep(HEALTH_POLL)


def needs(plist: list[ProcessDef]) -> dict[str, list[str]]:
    """process -> the processes of plist it needs serving before it starts: those before it named in its
    `after`, and for an OpenStack process every backing process before it; a process without `after` needs
    every process before it."""
    out: dict[str, list[str]] = {}
    for i, p in enumerate(plist):
        before = plist[:i]
        out[p.name] = ([q.name for q in before] if p.after is None else
                       [q.name for q in before if q.name in p.after or (p.kind == "service" and q.kind == "backing")])
    return out


def waves(plist: list[ProcessDef]) -> list[list[ProcessDef]]:
    """The processes in groups, in order: each group's processes need only those of the groups before it."""
    level: dict[str, int] = {}
    for name, before in needs(plist).items():
        level[name] = max((level[n] + 1 for n in before), default=0)
    return [[p for p in plist if level[p.name] == n] for n in sorted(set(level.values()))]


def start_processes(d: Deployment, sup: Manager, plist: list[ProcessDef], values: dict[str, str], t: Timer,
                    restart: set[str] | None = None, lay: Layout | None = None,
                    login_optional: bool = False, settle: bool = True,
                    then: Callable[[ProcessDef], None] | None = None,
                    gate: Callable[[ProcessDef], None] | None = None, tokens: Tokens | None = None) -> list[str]:
    """Start (or restart, for those in `restart`) the processes that do not serve, each as soon as those it needs
    serve (`needs`), and wait until each is healthy; with a layout, record the configuration each one starts
    with. settle: also wait until supervisord counts them started (False: the caller does, later). then: called
    with each process started, once it is healthy, beside the others still starting; gate: called before each
    is launched, returns once it may be (raises: it may not). tokens: the admin token of the checks (one per
    call when not given)."""
    states = sup.states()
    # what runs with an old configuration is stopped first, all at once (nova's take the whole deadline)
    stale = [p.name for p in plist if p.name in (restart or set()) and p.name in states
             and states[p.name].state not in STOPPED]
    if stale:
        stop_names(d, sup, stale, t, verb="Stopping (to restart with the new configuration)")
        states = sup.states()
    started = []
    (d.state / "run" / "started").mkdir(parents=True, exist_ok=True)
    tokens = tokens or Tokens()

    def serving(p: ProcessDef) -> bool:
        st = states.get(p.name)
        return st is not None and st.state == "RUNNING" and Checker(d, values, login_optional, tokens).check(p).ok

    def launch(p: ProcessDef) -> None:
        if gate is not None:
            gate(p)
        st = states.get(p.name)
        if st is None or st.state in STOPPED:
            if lay is not None:
                _started_with(d, p.name).write_text(config_digest(lay, p))
            before_start(d, sup, p)
            sup.start(p.name)

    def healthy(p: ProcessDef) -> tuple[str, float]:
        t0 = time.monotonic()
        answer = wait_healthy(d, sup, p, values, login_optional, tokens).detail, time.monotonic() - t0
        if then is not None:
            then(p)
        return answer

    todo = [p for p in plist if not serving(p)]
    verb = "Restarting" if any(p.name in stale for p in todo) else "Starting"
    if len(todo) == 1:
        with t.step(f"{verb} {todo[0].name}") as info:
            launch(todo[0])
            info["note"] = healthy(todo[0])[0]
    elif todo:
        with t.step(f"{verb} {', '.join(p.name for p in todo)} (each once those it needs serve)") as info:
            answers = _each_when_ready(todo, needs(plist), launch, healthy)
            info["note"] = ", ".join(f"{p.name} {sec:.1f}s" for p, (_, sec) in zip(todo, answers, strict=True))
    started += [p.name for p in todo]
    if settle:
        wait_settled(d, sup, [p for p in plist if p.name in started])
    return started


def _each_when_ready(todo: list[ProcessDef], need: dict[str, list[str]], launch, healthy) -> list[tuple[str, float]]:
    """Launch each process of todo as soon as those it needs serve (the ones not in todo serve already), not a
    whole wave after the slowest of the one before; every health check waits beside the others. Each answer
    (health detail, seconds from launch to healthy) in todo's order. The first failure is raised once the
    processes already launched are answered; the ones that needed it are not launched. Each wait is bounded:
    what a process waits for is either healthy or failed within its own start timeout."""
    done = {p.name: threading.Event() for p in todo}
    failed = threading.Event()

    def bring_up(p: ProcessDef) -> tuple[str, float]:
        try:
            for name in need[p.name]:
                if name in done:
                    done[name].wait()
            if failed.is_set():
                return "not started", 0.0
            launch(p)
            return healthy(p)
        except BaseException:
            failed.set()
            raise
        finally:
            done[p.name].set()

    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        futures = [pool.submit(bring_up, p) for p in todo]
        return [f.result() for f in futures]


def wait_settled(d: Deployment, sup: Manager, plist: list[ProcessDef]) -> None:
    """Until supervisord counts each of these processes as RUNNING: it calls one STARTING for `settle` seconds
    after its spawn even once it serves, and a `start` that returned must leave nothing `status` shows as
    starting (the dashboard, last, is healthy within about a second)."""
    deadline = time.monotonic() + max((p.settle for p in plist), default=0) + 10
    names = {p.name for p in plist}
    if not names:
        return
    while True:
        starting = sorted(n for n, st in sup.states().items() if n in names and st.state == "STARTING")
        if not starting:
            return
        if time.monotonic() > deadline:
            raise StackcrateError(f"{', '.join(starting)} still starting (restarted by supervisord?)",
                                  hint="the end of its log:\n" + log_tail(d, starting[0]))
        time.sleep(0.2)


def before_start(d: Deployment, sup: Manager, p: ProcessDef) -> None:
    """What a process needs in place before it starts (on either backend): the folders it writes, its network
    namespace, the settings it reads."""
    make_written_folders(p)
    if p.netns:
        ovn.ensure_netns(d)
    for call in p.before_start:
        sup.run(call, timeout=120)


def stop_names(d: Deployment, sup: Manager, names: list[str], t: Timer, verb: str = "Stopping") -> dict[str, str]:
    """Stop these processes: OpenStack ones in parallel (nova's ignore SIGTERM: each waits out the deadline),
    then backing ones one by one, in reverse start order."""
    order = [n for n in reversed(process_names(d)) if n in names]
    tier1 = [n for n in order if n not in backing.backing_names(d)]
    out: dict[str, str] = {}

    def stop(name: str) -> str:
        t0 = time.monotonic()
        sup.stop(name)
        return "killed after deadline" if time.monotonic() - t0 >= d.config.stop_timeout else "stopped"

    if tier1:
        with t.step(f"{verb} {', '.join(tier1)}") as info:
            with ThreadPoolExecutor(max_workers=len(tier1)) as pool:
                out.update(zip(tier1, pool.map(stop, tier1), strict=True))
            killed = [n for n in tier1 if out[n] != "stopped"]
            info["note"] = f"killed after {d.config.stop_timeout:g}s: {', '.join(killed)}" if killed else ""
            _wait_ports_closed(d, tier1)
    for name in [n for n in order if n in backing.backing_names(d)]:
        with t.step(f"{verb} {name}") as info:
            out[name] = info["note"] = stop(name)
    return out


def _wait_ports_closed(d: Deployment, names: list[str], timeout: float = 20) -> None:
    """A WSGI server's workers may still hold its port a moment after their master exited: wait (bounded) until
    the stopped processes' ports are free, so what starts next finds them so (its preflight names any left)."""
    held = ports(d)
    wanted = [port for n in names for port in held.get(n, [])]
    deadline = time.monotonic() + timeout
    while any(not _port_free(d.listen, port) for port in wanted) and time.monotonic() < deadline:
        time.sleep(0.2)


def stop_all(d: Deployment, t: Timer) -> dict[str, str]:
    """Every process (see stop_names), then supervisord itself; processes a killed supervisord left behind too."""
    sup = manager_for(d)
    if not sup.running():
        left = sup.stop_orphans(d.config.stop_timeout)
        return dict.fromkeys(left, "stopped (its supervisor was gone)")
    states = sup.states()
    out = stop_names(d, sup, [n for n, st in states.items() if st.state not in STOPPED], t)
    sup.shutdown()
    return out


# ---------------------------------------------------------------------------------------------- readiness

def _sql_list(hosts: list[str]) -> str:
    return ", ".join(f"'{h}'" for h in hosts)  # host names are validated: letters, digits, dots and dashes


def discover_hosts(lay: Layout, sup: Manager, t: Timer, hosts: list[str], manage: WarmProgram | None = None) -> None:
    """Map the compute hosts into cell1 once each has registered (nova-compute does that on start); manage: a
    nova-manage already loaded to run it with."""
    def count(q: str) -> int:
        return int(backing.sql(lay.d, q, sup).strip() or 0)

    with t.step(f"Mapping the compute host(s) {', '.join(hosts)} (nova-manage cell_v2 discover_hosts)") as info:
        if count(f"SELECT COUNT(*) FROM nova_api.host_mappings WHERE host IN ({_sql_list(hosts)});") == len(hosts):
            info["note"] = "already mapped"
            return
        deadline = time.monotonic() + 120
        # Polling the database is instant; nova-manage takes ~3 s to start, so run it once the nodes exist.
        while count(f"SELECT COUNT(DISTINCT host) FROM nova.compute_nodes WHERE host IN ({_sql_list(hosts)}) "
                    "AND deleted=0;") < len(hosts):
            if time.monotonic() > deadline:
                raise StackcrateError(f"nova-compute did not register on every one of {', '.join(hosts)} within "
                                      "120s", hint="see `stackcrate deploy logs nova-compute` (on each host)")
            time.sleep(0.5)
        call = _discover_call(lay)
        if manage is not None:
            manage.run(call.argv, call.env, timeout=300)
        else:
            sup.run(call, timeout=300)


def _discover_call(lay: Layout) -> Call:
    return bootstrap.management_call(lay, "nova", [lay.bin("nova", "nova-manage"), "--config-file",
                                                   str(lay.conf_file("nova")), "cell_v2", "discover_hosts"])


def compute_in_placement(lay: Layout, host: str, tokens: Tokens | None = None) -> str | None:
    """Why placement cannot yet offer the compute host to the scheduler (None: it can)."""
    placement = lay.d.services.enabled()["placement"]
    base = f"http://{lay.d.control}:{placement.backend_port}"
    checker = Checker(lay.d, lay.secrets, tokens=tokens)
    try:
        rps = checker.api_get(f"{base}/resource_providers?name={host}").json()["resource_providers"]
        if not rps:
            return f"no resource provider {host} in placement yet"
        inv = checker.api_get(f"{base}/resource_providers/{rps[0]['uuid']}/inventories").json()["inventories"]
    except tools.FetchFailed as exc:
        return f"placement: {exc.reason}"
    missing = [rc for rc in ("VCPU", "MEMORY_MB", "DISK_GB") if rc not in inv]
    return f"its inventory lacks {', '.join(missing)}" if missing else None


def _hosts_to_ready(d: Deployment, hosts: list[str] | None = None) -> list[str]:
    """The compute hosts wait_cloud_ready maps and waits for: by default this host when it is control and compute
    at once; none without nova-compute."""
    nova = d.services.enabled().get("nova")
    if nova is None or "compute" not in nova.processes:
        return []
    return hosts if hosts is not None else ([d.host] if d.has("control") and d.has("compute") else [])


def wait_cloud_ready(lay: Layout, sup: Manager, t: Timer, hosts: list[str] | None = None,
                     manage: WarmProgram | None = None, tokens: Tokens | None = None) -> None:
    """Return once the cloud can build servers on `hosts`: each mapped into the cell and offered by placement
    (each nova process was already seen consuming its RPC queue). By default this host when it is control and
    compute at once; a control host of several hosts maps its compute hosts once they run (`add-compute`)."""
    hosts = _hosts_to_ready(lay.d, hosts)
    if not hosts:
        return
    discover_hosts(lay, sup, t, hosts, manage)
    with t.step(f"Waiting until placement offers {', '.join(hosts)}") as info:
        deadline = time.monotonic() + READY_TIMEOUT
        tokens = tokens or Tokens()
        while why := next((f"{h}: {w}" for h in hosts if (w := compute_in_placement(lay, h, tokens))), None):
            if time.monotonic() > deadline:
                raise StackcrateError(f"the cloud cannot build servers after {READY_TIMEOUT:.0f}s: {why}",
                                      hint="see `stackcrate deploy logs nova-compute` and `... logs placement`")
            time.sleep(0.5)
        info["note"] = "ready"


def add_compute(d: Deployment, t: Timer, hosts: list[str]) -> dict:
    """On the control host: map compute hosts that now run nova-compute into the cell and wait until placement
    offers them (what a one-node `start` does for its own compute service)."""
    if not d.has("control"):
        raise StackcrateError(f"{d.host} is not a control host: add compute hosts where the databases run",
                              hint="run it on the control host (configuration.yaml: node.roles has control)")
    sup = manager_for(d)
    if not sup.running():
        raise StackcrateError(f"the deployment in {d.state} is not running", hint="run `stackcrate deploy start`")
    lay = layout(d)
    wait_cloud_ready(lay, sup, t, hosts or d.compute_hosts)
    return {"compute_hosts": hosts or d.compute_hosts}


# ---------------------------------------------------------------------------------------------- verbs

def _marker(d: Deployment) -> Path:
    return d.state / "data" / "deployment.json"


def _record_init(d: Deployment, values: dict[str, str]) -> None:
    """The end of a successful init: the secrets every service now uses, and the marker `start` looks for."""
    secrets.record(d.state, values)
    secrets.finish_applying(d.state)
    _marker(d).write_text(json.dumps({"services": services_here(d), "backend": d.backend, "time": time.time()}))


def initialised(d: Deployment) -> bool:
    return _marker(d).exists()


def _converge(d: Deployment, lay: Layout, sup: Manager, t: Timer, only: set[str] | None = None,
              settle: bool = True, then: Callable[[ProcessDef], None] | None = None,
              gate: Callable[[ProcessDef], None] | None = None, tokens: Tokens | None = None) -> list[str]:
    """Start what does not run and restart what runs with another configuration than the one now written (then,
    gate, tokens: see start_processes)."""
    plist = [p for p in all_processes(lay) if only is None or p.name in only]
    restart = set()
    for p in plist:
        recorded = _started_with(d, p.name)
        if not recorded.exists() or recorded.read_text() != config_digest(lay, p):
            restart.add(p.name)
    return start_processes(d, sup, plist, lay.secrets, t, restart, lay, settle=settle, then=then, gate=gate,
                           tokens=tokens)


def _wsgi_files(lay: Layout, p: ProcessDef) -> set[str]:
    return {str(lay.wsgi_dir() / f"sc_wsgi_{p.service}.py")} if p.service else set()


def init(d: Deployment, t: Timer, reinstall: bool = False, ordered: bool = False, keep_venvs: list[Path] = (),
         and_start: bool = False) -> dict:
    """Install, configure, create databases/users/keys/catalog, apply changed secrets. Idempotent. Leaves the
    backing services and keystone running (and restarts what runs with a changed config).
    reinstall: replace installed venvs that differ from the artifacts (refused otherwise).
    ordered: migrations one service after the other in the table's order (an upgrade's documented order:
    keystone, glance, placement before nova); keep_venvs: venvs the deployment keeps a claim on.
    and_start (`run`, not ordered): also start every other process, each as soon as its service's migrations
    are done and those it needs serve (placement serves while nova still migrates), and return once the cloud
    is ready (`cloud_ready` in the answer)."""
    preflight(d, t)
    sup = manager_for(d)
    # a new deployment's database folder is made while the venvs unpack (mariadb-install-db: ~2 s on one core,
    # the archives take two); should anything fail until it is made, the state folder this init made goes whole
    fresh = False
    datadir: Future | None = None
    changed_venvs: set[str] = set()  # components whose installed files changed (kept as they are)
    try:
        if d.backend == "local":
            with t.step("Checking the artifacts and the installed venvs") as info:
                planned = prepare(d, reinstall)  # refuses before anything is written
                info["note"] = summary(planned)
            changed_venvs = {p.component for p in planned if p.action == "keep" and p.why}
            with ThreadPoolExecutor(max_workers=1) as beside:
                if d.has("control") and not d.state.exists():
                    d.state.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        d.state.mkdir()  # this init's own (removed whole if it fails early)
                    except FileExistsError:
                        raise StackcrateError(f"another command made {d.state} meanwhile",
                                              hint="run one `init` or `run` of a deployment at a time") from None
                    fresh = True
                    private_dirs(d)
                    datadir = beside.submit(backing.mariadb_install, d, sup)
                install(d, t, reinstall, planned=planned)
        options.check(d, t, options_runner(d, sup))  # needs the venvs; before anything else of the deployment
        private_dirs(d)
        if d.backend == "local":
            record_use(d, also=keep_venvs)
        pending = secrets.pending(d.state, d.config.secrets)
        values = secrets.desired(d.state, d.config.secrets)
        secrets.begin_applying(d.state, pending)  # before the first file or service holds a new value
        lay = layout(d, values)
        was_running = {n for n, st in sup.states().items() if st.state not in STOPPED} if sup.running() else set()
        with t.step("Writing configuration files") as info:
            changed = write_configs(lay)
            info["note"] = f"{changed} changed" if changed else "unchanged"
        if d.has("control"):
            with t.step("MariaDB data directory") as info:
                made = datadir.result() if datadir is not None else backing.mariadb_install(d, sup)
                info["note"] = "created" if made else "kept"
    except BaseException:
        if fresh:
            shutil.rmtree(d.state, ignore_errors=True)
        raise
    if ovn.enabled(d):
        with t.step("OVN and Open vSwitch databases") as info:
            info["note"] = ", ".join(ovn.create_databases(d, sup)) or "kept"
    sup.ensure(all_processes(lay))
    plist = all_processes(lay)
    backing_plist = [p for p in plist if p.kind == "backing"]
    if not d.has("control"):  # a compute host: nothing of the databases, the broker or keystone is here
        started = start_processes(d, sup, backing_plist, values, t, lay=lay)
        _record_init(d, values)
        return {"state": str(d.state), "started": started, "restarted": [], "secrets_applied": pending,
                "created_in_keystone": 0}
    first, rest = _database_first(backing_plist)

    def rest_of_backing() -> list[str]:
        # the broker may still hold an old password (set below): one that answers counts as started
        out = start_processes(d, sup, rest, values, t, lay=lay, login_optional=True, settle=False)
        if "rabbitmq_password" in pending or not Checker(d, values).amqp(d.services.backing.rabbitmq.port).ok:
            # also when an earlier init stopped half-way: the broker must hold the password every service gets
            with t.step("RabbitMQ: the OpenStack user's password"):
                backing.rabbitmq_set_password(d, values["rabbitmq_password"], sup)
        return out

    def keystone_serving() -> int:
        """keystone started (with the cache and the broker up) and the catalog registered in it."""
        started.extend(rest_started.result())
        started.extend(_converge(d, lay, sup, t, only={"keystone"}, settle=False, tokens=tokens))
        with t.step("Service users, services and endpoints in keystone") as info:
            made = register_with(lay, tokens, Checker(d, values).issue_token)
            info["note"] = f"{made} created" if made else "all present"
        return made

    pipelined = and_start and not ordered
    synced: dict[str, Future] = {name: Future() for name in d.services.enabled()}
    # one admin token for init's checks and the catalog (keystone hashes the password of each it issues)
    tokens = Tokens()
    compute = _ComputeReadiness(lay, sup, t, tokens)

    def gate(p: ProcessDef) -> None:
        if p.service in synced:
            synced[p.service].result()  # raises what its migrations raised

    def sync(service: str) -> tuple[str, float, int | None, str]:
        t0 = time.monotonic()
        try:
            # nova-manage, loaded once: it runs nova's migrations, then maps the compute host at the end
            warm = compute.warm_up() if service == "nova" and pipelined else None
            # a venv changed by hand may migrate otherwise than its artifact: it migrates itself
            note = bootstrap.sync(lay, service, sup, warm=warm,
                                  kept_schema=d.services.enabled()[service].component not in changed_venvs)
        except BaseException as exc:
            synced[service].set_exception(exc)
            raise
        synced[service].set_result(None)
        took = time.monotonic() - t0
        made = keystone_serving() if service == "keystone" and not ordered else None
        if service == "keystone" and pipelined:
            starting.append(side.submit(_converge, d, lay, sup, t, None, False, compute.then, gate, tokens))
        return service, took, made, note

    try:
        started = start_processes(d, sup, first, values, t, lay=lay, login_optional=True, settle=False)
        starting: list[Future] = []  # pipelined: the start of every other process, once keystone serves
        # The migrations need only the database: the other backing services (the broker takes ~5 s) start beside
        # them; keystone starts once its own migrations are done, and takes the catalog, while the others' run.
        with ThreadPoolExecutor(max_workers=1) as side:
            rest_started = side.submit(rest_of_backing)
            with t.step("Databases and database users"):
                backing.sql(d, bootstrap.db_sql(d, values), sup)
            # Each service's migrations touch only its own database: run them all at once (keystone's include its
            # key setup and bootstrap, which also re-sets the admin password).
            names = list(d.services.enabled())
            how = "in order" if ordered else "in parallel"
            with t.step(f"Schema migrations and keystone bootstrap ({how})") as info:
                if ordered:  # a failed migration stops the ones after it
                    took = [sync(n) for n in names]
                else:
                    with ThreadPoolExecutor(max_workers=len(names)) as pool:
                        took = list(pool.map(sync, names))
                info["note"] = ", ".join(f"{s} {sec:.1f}s" + (f" ({note})" if note else "")
                                         for s, sec, _, note in took)
            made = next((m for _, _, m, _ in took if m is not None), None)
            if made is None:  # in order: keystone after every migration, as an upgrade documents
                made = keystone_serving()
        started.extend(starting[0].result() if starting else [])
        if pipelined and not compute.ready:  # nova-compute ran already (or there is none here)
            wait_cloud_ready(lay, sup, t, manage=compute.manage, tokens=tokens)
    finally:
        compute.close()
    # what ran before init with a config that changed now runs with the new one (pipelined: done just above)
    restarted = _converge(d, lay, sup, t, only=was_running - {"keystone"}, settle=False, tokens=tokens) \
        if was_running and not pipelined else []
    wait_settled(d, sup, [p for p in plist if p.name in {*started, *restarted}])
    _record_init(d, values)
    return {"state": str(d.state), "created_in_keystone": made, "secrets_applied": pending, "started": started,
            "restarted": restarted, "boot_unit": str(d.state / "etc" / "systemd" / configs.boot_unit_name(d)),
            "cloud_ready": pipelined}


def _database_first(backing_plist: list[ProcessDef]) -> tuple[list[ProcessDef], list[ProcessDef]]:
    """The backing processes split in two: the waves up to the database's (what the migrations need), and the
    rest."""
    grouped = waves(backing_plist)
    upto = next((i for i, wave in enumerate(grouped) if any(p.name == "mariadb" for p in wave)), len(grouped) - 1)
    first = {p.name for wave in grouped[:upto + 1] for p in wave}
    return [p for p in backing_plist if p.name in first], [p for p in backing_plist if p.name not in first]


def start(d: Deployment, t: Timer, require_init: bool = True) -> dict:
    """Start what does not run (restart what runs with a changed config) and wait until the cloud is ready."""
    if require_init and not initialised(d):
        raise StackcrateError(f"the deployment in {d.state} is not initialised", hint="run `stackcrate deploy init`"
                              " (or `stackcrate deploy run`, which does it)")
    refuse_pending_secrets(d)
    preflight(d, t)
    sup = manager_for(d)
    options.check(d, t, options_runner(d, sup))
    private_dirs(d)
    lay = layout(d)  # refuses venvs missing or installed from another artifact (init installs)
    try:
        with t.step("Writing configuration files"):
            write_configs(lay)  # `rm` removed them; a changed override takes effect (restart)
        plist = all_processes(lay)
        sup.ensure(plist)
        tokens = Tokens()
        compute = _ComputeReadiness(lay, sup, t, tokens)
        started = _converge(d, lay, sup, t, settle=False, then=compute.then, tokens=tokens)
        if not compute.ready:  # nova-compute ran already (or there is none here)
            # meanwhile the processes started last count up to their `settle`
            wait_cloud_ready(lay, sup, t, tokens=tokens)
        wait_settled(d, sup, [p for p in plist if p.name in started])
    except StackcrateError:
        with t.step("Stopping everything (start failed)"):
            stop_all(d, t)
        raise
    return {"started": started}


def run(d: Deployment, t: Timer) -> dict:
    out: dict = {}
    if not initialised(d):
        try:
            out["init"] = init(d, t, and_start=True)
        except StackcrateError:
            stop_all(d, t)
            raise
        if out["init"].get("cloud_ready"):  # init started everything, each checked healthy: nothing left to start
            return {**out, "started": []}
    out.update(start(d, t))
    return out


class _ComputeReadiness:
    """The `then` of start_processes that maps the compute host into the cell and waits until placement offers it
    as soon as nova-compute serves, while the others still start (`ready` once done). warm_up(): nova-manage,
    loaded on the host (warm_program) as nova's migrations begin, runs them and then the mapping (which, at the
    very end of `run`, does not wait ~2 s for it to import nova again); it ends once used (or with stackcrate,
    whose end closes its input)."""

    def __init__(self, lay: Layout, sup: Manager, t: Timer, tokens: Tokens | None = None):
        self.lay, self.sup, self.t, self.tokens = lay, sup, t, tokens
        self.ready = False
        self.manage: WarmProgram | None = None

    def warm_up(self) -> WarmProgram | None:
        if self.lay.d.backend == "local" and _hosts_to_ready(self.lay.d) and self.manage is None:
            call = _discover_call(self.lay)
            self.manage = WarmProgram(call.program, call.env)
        return self.manage

    def then(self, p: ProcessDef) -> None:
        if p.name == "nova-compute":
            try:
                wait_cloud_ready(self.lay, self.sup, self.t, manage=self.manage, tokens=self.tokens)
            finally:
                self.close()
            self.ready = True

    def close(self) -> None:
        """End the loaded nova-manage (used or not: init ends it whatever happens)."""
        if self.manage is not None:
            self.manage.close()
            self.manage = None


def status(d: Deployment) -> dict:
    """Each process's state (from supervisord), health (its check) and version; needs neither the venvs nor the
    programs. `code`: 0 all running and healthy, 3 nothing runs, 1 anything else."""
    from .processes import definitions_for_status

    sup = manager_for(d)
    states = sup.states() if sup.running() else {}
    left = {} if states or d.backend != "local" else orphans(d.state)
    defs = definitions_for_status(d)
    try:
        versions = {c: a.version for c, a in artifacts(d, backend_format(d)).items()}
    except StackcrateError:
        versions = {}
    values = secrets.applied(d.state)
    checker = Checker(d, values)

    def one(name: str) -> dict:
        st = states.get(name)
        p = defs.get(name)
        row = {"name": name, "kind": "backing" if name in backing.backing_names(d) else "service", "pid": None,
               "port": (ports(d).get(name) or [None])[0], "version": None, "health": "-", "detail": ""}
        if st is None:
            row["state"] = "unsupervised" if name in left else "stopped"
            row["pid"] = left[name][0] if name in left else None
        else:
            row["state"] = {"RUNNING": "running", "STARTING": "starting", "BACKOFF": "restarting",
                            "STOPPING": "stopping", "EXITED": "exited", "FATAL": "failed"}.get(st.state, "stopped")
            row["pid"] = st.pid
            if st.state not in STOPPED:
                row["detail"] = st.description
        if row["state"] in ("running", "unsupervised") and p is not None:
            v = checker.check(p)
            row.update(health="ok" if v.ok else "failing", detail=v.detail, version=v.version)
        if st is not None and st.restarts is not None:
            row["restarts"] = st.restarts
            if st.restarts:  # it died and the engine's restart policy brought it back: say so
                row["detail"] = f"{row['detail']}; restarted {st.restarts}× by {d.backend}".lstrip("; ")
        if p is not None and p.component and not row["version"]:
            # what the process says first, else the venv it runs from (an upgrade's two releases are both
            # installed), else its artifact
            running = running_version(st.pid, p.component) if st and st.pid and d.backend == "local" else None
            row["version"] = running or versions.get(p.component)
        return row

    names = process_names(d)
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(one, names))
    if all(r["state"] == "running" and r["health"] == "ok" for r in rows):
        code = 0
    elif all(r["state"] == "stopped" for r in rows):
        code = 3
    else:
        code = 1
    return {"processes": rows, "code": code, "supervisor": "running" if states else "stopped"}


def rm(d: Deployment, t: Timer, purge: bool) -> dict:
    stopped = stop_all(d, t)
    out: dict = {"stopped": stopped, "purged": purge}
    if d.backend != "local":
        with t.step(f"Removing the containers{' and the images loaded' if purge else ''}") as info:
            out["containers"] = manager_for(d).remove(purge)
            info["note"] = f"{len(out['containers']['containers'])} containers"
    if purge and d.backend == "local":
        with t.step("Removing the venvs no other deployment uses") as info:
            out["venvs"] = release(d.state, where=prefixes(d))
            info["note"] = f"{len(out['venvs']['removed'])} removed, {len(out['venvs']['kept'])} kept"
        for k in out["venvs"]["kept"]:
            t.ui.info(f"  kept {k['venv']}: {k['why']}")
    if ovn.enabled(d):
        with t.step(f"Removing the network namespace {ovn.netns(d)}") as info:
            info["note"] = "removed" if ovn.remove_netns(d) else "there was none"
    if purge and podman_api.enabled(d):
        with t.step("Removing the instances' containers and images") as info:
            gone = podman_api.remove_instances(d)
            info["note"] = f"{len(gone['containers'])} container(s), {len(gone['images'])} image tag(s)"
    if purge:
        with t.step(f"Removing {d.state}"):
            shutil.rmtree(d.state, ignore_errors=True)
    else:
        with t.step("Removing runtime files (run/, etc/); keeping data/, secrets and logs"):
            for sub in ("run", "etc"):
                shutil.rmtree(d.state / sub, ignore_errors=True)
            (d.state / "clouds.yaml").unlink(missing_ok=True)
    return out



def options_runner(d: Deployment, sup: Manager):
    """How options.check runs its probe: the venv's Python on the host, or in a one-shot container of the image
    that holds the venv (the probe's own file mounted read-only)."""
    if d.backend == "local":
        return tools.run
    from .options import PROBE
    from .processes import Call

    owner = {a.install_path: c for c, a in artifacts(d, "oci").items()}

    def run(argv: list[str], input: str | None = None, timeout: float = 120) -> tools.CompletedProcess:
        component = owner[str(Path(argv[0]).parent.parent)]
        return sup.run(Call(component, argv[0], tuple(argv[1:]), input=input, reads=(str(PROBE.parent),)),
                       timeout=timeout)
    return run
