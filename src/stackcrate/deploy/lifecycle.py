"""The lifecycle of a local deployment: init, start, stop, status, rm (the verbs of `stackcrate deploy`)."""

from __future__ import annotations

import json
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from . import backing, bootstrap, configs, procs
from .config import Deployment
from .install import artifacts, install, prepare, release, summary, venvs
from .keystone_api import register
from .layout import Layout
from .processes import ProcessDef, all_processes, proc_name, process_names
from .secrets import load_or_create
from .timer import Timer


def layout(d: Deployment) -> Layout:
    return Layout(d, venvs(d), load_or_create(d.state, d.config.secrets))


def write_configs(lay: Layout) -> None:
    backing.write_configs(lay.d, lay.secrets)
    configs.write_configs(lay)


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
           "haproxy": [s.port for s in d.services.enabled().values()]}
    for name, s in d.services.enabled().items():
        out[proc_name(name)] = [s.backend_port]
    return {n: out.get(n, []) for n in process_names(d)}


def preflight(d: Deployment) -> None:
    """Refuse before changing anything: artifacts and programs present, every port of a stopped process free."""
    artifacts(d)
    backing.check_programs()
    run_dir = d.state / "run"
    busy = []
    for name, plist in ports(d).items():
        if procs.alive(run_dir / f"{name}.pid"):
            continue
        procs.reap(run_dir / f"{name}.pid")  # a killed master's workers may still hold its port
        busy += [f"{port} ({name})" for port in plist if not _port_free(d.listen, port)]
    if busy:
        raise StackcrateError(f"port(s) already in use on {d.listen}: {', '.join(busy)}",
                              hint="stop what uses them, or change the ports in the services file")
    lo, hi = _ephemeral_range()
    risky = [f"{port} ({name})" for name, plist in ports(d).items() for port in plist if lo <= port <= hi]
    if risky:
        # Seen: an outgoing connection took 38774 as its source port and HAProxy could not bind it on restart.
        raise StackcrateError(f"port(s) in this machine's ephemeral range {lo}-{hi}: {', '.join(risky)}",
                              hint="outgoing connections may take them at any time; pick ports below "
                              f"{lo} in the services file")


def start_procs(d: Deployment, plist: list[ProcessDef], t: Timer) -> list[str]:
    run_dir, log_dir = d.state / "run", d.state / "log"
    run_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for p in plist:
        if procs.alive(run_dir / f"{p.name}.pid"):
            continue
        with t.step(f"Starting {p.name}"):
            procs.start(p, run_dir, log_dir)
            procs.wait_healthy(p, d.listen, run_dir, log_dir)
        started.append(p.name)
    return started


def stop_all(d: Deployment, t: Timer) -> dict[str, str]:
    """OpenStack processes in parallel (nova's ignore SIGTERM: each waits out the deadline), then backing ones
    one by one in reverse start order."""
    run_dir = d.state / "run"
    stop_order = list(reversed(process_names(d)))
    present = [n for n in stop_order if (run_dir / f"{n}.pid").exists()]
    tier1 = [n for n in present if n not in backing.BACKING_NAMES]
    out: dict[str, str] = {}
    if tier1:
        with t.step(f"Stopping {', '.join(tier1)}") as info:
            with ThreadPoolExecutor(max_workers=len(tier1)) as pool:
                results = pool.map(lambda n: procs.stop(n, run_dir, d.config.stop_timeout), tier1)
                out.update(zip(tier1, results, strict=True))
            killed = [n for n in tier1 if out[n] != "stopped"]
            info["note"] = f"killed after {d.config.stop_timeout:g}s: {', '.join(killed)}" if killed else ""
    for name in [n for n in present if n in backing.BACKING_NAMES]:
        with t.step(f"Stopping {name}") as info:
            out[name] = info["note"] = procs.stop(name, run_dir, d.config.stop_timeout)
    return out


COMPUTE_HOST = "stackcrate"  # nova's [DEFAULT] host of the single compute node


def discover_hosts(lay: Layout, t: Timer) -> None:
    """Map the compute host into cell1 once it has registered (nova-compute does that on start)."""
    if "nova" not in lay.d.services.enabled() or "compute" not in lay.d.services.services.nova.processes:
        return

    def count(q: str) -> int:
        return int(backing.sql(lay.d, q).strip() or 0)

    with t.step("Mapping the compute host (nova-manage cell_v2 discover_hosts)") as info:
        if count(f"SELECT COUNT(*) FROM nova_api.host_mappings WHERE host='{COMPUTE_HOST}';"):
            info["note"] = "already mapped"
            return
        deadline = time.monotonic() + 120
        # Polling the database is instant; nova-manage takes ~3 s to start, so run it once the node exists.
        while not count(f"SELECT COUNT(*) FROM nova.compute_nodes WHERE host='{COMPUTE_HOST}' AND deleted=0;"):
            if time.monotonic() > deadline:
                raise StackcrateError("nova-compute did not register within 120s",
                                      hint="see `stackcrate deploy logs nova-compute`")
            time.sleep(0.5)
        tools.run([lay.bin("nova", "nova-manage"), "--config-file", str(lay.conf_file("nova")),
                   "cell_v2", "discover_hosts"], timeout=300)


# ---------------------------------------------------------------------------------------------- verbs

def _marker(d: Deployment) -> Path:
    return d.state / "data" / "deployment.json"


def initialised(d: Deployment) -> bool:
    return _marker(d).exists()


def init(d: Deployment, t: Timer, reinstall: bool = False) -> dict:
    """Install, configure, create databases/users/keys/catalog. Idempotent. Leaves backing+keystone running.
    reinstall: replace installed venvs that differ from the artifacts (refused otherwise)."""
    preflight(d)
    with t.step("Checking the artifacts and the installed venvs") as info:
        planned = prepare(d, reinstall)  # refuses before anything is written
        info["note"] = summary(planned)
    with t.step("Secrets (generated once, mode 0600)"):
        load_or_create(d.state, d.config.secrets)
    install(d, t, reinstall, planned=planned)
    lay = layout(d)
    everything = all_processes(lay)
    with t.step("Writing configuration files"):
        write_configs(lay)
    with t.step("MariaDB data directory") as info:
        info["note"] = "created" if backing.mariadb_install(d) else "kept"
    start_procs(d, [p for p in everything if p.kind == "backing"], t)
    with t.step("Databases and database users"):
        backing.sql(d, bootstrap.db_sql(d, lay.secrets))

    def sync(service: str) -> tuple[str, float]:
        t0 = time.monotonic()
        bootstrap.sync(lay, service)
        return service, time.monotonic() - t0

    # Each service's migrations touch only its own database: run them all at once (keystone's include its
    # key setup and bootstrap).
    names = list(d.services.enabled())
    with t.step("Schema migrations and keystone bootstrap (in parallel)") as info:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            took = list(pool.map(sync, names))
        info["note"] = ", ".join(f"{s} {sec:.1f}s" for s, sec in took)
    start_procs(d, [p for p in everything if p.service == "keystone"], t)
    with t.step("Service users, services and endpoints in keystone") as info:
        made = register(lay)
        info["note"] = f"{made} created" if made else "all present"
    _marker(d).write_text(json.dumps({"services": list(d.services.enabled()), "time": time.time()}))
    return {"state": str(d.state), "created_in_keystone": made}


def start(d: Deployment, t: Timer, require_init: bool = True) -> dict:
    if require_init and not initialised(d):
        raise StackcrateError(f"the deployment in {d.state} is not initialised", hint="run `stackcrate deploy init`"
                              " (or `stackcrate deploy run`, which does it)")
    preflight(d)
    lay = layout(d)
    with t.step("Writing configuration files"):
        write_configs(lay)  # `rm` removed them; regenerating is cheap and picks up config changes
    started = start_procs(d, all_processes(lay), t)
    discover_hosts(lay, t)
    return {"started": started}


def run(d: Deployment, t: Timer) -> dict:
    out = {}
    if not initialised(d):
        out["init"] = init(d, t)
    out.update(start(d, t))
    return out


def status(d: Deployment) -> list[dict]:
    """State (running/down/stopped) and health of each process; needs neither the venvs nor the programs."""
    run_dir, listening = d.state / "run", ports(d)
    rows = []
    for name in process_names(d):
        pidfile = run_dir / f"{name}.pid"
        pid = procs.alive(pidfile)
        port = (listening.get(name) or [None])[0]
        is_backing = name in backing.BACKING_NAMES
        if pid:
            state = "running"
            if is_backing:
                good = procs.port_open(d.listen, port)
            elif port:
                good = procs.http_ok(f"http://{d.listen}:{port}/")
            else:
                good = True  # nova's conductor/scheduler/compute have no port; running is all we can see here
            health = "ok" if good else "failing"
        else:
            state, health = ("down" if pidfile.exists() else "stopped"), "-"
        rows.append({"name": name, "kind": "backing" if is_backing else "service", "state": state,
                     "health": health, "pid": pid, "port": port})
    return rows


def rm(d: Deployment, t: Timer, purge: bool) -> dict:
    stopped = stop_all(d, t)
    out: dict = {"stopped": stopped, "purged": purge}
    if purge:
        with t.step("Removing the venvs no other deployment uses") as info:
            out["venvs"] = release(d.state)
            info["note"] = f"{len(out['venvs']['removed'])} removed, {len(out['venvs']['kept'])} kept"
        for k in out["venvs"]["kept"]:
            t.ui.info(f"  kept {k['venv']}: {k['why']}")
        with t.step(f"Removing {d.state}"):
            shutil.rmtree(d.state, ignore_errors=True)
    else:
        with t.step("Removing runtime files (run/, etc/); keeping data/, secrets and logs"):
            for sub in ("run", "etc"):
                shutil.rmtree(d.state / sub, ignore_errors=True)
    return out
